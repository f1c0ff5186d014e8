package storagetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// ---------------------------------------------------------------------------
// Registration tokens (RFC 7591 §3 initial access tokens)

func newRegToken(id string, uses int) storage.RegistrationToken {
	return storage.RegistrationToken{
		ID:          id,
		Description: "CI pipeline ✓ " + id,
		UsesLeft:    uses,
		ExpiresAt:   time.Now().Add(24 * time.Hour).In(zone),
		CreatedAt:   base,
	}
}

func regTokenIDs(ts []storage.RegistrationToken) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

func testRegTokensCRUD(t *testing.T, ctx context.Context, s storage.Durable) {
	tok := newRegToken("9f86d081884c7d65", 3)
	checkAllSet(t, "newRegToken", tok)
	must(t, s.CreateRegistrationToken(ctx, tok), "CreateRegistrationToken")
	forever := newRegToken("0a1b", storage.UnlimitedUses)
	forever.ExpiresAt = time.Time{} // never expires
	must(t, s.CreateRegistrationToken(ctx, forever), "CreateRegistrationToken without expiry")

	list, err := s.ListRegistrationTokens(ctx)
	must(t, err, "ListRegistrationTokens")
	if len(list) != 2 {
		t.Fatalf("ListRegistrationTokens: got %q, want 2 tokens", regTokenIDs(list))
	}
	checkEqual(t, "ListRegistrationTokens[0]", forever, list[0])
	checkEqual(t, "ListRegistrationTokens[1]", tok, list[1])

	dup := newRegToken(tok.ID, 1)
	dup.Description = "other"
	wantErr(t, s.CreateRegistrationToken(ctx, dup), storage.ErrConflict, "CreateRegistrationToken with a duplicate ID")

	got, err := s.UseRegistrationToken(ctx, tok.ID)
	must(t, err, "UseRegistrationToken")
	want := tok
	want.UsesLeft = 2
	checkEqual(t, "UseRegistrationToken result", want, got)
	list, err = s.ListRegistrationTokens(ctx)
	must(t, err, "ListRegistrationTokens after a use")
	if len(list) != 2 {
		t.Fatalf("ListRegistrationTokens after a use: got %q, want 2 tokens", regTokenIDs(list))
	}
	checkEqual(t, "token listed after a use (and after a refused duplicate)", want, list[1])

	// An unlimited token stays unlimited.
	for range 3 {
		got, err := s.UseRegistrationToken(ctx, forever.ID)
		must(t, err, "UseRegistrationToken of an unlimited token")
		checkEqual(t, "UseRegistrationToken of an unlimited token", forever, got)
	}

	_, err = s.UseRegistrationToken(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "UseRegistrationToken of an unknown ID")
	wantErr(t, s.DeleteRegistrationToken(ctx, "absent"), storage.ErrNotFound, "DeleteRegistrationToken of an unknown ID")

	must(t, s.DeleteRegistrationToken(ctx, tok.ID), "DeleteRegistrationToken")
	_, err = s.UseRegistrationToken(ctx, tok.ID)
	wantErr(t, err, storage.ErrNotFound, "UseRegistrationToken after DeleteRegistrationToken")
	wantErr(t, s.DeleteRegistrationToken(ctx, tok.ID), storage.ErrNotFound, "DeleteRegistrationToken twice")
	list, err = s.ListRegistrationTokens(ctx)
	must(t, err, "ListRegistrationTokens after delete")
	if ids := regTokenIDs(list); !slices.Equal(ids, []string{forever.ID}) {
		t.Errorf("ListRegistrationTokens after delete: got %q, want only %q", ids, forever.ID)
	}
	// The ID is free again.
	must(t, s.CreateRegistrationToken(ctx, tok), "CreateRegistrationToken of a deleted token's ID")
}

// testRegTokensUsedUp: a token with N uses allows N, then is refused but
// stays listed (UsesLeft 0) until deleted.
func testRegTokensUsedUp(t *testing.T, ctx context.Context, s storage.Durable) {
	tok := newRegToken("two-uses", 2)
	must(t, s.CreateRegistrationToken(ctx, tok), "CreateRegistrationToken")
	for want := 1; want >= 0; want-- {
		got, err := s.UseRegistrationToken(ctx, tok.ID)
		must(t, err, "UseRegistrationToken")
		if got.UsesLeft != want {
			t.Errorf("UseRegistrationToken: %d uses left, want %d", got.UsesLeft, want)
		}
	}
	_, err := s.UseRegistrationToken(ctx, tok.ID)
	wantErr(t, err, storage.ErrNotFound, "UseRegistrationToken of a used-up token")
	list, err := s.ListRegistrationTokens(ctx)
	must(t, err, "ListRegistrationTokens")
	if len(list) != 1 || list[0].UsesLeft != 0 {
		t.Fatalf("ListRegistrationTokens with a used-up token: got %+v, want it with 0 uses left", list)
	}
	must(t, s.DeleteRegistrationToken(ctx, tok.ID), "DeleteRegistrationToken of a used-up token")
}

