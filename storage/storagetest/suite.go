// Package storagetest is the conformance suite every storage backend runs
// (memory, SQLite, PostgreSQL, Redis), plus the addresses of the real servers
// backend tests use.
//
// A backend's test calls RunDurable and/or RunEphemeral with an opener that
// returns a fresh, empty store and registers its own cleanup with t.Cleanup.
// The suite checks exact error kinds (errors.Is with storage.ErrNotFound,
// ErrConflict, ErrInactive), exact round trips of every field (times: UTC,
// truncated to the microsecond, zero stays zero) and the exactly-once
// properties under 50 concurrent callers.
//
// Where storage.go leaves a choice, the suite settles it as follows, so that
// every backend behaves alike:
//   - Deleting an unknown user or client is ErrNotFound; deleting an unknown
//     consent, session or request record may be nil or ErrNotFound.
//   - Listings are ordered by ID bytewise (Go string order; PostgreSQL needs
//     the C collation for it).
//   - An expired record does not exist: reads, updates and deactivations give
//     ErrNotFound, and its ID or (kind, signature) can be created again at once.
//   - An empty email finds no user, and does not collide with another empty one.
//   - The order of keys in a key set is not significant; nil and empty slices
//     are equal; a backend may set UpdatedAt itself on update.
//   - A batch creating an existing record fails with ErrConflict, all or nothing.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// suiteTimeout bounds one Run*: a backend that deadlocks fails with every
// goroutine's stack instead of hanging until go test's own timeout.
const suiteTimeout = 4 * time.Minute

// concurrency is the number of goroutines racing in the concurrency cases.
const concurrency = 50

// zone is a non-UTC location every fixture time is given in, so that a backend
// that forgets to convert to UTC is caught.
var zone = time.FixedZone("UTC+05:30", 5*3600+30*60)

// base is a fixed instant with a sub-microsecond part (the suite expects it
// back truncated, not rounded: 123456789ns -> 123456µs).
var base = time.Date(2031, 3, 14, 15, 9, 26, 123456789, zone)

// RunDurable runs the conformance cases of storage.Durable. Each subtest opens
// a fresh store with open(t).
func RunDurable(t *testing.T, open func(t *testing.T) storage.Durable) {
	withTimeout(t, suiteTimeout, func() {
		run(t, open, durableCases())
	})
}

// RunEphemeral runs the conformance cases of storage.Ephemeral. Each subtest
// opens a fresh store with open(t).
func RunEphemeral(t *testing.T, open func(t *testing.T) storage.Ephemeral) {
	withTimeout(t, suiteTimeout, func() {
		run(t, open, ephemeralCases())
		runExpiry(t, open)
	})
}

type testCase[S any] struct {
	name string
	run  func(t *testing.T, ctx context.Context, s S)
}

func run[S any](t *testing.T, open func(t *testing.T) S, cases []testCase[S]) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, t.Context(), open(t))
		})
	}
}

// withTimeout runs f and, if it has not returned after d, prints every
// goroutine's stack and panics (after Dex's storage conformance suite).
func withTimeout(t *testing.T, d time.Duration, f func()) {
	if dl, ok := t.Deadline(); ok && time.Until(dl)-10*time.Second < d {
		d = max(time.Until(dl)-10*time.Second, time.Second)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			buf := make([]byte, 4<<20)
			fmt.Fprintf(os.Stderr, "%s\n", buf[:runtime.Stack(buf, true)])
			panic(fmt.Sprintf("storage conformance suite %s did not finish within %s: deadlock? (goroutine stacks above)", t.Name(), d))
		}
	}()
	f()
}

// ---------------------------------------------------------------------------
// Assertions

func must(t testing.TB, err error, doing string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", doing, err)
	}
}

// wantErr fails t unless errors.Is(err, want).
func wantErr(t testing.TB, err, want error, doing string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want one that errors.Is %q", doing, err, want)
	}
}

// wantNotFoundOrNil accepts nil and ErrNotFound: the contract leaves open
// whether deleting an absent short-lived record is an error.
func wantNotFoundOrNil(t testing.TB, err error, doing string) {
	t.Helper()
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s: got error %v, want nil or ErrNotFound", doing, err)
	}
}

// race runs f(i) for i in [0, n) from n goroutines released at once and
// returns their errors, indexed by i.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			errs[i] = f(i)
		})
	}
	start.Done()
	wg.Wait()
	return errs
}

// tally counts errs by kind: nil, each of the given sentinels, and others.
func tally(errs []error, kinds ...error) (nils int, byKind map[error]int, others []error) {
	byKind = make(map[error]int)
	for _, err := range errs {
		if err == nil {
			nils++
			continue
		}
		matched := false
		for _, k := range kinds {
			if errors.Is(err, k) {
				byKind[k]++
				matched = true
				break
			}
		}
		if !matched {
			others = append(others, err)
		}
	}
	return nils, byKind, others
}

// exactlyOne checks the outcome of a race: one nil, every other error loser.
func exactlyOne(t testing.TB, errs []error, loser error, what string) int {
	t.Helper()
	winner := -1
	nils, byKind, others := tally(errs, loser)
	for i, err := range errs {
		if err == nil {
			winner = i
		}
	}
	if nils != 1 || byKind[loser] != len(errs)-1 || len(others) > 0 {
		msg := make([]string, 0, len(others))
		for _, err := range others {
			msg = append(msg, err.Error())
		}
		t.Fatalf("%s by %d concurrent callers: %d succeeded, %d got %q, %d got other errors [%s]; want exactly one success",
			what, len(errs), nils, byKind[loser], loser, len(others), strings.Join(msg, "; "))
	}
	return winner
}
