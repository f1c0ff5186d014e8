// Package secrets holds the system-secret keyring: the operator-supplied
// secrets from which every symmetric key of the server is derived.
//
// The first secret encrypts and signs; every secret decrypts and verifies, so
// a secret rotates by prepending the new one and dropping the old one once
// nothing sealed or MACed under it is still needed.
//
// A raw secret is never used as a key. Each use derives its own key with HKDF
// (RFC 5869) under a distinct info label, so the AES-GCM key, the HMAC key of
// every MAC purpose and every Derive purpose are independent.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// MinSecretLen is the shortest secret NewKeyring accepts, in bytes.
const MinSecretLen = 32

const (
	// formatV1 is the first byte of every sealed box: the layout below. A new
	// layout gets a new byte so old boxes still open.
	formatV1  = 1
	keyIDLen  = 4
	nonceLen  = 12 // the standard GCM nonce
	headerLen = 1 + keyIDLen
	// Overhead is how much longer Seal's output is than its plaintext.
	Overhead = headerLen + nonceLen + 16
)

// HKDF info labels. The prefixes keep the internal keys apart from any
// caller-chosen purpose, and MAC keys apart from Derive keys.
const (
	infoKeyID  = "gatehouse/keyring/v1/key-id"
	infoSeal   = "gatehouse/keyring/v1/seal/aes-256-gcm"
	infoMAC    = "gatehouse/keyring/v1/mac/"
	infoDerive = "gatehouse/keyring/v1/derive/"
)

// ErrOpen is returned by Open for any box that does not open: unknown key,
// bad format, tampering or wrong additional data. The reasons are not told
// apart, on purpose.
var ErrOpen = errors.New("secrets: cannot open sealed box")

type entry struct {
	secret []byte
	id     [keyIDLen]byte
	aead   cipher.AEAD
}

// Keyring derives keys from the system secrets. It is safe for concurrent use.
// Make one with NewKeyring; the zero Keyring is not usable.
// Its state sits behind a pointer and every method has a value receiver, so
// even a dereferenced copy prints as REDACTED.
type Keyring struct{ r *ring }

type ring struct {
	entries []entry
	// macKeys caches the derived HMAC keys per purpose ([][]byte, current
	// first): purposes are a handful of constants, and MAC is on hot paths.
	macKeys sync.Map
}

// NewKeyring builds a keyring. The first secret is the current one; the
// others are older ones kept for decryption and verification. Each secret
// must be at least MinSecretLen bytes and all must be distinct.
func NewKeyring(secrets ...[]byte) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, errors.New("secrets: no secret given")
	}
	k := &ring{entries: make([]entry, 0, len(secrets))}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("secrets: secret %d is %d bytes, want at least %d", i, len(s), MinSecretLen)
		}
		e := entry{secret: bytes.Clone(s)}
		id, err := hkdf.Key(sha256.New, e.secret, nil, infoKeyID, keyIDLen)
		if err != nil {
			return nil, fmt.Errorf("secrets: deriving key id: %w", err)
		}
		copy(e.id[:], id)
		for j := range k.entries {
			if k.entries[j].id == e.id {
				// Identical secrets, or (2^-32) a key-id collision: either way
				// Open could not pick the key, so refuse.
				return nil, fmt.Errorf("secrets: secrets %d and %d are the same or collide", j, i)
			}
		}
		sealKey, err := hkdf.Key(sha256.New, e.secret, nil, infoSeal, 32)
		if err != nil {
			return nil, fmt.Errorf("secrets: deriving seal key: %w", err)
		}
		block, err := aes.NewCipher(sealKey)
		if err != nil {
			return nil, fmt.Errorf("secrets: creating cipher: %w", err)
		}
		if e.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("secrets: creating gcm: %w", err)
		}
		k.entries = append(k.entries, e)
	}
	return &Keyring{r: k}, nil
}

// Seal encrypts plaintext with AES-256-GCM under the current secret's seal
// key and a random nonce. additionalData is authenticated, not stored: Open
// must be given the same. The output is
// version(1) || key id(4) || nonce(12) || ciphertext || tag(16).
func (k Keyring) Seal(plaintext, additionalData []byte) ([]byte, error) {
	e := &k.r.entries[0]
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+e.aead.Overhead())
	out[0] = formatV1
	copy(out[1:headerLen], e.id[:])
	nonce := out[headerLen : headerLen+nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: reading nonce: %w", err)
	}
	return e.aead.Seal(out, nonce, plaintext, sealAAD(out[:headerLen], additionalData)), nil
}