func testRegTokensExpired(t *testing.T, ctx context.Context, s storage.Durable) {
	old := newRegToken("expired", 5)
	old.ExpiresAt = time.Now().Add(-time.Second)
	must(t, s.CreateRegistrationToken(ctx, old), "CreateRegistrationToken already expired")
	must(t, s.CreateRegistrationToken(ctx, newRegToken("live", 5)), "CreateRegistrationToken")
	_, err := s.UseRegistrationToken(ctx, old.ID)
	wantErr(t, err, storage.ErrNotFound, "UseRegistrationToken of an expired token")
	list, err := s.ListRegistrationTokens(ctx)
	must(t, err, "ListRegistrationTokens")
	if ids := regTokenIDs(list); !slices.Equal(ids, []string{"live"}) {
		t.Errorf("ListRegistrationTokens with an expired token: got %q, want [live]", ids)
	}
	wantErr(t, s.DeleteRegistrationToken(ctx, old.ID), storage.ErrNotFound, "DeleteRegistrationToken of an expired token")
	// An expired token's ID is free at once.
	renewed := newRegToken(old.ID, 1)
	must(t, s.CreateRegistrationToken(ctx, renewed), "CreateRegistrationToken over an expired token")
	got, err := s.UseRegistrationToken(ctx, old.ID)
	must(t, err, "UseRegistrationToken of the token that replaced an expired one")
	renewed.UsesLeft = 0
	checkEqual(t, "the token that replaced an expired one", renewed, got)
}

