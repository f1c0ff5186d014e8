package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
)

// TestGetRequestOneRoundTripEscapedGrant: the single-server GetRequest builds
// the record key in Lua; grant IDs with the characters escaped inside the
// hash tag (%, {, }) must still be found, and a missing pointer is ErrNotFound.
func TestGetRequestOneRoundTripEscapedGrant(t *testing.T) {
	s := redistest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, grant := range []string{"plain", "g{1}", "50%-off", "}{%%{"} {
		r := storage.Request{Kind: storage.KindAccessToken, Signature: "sig-" + grant, RequestID: grant, ClientID: "c",
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("p")}
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatalf("%q: %v", grant, err)
		}
		got, err := s.GetRequest(ctx, r.Kind, r.Signature)
		if err != nil || got.RequestID != grant || string(got.Payload) != "p" || !got.Active {
			t.Errorf("%q: got %+v, %v", grant, got, err)
		}
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "absent"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("absent: %v, want ErrNotFound", err)
	}
}

// TestCreateRequestConflictAcrossGrants: the pipelined creation writes the
// record before it learns that the signature is taken by another grant; it
// must then remove it again and report ErrConflict, leaving the first record
// as it was and the second grant empty.
func TestCreateRequestConflictAcrossGrants(t *testing.T) {
	s := redistest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	first := storage.Request{Kind: storage.KindRefreshToken, Signature: "shared", RequestID: "grant-a", ClientID: "c", Subject: "alice",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("first")}
	if err := s.CreateRequest(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := first
	second.RequestID, second.Payload = "grant-b", []byte("second")
	if err := s.CreateRequest(ctx, second); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second creation: %v, want ErrConflict", err)
	}
	got, err := s.GetRequest(ctx, first.Kind, first.Signature)
	if err != nil || got.RequestID != "grant-a" || string(got.Payload) != "first" {
		t.Errorf("after the conflict: %+v, %v", got, err)
	}
	// grant-b holds nothing: revoking it removes nothing of grant-a, and a
	// deactivation through grant-b finds no record.
	err = s.DeactivateRequest(ctx, storage.RequestRef{Kind: first.Kind, Signature: first.Signature, RequestID: "grant-b"})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("grant-b's copy: %v, want ErrNotFound", err)
	}
	if err := s.RevokeGrant(ctx, "grant-b"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRequest(ctx, first.Kind, first.Signature); err != nil || !got.Active {
		t.Errorf("grant-a after revoking grant-b: %+v, %v", got, err)
	}
}

// TestGetRequestCachesOnlyTheTokensGrant: a read of an access token remembers
// the grant its signature points to, and the next read goes straight to the
// record with HMGET instead of the pointer script. Only that indirection is
// cached: a deactivation and a revocation show at once, and when the pointer
// has moved to another grant (the record it named expired, and a new grant
// took the signature over), the read finds the new grant's record, since a
// cached grant expires with the record it was read from. Other kinds always
// read through the pointer.
func TestGetRequestCachesOnlyTheTokensGrant(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	log := &cmdLog{}
	s.Client().AddHook(log)
	now := time.Now().UTC().Truncate(time.Microsecond)
	record := func(kind storage.RequestKind, sig, grant string, ttl time.Duration, payload string) storage.Request {
		return storage.Request{Kind: kind, Signature: sig, RequestID: grant, ClientID: "c", Active: true,
			RequestedAt: now, ExpiresAt: time.Now().Add(ttl), Payload: []byte(payload)}
	}
	read := func(name string, kind storage.RequestKind, sig, wantGrant, wantPayload string, wantActive bool, trips string) {
		t.Helper()
		log.take()
		got, err := s.GetRequest(ctx, kind, sig)
		if err != nil || got.RequestID != wantGrant || string(got.Payload) != wantPayload || got.Active != wantActive {
			t.Errorf("%s: got %+v, %v; want grant %q, payload %q, active %v", name, got, err, wantGrant, wantPayload, wantActive)
		}
		if got := log.take(); got != trips {
			t.Errorf("%s: round trips %s, want %s", name, got, trips)
		}
	}

	at := record(storage.KindAccessToken, "at", "grant-1", time.Hour, "token")
	if err := s.CreateRequest(ctx, at); err != nil {
		t.Fatal(err)
	}
	read("first read", at.Kind, "at", "grant-1", "token", true, "[evalsha]")
	read("second read", at.Kind, "at", "grant-1", "token", true, "[hmget]")

	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: at.Kind, Signature: "at", RequestID: "grant-1"}); err != nil {
		t.Fatal(err)
	}
	read("after deactivation", at.Kind, "at", "grant-1", "token", false, "[hmget]")

	if err := s.RevokeGrant(ctx, "grant-1"); err != nil {
		t.Fatal(err)
	}
	log.take()
	if _, err := s.GetRequest(ctx, at.Kind, "at"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after revocation: %v, want ErrNotFound", err)
	}
	if got := log.take(); got != "[hmget] [evalsha]" {
		t.Errorf("after revocation: round trips %s, want the cached grant, then the pointer", got)
	}

	// The pointer moves on once the record it names has expired.
	short := record(storage.KindAccessToken, "moved", "grant-old", 30*time.Millisecond, "old")
	if err := s.CreateRequest(ctx, short); err != nil {
		t.Fatal(err)
	}
	read("before the move", short.Kind, "moved", "grant-old", "old", true, "[evalsha]")
	time.Sleep(50 * time.Millisecond)
	if err := s.CreateRequest(ctx, record(storage.KindAccessToken, "moved", "grant-new", time.Hour, "new")); err != nil {
		t.Fatal(err)
	}
	// The cached grant expired with its record: no HMGET of the old grant.
	read("after the move", short.Kind, "moved", "grant-new", "new", true, "[evalsha]")
	read("cached again", short.Kind, "moved", "grant-new", "new", true, "[hmget]")

	rt := record(storage.KindRefreshToken, "rt", "grant-2", time.Hour, "refresh")
	if err := s.CreateRequest(ctx, rt); err != nil {
		t.Fatal(err)
	}
	read("refresh token", rt.Kind, "rt", "grant-2", "refresh", true, "[evalsha]")
	read("refresh token again", rt.Kind, "rt", "grant-2", "refresh", true, "[evalsha]")
}
