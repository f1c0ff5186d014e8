package storagetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func TestDiff(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, zone)
	want := storage.Session{ID: "s", AMR: []string{"pwd"}, AuthTime: at, ExpiresAt: at}
	same := storage.Session{ID: "s", AMR: []string{"pwd"}, AuthTime: NormTime(at), ExpiresAt: NormTime(at)}
	if d := Diff(want, same); len(d) != 0 {
		t.Errorf("Diff of a faithful round trip: %q", d)
	}
	if d := Diff(storage.Session{AMR: nil}, storage.Session{AMR: []string{}}); len(d) != 0 {
		t.Errorf("Diff of nil and empty slices: %q", d)
	}
	tests := []struct {
		name  string
		got   func(storage.Session) storage.Session
		field string
	}{
		{"rounded, not truncated", func(s storage.Session) storage.Session {
			s.AuthTime = at.UTC().Round(time.Microsecond)
			return s
		}, "AuthTime"},
		{"not UTC", func(s storage.Session) storage.Session { s.AuthTime = NormTime(at).Local(); return s }, "AuthTime"},
		{"zero not kept", func(s storage.Session) storage.Session { s.CreatedAt = time.Unix(0, 0).UTC(); return s }, "CreatedAt"},
		{"slice element", func(s storage.Session) storage.Session { s.AMR = []string{"otp"}; return s }, "AMR[0]"},
		{"slice length", func(s storage.Session) storage.Session { s.AMR = nil; return s }, "AMR"},
		{"bool", func(s storage.Session) storage.Session { s.Remember = true; return s }, "Remember"},
	}
	for _, tc := range tests {
		d := Diff(want, tc.got(same))
		if len(d) != 1 || !strings.HasPrefix(d[0], tc.field+":") {
			t.Errorf("%s: Diff = %q, want one difference in %s", tc.name, d, tc.field)
		}
	}
	if d := Diff(storage.Request{Payload: []byte{0xff, 0}}, storage.Request{Payload: []byte{0xff}}); len(d) != 1 || !strings.HasPrefix(d[0], "Payload:") {
		t.Errorf("Diff of payloads: %q", d)
	}
	if d := Diff(storage.User{Claims: storage.Claims{Address: storage.Address{Region: "x"}}}, storage.User{}); len(d) != 1 || !strings.HasPrefix(d[0], "Claims.Address.Region:") {
		t.Errorf("Diff of nested struct: %q", d)
	}
}

func TestAllSet(t *testing.T) {
	var zero []string
	c := fullClient("c")
	c.JWKS, c.FirstParty = nil, false
	allSet("", reflect.ValueOf(c), &zero)
	if strings.Join(zero, ",") != "JWKS,FirstParty" {
		t.Errorf("allSet found unset fields %q, want JWKS and FirstParty", zero)
	}
}

func TestScribble(t *testing.T) {
	c := fullClient("c")
	scribble(reflect.ValueOf(&c))
	d := Diff(fullClient("c"), c)
	if len(d) < 10 {
		t.Errorf("scribble changed only %d fields: %q", len(d), d)
	}
}

func TestRaceAndExactlyOne(t *testing.T) {
	errs := race(concurrency, func(i int) error {
		if i == 7 {
			return nil
		}
		return storage.ErrInactive
	})
	if w := exactlyOne(t, errs, storage.ErrInactive, "test"); w != 7 {
		t.Errorf("exactlyOne named winner %d, want 7", w)
	}
	nils, byKind, others := tally([]error{nil, nil, storage.ErrConflict, storage.ErrNotFound}, storage.ErrConflict)
	if nils != 2 || byKind[storage.ErrConflict] != 1 || len(others) != 1 {
		t.Errorf("tally: %d nils, %v, others %v", nils, byKind, others)
	}
}
