package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rawClient is a plain client of the test server, for looking behind the store.
func rawClient(t *testing.T) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(storagetest.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(ctxT(t)).Err(); err != nil {
		storagetest.Unavailable(t, "redis", err)
	}
	return c
}

func TestSessions(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	paris := time.FixedZone("Paris", 3600)
	now := time.Now().In(paris)
	sess := storage.Session{
		ID: "s1", Subject: "alice", AuthTime: now.Add(-time.Minute), ACR: "1",
		AMR: []string{"pwd"}, Remember: true, ClientIDs: []string{"c1", "c2"},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, sess); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second CreateSession: %v, want ErrConflict", err)
	}
	got, err := s.GetSession(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := sess
	want.AuthTime = sess.AuthTime.UTC().Truncate(time.Microsecond)
	want.CreatedAt = sess.CreatedAt.UTC().Truncate(time.Microsecond)
	want.ExpiresAt = sess.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetSession:\n got %+v\nwant %+v", got, want)
	}

	updated, err := s.UpdateSession(ctx, "s1", func(x storage.Session) (storage.Session, error) {
		x.ClientIDs = append(x.ClientIDs, "c3")
		x.Subject = "mallory" // kept: the subject never changes
		x.ExpiresAt = x.ExpiresAt.Add(time.Hour)
		return x, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Subject != "alice" || len(updated.ClientIDs) != 3 || !updated.ExpiresAt.Equal(want.ExpiresAt.Add(time.Hour)) {
		t.Fatalf("UpdateSession returned %+v", updated)
	}
	if got, _ := s.GetSession(ctx, "s1"); !reflect.DeepEqual(got, updated) {
		t.Fatalf("after update got %+v, want %+v", got, updated)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateSession(ctx, "s1", func(storage.Session) (storage.Session, error) { return storage.Session{}, boom }); err != boom {
		t.Fatalf("UpdateSession with failing update: %v, want the update's error as is", err)
	}
	if _, err := s.UpdateSession(ctx, "nope", func(x storage.Session) (storage.Session, error) { return x, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateSession of a missing session: %v", err)
	}

	s2 := sess
	s2.ID, s2.ClientIDs = "s0", nil
	if err := s.CreateSession(ctx, s2); err != nil {
		t.Fatal(err)
	}
	other := sess
	other.ID, other.Subject = "s9", "bob"
	if err := s.CreateSession(ctx, other); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSessions(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "s0" || list[1].ID != "s1" {
		t.Fatalf("ListSessions(alice) = %+v", list)
	}
	if err := s.DeleteSession(ctx, "s0"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "s0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second DeleteSession: %v", err)
	}
	if _, err := s.GetSession(ctx, "s0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetSession after delete: %v", err)
	}
	if list, _ := s.ListSessions(ctx, "alice"); len(list) != 1 || list[0].ID != "s1" {
		t.Fatalf("ListSessions after delete = %+v", list)
	}
}

// A record whose ExpiresAt has passed is absent even while its key lingers.
func TestExpiredRecordsAreAbsent(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	c := s.Client()
	past := time.Now().Add(-time.Second)

	b, err := redis.EncodeSession(storage.Session{ID: "old", Subject: "alice", ExpiresAt: past})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, s.SessionKey("old"), b, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "old"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetSession of an expired session: %v", err)
	}
	if _, err := s.UpdateSession(ctx, "old", func(x storage.Session) (storage.Session, error) { return x, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateSession of an expired session: %v", err)
	}
	// Its ID is free at once.
	if err := s.CreateSession(ctx, storage.Session{ID: "old", Subject: "bob", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("CreateSession over an expired session: %v", err)
	}
	if got, err := s.GetSession(ctx, "old"); err != nil || got.Subject != "bob" {
		t.Errorf("GetSession of the session that replaced an expired one: %+v, %v", got, err)
	}

	r := storage.Request{Kind: storage.KindAuthorizeCode, Signature: "sig", RequestID: "g", Active: true, ExpiresAt: past}
	b, err = redis.EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, s.RequestKey(r), "d", b, "a", "1", "x", past.UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
	c.Expire(ctx, s.RequestKey(r), time.Minute)
	c.Set(ctx, s.PointerKey(r.Kind, r.Signature), "g", time.Minute)
	if _, err := s.GetRequest(ctx, r.Kind, r.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetRequest of an expired record: %v", err)
	}
	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: r.Kind, Signature: r.Signature}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeactivateRequest of an expired record: %v", err)
	}
	// Its signature is free at once, for any grant.
	fresh := req(r.Kind, r.Signature, "g2")
	if err := s.CreateRequest(ctx, fresh); err != nil {
		t.Fatalf("CreateRequest over an expired record: %v", err)
	}
	assertPresent(t, s, fresh)
	// The same key, expired but not yet dropped by Redis, is rewritten whole:
	// nothing of the old hash survives (the grant script deletes it first).
	again := req(storage.KindAccessToken, "expired-same-key", "g5")
	key := s.RequestKey(again)
	if err := c.HSet(ctx, key, "d", "old", "a", "0", "x", past.UnixMicro(), "stale", "1").Err(); err != nil {
		t.Fatal(err)
	}
	c.Expire(ctx, key, time.Minute)
	if err := s.CreateRequest(ctx, again); err != nil {
		t.Fatalf("CreateRequest over an expired record of the same grant: %v", err)
	}
	assertPresent(t, s, again)
	if n, err := c.HExists(ctx, key, "stale").Result(); err != nil || n {
		t.Errorf("a field of the expired record survived its replacement: %v, %v", n, err)
	}
	// While a pointer names a record that does not exist (yet), the signature is taken.
	c.Set(ctx, s.PointerKey(storage.KindPAR, "in-flight"), "g3", time.Minute)
	if err := s.CreateRequest(ctx, req(storage.KindPAR, "in-flight", "g4")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("CreateRequest of a signature claimed by a creation in flight: %v", err)
	}

	// Created already expired: nothing to find.
	if err := s.CreateSession(ctx, storage.Session{ID: "born-dead", Subject: "alice", ExpiresAt: past}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "born-dead"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetSession of a session created expired: %v", err)
	}
	if list, err := s.ListSessions(ctx, "alice"); err != nil || len(list) != 0 {
		t.Errorf("ListSessions = %v, %v; want none", list, err)
	}
}

func req(kind storage.RequestKind, sig, grant string) storage.Request {
	now := time.Now()
	return storage.Request{
		Kind: kind, Signature: sig, RequestID: grant, ClientID: "client", Subject: "alice",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		Payload: []byte{0, 1, 2, 0xff, '{', '"'},
	}
}

func TestRequests(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	code := req(storage.KindAuthorizeCode, "code-sig", "grant-1")
	if err := s.CreateRequest(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, code); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate CreateRequest: %v", err)
	}
	// Same signature, other grant: still a duplicate of (Kind, Signature).
	dup := code
	dup.RequestID = "grant-2"
	if err := s.CreateRequest(ctx, dup); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateRequest of a signature taken by another grant: %v", err)
	}
	got, err := s.GetRequest(ctx, code.Kind, code.Signature)
	if err != nil {
		t.Fatal(err)
	}
	want := code
	want.RequestedAt = code.RequestedAt.UTC().Truncate(time.Microsecond)
	want.ExpiresAt = code.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetRequest:\n got %+v\nwant %+v", got, want)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, code.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetRequest of another kind: %v", err)
	}

	for _, ref := range []storage.RequestRef{
		{Kind: code.Kind, Signature: code.Signature}, // looked up through the pointer
		{Kind: code.Kind, Signature: code.Signature, RequestID: code.RequestID},
	} {
		if err := s.DeactivateRequest(ctx, ref); err != nil && !errors.Is(err, storage.ErrInactive) {
			t.Fatal(err)
		}
	}
	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: code.Signature}); !errors.Is(err, storage.ErrInactive) {
		t.Fatalf("DeactivateRequest of an inactive record: %v", err)
	}
	if got, _ := s.GetRequest(ctx, code.Kind, code.Signature); got.Active || !bytes.Equal(got.Payload, code.Payload) {
		t.Fatalf("after deactivation got %+v", got)
	}
	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: "nope"}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeactivateRequest of a missing record: %v", err)
	}

	if err := s.DeleteRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: code.Signature}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: code.Signature, RequestID: code.RequestID}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second DeleteRequest: %v", err)
	}
	// Deleted, the signature is free again, for any grant.
	if err := s.CreateRequest(ctx, dup); err != nil {
		t.Fatalf("CreateRequest after delete: %v", err)
	}

	// RevokeGrant of some kinds, then of all.
	g := "grant-3"
	at, rt, pkce := req(storage.KindAccessToken, "at", g), req(storage.KindRefreshToken, "rt", g), req(storage.KindPKCE, "pkce", g)
	for _, r := range []storage.Request{at, rt, pkce} {
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeGrant(ctx, g, storage.KindAccessToken, storage.KindPKCE); err != nil {
		t.Fatal(err)
	}
	assertPresent(t, s, rt)
	assertAbsent(t, s, at, pkce)
	if err := s.RevokeGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, rt)
	assertPresent(t, s, dup)
	if n := countKeys(t, s, func(k string) bool {
		return strings.Contains(k, "{"+g+"}") || strings.Contains(k, ":at") || strings.Contains(k, ":rt") || strings.Contains(k, ":pkce")
	}); n != 0 {
		t.Errorf("%d keys of the revoked grant remain", n)
	}
}

