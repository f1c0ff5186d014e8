package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// expiryLead is how far ahead the short-lived records of the sleeping cases
// expire; each of them sleeps once, just past it, all in parallel.
const expiryLead = time.Second

// runExpiry runs the expiry cases: every short-lived record is invisible from
// its ExpiresAt on, whether or not the backend has removed it yet.
func runExpiry(t *testing.T, open func(t *testing.T) storage.Ephemeral) {
	cases := []ephemeralCase{
		{"Past", testExpiryPast},
		{"Requests", testExpiryRequests},
		{"Sessions", testExpirySessions},
		{"ReplayCache", testExpiryReplayCache},
		{"Throttle", testExpiryThrottle},
	}
	t.Run("Expiry", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, t.Context(), open(t))
			})
		}
	})
}

// sleepPast sleeps until a little after deadline.
func sleepPast(deadline time.Time) {
	time.Sleep(time.Until(deadline) + 200*time.Millisecond)
}

// testExpiryPast: records stored with an expiry in the past are invisible at
// once, and their identity is free for a new record.
func testExpiryPast(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	past := time.Now().Add(-time.Second)

	r := newRequest(storage.KindAuthorizeCode, "expired-code", "g1")
	r.ExpiresAt = past
	must(t, s.CreateRequest(ctx, r), "CreateRequest already expired")
	_, err := s.GetRequest(ctx, r.Kind, r.Signature)
	wantErr(t, err, storage.ErrNotFound, "GetRequest of an expired record")
	wantErr(t, s.DeactivateRequest(ctx, ref(r)), storage.ErrNotFound, "DeactivateRequest of an expired record")
	wantErr(t, s.DeactivateRequest(ctx, bareRef(r)), storage.ErrNotFound, "DeactivateRequest of an expired record without grant ID")
	created := newRequest(storage.KindAccessToken, "at-new", "g1")
	err = s.ApplyRequests(ctx, storage.RequestBatch{Deactivate: []storage.RequestRef{ref(r)}, Create: []storage.Request{created}})
	wantErr(t, err, storage.ErrNotFound, "ApplyRequests deactivating an expired record")
	wantState(t, ctx, s, created.Kind, created.Signature, "absent", "after a batch deactivating an expired record failed")
	fresh := newRequest(storage.KindAuthorizeCode, "expired-code", "g2")
	must(t, s.CreateRequest(ctx, fresh), "CreateRequest over an expired record of the same signature")
	got, err := s.GetRequest(ctx, fresh.Kind, fresh.Signature)
	must(t, err, "GetRequest of the record that replaced an expired one")
	checkEqual(t, "GetRequest of the record that replaced an expired one", fresh, got)

	x := newSession("expired-session", "alice")
	x.ExpiresAt = past
	must(t, s.CreateSession(ctx, x), "CreateSession already expired")
	_, err = s.GetSession(ctx, x.ID)
	wantErr(t, err, storage.ErrNotFound, "GetSession of an expired session")
	_, err = s.UpdateSession(ctx, x.ID, func(y storage.Session) (storage.Session, error) {
		y.ExpiresAt = time.Now().Add(time.Hour) // no resurrection
		return y, nil
	})
	wantErr(t, err, storage.ErrNotFound, "UpdateSession of an expired session")
	list, err := s.ListSessions(ctx, "alice")
	must(t, err, "ListSessions")
	if len(list) != 0 {
		t.Errorf("ListSessions with only an expired session: got %d sessions", len(list))
	}
	y := newSession("expired-session", "bob")
	must(t, s.CreateSession(ctx, y), "CreateSession over an expired session of the same ID")
	gotSession, err := s.GetSession(ctx, y.ID)
	must(t, err, "GetSession of the session that replaced an expired one")
	checkEqual(t, "GetSession of the session that replaced an expired one", y, gotSession)
}

func testExpiryRequests(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	exp := time.Now().Add(expiryLead)
	r := newRequest(storage.KindAccessToken, "at-short", "g1")
	r.ExpiresAt = exp
	long := newRequest(storage.KindRefreshToken, "rt-long", "g1")
	createRequest(t, ctx, s, r)
	createRequest(t, ctx, s, long)
	got, err := s.GetRequest(ctx, r.Kind, r.Signature)
	must(t, err, "GetRequest before expiry")
	checkEqual(t, "GetRequest before expiry", r, got)
	sleepPast(exp)
	_, err = s.GetRequest(ctx, r.Kind, r.Signature)
	wantErr(t, err, storage.ErrNotFound, "GetRequest after expiry")
	wantErr(t, s.DeactivateRequest(ctx, bareRef(r)), storage.ErrNotFound, "DeactivateRequest after expiry")
	wantState(t, ctx, s, long.Kind, long.Signature, "active", "a record of the same grant not yet expired")
}