// testRegTokensConcurrentUse: a token with N uses presented by 50 callers at
// once registers exactly N clients.
func testRegTokensConcurrentUse(t *testing.T, ctx context.Context, s storage.Durable) {
	const uses = 7
	must(t, s.CreateRegistrationToken(ctx, newRegToken("limited", uses)), "CreateRegistrationToken")
	must(t, s.CreateRegistrationToken(ctx, newRegToken("unlimited", storage.UnlimitedUses)), "CreateRegistrationToken")
	left := make([]int, concurrency)
	errs := race(concurrency, func(i int) error {
		tok, err := s.UseRegistrationToken(ctx, "limited")
		left[i] = tok.UsesLeft
		return err
	})
	nils, byKind, others := tally(errs, storage.ErrNotFound)
	if nils != uses || byKind[storage.ErrNotFound] != concurrency-uses || len(others) > 0 {
		t.Fatalf("%d concurrent uses of a token with %d uses: %d succeeded, %d got ErrNotFound, other errors %v; want exactly %d successes",
			concurrency, uses, nils, byKind[storage.ErrNotFound], others, uses)
	}
	var seen []int
	for i, err := range errs {
		if err == nil {
			seen = append(seen, left[i])
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("uses left returned to the winners: %v, want each of 0..%d once", seen, uses-1)
	}
	errs = race(concurrency, func(int) error {
		_, err := s.UseRegistrationToken(ctx, "unlimited")
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent use %d of an unlimited token: %v", i, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Logout outbox (OpenID Connect Back-Channel Logout 1.0 §2.5)

func newLogout(id string, due time.Time) storage.LogoutNotification {
	return storage.LogoutNotification{
		ID:            id,
		ClientID:      "shop",
		URL:           "https://shop.example.com/backchannel-logout?x=1",
		Payload:       []byte(`{"iss":"https://id.example.com","sub":"alice","aud":"shop","events":{"http://schemas.openid.net/event/backchannel-logout":{}},"sid":"s1","name":"Ünï"}`),
		Attempts:      2,
		NextAttemptAt: due,
		CreatedAt:     base,
		LastError:     "POST: 503 Service Unavailable",
	}
}

func logoutIDs(ns []storage.LogoutNotification) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	return ids
}

func testLogoutsEnqueueList(t *testing.T, ctx context.Context, s storage.Durable) {
	t0 := base
	full := newLogout("n-full", t0.Add(time.Minute))
	checkAllSet(t, "newLogout", full)
	fresh := storage.LogoutNotification{ID: "n-fresh", ClientID: "blog", URL: "https://blog.example.com/bcl",
		Payload: []byte(`{"sub":"bob"}`), NextAttemptAt: t0, CreatedAt: t0}
	// Same due time as n-fresh: the ID breaks the tie.
	tie := storage.LogoutNotification{ID: "n-a-tie", ClientID: "blog", URL: "https://blog.example.com/bcl",
		Payload: []byte(`{}`), NextAttemptAt: t0, CreatedAt: t0}
	must(t, s.EnqueueLogouts(ctx, []storage.LogoutNotification{full, fresh}), "EnqueueLogouts")
	must(t, s.EnqueueLogouts(ctx, []storage.LogoutNotification{tie}), "EnqueueLogouts")
	must(t, s.EnqueueLogouts(ctx, nil), "EnqueueLogouts of nothing")

	list, err := s.ListLogouts(ctx, 0)
	must(t, err, "ListLogouts")
	want := []storage.LogoutNotification{tie, fresh, full}
	if ids := logoutIDs(list); !slices.Equal(ids, logoutIDs(want)) {
		t.Fatalf("ListLogouts: got %q, want %q (by due time, then ID)", ids, logoutIDs(want))
	}
	for i := range want {
		checkEqual(t, "listed logout notification "+want[i].ID, want[i], list[i])
	}
	list, err = s.ListLogouts(ctx, 2)
	must(t, err, "ListLogouts limit 2")
	if ids := logoutIDs(list); !slices.Equal(ids, []string{"n-a-tie", "n-fresh"}) {
		t.Errorf("ListLogouts limit 2: got %q", ids)
	}
}

func testLogoutsAllOrNothing(t *testing.T, ctx context.Context, s storage.Durable) {
	must(t, s.EnqueueLogouts(ctx, []storage.LogoutNotification{newLogout("a", base)}), "EnqueueLogouts")
	err := s.EnqueueLogouts(ctx, []storage.LogoutNotification{newLogout("b", base), newLogout("a", base), newLogout("c", base)})
	wantErr(t, err, storage.ErrConflict, "EnqueueLogouts with an ID queued already")
	err = s.EnqueueLogouts(ctx, []storage.LogoutNotification{newLogout("d", base), newLogout("d", base)})
	wantErr(t, err, storage.ErrConflict, "EnqueueLogouts with an ID twice")
	list, err := s.ListLogouts(ctx, 0)
	must(t, err, "ListLogouts")
	if ids := logoutIDs(list); !slices.Equal(ids, []string{"a"}) {
		t.Errorf("ListLogouts after refused batches: got %q, want only [a]", ids)
	}
}

// testLogoutsClaim walks one notification through claims, an expired lease,
// a failed attempt and completion, with injected times.
func testLogoutsClaim(t *testing.T, ctx context.Context, s storage.Durable) {
	t0 := base
	a, b, later := newLogout("a", t0.Add(-2*time.Minute)), newLogout("b", t0.Add(-time.Minute)), newLogout("later", t0.Add(time.Hour))
	must(t, s.EnqueueLogouts(ctx, []storage.LogoutNotification{later, b, a}), "EnqueueLogouts")
	lease := t0.Add(5 * time.Minute)

	got, err := s.ClaimLogouts(ctx, t0, lease, 1)
	must(t, err, "ClaimLogouts limit 1")
	if ids := logoutIDs(got); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("ClaimLogouts limit 1: got %q, want the earliest due [a]", ids)
	}
	claimed := a
	claimed.NextAttemptAt = lease
	checkEqual(t, "claimed notification", claimed, got[0])
	got, err = s.ClaimLogouts(ctx, t0, lease, 10)
	must(t, err, "ClaimLogouts")
	if ids := logoutIDs(got); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("ClaimLogouts while a is leased: got %q, want [b]", ids)
	}
	got, err = s.ClaimLogouts(ctx, lease.Add(-time.Microsecond), lease.Add(time.Hour), 10)
	must(t, err, "ClaimLogouts")
	if len(got) != 0 {
		t.Fatalf("ClaimLogouts while every due notification is leased: got %q, want none", logoutIDs(got))
	}
	// The lease ends: both are due again (at the lease's end exactly).
	lease2 := lease.Add(5 * time.Minute)
	got, err = s.ClaimLogouts(ctx, lease, lease2, 0)
	must(t, err, "ClaimLogouts after the lease")
	if ids := logoutIDs(got); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("ClaimLogouts after the lease ended: got %q, want [a b]", ids)
	}

	// a fails: retried later with its error recorded; b is delivered.
	retryAt := lease2.Add(time.Minute)
	must(t, s.RetryLogout(ctx, "a", 3, retryAt, "dial tcp: connection refused"), "RetryLogout")
	must(t, s.CompleteLogout(ctx, "b"), "CompleteLogout")
	wantErr(t, s.CompleteLogout(ctx, "b"), storage.ErrNotFound, "CompleteLogout twice")
	wantErr(t, s.RetryLogout(ctx, "b", 1, retryAt, "x"), storage.ErrNotFound, "RetryLogout of a completed notification")
	list, err := s.ListLogouts(ctx, 0)
	must(t, err, "ListLogouts")
	wantA := a
	wantA.Attempts, wantA.NextAttemptAt, wantA.LastError = 3, retryAt, "dial tcp: connection refused"
	if ids := logoutIDs(list); !slices.Equal(ids, []string{"a", "later"}) {
		t.Fatalf("ListLogouts after retry and completion: got %q, want [a later]", ids)
	}
	checkEqual(t, "retried notification", wantA, list[0])
	checkEqual(t, "untouched notification", later, list[1])
	got, err = s.ClaimLogouts(ctx, retryAt.Add(-time.Microsecond), retryAt.Add(time.Hour), 0)
	must(t, err, "ClaimLogouts before the retry time")
	if len(got) != 0 {
		t.Errorf("ClaimLogouts before the retry time: got %q, want none", logoutIDs(got))
	}
	got, err = s.ClaimLogouts(ctx, retryAt, retryAt.Add(time.Hour), 0)
	must(t, err, "ClaimLogouts at the retry time")
	if ids := logoutIDs(got); !slices.Equal(ids, []string{"a"}) {
		t.Errorf("ClaimLogouts at the retry time: got %q, want [a]", ids)
	}
	checkEqual(t, "notification claimed again", storage.LogoutNotification{ID: "a", ClientID: a.ClientID, URL: a.URL,
		Payload: a.Payload, Attempts: 3, NextAttemptAt: retryAt.Add(time.Hour), CreatedAt: a.CreatedAt, LastError: wantA.LastError}, got[0])
}

