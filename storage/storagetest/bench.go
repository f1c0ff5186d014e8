package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// The benchmarks below time the storage operations of the token endpoint's
// hot path on one backend: what one client_credentials grant writes, what an
// introspection reads, and what a refresh-token rotation applies. A backend's
// *_bench_test.go calls them with a store of its own.

func benchID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func benchRequest(kind storage.RequestKind, grant string) storage.Request {
	now := time.Now().UTC()
	return storage.Request{
		Kind: kind, Signature: benchID(), RequestID: grant, ClientID: "bench-client", Subject: "alice",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour),
		// About the size of an encoded fosite request with a session.
		Payload: make([]byte, 600),
	}
}

// BenchEphemeral runs the request-record benchmarks on s.
func BenchEphemeral(b *testing.B, s storage.Ephemeral) {
	ctx := context.Background()
	b.Run("CreateRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.CreateRequest(ctx, benchRequest(storage.KindAccessToken, benchID())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetRequest", benchGet(ctx, s, storage.KindAccessToken))
	// A refresh token is read once per rotation: Redis reads it through its
	// signature pointer, where an access token's repeated reads skip it.
	b.Run("GetRequest_refresh_token", benchGet(ctx, s, storage.KindRefreshToken))
	b.Run("DeactivateRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			r := benchRequest(storage.KindAuthorizeCode, benchID())
			if err := s.CreateRequest(ctx, r); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: r.Kind, Signature: r.Signature, RequestID: r.RequestID}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A refresh-token rotation: deactivate the old refresh token, delete
	// its access token, create the new pair, all or nothing.
	b.Run("ApplyRequests_rotation", func(b *testing.B) {
		grant := benchID()
		rt, at := benchRequest(storage.KindRefreshToken, grant), benchRequest(storage.KindAccessToken, grant)
		if err := s.ApplyRequests(ctx, storage.RequestBatch{Create: []storage.Request{rt, at}}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			nrt, nat := benchRequest(storage.KindRefreshToken, grant), benchRequest(storage.KindAccessToken, grant)
			err := s.ApplyRequests(ctx, storage.RequestBatch{
				Deactivate: []storage.RequestRef{{Kind: rt.Kind, Signature: rt.Signature, RequestID: grant}},
				Delete:     []storage.RequestRef{{Kind: at.Kind, Signature: at.Signature, RequestID: grant}},
				Create:     []storage.Request{nrt, nat},
			})
			if err != nil {
				b.Fatal(err)
			}
			rt, at = nrt, nat
		}
	})
}

// benchGet reads one record of kind over and over.
func benchGet(ctx context.Context, s storage.Ephemeral, kind storage.RequestKind) func(*testing.B) {
	return func(b *testing.B) {
		r := benchRequest(kind, benchID())
		if err := s.CreateRequest(ctx, r); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetRequest(ctx, r.Kind, r.Signature); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchDurable runs the client lookup benchmark on s: every token request
// with client authentication reads its client.
func BenchDurable(b *testing.B, s storage.Durable) {
	ctx := context.Background()
	now := time.Now().UTC()
	c := storage.Client{ID: "bench-" + benchID(), SecretHash: make([]byte, 32), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"reports.read"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.Run("GetClient", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetClient(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetKeySet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetKeySet(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
