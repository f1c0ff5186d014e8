package password

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fast keeps the tests quick; production parameters come from configuration.
var fast = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// Vectors from the argon2 reference implementation's test suite
// (phc-winner-argon2 src/test.c, argon2id, version 0x13).
func TestVerifyKnownVectors(t *testing.T) {
	h := &Hasher{Params: fast}
	for _, enc := range []string{
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	} {
		ok, rehash, err := h.Verify("password", enc)
		if err != nil || !ok {
			t.Errorf("Verify(password, %s) = %v, %v, want a match", enc, ok, err)
		}
		if !rehash {
			t.Errorf("parameters differ from the hasher's: want needsRehash")
		}
		if ok, _, err := h.Verify("Password", enc); ok || err != nil {
			t.Errorf("wrong password: ok=%v err=%v", ok, err)
		}
	}
}

func TestHashRoundTrip(t *testing.T) {
	h, err := New(fast)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("encoding %q", enc)
	}
	ok, rehash, err := h.Verify("correct horse battery staple", enc)
	if !ok || rehash || err != nil {
		t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, _ := h.Verify("correct horse battery stapl", enc); ok {
		t.Error("wrong password matched")
	}
	// Fresh salt every time.
	enc2, _ := h.Hash("correct horse battery staple")
	if enc == enc2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	// A stronger configuration asks for a rehash of the old hash.
	stronger := &Hasher{Params: Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1}}
	if ok, rehash, _ := stronger.Verify("correct horse battery staple", enc); !ok || !rehash {
		t.Errorf("stronger hasher: ok=%v rehash=%v, want true, true", ok, rehash)
	}
}

func TestZeroParamsAreDefaults(t *testing.T) {
	h := &Hasher{}
	if got := h.Params.withDefaults(); got != DefaultParams {
		t.Errorf("zero params = %+v, want %+v", got, DefaultParams)
	}
}

func TestRejectsMalformedAndAbsurdHashes(t *testing.T) {
	h := &Hasher{Params: fast}
	for _, enc := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1,x=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1$!!!$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$AAAA",                                               // hash too short
		"$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", // 4 TiB
		"$argon2id$v=19$m=256,t=100000,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=0$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=256$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
	} {
		ok, _, err := h.Verify("password", enc)
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, %v; want ErrMalformed", enc, ok, err)
		}
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, p := range []Params{
		{MemoryKiB: MaxMemoryKiB + 1, Iterations: 1, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 0, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 1, Parallelism: 0},
		{MemoryKiB: 64, Iterations: 1, Parallelism: 1, KeyLen: 4},
	} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%+v) accepted", p)
		}
	}
}

func TestVerifyDummyNeverMatches(t *testing.T) {
	h := &Hasher{Params: fast}
	if h.VerifyDummy("") || h.VerifyDummy("password") {
		t.Error("VerifyDummy returned true")
	}
	if h.dummy == "" || !strings.HasPrefix(h.dummy, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("dummy hash %q does not use the hasher's parameters, so its timing would differ", h.dummy)
	}
}

// TestConcurrentHashesBounded: at most GOMAXPROCS hashes hold their memory
// at once; the others wait for a slot and still succeed.
func TestConcurrentHashesBounded(t *testing.T) {
	h, err := New(Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cap(h.slots) != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d hash slots, want GOMAXPROCS (%d)", cap(h.slots), runtime.GOMAXPROCS(0))
	}
	// Fill every slot: a hash must now wait until one is given back.
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	done := make(chan string)
	go func() {
		enc, _ := h.Hash("pw")
		done <- enc
	}()
	// Give the hash ample time to finish if it did not wait (a 1 MiB hash
	// takes about a millisecond); nothing here depends on how long it takes.
	select {
	case <-done:
		t.Fatal("a hash ran while every slot was taken")
	case <-time.After(200 * time.Millisecond):
	}
	<-h.slots
	if ok, _, err := h.Verify("pw", <-done); !ok || err != nil {
		t.Errorf("hash made after waiting for a slot does not verify: %v", err)
	}
}