// testLogoutsConcurrentClaims: replicas claiming at once never get the same
// notification while its lease holds; together they get every due one.
func testLogoutsConcurrentClaims(t *testing.T, ctx context.Context, s storage.Durable) {
	const queued = 30
	now := base
	for _, workers := range []int{2, 5, 10} {
		prefix := fmt.Sprintf("w%02d-", workers)
		ns := make([]storage.LogoutNotification, queued)
		for i := range ns {
			ns[i] = newLogout(fmt.Sprintf("%s%02d", prefix, i), now.Add(-time.Duration(i%7)*time.Second))
		}
		must(t, s.EnqueueLogouts(ctx, ns), "EnqueueLogouts")
		var mu sync.Mutex
		counts := make(map[string]int)
		errs := race(workers, func(int) error {
			for {
				got, err := s.ClaimLogouts(ctx, now, now.Add(time.Hour), 4)
				if err != nil {
					return err
				}
				if len(got) == 0 {
					return nil
				}
				mu.Lock()
				for _, n := range got {
					counts[n.ID]++
				}
				mu.Unlock()
			}
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%d workers: ClaimLogouts of worker %d: %v", workers, i, err)
			}
		}
		var twice []string
		for id, c := range counts {
			if c != 1 {
				twice = append(twice, fmt.Sprintf("%s×%d", id, c))
			}
		}
		if len(twice) > 0 || len(counts) != queued {
			t.Errorf("%d workers claiming %d notifications: %d distinct claimed, claimed more than once: %s",
				workers, queued, len(counts), strings.Join(twice, " "))
		}
		// Everything is leased now: the next round only sees its own.
		for id := range counts {
			must(t, s.CompleteLogout(ctx, id), "CompleteLogout")
		}
	}
}

// ---------------------------------------------------------------------------
// Revocation by subject and by client

// grantOf creates one record per kind of the given kinds in grant, with the
// given subject and client.
func grantOf(t *testing.T, ctx context.Context, s storage.RequestStore, grant, subject, client string, kinds ...storage.RequestKind) []storage.Request {
	t.Helper()
	var rs []storage.Request
	for _, kind := range kinds {
		r := newRequest(kind, grant+"-"+string(kind), grant)
		r.Subject, r.ClientID = subject, client
		createRequest(t, ctx, s, r)
		rs = append(rs, r)
	}
	return rs
}

