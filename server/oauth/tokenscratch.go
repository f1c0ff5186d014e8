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
//   - for a code exchange, the first read of the code also reads the PKCE
//     request (same signature) and the OIDC request (hashKey(code)) in the
//     same storage call, GetRequests: one round trip for the three records
//     the exchange needs, whether or not PKCE (RFC 7636) and openid were used.
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

	mu    sync.Mutex
	reads map[scratchKey]scratchRead
	// codeFetched: the code's records were read together once; a later
	// read of the code (after the commit dropped it) reads it alone.
	codeFetched bool
	deletes     []storage.RequestRef
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
	if kind == storage.KindAuthorizeCode && sc.code != "" {
		sc.mu.Lock()
		first := !sc.codeFetched
		sc.codeFetched = true
		sc.mu.Unlock()
		if first {
			return s.fetchCodeRecords(ctx, sc, signature)
		}
	}
	rec, err := s.ephemeral.GetRequest(ctx, kind, signature)
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		sc.keep(k, scratchRead{rec, err})
	}
	return rec, err
}

// fetchCodeRecords reads the code of signature sig together with its PKCE
// and OIDC requests, keeps all three (the missing ones as ErrNotFound, as
// getRequest keeps a single read) and returns the code's.
func (s *Store) fetchCodeRecords(ctx context.Context, sc *tokenScratch, sig string) (storage.Request, error) {
	keys := []storage.RequestKey{
		{Kind: storage.KindAuthorizeCode, Signature: sig},
		{Kind: storage.KindPKCE, Signature: sig},
		{Kind: storage.KindOIDC, Signature: hashKey(sc.code)},
	}
	recs, found, err := s.ephemeral.GetRequests(ctx, keys)
	if err != nil {
		sc.mu.Lock()
		sc.codeFetched = false // may be transient: the next read tries again
		sc.mu.Unlock()
		return storage.Request{}, err
	}
	reads := make([]scratchRead, len(keys))
	for i, k := range keys {
		if found[i] {
			reads[i] = scratchRead{rec: recs[i]}
		} else {
			reads[i] = scratchRead{err: fmt.Errorf("getting %s request: %w", k.Kind, storage.ErrNotFound)}
		}
	}
	sc.mu.Lock()
	for i, k := range keys {
		sk := scratchKey{k.Kind, k.Signature}
		// A read kept already (or a deletion made) is newer than this one.
		if _, ok := sc.reads[sk]; !ok && !sc.deleted[sk] {
			sc.keepLocked(sk, reads[i])
		}
	}
	sc.mu.Unlock()
	return reads[0].rec, reads[0].err
}

func (sc *tokenScratch) keep(k scratchKey, r scratchRead) {
	sc.mu.Lock()
	sc.keepLocked(k, r)
	sc.mu.Unlock()
}

func (sc *tokenScratch) keepLocked(k scratchKey, r scratchRead) {
	if sc.reads == nil {
		sc.reads = make(map[scratchKey]scratchRead)
	}
	sc.reads[k] = r
}

// scratchGrant is the grant ID of a record this request has read, "" when
// it has not.
func (s *Store) scratchGrant(ctx context.Context, kind storage.RequestKind, signature string) string {
	sc := scratchFrom(ctx)
	if sc == nil {
		return ""
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if r, ok := sc.reads[scratchKey{kind, signature}]; ok && r.err == nil {
		return r.rec.RequestID
	}
	return ""
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
// reads the OIDC request first (from the scratch, where the code's first
// read put it) so that its deletion joins the batch too.
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
