package storagetest

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// NormTime is what a backend must return for t: UTC, truncated to the
// microsecond, and the zero time kept zero.
func NormTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Diff compares a record a backend returned (got) with the one that was
// stored (want) and describes every difference, one per line, naming the
// field. Times compare with time.Time.Equal after NormTime(want), must be in
// UTC (as storage.go says), a zero time must stay zero, and a nil slice equals an empty one (SQL and JSON backends
// cannot always tell them apart; the contract does not either).
func Diff(want, got any) []string {
	var out []string
	diffValue("", reflect.ValueOf(want), reflect.ValueOf(got), &out)
	return out
}

func diffValue(path string, w, g reflect.Value, out *[]string) {
	if w.Type() != g.Type() {
		*out = append(*out, fmt.Sprintf("%s: type %s, want %s", path, g.Type(), w.Type()))
		return
	}
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		switch {
		case wt.IsZero() && !gt.IsZero():
			*out = append(*out, fmt.Sprintf("%s: got %s, want the zero time", path, gt))
		case !wt.IsZero() && !NormTime(wt).Equal(gt):
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, gt.Format(time.RFC3339Nano), NormTime(wt).Format(time.RFC3339Nano)))
		case gt.Location() != time.UTC:
			// storage.go: backends return times in UTC (time.UnixMicro and
			// pgx give time.Local unless converted).
			*out = append(*out, fmt.Sprintf("%s: got time in location %q, want UTC", path, gt.Location()))
		}
		return
	}
	switch w.Kind() {
	case reflect.Struct:
		for i := range w.NumField() {
			f := w.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			diffValue(join(path, f.Name), w.Field(i), g.Field(i), out)
		}
	case reflect.Slice:
		if w.Len() == 0 && g.Len() == 0 {
			return
		}
		if w.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(w.Bytes(), g.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: got %q, want %q", path, g.Bytes(), w.Bytes()))
			}
			return
		}
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: got %d elements %+v, want %d %+v", path, g.Len(), g.Interface(), w.Len(), w.Interface()))
			return
		}
		for i := range w.Len() {
			diffValue(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i), out)
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %#v, want %#v", path, g.Interface(), w.Interface()))
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// checkEqual fails t when got differs from want (see Diff).
func checkEqual(t testing.TB, what string, want, got any) {
	t.Helper()
	if d := Diff(want, got); len(d) > 0 {
		t.Errorf("%s differs from what was stored:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// checkAllSet fails t when a field of the fixture v is its zero value, so that
// a field added to a record later cannot be forgotten by the round-trip tests.
func checkAllSet(t testing.TB, what string, v any) {
	t.Helper()
	var zero []string
	allSet("", reflect.ValueOf(v), &zero)
	if len(zero) > 0 {
		t.Fatalf("test fixture %s leaves fields unset, so their round trip is untested: %s", what, strings.Join(zero, ", "))
	}
}

func allSet(path string, v reflect.Value, zero *[]string) {
	if v.Kind() == reflect.Struct && v.Type() != timeType {
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				allSet(join(path, v.Type().Field(i).Name), v.Field(i), zero)
			}
		}
		return
	}
	if v.IsZero() || (v.Kind() == reflect.Slice && v.Len() == 0) {
		*zero = append(*zero, path)
	}
}

// scribble overwrites, in place, the first element of every slice reachable
// from v (a pointer), to check a backend does not share memory with callers.
func scribble(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		scribble(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return
		}
		e := v.Index(0)
		switch e.Kind() {
		case reflect.Uint8:
			e.SetUint(e.Uint() ^ 0xff)
		case reflect.String:
			e.SetString("scribbled")
		default:
			scribble(e.Addr())
		}
	}
}