// Open decrypts a box made by Seal under any secret of the keyring. Every
// failure returns an error wrapping ErrOpen.
func (k Keyring) Open(ciphertext, additionalData []byte) ([]byte, error) {
	if len(ciphertext) < Overhead {
		return nil, fmt.Errorf("box too short: %w", ErrOpen)
	}
	if ciphertext[0] != formatV1 {
		return nil, fmt.Errorf("unknown format %d: %w", ciphertext[0], ErrOpen)
	}
	var id [keyIDLen]byte
	copy(id[:], ciphertext[1:headerLen])
	for i := range k.r.entries {
		e := &k.r.entries[i]
		if e.id != id {
			continue
		}
		nonce := ciphertext[headerLen : headerLen+nonceLen]
		pt, err := e.aead.Open(nil, nonce, ciphertext[headerLen+nonceLen:], sealAAD(ciphertext[:headerLen], additionalData))
		if err != nil {
			return nil, fmt.Errorf("authenticating: %w", ErrOpen)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("no secret with this key id: %w", ErrOpen)
}

// sealAAD binds the header (version and key id) to the box along with the
// caller's additional data. The header is fixed-length, so the concatenation
// is unambiguous.
func sealAAD(header, additionalData []byte) []byte {
	aad := make([]byte, 0, len(header)+len(additionalData))
	return append(append(aad, header...), additionalData...)
}

// MAC returns HMAC-SHA-256(msg) under the current secret's key for purpose.
// Different purposes get unrelated keys.
func (k Keyring) MAC(purpose string, msg []byte) []byte {
	return mac(k.macKeysFor(purpose)[0], msg)
}

// VerifyMAC reports whether mac is the MAC of msg for purpose under any
// secret of the keyring, comparing in constant time. Every secret is tried
// even after a match so the time does not tell which one matched.
func (k Keyring) VerifyMAC(purpose string, msg, tag []byte) bool {
	ok := 0
	for _, key := range k.macKeysFor(purpose) {
		if hmac.Equal(mac(key, msg), tag) {
			ok = 1
		}
	}
	return ok == 1
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

func (k Keyring) macKeysFor(purpose string) [][]byte {
	if v, ok := k.r.macKeys.Load(purpose); ok {
		return v.([][]byte)
	}
	keys := k.derive(infoMAC+purpose, sha256.Size)
	v, _ := k.r.macKeys.LoadOrStore(purpose, keys)
	return v.([][]byte)
}

// Derive returns one n-byte key for purpose per secret, current first, then
// older ones: fosite's HMAC strategy takes the first as GlobalSecret and the
// rest as RotatedGlobalSecrets. The slices are fresh copies. n must be in
// 1..8160 (the HKDF-SHA-256 limit); anything else is a programming error and
// panics.
func (k Keyring) Derive(purpose string, n int) [][]byte {
	if n < 1 || n > 255*sha256.Size {
		panic(fmt.Sprintf("secrets: Derive key length %d out of range", n))
	}
	return k.derive(infoDerive+purpose, n)
}

func (k Keyring) derive(info string, n int) [][]byte {
	out := make([][]byte, len(k.r.entries))
	for i := range k.r.entries {
		key, err := hkdf.Key(sha256.New, k.r.entries[i].secret, nil, info, n)
		if err != nil {
			// Only an out-of-range length fails, which callers rule out.
			panic(fmt.Sprintf("secrets: hkdf: %v", err))
		}
		out[i] = key
	}
	return out
}

// Len returns the number of secrets in the keyring.
func (k Keyring) Len() int { return len(k.r.entries) }

const redacted = "REDACTED"

// String keeps secrets out of fmt output.
func (k Keyring) String() string { return redacted }

// GoString keeps secrets out of %#v output.
func (k Keyring) GoString() string { return redacted }

// LogValue keeps secrets out of slog output.
func (k Keyring) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps secrets out of JSON output.
func (k Keyring) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
