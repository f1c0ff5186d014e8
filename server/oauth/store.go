package oauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Store is the one fosite storage adapter: clients come from storage.Durable,
// every request record (codes, token signatures, PKCE, OIDC and PAR requests)
// and the client-assertion replay cache from storage.Ephemeral.
//
// Writes made inside a fosite transaction (BeginTX) are buffered and applied
// by Commit as one storage.RequestBatch, so consuming an authorization code or
// rotating a refresh token happens exactly once, together with the tokens it
// yields, or not at all.
type Store struct {
	durable   storage.Durable
	ephemeral storage.Ephemeral
	issuer    string
	now       func() time.Time
	// fallback lifetimes for records whose session carries no expiry.
	lifetimes storeLifetimes
	newClient func(storage.Client) fosite.Client
	// grace is the refresh token grace period; 0 is strict rotation.
	grace time.Duration
	// clients caches client reads (clientcache.go); nil when off.
	clients *clientCache
}

type storeLifetimes struct {
	code, access, refresh, par time.Duration
}

// Compile-time checks for every interface compose and fosite type-assert.
var (
	_ fosite.Storage                     = (*Store)(nil)
	_ fosite.ClientManager               = (*Store)(nil)
	_ fosite.PARStorage                  = (*Store)(nil)
	_ oauth2.CoreStorage                 = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ oauth2.AccessTokenStorage          = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ fositestorage.Transactional        = (*Store)(nil)
)

// StoreConfig configures NewStore.
type StoreConfig struct {
	Stores storage.Stores
	Issuer string
	// Fallback lifetimes for records whose session has no expiry set.
	AuthorizeCodeLifetime, AccessTokenLifetime, RefreshTokenLifetime, PARLifetime time.Duration
	Now                                                                           func() time.Time
	// NewClient wraps a stored client; nil uses the package's own Client with
	// time taken from Now.
	NewClient func(storage.Client) fosite.Client
	// RefreshGracePeriod, when positive, makes each rotation open a grace
	// period for the rotated token (see grace.go).
	RefreshGracePeriod time.Duration
	// ClientCacheTTL, when positive, keeps clients read from storage for
	// this long (see clientcache.go); ClientCacheSize bounds their number
	// (0: 10,000).
	ClientCacheTTL  time.Duration
	ClientCacheSize int
}

// NewStore returns the adapter.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.Stores.Durable == nil || cfg.Stores.Ephemeral == nil {
		return nil, errors.New("oauth store: both durable and ephemeral stores are required")
	}
	s := &Store{
		durable:   cfg.Stores.Durable,
		ephemeral: cfg.Stores.Ephemeral,
		issuer:    cfg.Issuer,
		now:       cfg.Now,
		lifetimes: storeLifetimes{
			code:    orDuration(cfg.AuthorizeCodeLifetime, 10*time.Minute),
			access:  orDuration(cfg.AccessTokenLifetime, time.Hour),
			refresh: orDuration(cfg.RefreshTokenLifetime, 30*24*time.Hour),
			par:     orDuration(cfg.PARLifetime, time.Minute),
		},
		newClient: cfg.NewClient,
		grace:     max(cfg.RefreshGracePeriod, 0),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newClient == nil {
		s.newClient = func(c storage.Client) fosite.Client { return NewClient(c, s.now) }
	}
	s.clients = newClientCache(cfg.ClientCacheTTL, cfg.ClientCacheSize, s.now)
	return s, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ---------------------------------------------------------------------------
// Transactions

type txKey struct{}

// tx is the write buffer of one fosite transaction.
type tx struct {
	mu    sync.Mutex
	batch storage.RequestBatch
}

func txFrom(ctx context.Context) *tx {
	t, _ := ctx.Value(txKey{}).(*tx)
	return t
}

// BeginTX starts buffering writes; see Store.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, txKey{}, &tx{}), nil
}

// Commit applies the buffered writes as one all-or-nothing batch. When a
// record to deactivate is already inactive or gone (a concurrent exchange won),
// nothing is written and the error wraps fosite.ErrInactiveToken or
// fosite.ErrNotFound as well as the storage sentinel.
func (s *Store) Commit(ctx context.Context) error {
	t := txFrom(ctx)
	if t == nil {
		return errors.New("commit without a transaction")
	}
	t.mu.Lock()
	b := t.batch
	t.batch = storage.RequestBatch{}
	t.mu.Unlock()
	if len(b.Deactivate)+len(b.Create)+len(b.Delete)+len(b.RevokeGrants) == 0 {
		return nil
	}
	if err := s.prepareCommit(ctx, &b); err != nil {
		return fmt.Errorf("preparing transaction: %w", mapErr(err))
	}
	if err := s.ephemeral.ApplyRequests(ctx, b); err != nil {
		return fmt.Errorf("applying transaction: %w", mapErr(err))
	}
	s.committed(ctx, b)
	return nil
}

