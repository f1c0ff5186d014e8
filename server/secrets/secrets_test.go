package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func mustRing(t *testing.T, s ...[]byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(s...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustRing(t, secret('a'))
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("long plaintext "), 1000)} {
		box, err := k.Seal(pt, []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		if len(box) != len(pt)+Overhead {
			t.Errorf("box length %d, want %d", len(box), len(pt)+Overhead)
		}
		// A one-byte plaintext occurs by chance in ~11% of random boxes, so
		// only plaintexts long enough not to collide are checked.
		if len(pt) >= 8 && bytes.Contains(box, pt) {
			t.Error("box contains the plaintext")
		}
		got, err := k.Open(box, []byte("aad"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	k := mustRing(t, secret('a'))
	b1, _ := k.Seal([]byte("same"), nil)
	b2, _ := k.Seal([]byte("same"), nil)
	if bytes.Equal(b1, b2) {
		t.Error("two seals of the same plaintext are identical")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k := mustRing(t, secret('a'))
	box, err := k.Seal([]byte("attack at dawn"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range box {
		bad := bytes.Clone(box)
		bad[i] ^= 0x01
		if _, err := k.Open(bad, []byte("ctx")); !errors.Is(err, ErrOpen) {
			t.Errorf("byte %d flipped: Open err = %v, want ErrOpen", i, err)
		}
	}
	for _, n := range []int{0, 1, Overhead - 1, len(box) - 1} {
		if _, err := k.Open(box[:n], []byte("ctx")); !errors.Is(err, ErrOpen) {
			t.Errorf("truncated to %d: Open err = %v, want ErrOpen", n, err)
		}
	}
	if _, err := k.Open(append(bytes.Clone(box), 0), []byte("ctx")); !errors.Is(err, ErrOpen) {
		t.Errorf("extended: Open err = %v, want ErrOpen", err)
	}
}

func TestOpenRejectsWrongAAD(t *testing.T) {
	k := mustRing(t, secret('a'))
	box, _ := k.Seal([]byte("data"), []byte("kid-1"))
	for _, aad := range [][]byte{nil, []byte("kid-2"), []byte("kid-1x"), []byte("kid-")} {
		if _, err := k.Open(box, aad); !errors.Is(err, ErrOpen) {
			t.Errorf("aad %q: Open err = %v, want ErrOpen", aad, err)
		}
	}
}

func TestOpenRejectsOtherKeyring(t *testing.T) {
	box, _ := mustRing(t, secret('a')).Seal([]byte("data"), nil)
	if _, err := mustRing(t, secret('b')).Open(box, nil); !errors.Is(err, ErrOpen) {
		t.Errorf("Open under an unrelated secret: err = %v, want ErrOpen", err)
	}
}

func TestRotation(t *testing.T) {
	old := mustRing(t, secret('a'))
	box, _ := old.Seal([]byte("sealed under old"), []byte("aad"))
	tag := old.MAC("client-secret", []byte("msg"))

	rotated := mustRing(t, secret('b'), secret('a'))
	got, err := rotated.Open(box, []byte("aad"))
	if err != nil || string(got) != "sealed under old" {
		t.Fatalf("rotated Open = %q, %v", got, err)
	}
	if !rotated.VerifyMAC("client-secret", []byte("msg"), tag) {
		t.Error("MAC under the old secret does not verify after rotation")
	}
	// New material is made under the new (first) secret.
	newTag := rotated.MAC("client-secret", []byte("msg"))
	if bytes.Equal(newTag, tag) {
		t.Error("rotated keyring still MACs under the old secret")
	}
	if old.VerifyMAC("client-secret", []byte("msg"), newTag) {
		t.Error("old keyring verifies a MAC made under the new secret")
	}
	newBox, _ := rotated.Seal([]byte("new"), nil)
	if _, err := old.Open(newBox, nil); !errors.Is(err, ErrOpen) {
		t.Error("old keyring opens a box sealed under the new secret")
	}
	// Dropping the old secret ends its validity.
	dropped := mustRing(t, secret('b'))
	if _, err := dropped.Open(box, []byte("aad")); !errors.Is(err, ErrOpen) {
		t.Error("box sealed under a dropped secret still opens")
	}
	if dropped.VerifyMAC("client-secret", []byte("msg"), tag) {
		t.Error("MAC under a dropped secret still verifies")
	}
}

func TestMAC(t *testing.T) {
	k := mustRing(t, secret('a'))
	tag := k.MAC("p1", []byte("msg"))
	if len(tag) != 32 {
		t.Fatalf("MAC length %d", len(tag))
	}
	if !bytes.Equal(tag, k.MAC("p1", []byte("msg"))) {
		t.Error("MAC is not deterministic")
	}
	if !k.VerifyMAC("p1", []byte("msg"), tag) {
		t.Error("VerifyMAC rejects a good MAC")
	}
	if k.VerifyMAC("p2", []byte("msg"), tag) {
		t.Error("a MAC verifies under another purpose")
	}
	if k.VerifyMAC("p1", []byte("msh"), tag) {
		t.Error("a MAC verifies for another message")
	}
	bad := bytes.Clone(tag)
	bad[31] ^= 1
	for _, b := range [][]byte{bad, tag[:31], nil, {}} {
		if k.VerifyMAC("p1", []byte("msg"), b) {
			t.Errorf("VerifyMAC accepts %x", b)
		}
	}
}

func TestDerive(t *testing.T) {
	k := mustRing(t, secret('b'), secret('a'))
	keys := k.Derive("fosite-hmac", 32)
	if len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 32 {
		t.Fatalf("Derive shape: %d keys", len(keys))
	}
	if bytes.Equal(keys[0], keys[1]) {
		t.Error("current and old derived keys are equal")
	}
	// The old secret's derived key is what a keyring with only that secret derives.
	if only := mustRing(t, secret('a')).Derive("fosite-hmac", 32); !bytes.Equal(only[0], keys[1]) {
		t.Error("old key does not match the old secret's own derivation")
	}
	if bytes.Equal(k.Derive("other", 32)[0], keys[0]) {
		t.Error("two purposes derive the same key")
	}
	// A Derive key is never the raw secret nor the MAC key of the same purpose.
	if bytes.Equal(keys[0], secret('b')) {
		t.Error("Derive returned the raw secret")
	}
	if bytes.Equal(k.macKeysFor("fosite-hmac")[0], keys[0]) {
		t.Error("Derive and MAC share a key for the same purpose")
	}
	if got := k.Derive("fosite-hmac", 64); len(got[0]) != 64 {
		t.Errorf("Derive 64: got %d bytes", len(got[0]))
	}
	// Callers may modify what they get without affecting later calls.
	keys[0][0] ^= 0xff
	if bytes.Equal(k.Derive("fosite-hmac", 32)[0], keys[0]) {
		t.Error("Derive returns shared slices")
	}
}

func TestNewKeyringRejects(t *testing.T) {
	cases := map[string][][]byte{
		"none":       nil,
		"short":      {make([]byte, 31)},
		"short old":  {secret('a'), []byte("too short")},
		"duplicates": {secret('a'), secret('a')},
	}
	for name, s := range cases {
		if _, err := NewKeyring(s...); err == nil {
			t.Errorf("%s: NewKeyring accepted", name)
		}
	}
}

func TestNewKeyringCopiesSecrets(t *testing.T) {
	s := secret('a')
	k := mustRing(t, s)
	tag := k.MAC("p", nil)
	s[0] ^= 1
	if !bytes.Equal(k.MAC("p", nil), tag) {
		t.Error("keyring aliases the caller's secret")
	}
}

func TestKeyringNeverPrintsSecrets(t *testing.T) {
	s := []byte("0123456789abcdef0123456789abcdef-the-secret")
	k := mustRing(t, s)
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "ring", k)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "ring", k)
	j, _ := json.Marshal(struct{ R *Keyring }{k})
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k),
		fmt.Sprintf("%v %+v", *k, *k), logBuf.String(), string(j),
	}
	for _, o := range outs {
		if strings.Contains(o, "the-secret") || strings.Contains(o, "0123456789abcdef") ||
			strings.Contains(o, fmt.Sprintf("%x", s[:8])) {
			t.Errorf("secret printed: %s", o)
		}
	}
	if !strings.Contains(outs[0], "REDACTED") || !strings.Contains(logBuf.String(), "REDACTED") {
		t.Errorf("missing REDACTED: %q / %q", outs[0], logBuf.String())
	}
}