func wantAll(t *testing.T, ctx context.Context, s storage.RequestStore, rs []storage.Request, want, when string) {
	t.Helper()
	for _, r := range rs {
		wantState(t, ctx, s, r.Kind, r.Signature, want, when)
	}
}

// revokeCase builds grants whose records match a key (a subject or a client
// ID) in every way a grant can, and checks revoke(key) removes exactly them.
func revokeCase(t *testing.T, ctx context.Context, s storage.Ephemeral, bySubject bool, revoke func(string) (int, error)) {
	// who returns (subject, client) of a record matching key or not.
	who := func(match bool) (string, string) {
		switch {
		case bySubject && match:
			return "alice", "shop"
		case bySubject:
			return "bob", "shop" // same client, other subject
		case match:
			return "alice", "shop"
		default:
			return "alice", "blog" // same subject, other client
		}
	}
	key := "alice"
	if !bySubject {
		key = "shop"
	}
	ms, mc := who(true)
	os, oc := who(false)
	code, at, rt := storage.KindAuthorizeCode, storage.KindAccessToken, storage.KindRefreshToken

	g1 := grantOf(t, ctx, s, "g1", ms, mc, code, storage.KindPKCE, storage.KindOIDC)
	g2 := grantOf(t, ctx, s, "g2", ms, mc, at, rt)
	must(t, s.DeactivateRequest(ctx, ref(g2[1])), "DeactivateRequest") // inactive records count too
	// A grant where only one record names the key: all of it goes.
	g3 := append(grantOf(t, ctx, s, "g3", "", "", code), grantOf(t, ctx, s, "g3", ms, mc, at)...)
	// A grant whose records came from a batch.
	g4 := []storage.Request{newRequest(at, "g4-at", "g4"), newRequest(rt, "g4-rt", "g4")}
	for i := range g4 {
		g4[i].Subject, g4[i].ClientID = ms, mc
	}
	must(t, s.ApplyRequests(ctx, storage.RequestBatch{Create: g4}), "ApplyRequests creating g4")
	// Grants that stay: another key, and one whose only matching record has expired.
	other := grantOf(t, ctx, s, "other", os, oc, code, at, rt)
	gone := newRequest(at, "gone-at", "gone")
	gone.Subject, gone.ClientID, gone.ExpiresAt = ms, mc, time.Now().Add(-time.Second)
	createRequest(t, ctx, s, gone)
	stays := grantOf(t, ctx, s, "gone", os, oc, rt)

	n, err := revoke(key)
	must(t, err, "revoking grants of "+key)
	if n != 4 {
		t.Errorf("revoking grants of %s: %d grants revoked, want 4", key, n)
	}
	for _, g := range [][]storage.Request{g1, g2, g3, g4} {
		wantAll(t, ctx, s, g, "absent", "in a grant revoked by "+key)
	}
	wantAll(t, ctx, s, other, "active", "in a grant of another key")
	wantAll(t, ctx, s, stays, "active", "in a grant whose only record of "+key+" had expired")

	n, err = revoke(key)
	must(t, err, "revoking grants of "+key+" again")
	if n != 0 {
		t.Errorf("revoking grants of %s again: %d grants revoked, want 0", key, n)
	}
	n, err = revoke("nobody")
	must(t, err, "revoking grants of an unknown key")
	if n != 0 {
		t.Errorf("revoking grants of an unknown key: %d, want 0", n)
	}
	if _, err := revoke(""); err == nil {
		t.Errorf("revoking grants of the empty key: no error, want one (it would match every grant without one)")
	}
	// The revoked grants can get records again, and those are revoked in turn.
	again := grantOf(t, ctx, s, "g1", ms, mc, at)
	wantAll(t, ctx, s, again, "active", "a record created in a revoked grant")
	n, err = revoke(key)
	must(t, err, "revoking grants of "+key+" a third time")
	if n != 1 {
		t.Errorf("revoking grants of %s after one new grant: %d, want 1", key, n)
	}
	wantAll(t, ctx, s, again, "absent", "after revoking it")
	wantAll(t, ctx, s, other, "active", "in a grant of another key")
}

func testRevokeGrantsBySubject(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	revokeCase(t, ctx, s, true, func(sub string) (int, error) { return s.RevokeGrantsBySubject(ctx, sub) })
}

func testRevokeGrantsByClient(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	revokeCase(t, ctx, s, false, func(c string) (int, error) { return s.RevokeGrantsByClient(ctx, c) })
}
