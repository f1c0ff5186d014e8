package redis_test

import (
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
)

// The owner indexes keep each grant at its latest record's expiry, expire
// with their latest grant, and forget the grants a revocation removed.
func TestOwnerIndexes(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	c := s.Client()
	short, long := req(storage.KindAccessToken, "at", "g1"), req(storage.KindRefreshToken, "rt", "g1")
	short.ExpiresAt, long.ExpiresAt = time.Now().Add(time.Minute), time.Now().Add(time.Hour)
	// The longer-lived record first: the shorter one must not lower the score.
	if err := s.CreateRequest(ctx, long); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, short); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{s.SubjectGrantsKey("alice"), s.ClientGrantsKey("client")} {
		score, err := c.ZScore(ctx, key, "g1").Result()
		if err != nil {
			t.Fatalf("ZSCORE %s g1: %v", key, err)
		}
		if want := float64((long.ExpiresAt.UnixMicro() + 999) / 1000); score != want {
			t.Errorf("%s: grant scored %v, want the later expiry %v", key, score, want)
		}
		if exp, err := c.PExpireTime(ctx, key).Result(); err != nil || exp <= 0 {
			t.Errorf("%s: PEXPIRETIME %v, %v; want an expiry", key, exp, err)
		}
	}
	if n, err := s.RevokeGrantsBySubject(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("RevokeGrantsBySubject = %d, %v; want 1", n, err)
	}
	if n, err := c.Exists(ctx, s.SubjectGrantsKey("alice")).Result(); err != nil || n != 0 {
		t.Errorf("subject index after revoking its only grant: exists %d, %v; want it gone", n, err)
	}
	// The client index still names g1, whose records are gone: revoking by
	// client finds nothing to count, and forgets it.
	if n, err := s.RevokeGrantsByClient(ctx, "client"); err != nil || n != 0 {
		t.Fatalf("RevokeGrantsByClient of an already revoked grant = %d, %v; want 0", n, err)
	}
	if n, err := c.Exists(ctx, s.ClientGrantsKey("client")).Result(); err != nil || n != 0 {
		t.Errorf("client index after revoking: exists %d, %v; want it gone", n, err)
	}
}

// After SCRIPT FLUSH the pipelined EVALSHA calls fall back to EVAL: creates
// still index their grants and revocation still runs.
func TestOwnerIndexAfterScriptFlush(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Skipf("SCRIPT FLUSH refused: %v", err)
	}
	if err := s.CreateRequest(ctx, req(storage.KindAccessToken, "at", "g1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RevokeGrantsByClient(ctx, "client"); err != nil || n != 1 {
		t.Fatalf("RevokeGrantsByClient after SCRIPT FLUSH = %d, %v; want 1", n, err)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "at"); err == nil {
		t.Error("record still there after its grant was revoked")
	}
}
