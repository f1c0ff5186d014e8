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
