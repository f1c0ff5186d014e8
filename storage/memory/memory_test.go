package memory

import (
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