// Rollback drops the buffered writes: nothing was sent to storage yet.
func (s *Store) Rollback(ctx context.Context) error {
	if t := txFrom(ctx); t != nil {
		t.mu.Lock()
		t.batch = storage.RequestBatch{}
		t.mu.Unlock()
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, f func(b *storage.RequestBatch)) bool {
	t := txFrom(ctx)
	if t == nil {
		return false
	}
	t.mu.Lock()
	f(&t.batch)
	t.mu.Unlock()
	return true
}

// mapErr maps storage sentinels to fosite's, keeping both in the chain.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return errors.Join(fosite.ErrNotFound, err)
	case errors.Is(err, storage.ErrInactive):
		return errors.Join(fosite.ErrInactiveToken, err)
	default:
		return err
	}
}

// ---------------------------------------------------------------------------
// Generic request records

func (s *Store) expiry(r fosite.Requester, tt fosite.TokenType, fallback time.Duration) time.Time {
	if sess := r.GetSession(); sess != nil {
		if exp := sess.GetExpiresAt(tt); !exp.IsZero() {
			return exp
		}
	}
	return s.now().Add(fallback)
}

func (s *Store) create(ctx context.Context, kind storage.RequestKind, signature string, r fosite.Requester, expiresAt time.Time, accessSignature string) error {
	data, err := encodeRequest(r, accessSignature)
	if err != nil {
		return err
	}
	rec := storage.Request{
		Kind:        kind,
		Signature:   signature,
		RequestID:   r.GetID(),
		Active:      true,
		RequestedAt: r.GetRequestedAt(),
		ExpiresAt:   expiresAt,
		Payload:     data,
	}
	if rec.RequestedAt.IsZero() {
		rec.RequestedAt = s.now()
	}
	if c := r.GetClient(); c != nil {
		rec.ClientID = c.GetID()
	}
	if sess := r.GetSession(); sess != nil {
		rec.Subject = sess.GetSubject()
	}
	if s.inTx(ctx, func(b *storage.RequestBatch) { b.Create = append(b.Create, rec) }) {
		return nil
	}
	if err := s.ephemeral.CreateRequest(ctx, rec); err != nil {
		return fmt.Errorf("creating %s record: %w", kind, mapErr(err))
	}
	return nil
}

// get loads a record; the returned bool is its Active flag.
func (s *Store) get(ctx context.Context, kind storage.RequestKind, signature string, session fosite.Session) (*fosite.Request, *payload, bool, error) {
	return s.getAs(ctx, kind, signature, session, true)
}

func (s *Store) getAs(ctx context.Context, kind storage.RequestKind, signature string, session fosite.Session, withSession bool) (*fosite.Request, *payload, bool, error) {
	rec, err := s.getRequest(ctx, kind, signature)
	if err != nil {
		return nil, nil, false, fmt.Errorf("loading %s record: %w", kind, mapErr(err))
	}
	r, p, err := decodeRequestAs(ctx, s, rec.Payload, session, s.issuer, withSession)
	if err != nil {
		return nil, nil, false, fmt.Errorf("loading %s record: %w", kind, err)
	}
	return r, p, rec.Active, nil
}

func (s *Store) delete(ctx context.Context, kind storage.RequestKind, signature string) error {
	ref := storage.RequestRef{Kind: kind, Signature: signature}
	if s.inTx(ctx, func(b *storage.RequestBatch) { b.Delete = append(b.Delete, ref) }) {
		return nil
	}
	if err := s.ephemeral.DeleteRequest(ctx, ref); err != nil {
		return fmt.Errorf("deleting %s record: %w", kind, mapErr(err))
	}
	return nil
}

func (s *Store) deactivate(ctx context.Context, ref storage.RequestRef) error {
	if ref.RequestID == "" {
		// The grant ID spares the backend resolving the signature (a round
		// trip on Redis); a stale one only makes the condition fail.
		ref.RequestID = s.scratchGrant(ctx, ref.Kind, ref.Signature)
	}
	if s.inTx(ctx, func(b *storage.RequestBatch) { b.Deactivate = append(b.Deactivate, ref) }) {
		return nil
	}
	if err := s.ephemeral.DeactivateRequest(ctx, ref); err != nil {
		return fmt.Errorf("deactivating %s record: %w", ref.Kind, mapErr(err))
	}
	return nil
}

// ---------------------------------------------------------------------------
// fosite.ClientManager

// GetClient loads a registered client.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if id == "" {
		return nil, fosite.ErrNotFound
	}
	if c, ok := s.clients.get(id); ok {
		return s.newClient(c), nil
	}
	return s.loadClient(ctx, id)
}