func assertPresent(t *testing.T, s *redis.Store, rs ...storage.Request) {
	t.Helper()
	for _, r := range rs {
		if _, err := s.GetRequest(context.Background(), r.Kind, r.Signature); err != nil {
			t.Errorf("%s %s: %v, want present", r.Kind, r.Signature, err)
		}
	}
}

func assertAbsent(t *testing.T, s *redis.Store, rs ...storage.Request) {
	t.Helper()
	for _, r := range rs {
		if _, err := s.GetRequest(context.Background(), r.Kind, r.Signature); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s %s: %v, want ErrNotFound", r.Kind, r.Signature, err)
		}
	}
}

func assertActive(t *testing.T, s *redis.Store, r storage.Request, active bool) {
	t.Helper()
	got, err := s.GetRequest(context.Background(), r.Kind, r.Signature)
	if err != nil || got.Active != active {
		t.Errorf("%s %s: active %v, %v; want active %v", r.Kind, r.Signature, got.Active, err, active)
	}
}

func storeKeys(t *testing.T, s *redis.Store) []string {
	t.Helper()
	// Every store of these tests has its own prefix; the grant index key shows it.
	prefix, _, _ := strings.Cut(s.GrantIndexKey("x"), "grant:")
	keys, err := redistest.Keys(ctxT(t), s.Client(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func countKeys(t *testing.T, s *redis.Store, match func(string) bool) int {
	n := 0
	for _, k := range storeKeys(t, s) {
		if match(k) {
			n++
		}
	}
	return n
}

// RFC 6749 §4.1.2: an authorization code is used once. Under 50 concurrent
// redemptions exactly one succeeds.
func TestDeactivateExactlyOnce(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	code := req(storage.KindAuthorizeCode, "code", "g")
	if err := s.CreateRequest(ctx, code); err != nil {
		t.Fatal(err)
	}
	errs := race(50, func(i int) error {
		return s.DeactivateRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: code.Signature})
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrInactive):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d callers deactivated the code, want exactly 1", wins)
	}
}

func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// RFC 6749 §4.1.2 and §10.4: redeeming a code (or rotating a refresh token)
// and creating the tokens it yields happen together, once.
func TestApplyRequestsExactlyOnce(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	g := "grant"
	code, pkce := req(storage.KindAuthorizeCode, "code", g), req(storage.KindPKCE, "code", g)
	for _, r := range []storage.Request{code, pkce} {
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	errs := race(50, func(i int) error {
		return s.ApplyRequests(ctx, storage.RequestBatch{
			Deactivate: []storage.RequestRef{{Kind: code.Kind, Signature: code.Signature}},
			Create: []storage.Request{
				req(storage.KindAccessToken, fmt.Sprintf("at-%d", i), g),
				req(storage.KindRefreshToken, fmt.Sprintf("rt-%d", i), g),
			},
			Delete: []storage.RequestRef{{Kind: pkce.Kind, Signature: pkce.Signature}},
		})
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("callers %d and %d both redeemed the code", winner, i)
			}
			winner = i
		case !errors.Is(err, storage.ErrInactive):
			t.Errorf("caller %d: unexpected error: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no caller redeemed the code")
	}
	for i := range errs {
		at, rt := req(storage.KindAccessToken, fmt.Sprintf("at-%d", i), g), req(storage.KindRefreshToken, fmt.Sprintf("rt-%d", i), g)
		if i == winner {
			assertPresent(t, s, at, rt)
		} else {
			assertAbsent(t, s, at, rt)
		}
	}
	assertAbsent(t, s, pkce)
	assertActive(t, s, code, false)
	// The losers gave back their claims on the signatures.
	if n := countKeys(t, s, func(k string) bool { return strings.Contains(k, "sig:access_token:") }); n != 1 {
		t.Errorf("%d access token pointers remain, want 1", n)
	}
}

func TestApplyRequestsAllOrNothing(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	g := "grant"
	a, b := req(storage.KindRefreshToken, "a", g), req(storage.KindRefreshToken, "b", g)
	b.Active = false
	taken := req(storage.KindAccessToken, "taken", "other-grant")
	for _, r := range []storage.Request{a, b, taken} {
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	newAT := req(storage.KindAccessToken, "new", g)
	ref := func(r storage.Request) storage.RequestRef {
		return storage.RequestRef{Kind: r.Kind, Signature: r.Signature, RequestID: r.RequestID}
	}

	// One condition fails: nothing is applied.
	err := s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate:   []storage.RequestRef{ref(a), ref(b)},
		Create:       []storage.Request{newAT},
		RevokeGrants: []string{"other-grant"},
	})
	if !errors.Is(err, storage.ErrInactive) {
		t.Fatalf("batch with an inactive condition: %v, want ErrInactive", err)
	}
	assertActive(t, s, a, true)
	assertAbsent(t, s, newAT)
	assertPresent(t, s, taken)

	// A missing condition: ErrNotFound, nothing applied.
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{ref(a), {Kind: storage.KindRefreshToken, Signature: "missing"}},
		Create:     []storage.Request{newAT},
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("batch with a missing condition: %v, want ErrNotFound", err)
	}
	assertActive(t, s, a, true)
	assertAbsent(t, s, newAT)

	// A creation that conflicts: ErrConflict, nothing applied.
	dupe := taken
	dupe.RequestID = g
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{ref(a)},
		Create:     []storage.Request{newAT, dupe},
	})
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("batch with a conflicting creation: %v, want ErrConflict", err)
	}
	assertActive(t, s, a, true)
	assertAbsent(t, s, newAT)

	// Conditions over two grants are refused, nothing applied.
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{ref(a), ref(taken)},
	})
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("batch with conditions over two grants: %v", err)
	}
	assertActive(t, s, a, true)
	assertActive(t, s, taken, true)

	// All good: applied across grants, revoking the other grant.
	newRT := req(storage.KindRefreshToken, "c", g)
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate:   []storage.RequestRef{{Kind: a.Kind, Signature: a.Signature}},
		Create:       []storage.Request{newAT, newRT, req(storage.KindOIDC, "x", "third-grant")},
		Delete:       []storage.RequestRef{{Kind: storage.KindPKCE, Signature: "never-was"}},
		RevokeGrants: []string{"other-grant"},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertActive(t, s, a, false)
	assertPresent(t, s, newAT, newRT, req(storage.KindOIDC, "x", "third-grant"))
	assertAbsent(t, s, taken)
	// Revoked, its signature can be used again.
	if err := s.CreateRequest(ctx, taken); err != nil {
		t.Fatalf("recreating a revoked record: %v", err)
	}

	// A batch may revoke a grant's old records and create its new ones.
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate:   []storage.RequestRef{ref(newRT)},
		Create:       []storage.Request{req(storage.KindRefreshToken, "d", g)},
		RevokeGrants: []string{g},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, a, b, newAT, newRT)
	assertPresent(t, s, req(storage.KindRefreshToken, "d", g))
}

