package requestid

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"":                                     false,
		"abc-123":                              true,
		"0b8f1c2e-7d4a-4e1b-9c3f-2a1b3c4d5e6f": true,
		"a b":                                  false,
		"a\nmsg=forged":                        false,
		"<script>":                             false,
		strings.Repeat("a", MaxLen):            true,
		strings.Repeat("a", MaxLen+1):          false,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestNewIsValidAndUnique(t *testing.T) {
	a, b := New(), New()
	if !Valid(a) || len(a) != 32 {
		t.Fatalf("New() = %q: want 32 hex characters", a)
	}
	if a == b {
		t.Fatalf("New() returned %q twice", a)
	}
}

func TestLogHandlerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	h := LogHandler(slog.NewJSONHandler(&buf, nil))
	if LogHandler(h) != h {
		t.Fatal("wrapping twice must not add a second layer")
	}
	log := slog.New(h).With("component", "test").WithGroup("g")
	// Without a group the attribute is added to the record directly.
	slog.New(h).InfoContext(NewContext(context.Background(), "req-0"), "plain")

	log.InfoContext(NewContext(context.Background(), "req-1"), "with id", "k", "v")
	log.InfoContext(context.Background(), "without id")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 3: %s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"request_id":"req-0"`) {
		t.Errorf("plain line = %s: want request_id req-0", lines[0])
	}
	lines = lines[1:]
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	g, _ := first["g"].(map[string]any)
	if first["request_id"] != "req-1" || first["component"] != "test" || g["k"] != "v" {
		t.Errorf("first line = %s: want a top-level request_id req-1, component test and g.k v", lines[0])
	}
	if strings.Contains(lines[1], "request_id") {
		t.Errorf("second line = %s: want no request_id", lines[1])
	}
}
