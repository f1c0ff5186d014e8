package config

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"gopkg.in/yaml.v3"
)

// redacted is what every printable form of a Secret shows.
const redacted = "REDACTED"

// Secret holds a sensitive string. The value sits in an unexported field and
// every formatting path (fmt verbs, slog, JSON, YAML) prints "REDACTED", so a
// Config can be logged or dumped without leaking it. Reveal returns the value.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return s.value }

// Bytes returns the secret value as bytes.
func (s Secret) Bytes() []byte { return []byte(s.value) }

// Len is the length of the value in bytes.
func (s Secret) Len() int { return len(s.value) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (the %#v verb).
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that no verb, not even %d or %x, reaches the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler (used for map keys and some encoders).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (Secret) MarshalYAML() (any, error) { return redacted, nil }

// UnmarshalYAML reads a secret from a YAML scalar.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a secret must be a string", n.Line)
	}
	s.value = n.Value
	return nil
}