func TestReplayAndThrottle(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Minute)
	if err := s.UseOnce(ctx, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.UseOnce(ctx, "jti-1", exp); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replayed UseOnce: %v, want ErrConflict", err)
	}
	if err := s.UseOnce(ctx, "jti-2", exp); err != nil {
		t.Fatal(err)
	}

	if n, err := s.Count(ctx, "alice"); err != nil || n[0] != 0 {
		t.Fatalf("Count before hits = %v, %v", n, err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := s.Hit(ctx, "alice", time.Minute); n != want || err != nil {
			t.Fatalf("Hit = %d, %v; want %d", n, err, want)
		}
	}
	if n, err := s.Count(ctx, "alice"); err != nil || n[0] != 3 {
		t.Fatalf("Count = %v, %v; want 3", n, err)
	}
	if err := s.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "alice"); err != nil || n[0] != 0 {
		t.Fatalf("Count after reset = %v, %v", n, err)
	}
}

// Nothing the store writes lives forever.
func TestEveryKeyExpires(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateSession(ctx, storage.Session{ID: "s", Subject: "alice", ExpiresAt: exp}))
	_, err := s.UpdateSession(ctx, "s", func(x storage.Session) (storage.Session, error) {
		x.ExpiresAt = x.ExpiresAt.Add(time.Hour)
		return x, nil
	})
	must(err)
	_, err = s.ListSessions(ctx, "alice")
	must(err)
	must(s.CreateRequest(ctx, req(storage.KindAuthorizeCode, "c", "g")))
	must(s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{{Kind: storage.KindAuthorizeCode, Signature: "c"}},
		Create:     []storage.Request{req(storage.KindAccessToken, "a", "g"), req(storage.KindRefreshToken, "r", "g")},
	}))
	must(s.UseOnce(ctx, "jti", exp))
	_, err = s.Hit(ctx, "k", time.Minute)
	must(err)

	keys := storeKeys(t, s)
	if len(keys) < 9 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		ttl, err := s.Client().PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %s has PTTL %v, want an expiry", k, ttl)
		}
	}
}

