package memory

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func TestDurable(t *testing.T) {
	storagetest.RunDurable(t, func(*testing.T) storage.Durable { return New() })
}

func TestEphemeral(t *testing.T) {
	storagetest.RunEphemeral(t, func(*testing.T) storage.Ephemeral { return New() })
}

// TestPruneBounded: expired records are removed by later calls, a bounded
// number per call, so a store in use does not keep them.
func TestPruneBounded(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	s.now = func() time.Time { return now }
	const n = 200
	for i := range n {
		exp := now.Add(time.Minute)
		must(t, s.CreateRequest(ctx, storage.Request{Kind: storage.KindAccessToken, Signature: fmt.Sprint("at", i), RequestID: "g", ExpiresAt: exp, Active: true}))
		must(t, s.CreateSession(ctx, storage.Session{ID: fmt.Sprint("s", i), Subject: "alice", ExpiresAt: exp}))
		must(t, s.UseOnce(ctx, fmt.Sprint("jti", i), exp))
		if _, err := s.Hit(ctx, fmt.Sprint("k", i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.size(); got != 4*n {
		t.Fatalf("size before expiry: %d, want %d", got, 4*n)
	}
	now = now.Add(time.Hour)
	if _, err := s.Count(ctx, "k0"); err != nil {
		t.Fatal(err)
	}
	if got := s.size(); got != 4*n-defaultPruneLimit {
		t.Errorf("one call removed %d expired records, want the limit %d", 4*n-got, defaultPruneLimit)
	}
	for range 4 * n / defaultPruneLimit {
		if _, err := s.Count(ctx, "k0"); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.size(); got != 0 {
		t.Errorf("after enough calls %d expired records remain, want 0", got)
	}
	if len(s.grants) != 0 || len(s.bySubject) != 0 || len(s.expiries) != 0 {
		t.Errorf("indexes not emptied: %d grants, %d subjects, %d expiry entries", len(s.grants), len(s.bySubject), len(s.expiries))
	}
}

// TestPruneKeepsLive: a stale expiry entry (the session was extended) does
// not remove the live record.
func TestPruneKeepsLive(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	s.now = func() time.Time { return now }
	must(t, s.CreateSession(ctx, storage.Session{ID: "s", Subject: "alice", ExpiresAt: now.Add(time.Minute)}))
	_, err := s.UpdateSession(ctx, "s", func(x storage.Session) (storage.Session, error) {
		x.ExpiresAt = now.Add(time.Hour)
		return x, nil
	})
	must(t, err)
	now = now.Add(2 * time.Minute)
	if _, err := s.GetSession(ctx, "s"); err != nil {
		t.Fatalf("extended session after its first expiry: %v", err)
	}
	now = now.Add(time.Hour)
	if _, err := s.GetSession(ctx, "s"); err == nil {
		t.Fatal("session visible after its extended expiry")
	}
	if got := s.size(); got != 0 {
		t.Errorf("expired session not pruned: size %d", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdaterRunsUnlocked: an updater may read the store (no deadlock), and a
// change made while it runs makes it run again on the new state rather than
// being overwritten.
func TestUpdaterRunsUnlocked(t *testing.T) {
	ctx := t.Context()
	s := New()
	must(t, s.CreateClient(ctx, storage.Client{ID: "c"}))
	calls := 0
	got, err := s.UpdateClient(ctx, "c", func(c storage.Client) (storage.Client, error) {
		calls++
		if _, err := s.GetClient(ctx, "c"); err != nil {
			return c, err
		}
		if calls == 1 {
			_, err := s.UpdateClient(ctx, "c", func(c storage.Client) (storage.Client, error) {
				c.Contacts = append(c.Contacts, "inner")
				return c, nil
			})
			must(t, err)
		}
		c.Contacts = append(c.Contacts, "outer")
		return c, nil
	})
	must(t, err)
	if calls != 2 || len(got.Contacts) != 2 || got.Contacts[0] != "inner" || got.Contacts[1] != "outer" {
		t.Errorf("updater ran %d times, contacts %q; want 2 runs and [inner outer]", calls, got.Contacts)
	}

	// The same for users and sessions, with a delete in between: ErrNotFound.
	must(t, s.CreateUser(ctx, storage.User{ID: "u", Username: "u"}))
	_, err = s.UpdateUser(ctx, "u", func(u storage.User) (storage.User, error) {
		must(t, s.DeleteUser(ctx, "u"))
		return u, nil
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateUser of a user deleted meanwhile: %v, want ErrNotFound", err)
	}
	must(t, s.CreateSession(ctx, storage.Session{ID: "s", Subject: "alice", ExpiresAt: time.Now().Add(time.Hour)}))
	_, err = s.UpdateSession(ctx, "s", func(x storage.Session) (storage.Session, error) {
		must(t, s.DeleteSession(ctx, "s"))
		return x, nil
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateSession of a session deleted meanwhile: %v, want ErrNotFound", err)
	}
}
