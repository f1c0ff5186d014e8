package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "GATEHOUSE"

// Load builds the configuration: Default(), then the YAML file at path (when
// path is not empty; unknown keys are rejected with their line), then the
// GATEHOUSE_* variables read through getenv, then the dev-mode defaults when
// dev is true or the configuration says dev: true. It does not validate: call
// Validate on the result.
//
// In dev mode without a configured system secret, Load creates (once) and
// reads a random secret kept in gatehouse-dev.secret next to the database, so
// that restarts keep signing keys and sessions.
func Load(path string, getenv func(string) string, dev bool) (Config, error) {
	cfg := Default()
	set := map[string]bool{} // key paths given explicitly, by file or environment
	if path != "" {
		if err := loadFile(path, &cfg, set); err != nil {
			return Config{}, err
		}
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), "", getenv, set); err != nil {
		return Config{}, err
	}
	if dev {
		cfg.Dev = true
	}
	if cfg.Dev {
		if err := applyDev(&cfg, set); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

func loadFile(path string, cfg *Config, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("parsing config file %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil // empty file: defaults only
	}
	if doc := root.Content[0]; doc.Kind != yaml.MappingNode {
		return fmt.Errorf("parsing config file %s: line %d: the top level must be a mapping of keys", path, doc.Line)
	}
	markSet(root.Content[0], "", set)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parsing config file %s: %w", path, err)
	}
	return nil
}

// markSet records the key paths present in a YAML mapping.
func markSet(n *yaml.Node, prefix string, set map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := prefix + n.Content[i].Value
		set[key] = true
		markSet(n.Content[i+1], key+".", set)
	}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
)

// EnvName is the environment variable overriding the key at path
// (dot-separated YAML keys).
func EnvName(path string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv walks the struct by its yaml tags and applies GATEHOUSE_<PATH> and
// GATEHOUSE_<PATH>_FILE. Every bad variable is reported.
func applyEnv(v reflect.Value, prefix string, getenv func(string) string, set map[string]bool) error {
	var errs []error
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + tag
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != secretType {
			if err := applyEnv(fv, path+".", getenv, set); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		name := EnvName(path)
		val, fileName := getenv(name), name+"_FILE"
		file := getenv(fileName)
		if val == "" && file == "" {
			continue
		}
		if val != "" && file != "" {
			errs = append(errs, fmt.Errorf("%s and %s are both set: set only one", name, fileName))
			continue
		}
		fromFile := file != ""
		if fromFile {
			data, err := os.ReadFile(file)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: reading file: %w", fileName, err))
				continue
			}
			val, name = string(data), fileName
		}
		if err := setLeaf(fv, val, fromFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		set[path] = true
	}
	return errors.Join(errs...)
}

// setLeaf parses raw into the field. Lists are comma-separated, or one item
// per line when read from a file; a value read from a file loses its
// trailing newline.
func setLeaf(fv reflect.Value, raw string, fromFile bool) error {
	scalar := raw
	if fromFile {
		scalar = strings.TrimRight(raw, "\r\n")
	}
	switch {
	case fv.Type() == secretType:
		fv.Set(reflect.ValueOf(NewSecret(scalar)))
		return nil
	case fv.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(scalar))
		if err != nil {
			return fmt.Errorf("invalid duration %q: use a Go duration such as 90s, 15m or 24h", scalar)
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(scalar)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(scalar))
		if err != nil {
			return fmt.Errorf("invalid boolean %q: use true or false", scalar)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(scalar), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", scalar)
		}
		fv.SetInt(n)
	case reflect.Slice:
		items := splitList(raw, fromFile)
		s := reflect.MakeSlice(fv.Type(), len(items), len(items))
		for i, it := range items {
			if err := setLeaf(s.Index(i), it, false); err != nil {
				return err
			}
		}
		fv.Set(s)
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}

func splitList(raw string, lines bool) []string {
	sep := ","
	if lines {
		sep = "\n"
	}
	var out []string
	for item := range strings.SplitSeq(raw, sep) {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// applyDev fills in what dev mode defaults for keys not set explicitly.
func applyDev(cfg *Config, set map[string]bool) error {
	if !set["issuer"] || cfg.Issuer == "" {
		cfg.Issuer = DevIssuer
	}
	if !set["database_url"] {
		cfg.DatabaseURL = DevDatabaseURL
	}
	if !set["log.level"] {
		cfg.Log.Level = "debug"
	}
	if !set["log.format"] {
		cfg.Log.Format = "text"
	}
	if !set["registration.policy"] {
		cfg.Registration.Policy = RegistrationOpen
	}
	if len(cfg.Secrets.System) == 0 {
		s, err := devSecret(filepath.Join(databaseDir(cfg.DatabaseURL), DevSecretFile))
		if err != nil {
			return err
		}
		cfg.Secrets.System = []Secret{s}
	}
	return nil
}

// databaseDir is the directory of a sqlite:// database file, or "." for
// other databases.
func databaseDir(dbURL string) string {
	// The forms storage/sql accepts: sqlite:///abs, sqlite://rel, sqlite:rel.
	rest, ok := strings.CutPrefix(dbURL, "sqlite://")
	if !ok {
		if rest, ok = strings.CutPrefix(dbURL, "sqlite:"); !ok {
			return "."
		}
	}
	rest, _, _ = strings.Cut(rest, "?")
	if rest == "" || rest == ":memory:" {
		return "."
	}
	return filepath.Dir(rest)
}

// devSecret reads the dev secret file, creating it with a fresh random
// secret the first time.
func devSecret(path string) (Secret, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(data))
		if len(s) < MinSecretBytes {
			return Secret{}, fmt.Errorf("dev secret file %s holds fewer than %d bytes: delete it to get a new one", path, MinSecretBytes)
		}
		return NewSecret(s), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Secret{}, fmt.Errorf("reading dev secret: %w", err)
	}
	buf := make([]byte, 48)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails
	s := base64.StdEncoding.EncodeToString(buf)
	// Write a temporary file, then hard-link it into place: the link fails if
	// another process won the race, and nobody ever reads a half-written file.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gatehouse-dev-secret-*")
	if err != nil {
		return Secret{}, fmt.Errorf("creating dev secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(s + "\n"); err != nil {
		tmp.Close()
		return Secret{}, fmt.Errorf("writing dev secret: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Secret{}, fmt.Errorf("writing dev secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return devSecret(path)
	} else if err != nil {
		return Secret{}, fmt.Errorf("creating dev secret: %w", err)
	}
	return NewSecret(s), nil
}
