package oauth

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// tokenScratch is the storage view of one token request (authorization_code
// or refresh_token grant), to save round trips:
//
//   - fosite reads the same records more than once in one request (the code in
//     both HandleTokenEndpointRequest and PopulateTokenEndpointResponse, the
//     refresh token in HandleTokenEndpointRequest and RotateRefreshToken); a
//     record is read from storage once per request. Staleness is harmless: the
//     batch's Deactivate condition decides, not the read.
//   - the PKCE request deletion, which fosite makes before its transaction,
//     and the OIDC request deletion, which it makes after the commit, go into
//     the commit's batch. The OIDC request is read just before the commit so
//     the OpenID Connect handler still finds it afterwards.
//
// Consuming a code thus stays exactly once (the batch's condition), and the
// PKCE and OIDC requests are deleted only together with it (RFC 7636 §4.6,
// RFC 6749 §4.1.2: single use).
type tokenScratch struct {
	// code is the authorization code from the form; empty for refreshes.
	code string

	mu      sync.Mutex
	reads   map[scratchKey]scratchRead
	deletes []storage.RequestRef
	// deleted are the records the commit deleted; a later delete of one of
	// them is done already.
	deleted map[scratchKey]bool
}

type scratchKey struct {
	kind      storage.RequestKind
	signature string
}

type scratchRead struct {
	rec storage.Request
	err error
}

type scratchCtxKey struct{}

func withTokenScratch(ctx context.Context, code string) context.Context {
	return context.WithValue(ctx, scratchCtxKey{}, &tokenScratch{code: code})
}

func scratchFrom(ctx context.Context) *tokenScratch {
	sc, _ := ctx.Value(scratchCtxKey{}).(*tokenScratch)
	return sc
}

// getRequest reads a record through the request's scratch, when there is one.
// Only found records and ErrNotFound are kept: other errors may be transient.
func (s *Store) getRequest(ctx context.Context, kind storage.RequestKind, signature string) (storage.Request, error) {
	sc := scratchFrom(ctx)
	if sc == nil {
		return s.ephemeral.GetRequest(ctx, kind, signature)
	}
	k := scratchKey{kind, signature}
	sc.mu.Lock()
	r, ok := sc.reads[k]
	sc.mu.Unlock()
	if ok {
		return r.rec, r.err
	}
	rec, err := s.ephemeral.GetRequest(ctx, kind, signature)
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		sc.mu.Lock()
		if sc.reads == nil {
			sc.reads = make(map[scratchKey]scratchRead)
		}
		sc.reads[k] = scratchRead{rec, err}
		sc.mu.Unlock()
	}
	return rec, err
}

// deferDelete keeps a PKCE or OIDC request deletion for the commit's batch;
// false when there is no scratch to keep it in.
func (s *Store) deferDelete(ctx context.Context, ref storage.RequestRef) bool {
	sc := scratchFrom(ctx)
	if sc == nil {
		return false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	k := scratchKey{ref.Kind, ref.Signature}
	if sc.deleted[k] {
		return true
	}
	// The grant ID spares a sharded backend its lookup.
	if r, ok := sc.reads[k]; ok && r.err == nil && ref.RequestID == "" {
		ref.RequestID = r.rec.RequestID
	}
	sc.deletes = append(sc.deletes, ref)
	return true
}

// prepareCommit adds the deferred deletions to b and, for a code exchange,
// reads the OIDC request first so that its deletion joins the batch too.
func (s *Store) prepareCommit(ctx context.Context, b *storage.RequestBatch) error {
	sc := scratchFrom(ctx)
	if sc == nil {
		return nil
	}
	if sc.code != "" {
		sig := hashKey(sc.code)
		rec, err := s.getRequest(ctx, storage.KindOIDC, sig)
		switch {
		case err == nil:
			sc.mu.Lock()
			sc.deletes = append(sc.deletes, storage.RequestRef{Kind: storage.KindOIDC, Signature: sig, RequestID: rec.RequestID})
			sc.mu.Unlock()
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
	}
	sc.mu.Lock()
	b.Delete = append(b.Delete, sc.deletes...)
	sc.mu.Unlock()
	return nil
}

// committed records what the applied batch changed: deactivated records are
// read again if needed, deleted ones count as deleted.
func (s *Store) committed(ctx context.Context, b storage.RequestBatch) {
	sc := scratchFrom(ctx)
	if sc == nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, ref := range b.Deactivate {
		delete(sc.reads, scratchKey{ref.Kind, ref.Signature})
	}
	if sc.deleted == nil {
		sc.deleted = make(map[scratchKey]bool)
	}
	for _, ref := range sc.deletes {
		sc.deleted[scratchKey{ref.Kind, ref.Signature}] = true
	}
	sc.deletes = nil
}

// flushScratch deletes what no commit took (a failed exchange after the PKCE check,
// or a grant whose commit never came), so that nothing outlives the request
// longer than its expiry would anyway.
func (s *Store) flushScratch(ctx context.Context) error {
	sc := scratchFrom(ctx)
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	refs := sc.deletes
	sc.deletes = nil
	sc.mu.Unlock()
	if len(refs) == 0 {
		return nil
	}
	if err := s.ephemeral.ApplyRequests(ctx, storage.RequestBatch{Delete: refs}); err != nil {
		return fmt.Errorf("deleting used PKCE and OIDC requests: %w", err)
	}
	return nil
}
