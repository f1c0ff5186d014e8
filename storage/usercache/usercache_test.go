package usercache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

// counting counts the user reads that reach the backend. fail, when set,
// makes GetUser fail; hook, when set, runs after the backend's read and
// before GetUser returns.
type counting struct {
	storage.Durable
	reads atomic.Int64
	fail  atomic.Pointer[error]
	hook  func()
}

func (c *counting) GetUser(ctx context.Context, id string) (storage.User, error) {
	c.reads.Add(1)
	if err := c.fail.Load(); err != nil {
		return storage.User{}, *err
	}
	u, err := c.Durable.GetUser(ctx, id)
	if c.hook != nil {
		c.hook()
	}
	return u, err
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const ttl = 10 * time.Second

// setup returns the cached store, the backend's read counter (the backend
// itself is inner.Durable: writing there is another process's write) and
// the clock.
func setup(t *testing.T, size int) (*store, *counting, *clock) {
	t.Helper()
	m := memory.New()
	t.Cleanup(func() { m.Close() })
	inner := &counting{Durable: m}
	c := newClock()
	s, ok := Wrap(inner, ttl, size, c.Now).(*store)
	if !ok {
		t.Fatal("Wrap with a positive TTL must return the cache")
	}
	return s, inner, c
}

func user(id string) storage.User {
	return storage.User{
		ID:        id,
		Username:  "name-" + id,
		Claims:    storage.Claims{Name: "User " + id, Email: id + "@example.com"},
		CreatedAt: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func mustCreate(t *testing.T, d storage.Durable, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := d.CreateUser(context.Background(), user(id)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustGet(t *testing.T, d storage.Durable, id string) storage.User {
	t.Helper()
	u, err := d.GetUser(context.Background(), id)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
	return u
}

func wantReads(t *testing.T, inner *counting, want int64, when string) {
	t.Helper()
	if got := inner.reads.Load(); got != want {
		t.Errorf("%s: %d backend reads, want %d", when, got, want)
	}
}

// TestConformance: the wrapped store keeps the storage.Durable contract.
func TestConformance(t *testing.T) {
	storagetest.RunDurable(t, func(t *testing.T) storage.Durable {
		m := memory.New()
		t.Cleanup(func() { m.Close() })
		return Wrap(m, time.Minute, 0, nil)
	})
}

func TestHitsAndMisses(t *testing.T) {
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a", "b")
	for range 3 {
		if u := mustGet(t, s, "a"); u.Username != "name-a" {
			t.Fatalf("got %+v", u)
		}
	}
	wantReads(t, inner, 1, "three reads of one user")
	mustGet(t, s, "b")
	wantReads(t, inner, 2, "then another user")
}

func TestExpiry(t *testing.T) {
	s, inner, c := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	mustGet(t, s, "a")
	// Another process disables the user: seen when the entry expires.
	if _, err := inner.Durable.UpdateUser(context.Background(), "a", func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	c.Advance(ttl - time.Nanosecond)
	if mustGet(t, s, "a").Disabled {
		t.Error("the entry was read again before it expired")
	}
	wantReads(t, inner, 1, "before the TTL")
	c.Advance(time.Nanosecond)
	if !mustGet(t, s, "a").Disabled {
		t.Error("after the TTL the cached user was still returned")
	}
	wantReads(t, inner, 2, "at the TTL")
}

// TestWritesInvalidate: a write through the cache is seen by the next read.
func TestWritesInvalidate(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	mustCreate(t, s, "a")
	mustGet(t, s, "a")

	if _, err := s.UpdateUser(ctx, "a", func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !mustGet(t, s, "a").Disabled {
		t.Error("UpdateUser: the old record was served")
	}
	wantReads(t, inner, 2, "after UpdateUser")

	if err := s.DeleteUser(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "a"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteUser: GetUser = %v, want ErrNotFound", err)
	}

	// Another process deletes and re-creates the ID while it is cached;
	// CreateUser through this one must not leave that entry.
	mustCreate(t, inner.Durable, "b")
	mustGet(t, s, "b")
	if err := inner.Durable.DeleteUser(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	nb := user("b")
	nb.Username = "reborn"
	if err := s.CreateUser(ctx, nb); err != nil {
		t.Fatal(err)
	}
	if u := mustGet(t, s, "b"); u.Username != "reborn" {
		t.Errorf("CreateUser: got %q, want the new record", u.Username)
	}
}

// TestFailedWritesInvalidate: a write that fails may still have happened
// (a timeout after the commit), so the entry goes either way.
func TestFailedWritesInvalidate(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	mustGet(t, s, "a")
	boom := errors.New("boom")
	if _, err := s.UpdateUser(ctx, "a", func(storage.User) (storage.User, error) { return storage.User{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateUser = %v, want the updater's error", err)
	}
	mustGet(t, s, "a")
	wantReads(t, inner, 2, "after a failed UpdateUser")
	if err := s.CreateUser(ctx, user("a")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateUser = %v, want ErrConflict", err)
	}
	mustGet(t, s, "a")
	wantReads(t, inner, 3, "after a failed CreateUser")
	if err := s.DeleteUser(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteUser = %v, want ErrNotFound", err)
	}
}

// TestErrorsNotCached: a user created by another process is found at once,
// and a backend failure is not remembered.
func TestErrorsNotCached(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	for range 2 {
		if _, err := s.GetUser(ctx, "a"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetUser = %v, want ErrNotFound", err)
		}
	}
	wantReads(t, inner, 2, "two reads of a missing user")
	mustCreate(t, inner.Durable, "a")
	mustGet(t, s, "a")

	mustCreate(t, inner.Durable, "b")
	down := errors.New("connection refused")
	inner.fail.Store(&down)
	if _, err := s.GetUser(ctx, "b"); !errors.Is(err, down) {
		t.Fatalf("GetUser = %v, want the backend's error", err)
	}
	inner.fail.Store(nil)
	mustGet(t, s, "b")
}

// TestOtherReadsPassThrough: only GetUser is cached; the lookups sign-in
// checks passwords with read the backend.
func TestOtherReadsPassThrough(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	mustGet(t, s, "a")
	if _, err := inner.Durable.UpdateUser(ctx, "a", func(u storage.User) (storage.User, error) {
		u.PasswordHash = "new-hash"
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if u, err := s.GetUserByUsername(ctx, "name-a"); err != nil || u.PasswordHash != "new-hash" {
		t.Errorf("GetUserByUsername = %+v, %v: want the backend's record", u, err)
	}
	if u, err := s.GetUserByEmail(ctx, "a@example.com"); err != nil || u.PasswordHash != "new-hash" {
		t.Errorf("GetUserByEmail = %+v, %v: want the backend's record", u, err)
	}
	if us, err := s.ListUsers(ctx, storage.Page{}); err != nil || len(us) != 1 || us[0].PasswordHash != "new-hash" {
		t.Errorf("ListUsers = %+v, %v: want the backend's records", us, err)
	}
}

func TestZeroTTLDisables(t *testing.T) {
	m := memory.New()
	defer m.Close()
	for _, d := range []time.Duration{0, -time.Second} {
		if got := Wrap(m, d, 0, nil); got != storage.Durable(m) {
			t.Errorf("Wrap with TTL %v = %T, want the store itself", d, got)
		}
	}
	if s := Wrap(m, ttl, 0, nil).(*store); s.users.Cap() != DefaultSize || s.consents.Cap() != DefaultSize {
		t.Errorf("default sizes %d, %d, want %d", s.users.Cap(), s.consents.Cap(), DefaultSize)
	}
}

func TestBounded(t *testing.T) {
	s, inner, clk := setup(t, 3)
	for i := range 10 {
		id := fmt.Sprint("u", i)
		mustCreate(t, inner.Durable, id)
		mustGet(t, s, id)
		if n := s.len(); n > 3 {
			t.Fatalf("%d entries after %d users, want at most 3", n, i+1)
		}
	}
	if _, ok, _ := s.users.Get("u9", clk.Now()); !ok {
		t.Error("the latest entry is missing")
	}

	// Expired entries go first: with one expired, the live ones stay.
	s2, inner2, c2 := setup(t, 3)
	mustCreate(t, inner2.Durable, "old", "x", "y", "z")
	mustGet(t, s2, "old")
	c2.Advance(ttl)
	mustGet(t, s2, "x")
	mustGet(t, s2, "y")
	mustGet(t, s2, "z")
	before := inner2.reads.Load()
	mustGet(t, s2, "x")
	mustGet(t, s2, "y")
	mustGet(t, s2, "z")
	wantReads(t, inner2, before, "live entries after evicting an expired one")
}

// TestUserHoldsNoReferences guards clone: a field sharing memory between
// copies (a slice, a map, a pointer) would let a caller change the cached
// user through the one it got.
func TestUserHoldsNoReferences(t *testing.T) {
	timeType := reflect.TypeFor[time.Time]()
	var check func(path string, ty reflect.Type)
	check = func(path string, ty reflect.Type) {
		if ty == timeType {
			return // its *Location is never written through
		}
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				f := ty.Field(i)
				check(path+"."+f.Name, f.Type)
			}
		case reflect.Array:
			check(path+"[]", ty.Elem())
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %s: make clone copy it", path, ty.Kind())
		}
	}
	check("User", reflect.TypeFor[storage.User]())
}

func TestReturnsCopies(t *testing.T) {
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	u := mustGet(t, s, "a")
	u.Username, u.Disabled, u.Claims.Email, u.Claims.Address.Country = "changed", true, "changed@example.com", "XX"
	u = mustGet(t, s, "a")
	u.Claims.Name = "changed too"
	if got := mustGet(t, s, "a"); got != user("a") {
		t.Errorf("the cached user changed through returned copies: %+v", got)
	}
	wantReads(t, inner, 1, "copies")
}

// TestReadRacingWrite: a read that got the old record before a write
// finished does not cache it after the write.
func TestReadRacingWrite(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	read, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	inner.hook = func() {
		once.Do(func() {
			close(read)
			<-release
		})
	}
	done := make(chan storage.User)
	go func() {
		u, _ := s.GetUser(ctx, "a")
		done <- u
	}()
	<-read // the reader holds the enabled record
	if _, err := s.UpdateUser(ctx, "a", func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if (<-done).Disabled {
		t.Fatal("the racing read should have returned the old record")
	}
	if !mustGet(t, s, "a").Disabled {
		t.Error("the racing read cached the record from before the write")
	}
}

// TestReadDuringWrite: a read while the write is under way caches the old
// record, which the write drops when it ends.
func TestReadDuringWrite(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 0)
	mustCreate(t, inner.Durable, "a")
	if _, err := s.UpdateUser(ctx, "a", func(u storage.User) (storage.User, error) {
		if mustGet(t, s, "a").Disabled {
			t.Error("the record changed before the write")
		}
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !mustGet(t, s, "a").Disabled {
		t.Error("the record read during the write outlived it")
	}
}

// TestConcurrent runs reads and writes together (meaningful under -race);
// once they stop, the cache agrees with the backend.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setup(t, 4)
	ids := []string{"a", "b", "c", "d", "e", "f"}
	mustCreate(t, inner.Durable, ids...)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := ids[(g+i)%len(ids)]
				switch i % 10 {
				case 0:
					_, _ = s.UpdateUser(ctx, id, func(u storage.User) (storage.User, error) {
						u.Disabled = !u.Disabled
						return u, nil
					})
				case 1:
					if g%4 == 0 {
						_ = s.DeleteUser(ctx, id)
						_ = s.CreateUser(ctx, user(id))
					}
				default:
					if _, err := s.GetUser(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		want, werr := inner.Durable.GetUser(ctx, id)
		got, gerr := s.GetUser(ctx, id)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("%s: cache %+v %v, backend %+v %v", id, got, gerr, want, werr)
		}
	}
	if n := s.len(); n > 4 {
		t.Errorf("%d entries, want at most 4", n)
	}
}

// consentReads counts the consent reads that reach the backend; hook, when
// set, runs after the backend's read.
type consentReads struct {
	*counting
	n    atomic.Int64
	hook func()
}

func (c *consentReads) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	c.n.Add(1)
	r, err := c.counting.Durable.GetConsent(ctx, subject, clientID)
	if c.hook != nil {
		c.hook()
	}
	return r, err
}

func setupConsents(t *testing.T) (*store, *consentReads, *clock) {
	t.Helper()
	m := memory.New()
	t.Cleanup(func() { m.Close() })
	inner := &consentReads{counting: &counting{Durable: m}}
	c := newClock()
	s := Wrap(inner, ttl, 0, c.Now).(*store)
	return s, inner, c
}

func wantConsentReads(t *testing.T, inner *consentReads, want int64, when string) {
	t.Helper()
	if got := inner.n.Load(); got != want {
		t.Errorf("%s: %d backend consent reads, want %d", when, got, want)
	}
}

// TestConsents: remembered consents are cached like users; writes through
// the wrapped store (a consent given, revoked, the client or the user
// deleted) are seen at once, another process's within the TTL, and a
// consent's own expiry is kept.
func TestConsents(t *testing.T) {
	ctx := context.Background()
	s, inner, clk := setupConsents(t)
	give := func(d storage.ConsentStore, sub, client string, exp time.Time, scopes ...string) {
		t.Helper()
		if err := d.PutConsent(ctx, storage.Consent{Subject: sub, ClientID: client, Scopes: scopes, GrantedAt: clk.Now(), ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(sub, client string) (storage.Consent, error) { return s.GetConsent(ctx, sub, client) }

	// Not found is not cached.
	if _, err := get("alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("no consent: %v", err)
	}
	give(inner.counting.Durable, "alice", "shop", time.Time{}, "openid")
	if c, err := get("alice", "shop"); err != nil || c.Scopes[0] != "openid" {
		t.Fatalf("consent given by another process: %+v, %v", c, err)
	}
	wantConsentReads(t, inner, 2, "after a miss and a first read")
	c, _ := get("alice", "shop")
	c.Scopes[0] = "mutated"
	if c, _ := get("alice", "shop"); c.Scopes[0] != "openid" {
		t.Fatal("a caller's change reached the cached consent")
	}
	wantConsentReads(t, inner, 2, "cached")

	// Another process's revocation: seen within the TTL.
	if err := inner.counting.Durable.DeleteConsent(ctx, "alice", "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("alice", "shop"); err != nil {
		t.Fatalf("within the TTL the cached consent answers: %v", err)
	}
	clk.Advance(ttl)
	if _, err := get("alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the TTL: %v, want ErrNotFound", err)
	}

	// Writes through the wrapped store: at once.
	for _, revoke := range []struct {
		name string
		do   func() error
	}{
		{"DeleteConsent", func() error { return s.DeleteConsent(ctx, "alice", "shop") }},
		{"DeleteConsentsByClient", func() error { _, err := s.DeleteConsentsByClient(ctx, "shop"); return err }},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, "alice") }},
	} {
		if revoke.name == "DeleteUser" {
			mustCreate(t, s, "alice")
		}
		give(s, "alice", "shop", time.Time{}, "openid")
		if _, err := get("alice", "shop"); err != nil {
			t.Fatal(err)
		}
		// The backend keeps consents of deleted users (nothing cascades):
		// drop it there too, as a revocation would.
		if err := revoke.do(); err != nil {
			t.Fatalf("%s: %v", revoke.name, err)
		}
		if revoke.name == "DeleteUser" {
			if err := inner.counting.Durable.DeleteConsent(ctx, "alice", "shop"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := get("alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("after %s through the cache: %v, want ErrNotFound at once", revoke.name, err)
		}
	}
	give(s, "alice", "shop", time.Time{}, "openid")
	get("alice", "shop")
	give(s, "alice", "shop", time.Time{}, "openid", "email")
	if c, err := get("alice", "shop"); err != nil || len(c.Scopes) != 2 {
		t.Errorf("after PutConsent through the cache: %+v, %v, want the new scopes at once", c, err)
	}

	// A consent expiring within the TTL is not found from then on.
	give(s, "bob", "shop", clk.Now().Add(ttl/2), "openid")
	if _, err := get("bob", "shop"); err != nil {
		t.Fatal(err)
	}
	// (The memory backend decides expiry by its own clock, so what is
	// checked here is that the cache asks it again.)
	before := inner.n.Load()
	clk.Advance(ttl / 2)
	get("bob", "shop")
	wantConsentReads(t, inner, before+1, "at the consent's expiry")
}

// TestConsentReadRacingWrite: a read that began before a revocation must not
// cache what it read.
func TestConsentReadRacingWrite(t *testing.T) {
	ctx := context.Background()
	s, inner, _ := setupConsents(t)
	if err := s.PutConsent(ctx, storage.Consent{Subject: "alice", ClientID: "shop", Scopes: []string{"openid"}}); err != nil {
		t.Fatal(err)
	}
	inner.hook = func() {
		inner.hook = nil
		// The revocation lands between the backend read and the caching.
		if err := s.DeleteConsent(ctx, "alice", "shop"); err != nil {
			t.Error(err)
		}
	}
	if _, err := s.GetConsent(ctx, "alice", "shop"); err != nil {
		t.Fatal(err) // the read itself saw the consent
	}
	if _, err := s.GetConsent(ctx, "alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the racing revocation: %v, want ErrNotFound", err)
	}
}