// loadClient reads a client from storage, bypassing and refreshing the cache.
func (s *Store) loadClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.durable.GetClient(ctx, id)
	if err != nil {
		s.clients.forget(id)
		return nil, fmt.Errorf("loading client: %w", mapErr(err))
	}
	s.clients.put(c)
	return s.newClient(c), nil
}

// ForgetClient drops a cached client, for a change made in this process.
func (s *Store) ForgetClient(id string) { s.clients.forget(id) }

// ClientAssertionJWTValid cannot tell without consuming the jti (the replay
// cache only has UseOnce), so it accepts; SetClientAssertionJWT, which fosite
// calls before accepting an assertion, is the atomic check (RFC 7523 §3 item 7).
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	return nil
}

// SetClientAssertionJWT records jti until exp, failing with fosite.ErrJTIKnown
// when it was used before.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if err := s.ephemeral.UseOnce(ctx, "client-assertion:"+jti, exp); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return fosite.ErrJTIKnown
		}
		return fmt.Errorf("recording client assertion jti: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Authorization codes

// CreateAuthorizeCodeSession stores the request behind an authorization code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAuthorizeCode, signature, r, s.expiry(r, fosite.AuthorizeCode, s.lifetimes.code), "")
}

// GetAuthorizeCodeSession returns the request; for a used code it returns it
// together with fosite.ErrInvalidatedAuthorizeCode, as fosite requires to
// revoke the tokens issued for it (RFC 6749 §4.1.2).
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, _, active, err := s.get(ctx, storage.KindAuthorizeCode, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession marks the code used; only one caller can.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	err := s.deactivate(ctx, storage.RequestRef{Kind: storage.KindAuthorizeCode, Signature: signature})
	if errors.Is(err, storage.ErrInactive) {
		return errors.Join(fosite.ErrInvalidatedAuthorizeCode, err)
	}
	return err
}

// ---------------------------------------------------------------------------
// Access tokens

// CreateAccessTokenSession stores an access token's signature and request.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAccessToken, signature, r, s.expiry(r, fosite.AccessToken, s.lifetimes.access), "")
}

// GetAccessTokenSession loads an access token's request.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, _, active, err := s.get(ctx, storage.KindAccessToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// DeleteAccessTokenSession deletes an access token record.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, storage.KindAccessToken, signature)
}

// ---------------------------------------------------------------------------
// Refresh tokens

// CreateRefreshTokenSession stores a refresh token's signature, linked to the
// access token issued with it.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindRefreshToken, signature, r, s.expiry(r, fosite.RefreshToken, s.lifetimes.refresh), accessSignature)
}

// GetRefreshTokenSession loads a refresh token's request; for a rotated token
// it returns it together with fosite.ErrInactiveToken, which makes fosite
// revoke the whole grant (RFC 9700 §4.14.2). At the token endpoint, a rotated
// token still within its grace period yields a *graceRetry error instead.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, _, active, err := s.get(ctx, storage.KindRefreshToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		if s.grace > 0 && graceProbe(ctx) {
			rec, ok, err := s.graceFor(ctx, signature)
			if err != nil {
				return nil, err
			}
			if ok {
				return r, &graceRetry{signature: signature, grace: rec}
			}
		}
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// DeleteRefreshTokenSession deletes a refresh token record.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, storage.KindRefreshToken, signature)
}

// RotateRefreshToken deactivates the used refresh token (the condition of the
// batch: a concurrent rotation makes the whole transaction fail) and deletes
// the access token issued with it. With a grace period, the same batch opens
// the rotated token's grace period.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	rec, err := s.getRequest(ctx, storage.KindRefreshToken, signature)
	if err != nil {
		return fmt.Errorf("loading refresh token to rotate: %w", mapErr(err))
	}
	// Only the link to the access token is needed: decoding the whole
	// payload (the session into generic maps) was 5 % of a refresh's CPU.
	var p struct {
		AccessSignature string `json:"access_signature"`
	}
	if err := gojson.Unmarshal(rec.Payload, &p); err != nil {
		return fmt.Errorf("loading refresh token to rotate: %w", err)
	}
	if err := s.deactivate(ctx, storage.RequestRef{Kind: storage.KindRefreshToken, Signature: signature, RequestID: requestID}); err != nil {
		return err
	}
	if s.grace > 0 {
		// Only inside the batch: the grace record must exist exactly when
		// the rotation happened.
		g := s.graceRecord(signature, rec)
		if !s.inTx(ctx, func(b *storage.RequestBatch) { b.Create = append(b.Create, g) }) {
			return errors.New("rotating a refresh token with a grace period needs a transaction")
		}
	}
	if p.AccessSignature != "" {
		ref := storage.RequestRef{Kind: storage.KindAccessToken, Signature: p.AccessSignature, RequestID: requestID}
		if s.inTx(ctx, func(b *storage.RequestBatch) { b.Delete = append(b.Delete, ref) }) {
			return nil
		}
		if err := s.ephemeral.DeleteRequest(ctx, ref); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("deleting rotated access token: %w", mapErr(err))
		}
	}
	return nil
}