// All keys of one grant hash to one Redis Cluster slot, whatever the grant ID.
func TestGrantKeysShareASlot(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	for _, g := range []string{"plain", "a{b}c", "x}y", "{", "%7B"} {
		for i, kind := range storage.Kinds {
			if err := s.CreateRequest(ctx, req(kind, fmt.Sprintf("%s-%d", g, i), g)); err != nil {
				t.Fatal(err)
			}
		}
		slot := keySlot(s.GrantIndexKey(g))
		n := 0
		for _, k := range storeKeys(t, s) {
			if strings.Contains(k, "req:"+tagOf(s, g)) {
				n++
				if ks := keySlot(k); ks != slot {
					t.Errorf("grant %q: key %s in slot %d, index in %d", g, k, ks, slot)
				}
			}
		}
		if n != len(storage.Kinds) {
			t.Errorf("grant %q: found %d record keys, want %d", g, n, len(storage.Kinds))
		}
	}
}

func tagOf(s *redis.Store, g string) string {
	_, t, _ := strings.Cut(s.GrantIndexKey(g), "grant:")
	return t
}

func TestKeySlot(t *testing.T) {
	// Known values from the Redis Cluster specification and CLUSTER KEYSLOT.
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16 = %#x, want 0x31c3", got)
	}
	for key, want := range map[string]int{"foo": 12182, "{user1000}.following": keySlot("user1000"), "foo{}{bar}": keySlot("foo{}{bar}")} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

