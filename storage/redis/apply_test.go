package redis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
)

// roundTrips counts the commands and pipelines the store sends.
type roundTrips struct {
	mu sync.Mutex
	n  int
}

func (c *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (c *roundTrips) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// exchange is a code exchange's batch: the code consumed, its PKCE request
// deleted, an access and a refresh token created, all of grant g1.
func exchange() (storage.RequestBatch, storage.Request, storage.Request) {
	code, pkce := req(storage.KindAuthorizeCode, "code", "g1"), req(storage.KindPKCE, "code", "g1")
	return storage.RequestBatch{
		Deactivate: []storage.RequestRef{{Kind: code.Kind, Signature: code.Signature, RequestID: "g1"}},
		Delete:     []storage.RequestRef{{Kind: pkce.Kind, Signature: pkce.Signature, RequestID: "g1"}},
		Create:     []storage.Request{req(storage.KindAccessToken, "at", "g1"), req(storage.KindRefreshToken, "rt", "g1")},
	}, code, pkce
}

func seed(t *testing.T, s interface {
	CreateRequest(context.Context, storage.Request) error
}, rs ...storage.Request) {
	t.Helper()
	for _, r := range rs {
		if err := s.CreateRequest(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestApplyRequestsOneRoundTrip: on a single server a one-grant batch (here a
// code exchange) is one round trip: the pointer claims, the grant script,
// which also releases the deleted records' pointers and updates the owner
// indexes, go in one pipeline.
func TestApplyRequestsOneRoundTrip(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	b, code, pkce := exchange()
	seed(t, s, code, pkce)
	c, ok := s.Client().(*goredis.Client)
	if !ok {
		t.Skip("not a single-server client")
	}
	// A first batch finds the script uncached (a fresh server) and loads it.
	if err := s.ApplyRequests(ctx, storage.RequestBatch{Create: []storage.Request{req(storage.KindAccessToken, "warm", "g0")}}); err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	c.AddHook(rt)
	if err := s.ApplyRequests(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := rt.take(); n != 1 {
		t.Errorf("the exchange took %d round trips, want 1", n)
	}
	// A lone creation (client_credentials) goes the same way.
	if err := s.CreateRequest(ctx, req(storage.KindAccessToken, "cc", "g9")); err != nil {
		t.Fatal(err)
	}
	if n := rt.take(); n != 1 {
		t.Errorf("CreateRequest took %d round trips, want 1", n)
	}
	if got, err := s.GetRequest(ctx, code.Kind, code.Signature); err != nil || got.Active {
		t.Errorf("code after the exchange: %+v, %v; want inactive", got, err)
	}
	if _, err := s.GetRequest(ctx, pkce.Kind, pkce.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PKCE request after the exchange: %v, want ErrNotFound", err)
	}
	if n, err := c.Exists(ctx, s.PointerKey(pkce.Kind, pkce.Signature)).Result(); err != nil || n != 0 {
		t.Errorf("PKCE pointer after the exchange: exists %d, %v; want it released", n, err)
	}
	for _, r := range b.Create {
		if got, err := s.GetRequest(ctx, r.Kind, r.Signature); err != nil || got.RequestID != "g1" || !got.Active {
			t.Errorf("%s after the exchange: %+v, %v", r.Kind, got, err)
		}
	}
	// A replay is refused and changes nothing.
	b2, _, _ := exchange()
	b2.Create = []storage.Request{req(storage.KindAccessToken, "at2", "g1")}
	if err := s.ApplyRequests(ctx, b2); !errors.Is(err, storage.ErrInactive) {
		t.Fatalf("replayed exchange: %v, want ErrInactive", err)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "at2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused batch created its token: %v", err)
	}
	if n, err := c.Exists(ctx, s.PointerKey(storage.KindAccessToken, "at2")).Result(); err != nil || n != 0 {
		t.Errorf("the refused batch kept its pointer claim: exists %d, %v", n, err)
	}
}

// TestApplyRequestsStalePointer: the pointer of an expired record makes the
// pipelined claim fail; nothing is applied then, and the careful path takes
// the pointer over and applies the batch once.
func TestApplyRequestsStalePointer(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	b, code, pkce := exchange()
	seed(t, s, code, pkce)
	// A record whose expiry (kept in microseconds) has passed while Redis,
	// which expires keys at the millisecond, still holds it.
	old := req(storage.KindRefreshToken, "rt", "g0")
	seed(t, s, old)
	past := time.Now().Add(-time.Millisecond).UnixMicro()
	if err := s.Client().HSet(ctx, s.RequestKey(old), "x", past).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyRequests(ctx, b); err != nil {
		t.Fatalf("exchange over a stale pointer: %v", err)
	}
	if got, err := s.GetRequest(ctx, storage.KindRefreshToken, "rt"); err != nil || got.RequestID != "g1" {
		t.Errorf("refresh token: %+v, %v; want it in g1", got, err)
	}
	if got, err := s.GetRequest(ctx, code.Kind, code.Signature); err != nil || got.Active {
		t.Errorf("code: %+v, %v; want inactive", got, err)
	}
}

// TestApplyRequestsTakenSignature: a signature held by another grant's live
// record refuses the whole batch: the code stays usable, no record is
// created and no claim is left behind.
func TestApplyRequestsTakenSignature(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	b, code, pkce := exchange()
	other := req(storage.KindRefreshToken, "rt", "g2")
	seed(t, s, code, pkce, other)
	if err := s.ApplyRequests(ctx, b); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("exchange onto a taken signature: %v, want ErrConflict", err)
	}
	if got, err := s.GetRequest(ctx, code.Kind, code.Signature); err != nil || !got.Active {
		t.Errorf("code after the refused batch: %+v, %v; want still active", got, err)
	}
	if _, err := s.GetRequest(ctx, pkce.Kind, pkce.Signature); err != nil {
		t.Errorf("PKCE request after the refused batch: %v, want it kept", err)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "at"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("access token of the refused batch: %v, want ErrNotFound", err)
	}
	if n, err := s.Client().Exists(ctx, s.PointerKey(storage.KindAccessToken, "at")).Result(); err != nil || n != 0 {
		t.Errorf("access token pointer claim left: exists %d, %v", n, err)
	}
	if got, err := s.GetRequest(ctx, other.Kind, other.Signature); err != nil || got.RequestID != "g2" {
		t.Errorf("the other grant's record: %+v, %v", got, err)
	}
}

// TestApplyRequestsAfterScriptFlush: without the script cached, the
// pipelined batch gives way to the careful path, which applies it once.
func TestApplyRequestsAfterScriptFlush(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	b, code, pkce := exchange()
	seed(t, s, code, pkce)
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Skipf("SCRIPT FLUSH refused: %v", err)
	}
	if err := s.ApplyRequests(ctx, b); err != nil {
		t.Fatalf("exchange after SCRIPT FLUSH: %v", err)
	}
	if got, err := s.GetRequest(ctx, code.Kind, code.Signature); err != nil || got.Active {
		t.Errorf("code: %+v, %v; want inactive", got, err)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "at"); err != nil {
		t.Errorf("access token: %v", err)
	}
	if _, err := s.GetRequest(ctx, pkce.Kind, pkce.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PKCE request: %v, want ErrNotFound", err)
	}
}