// RevokeRefreshToken revokes every refresh token of the grant (RFC 7009 §2.1).
// Inside a transaction (refresh token reuse) the whole grant is revoked.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, requestID, storage.KindRefreshToken, storage.KindRefreshGrace)
}

// RevokeAccessToken revokes every access token of the grant (RFC 7009 §2.1).
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, requestID, storage.KindAccessToken)
}

func (s *Store) revoke(ctx context.Context, requestID string, kinds ...storage.RequestKind) error {
	// A batch can only revoke a grant whole; inside a transaction fosite is
	// always revoking both token kinds (reuse detection), so that is the intent.
	if s.inTx(ctx, func(b *storage.RequestBatch) { b.RevokeGrants = append(b.RevokeGrants, requestID) }) {
		return nil
	}
	if err := s.ephemeral.RevokeGrant(ctx, requestID, kinds...); err != nil {
		return fmt.Errorf("revoking grant: %w", mapErr(err))
	}
	return nil
}

// RevokeGrant deletes every record of a grant.
func (s *Store) RevokeGrant(ctx context.Context, requestID string) error {
	if err := s.ephemeral.RevokeGrant(ctx, requestID); err != nil {
		return fmt.Errorf("revoking grant: %w", mapErr(err))
	}
	return nil
}

// ---------------------------------------------------------------------------
// PKCE

// CreatePKCERequestSession stores the code challenge of an authorization code.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindPKCE, signature, r, s.expiry(r, fosite.AuthorizeCode, s.lifetimes.code), "")
}

// GetPKCERequestSession loads the code challenge of an authorization code.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	// fosite's PKCE handler (RFC 7636 §4.6) reads only the challenge, its
	// method and the client; the session it passes is the token request's,
	// already loaded from the code, so the stored copy is not decoded again.
	r, _, _, err := s.getAs(ctx, storage.KindPKCE, signature, session, false)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePKCERequestSession deletes the code challenge.
// At the token endpoint the deletion joins the code's batch (tokenscratch.go).
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	if s.deferDelete(ctx, storage.RequestRef{Kind: storage.KindPKCE, Signature: signature}) {
		return nil
	}
	return s.delete(ctx, storage.KindPKCE, signature)
}

// ---------------------------------------------------------------------------
// OpenID Connect

// CreateOpenIDConnectSession stores the OIDC request of an authorization code.
// fosite passes the code itself, so it is hashed before use as a key.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, storage.KindOIDC, hashKey(code), r, s.expiry(r, fosite.AuthorizeCode, s.lifetimes.code), "")
}

// GetOpenIDConnectSession loads the OIDC request of an authorization code
// into the requester's session.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, requester fosite.Requester) (fosite.Requester, error) {
	var sess fosite.Session
	if requester != nil {
		sess = requester.GetSession()
	}
	r, _, _, err := s.get(ctx, storage.KindOIDC, hashKey(code), sess)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteOpenIDConnectSession deletes the OIDC request.
// At the token endpoint the code's batch already deleted it (tokenscratch.go).
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if s.deferDelete(ctx, storage.RequestRef{Kind: storage.KindOIDC, Signature: hashKey(code)}) {
		return nil
	}
	return s.delete(ctx, storage.KindOIDC, hashKey(code))
}

// ---------------------------------------------------------------------------
// Pushed authorization requests (RFC 9126)

// CreatePARSession stores a pushed authorization request under its request_uri.
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.create(ctx, storage.KindPAR, hashKey(requestURI), r, s.expiry(r, fosite.PushedAuthorizeRequestContext, s.lifetimes.par), "")
}

// GetPARSession loads a pushed authorization request.
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	rec, err := s.ephemeral.GetRequest(ctx, storage.KindPAR, hashKey(requestURI))
	if err != nil {
		return nil, fmt.Errorf("loading pushed authorization request: %w", mapErr(err))
	}
	// Claim the request_uri before use, so that of two concurrent uses
	// exactly one proceeds (RFC 9126 §4: single use).
	if err := s.ephemeral.DeactivateRequest(ctx, storage.RequestRef{Kind: storage.KindPAR, Signature: rec.Signature, RequestID: rec.RequestID}); err != nil {
		return nil, fmt.Errorf("claiming pushed authorization request: %w", mapErr(err))
	}
	ar, err := decodeAuthorizeRequest(ctx, s, rec.Payload, nil, s.issuer)
	if err != nil {
		return nil, fmt.Errorf("loading pushed authorization request: %w", err)
	}
	return ar, nil
}

// DeletePARSession deletes a pushed authorization request: a request_uri is
// single use (RFC 9126 §4).
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.delete(ctx, storage.KindPAR, hashKey(requestURI))
}