// keySlot is the Redis Cluster hash slot of key (cluster spec, "Keys hash tags").
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster uses.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestOpenUnreachable(t *testing.T) {
	_, err := redis.Open(ctxT(t), redis.Config{URL: "redis://:hunter2@127.0.0.1:1/0?dial_timeout=1s"})
	if !errors.Is(err, redis.ErrUnreachable) {
		t.Fatalf("Open of a closed port: %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error should name the server and not the password: %v", err)
	}
}

func TestOpenRefusesBadPrefix(t *testing.T) {
	if _, err := redis.Open(ctxT(t), redis.Config{URL: storagetest.RedisURL(), Prefix: "{tenant}:"}); err == nil {
		t.Fatal("Open with a prefix holding a hash tag succeeded")
	}
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestOpenChecksEvictionPolicy(t *testing.T) {
	c := rawClient(t)
	ctx := ctxT(t)
	old, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		t.Skipf("CONFIG GET refused by the test server: %v", err)
	}
	restore := func() {
		if err := c.ConfigSet(context.Background(), "maxmemory-policy", old["maxmemory-policy"]).Err(); err != nil {
			t.Errorf("restoring maxmemory-policy: %v", err)
		}
	}
	prefix := redistest.NewPrefix()
	redistest.CleanupPrefix(t, prefix)
	var refused, allowed error
	logs := &logBuffer{}
	func() {
		// Other packages' tests share the server: keep the window tiny and
		// restore the policy whatever happens.
		t.Cleanup(restore)
		defer restore()
		if err := c.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
			t.Fatalf("CONFIG SET: %v", err)
		}
		var s *redis.Store
		_, refused = redis.Open(ctx, redis.Config{URL: storagetest.RedisURL(), Prefix: prefix})
		s, allowed = redis.Open(ctx, redis.Config{URL: storagetest.RedisURL(), Prefix: prefix, AllowEvictionPolicy: true,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if allowed == nil {
			s.Close()
		}
	}()
	if refused == nil {
		t.Fatal("Open accepted maxmemory-policy allkeys-lru")
	}
	for _, want := range []string{`"allkeys-lru"`, "set maxmemory-policy noeviction", "redis.allow_eviction_policy: true"} {
		if !strings.Contains(refused.Error(), want) {
			t.Errorf("refusal %q does not say %q", refused, want)
		}
	}
	if allowed != nil {
		t.Fatalf("Open with AllowEvictionPolicy: %v", allowed)
	}
	if !strings.Contains(logs.String(), "maxmemory_policy=allkeys-lru") {
		t.Errorf("no eviction warning logged: %s", logs)
	}
}

func TestOpenWarnsWithoutPersistence(t *testing.T) {
	c := rawClient(t)
	ctx := ctxT(t)
	aof, err1 := c.ConfigGet(ctx, "appendonly").Result()
	save, err2 := c.ConfigGet(ctx, "save").Result()
	if err1 != nil || err2 != nil {
		t.Skipf("CONFIG GET refused by the test server: %v %v", err1, err2)
	}
	logs := &logBuffer{}
	prefix := redistest.NewPrefix()
	redistest.CleanupPrefix(t, prefix)
	s, err := redis.Open(ctx, redis.Config{URL: storagetest.RedisURL(), Prefix: prefix, AllowEvictionPolicy: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	off := aof["appendonly"] != "yes" && save["save"] == ""
	if warned := strings.Contains(logs.String(), "persistence is off"); warned != off {
		t.Errorf("persistence off = %v but warned = %v: %s", off, warned, logs)
	}
}

// A grant's index expires with its longest-lived record, to the millisecond,
// whether the batch that wrote it created the index (the shortcut that skips
// pruning) or added to one that existed.
func TestGrantIndexExpiresWithItsLatestRecord(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	base := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	at := func(kind storage.RequestKind, sig, grant string, exp time.Time) storage.Request {
		r := req(kind, sig, grant)
		r.ExpiresAt = exp
		return r
	}
	expiry := func(grant string) time.Time {
		t.Helper()
		ms, err := s.Client().PExpireTime(ctx, s.GrantIndexKey(grant)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(ms.Milliseconds())
	}
	// New index, several records: the latest one's expiry, not the last written.
	if err := s.ApplyRequests(ctx, storage.RequestBatch{Create: []storage.Request{
		at(storage.KindAccessToken, "a1", "g1", base.Add(2*time.Hour)),
		at(storage.KindRefreshToken, "r1", "g1", base.Add(5*time.Hour)),
		at(storage.KindOIDC, "o1", "g1", base),
	}}); err != nil {
		t.Fatal(err)
	}
	if got, want := expiry("g1"), base.Add(5*time.Hour); !got.Equal(want) {
		t.Fatalf("new index expires at %v, want %v", got, want)
	}
	// New index through CreateRequest.
	if err := s.CreateRequest(ctx, at(storage.KindAccessToken, "a2", "g2", base)); err != nil {
		t.Fatal(err)
	}
	if got := expiry("g2"); !got.Equal(base) {
		t.Fatalf("new index expires at %v, want %v", got, base)
	}
	// An existing index is extended by a longer-lived record and not
	// shortened by a shorter-lived one.
	for _, c := range []struct {
		sig  string
		exp  time.Time
		want time.Time
	}{
		{"a3", base.Add(3 * time.Hour), base.Add(3 * time.Hour)},
		{"a4", base.Add(time.Minute), base.Add(3 * time.Hour)},
	} {
		if err := s.ApplyRequests(ctx, storage.RequestBatch{Create: []storage.Request{at(storage.KindAccessToken, c.sig, "g2", c.exp)}}); err != nil {
			t.Fatal(err)
		}
		if got := expiry("g2"); !got.Equal(c.want) {
			t.Fatalf("after %s: index expires at %v, want %v", c.sig, got, c.want)
		}
	}
}
