package sql_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	sqlstore "github.com/gatehouse-idp/gatehouse/storage/sql"
)

func TestGarbageCollect(t *testing.T) {
	backends(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		now := time.Now()
		past, future := now.Add(-time.Minute), now.Add(time.Hour)
		var live []string
		for i := range 7 {
			for _, exp := range []time.Time{past, future} {
				sig := fmt.Sprintf("s%d-%d", i, exp.Unix())
				if exp.Equal(future) {
					live = append(live, sig)
				}
				if err := st.CreateRequest(ctx, storage.Request{Kind: storage.KindAccessToken, Signature: sig, RequestID: "g",
					ExpiresAt: exp}); err != nil {
					t.Fatal(err)
				}
				if err := st.CreateSession(ctx, storage.Session{ID: sig, Subject: "u", ExpiresAt: exp}); err != nil {
					t.Fatal(err)
				}
				if err := st.UseOnce(ctx, sig, exp); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := st.Hit(ctx, "k", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := st.PutConsent(ctx, storage.Consent{Subject: "u", ClientID: "old", ExpiresAt: past}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutConsent(ctx, storage.Consent{Subject: "u", ClientID: "forever"}); err != nil {
			t.Fatal(err)
		}
		// A batch of 3 takes several rounds per table; exactly the 22 expired rows go.
		n, err := st.GarbageCollect(ctx, now, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n != 22 {
			t.Errorf("GarbageCollect deleted %d rows, want 22", n)
		}
		if n, err := st.GarbageCollect(ctx, now, 3); err != nil || n != 0 {
			t.Errorf("second GarbageCollect = %d, %v; want 0, nil", n, err)
		}
		for _, sig := range live {
			if _, err := st.GetRequest(ctx, storage.KindAccessToken, sig); err != nil {
				t.Errorf("live request %s: %v", sig, err)
			}
			if _, err := st.GetSession(ctx, sig); err != nil {
				t.Errorf("live session %s: %v", sig, err)
			}
			if err := st.UseOnce(ctx, sig, future); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("live replay entry %s: UseOnce = %v, want ErrConflict", sig, err)
			}
		}
		if c, err := st.Count(ctx, "k"); err != nil || c[0] != 1 {
			t.Errorf("live throttle counter = %v, %v; want 1", c, err)
		}
		if _, err := st.GetConsent(ctx, "u", "forever"); err != nil {
			t.Errorf("consent without expiry: %v", err)
		}
		// Later, everything with an expiry is due.
		n, err = st.GarbageCollect(ctx, future.Add(time.Second), 0)
		if err != nil || n != 7*3+1 {
			t.Errorf("GarbageCollect after every expiry = %d, %v; want %d", n, err, 7*3+1)
		}
	})
}

// Expired registration tokens are collected; live ones and those without
// expiry are kept, used up or not.
func TestGarbageCollectRegistrationTokens(t *testing.T) {
	backends(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		now := time.Now()
		for _, tok := range []storage.RegistrationToken{
			{ID: "old", UsesLeft: 1, ExpiresAt: now.Add(-time.Minute), CreatedAt: now},
			{ID: "live", UsesLeft: 0, ExpiresAt: now.Add(time.Hour), CreatedAt: now},
			{ID: "forever", UsesLeft: storage.UnlimitedUses, CreatedAt: now},
		} {
			if err := st.CreateRegistrationToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := st.GarbageCollect(ctx, now, 0); err != nil || n != 1 {
			t.Errorf("GarbageCollect = %d, %v; want 1 (the expired token)", n, err)
		}
		list, err := st.ListRegistrationTokens(ctx)
		if err != nil || len(list) != 2 {
			t.Errorf("ListRegistrationTokens after GC = %+v, %v; want live and forever", list, err)
		}
		if n, err := st.GarbageCollect(ctx, now.Add(2*time.Hour), 0); err != nil || n != 1 {
			t.Errorf("GarbageCollect later = %d, %v; want 1 (the token that expired meanwhile)", n, err)
		}
	})
}