func testExpirySessions(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	exp := time.Now().Add(expiryLead)
	x := newSession("short", "alice")
	x.ExpiresAt = exp
	createSession(t, ctx, s, x)
	createSession(t, ctx, s, newSession("long", "alice"))
	// A session shortened by an update expires at its new time.
	createSession(t, ctx, s, newSession("shortened", "alice"))
	_, err := s.UpdateSession(ctx, "shortened", func(y storage.Session) (storage.Session, error) {
		y.ExpiresAt = exp
		return y, nil
	})
	must(t, err, "UpdateSession shortening the session")
	got, err := s.GetSession(ctx, x.ID)
	must(t, err, "GetSession before expiry")
	checkEqual(t, "GetSession before expiry", x, got)
	list, err := s.ListSessions(ctx, "alice")
	must(t, err, "ListSessions before expiry")
	if len(list) != 3 {
		t.Errorf("ListSessions before expiry: got %d sessions, want 3", len(list))
	}
	sleepPast(exp)
	_, err = s.GetSession(ctx, x.ID)
	wantErr(t, err, storage.ErrNotFound, "GetSession after expiry")
	_, err = s.GetSession(ctx, "shortened")
	wantErr(t, err, storage.ErrNotFound, "GetSession after the expiry an update set")
	_, err = s.UpdateSession(ctx, x.ID, func(y storage.Session) (storage.Session, error) { return y, nil })
	wantErr(t, err, storage.ErrNotFound, "UpdateSession after expiry")
	list, err = s.ListSessions(ctx, "alice")
	must(t, err, "ListSessions after expiry")
	if len(list) != 1 || list[0].ID != "long" {
		t.Errorf("ListSessions after one session expired: got %d sessions, want only %q", len(list), "long")
	}
}

func testExpiryReplayCache(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	exp := time.Now().Add(expiryLead)
	must(t, s.UseOnce(ctx, "jti-short", exp), "UseOnce")
	must(t, s.UseOnce(ctx, "jti-long", exp.Add(time.Hour)), "UseOnce")
	wantErr(t, s.UseOnce(ctx, "jti-short", exp), storage.ErrConflict, "UseOnce again before expiry")
	sleepPast(exp)
	must(t, s.UseOnce(ctx, "jti-short", time.Now().Add(time.Hour)), "UseOnce after the entry expired")
	wantErr(t, s.UseOnce(ctx, "jti-short", time.Now().Add(time.Hour)), storage.ErrConflict, "UseOnce of the renewed entry")
	wantErr(t, s.UseOnce(ctx, "jti-long", time.Now().Add(time.Hour)), storage.ErrConflict, "UseOnce of an entry not yet expired")
}

func testExpiryThrottle(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	start := time.Now()
	// The window starts at the first hit; later hits (even asking for a
	// longer window) neither extend nor restart it.
	if n, err := s.Hit(ctx, "short", expiryLead); err != nil || n != 1 {
		t.Errorf("first Hit: %d, %v; want 1", n, err)
	}
	if n, err := s.Hit(ctx, "short", time.Hour); err != nil || n != 2 {
		t.Errorf("second Hit: %d, %v; want 2", n, err)
	}
	if n, err := s.Hit(ctx, "long", time.Hour); err != nil || n != 1 {
		t.Errorf("Hit of another key: %d, %v; want 1", n, err)
	}
	if n, err := s.Count(ctx, "short"); err != nil || fmt.Sprint(n) != "[2]" {
		t.Errorf("Count within the window: %v, %v; want [2]", n, err)
	}
	sleepPast(start.Add(expiryLead))
	// One expired and one open window in the same call.
	if n, err := s.Count(ctx, "short", "long"); err != nil || fmt.Sprint(n) != "[0 1]" {
		t.Errorf("Count(short, long) after short's window: %v, %v; want [0 1]", n, err)
	}
	if n, err := s.Hit(ctx, "short", expiryLead); err != nil || n != 1 {
		t.Errorf("Hit after the window: %d, %v; want 1 (a new window)", n, err)
	}
	if n, err := s.Count(ctx, "long"); err != nil || fmt.Sprint(n) != "[1]" {
		t.Errorf("Count of a key whose window is open: %v, %v; want [1]", n, err)
	}
}
