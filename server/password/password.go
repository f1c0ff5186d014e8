// Package password hashes and verifies passwords with argon2id (RFC 9106),
// storing them in the PHC string format
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<parallelism>$<salt>$<hash>
// with unpadded standard base64, as the reference implementation does.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters. The zero Params means DefaultParams.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes; 16 when 0
	KeyLen      uint32 // bytes; 32 when 0
}

// DefaultParams are OWASP's minimum argon2id recommendation.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// Limits on stored hashes: a hash with larger parameters is refused rather
// than computed, so a tampered or hostile hash cannot make one login burn
// gigabytes or minutes (a DoS guard).
const (
	MaxMemoryKiB  = 1 << 20 // 1 GiB
	MaxIterations = 64
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 128
)

// ErrMalformed is returned for a stored hash that cannot be parsed or whose
// parameters are out of bounds.
var ErrMalformed = errors.New("malformed password hash")

func (p Params) withDefaults() Params {
	if p.MemoryKiB == 0 && p.Iterations == 0 && p.Parallelism == 0 {
		p = DefaultParams
	}
	if p.SaltLen == 0 {
		p.SaltLen = 16
	}
	if p.KeyLen == 0 {
		p.KeyLen = 32
	}
	return p
}

func (p Params) check() error {
	switch {
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("memory %d KiB out of range", p.MemoryKiB)
	case p.Iterations < 1 || p.Iterations > MaxIterations:
		return fmt.Errorf("iterations %d out of range", p.Iterations)
	case p.Parallelism < 1:
		return fmt.Errorf("parallelism %d out of range", p.Parallelism)
	case p.SaltLen < 8 || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d out of range", p.SaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d out of range", p.KeyLen)
	}
	return nil
}

// Hasher hashes new passwords with Params and verifies stored hashes with
// the parameters they carry.
type Hasher struct {
	Params Params

	// slots bounds how many hashes run at once. Each holds MemoryKiB of
	// memory for its duration, and more of them than there are CPUs only
	// queue for the CPU: unbounded, 32 concurrent sign-ins with the default
	// 19 MiB took over 600 MB. nil (a Hasher not made by New) is unbounded.
	slots chan struct{}

	dummyOnce sync.Once
	dummy     string
}

// argon2id runs one hash in a slot.
func (h *Hasher) argon2id(pw, salt []byte, p Params, keyLen uint32) []byte {
	if h.slots != nil {
		h.slots <- struct{}{}
		defer func() { <-h.slots }()
	}
	return argon2.IDKey(pw, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
}

// New returns a Hasher with the given parameters, checked.
func New(p Params) (*Hasher, error) {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("password hash parameters: %w", err)
	}
	return &Hasher{Params: p, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of pw under a fresh random salt.
func (h *Hasher) Hash(pw string) (string, error) {
	p := h.Params.withDefaults()
	if err := p.check(); err != nil {
		return "", fmt.Errorf("password hash parameters: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails
	key := h.argon2id([]byte(pw), salt, p, p.KeyLen)
	return encode(p, salt, key), nil
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether pw matches the encoded hash, comparing in constant
// time. needsRehash is true on a match whose parameters differ from the
// Hasher's, so the caller can store a fresh hash while it has the password.
func (h *Hasher) Verify(pw, encoded string) (ok, needsRehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	got := h.argon2id([]byte(pw), salt, p, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	want := h.Params.withDefaults()
	needsRehash = p.MemoryKiB != want.MemoryKiB || p.Iterations != want.Iterations ||
		p.Parallelism != want.Parallelism || p.SaltLen != want.SaltLen || p.KeyLen != want.KeyLen
	return true, needsRehash, nil
}

// VerifyDummy spends the time of one Verify against a hash of the Hasher's
// parameters, for a login naming an unknown user (or one without a
// password): the response then takes as long as for a real user, so its
// timing does not reveal which usernames exist. It always returns false.
func (h *Hasher) VerifyDummy(pw string) bool {
	h.dummyOnce.Do(func() {
		// A random password nobody knows; hashed once with the current parameters.
		buf := make([]byte, 32)
		_, _ = rand.Read(buf)
		h.dummy, _ = h.Hash(b64.EncodeToString(buf))
	})
	if h.dummy == "" {
		return false
	}
	_, _, _ = h.Verify(pw, h.dummy)
	return false
}

// decode parses a PHC argon2id string and checks its parameters.
func decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: expected 5 $-separated fields", ErrMalformed)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm %q is not argon2id", ErrMalformed, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrMalformed, parts[2])
	}
	var m, t, par uint64
	seen := 0
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, found := strings.Cut(kv, "=")
		if !found {
			return p, nil, nil, fmt.Errorf("%w: bad parameter %q", ErrMalformed, kv)
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return p, nil, nil, fmt.Errorf("%w: bad parameter %q", ErrMalformed, kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			par = n
		default:
			return p, nil, nil, fmt.Errorf("%w: unknown parameter %q", ErrMalformed, k)
		}
		seen++
	}
	if seen != 3 || m == 0 || t == 0 || par == 0 || par > 255 {
		return p, nil, nil, fmt.Errorf("%w: parameters %q", ErrMalformed, parts[3])
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, fmt.Errorf("%w: salt: %v", ErrMalformed, err)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return p, nil, nil, fmt.Errorf("%w: hash: %v", ErrMalformed, err)
	}
	p = Params{MemoryKiB: uint32(m), Iterations: uint32(t), Parallelism: uint8(par), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.check(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return p, salt, key, nil
}
