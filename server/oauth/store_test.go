package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

const testIssuer = "https://id.example.test"

// backend opens one storage backend pairing for a test.
type backend struct {
	name string
	open func(t *testing.T) storage.Stores
}

// backends lists every backend: the store adapter must behave the same on
// each. PostgreSQL and Redis skip locally (fail in CI) when unreachable.
func backends() []backend {
	return []backend{
		{"memory", func(t *testing.T) storage.Stores {
			m := memory.New()
			return storage.Stores{Durable: m, Ephemeral: m}
		}},
		{"sqlite", func(t *testing.T) storage.Stores {
			s := sqltest.NewSQLite(t)
			return storage.Stores{Durable: s, Ephemeral: s}
		}},
		{"postgres", func(t *testing.T) storage.Stores {
			s := sqltest.NewPostgres(t)
			return storage.Stores{Durable: s, Ephemeral: s}
		}},
		{"redis", func(t *testing.T) storage.Stores {
			return storage.Stores{Durable: memory.New(), Ephemeral: redistest.New(t)}
		}},
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, st storage.Stores)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func newTestStore(t *testing.T, st storage.Stores) (*Store, fosite.Client) {
	t.Helper()
	ctx := context.Background()
	c := storage.Client{
		ID:           "app",
		RedirectURIs: []string{"https://app.example.test/cb"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		Scopes:       []string{"openid", "offline_access", "profile"},
		CreatedAt:    time.Now().UTC(),
		UpdatedAt:    time.Now().UTC(),
	}
	if err := st.Durable.CreateClient(ctx, c); err != nil {
		t.Fatalf("creating client: %v", err)
	}
	s, err := NewStore(StoreConfig{Stores: st, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := s.GetClient(ctx, "app")
	if err != nil {
		t.Fatalf("GetClient: %v", err)
	}
	return s, fc
}

func testRequest(client fosite.Client, id string) *fosite.Request {
	r := fosite.NewRequest()
	r.ID = id
	r.Client = client
	r.RequestedAt = time.Now().UTC().Truncate(time.Second)
	r.RequestedScope = fosite.Arguments{"openid", "offline_access"}
	r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
	r.RequestedAudience = fosite.Arguments{"https://api.example.test"}
	r.GrantedAudience = fosite.Arguments{"https://api.example.test"}
	r.Form = url.Values{
		"redirect_uri":   {"https://app.example.test/cb"},
		"nonce":          {"nonce-0123456789"},
		"client_secret":  {"very-secret-value"},
		"code_verifier":  {"verifier-value-0123456789"},
		"password":       {"hunter2-password"},
		"code":           {"raw-code-value"},
		"refresh_token":  {"raw-refresh-value"},
		"code_challenge": {"challenge"},
	}
	sess := NewSession(testIssuer)
	sess.Subject = "alice"
	sess.ClientID = client.GetID()
	sess.IDTokenClaims().Subject = "alice"
	sess.IDTokenClaims().AuthTime = time.Now().UTC().Truncate(time.Second)
	exp := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	for _, tt := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken, fosite.PushedAuthorizeRequestContext} {
		sess.SetExpiresAt(tt, exp)
	}
	r.Session = sess
	return r
}

func checkRequester(t *testing.T, got fosite.Requester, want *fosite.Request) {
	t.Helper()
	if got == nil {
		t.Fatal("nil requester")
	}
	if got.GetID() != want.GetID() {
		t.Errorf("ID = %q, want %q", got.GetID(), want.GetID())
	}
	if got.GetClient().GetID() != want.GetClient().GetID() {
		t.Errorf("client = %q", got.GetClient().GetID())
	}
	if !got.GetRequestedAt().Equal(want.GetRequestedAt()) {
		t.Errorf("requested_at = %v, want %v", got.GetRequestedAt(), want.GetRequestedAt())
	}
	if strings.Join(got.GetGrantedScopes(), " ") != "openid offline_access" {
		t.Errorf("granted scopes = %v", got.GetGrantedScopes())
	}
	if strings.Join(got.GetGrantedAudience(), " ") != "https://api.example.test" {
		t.Errorf("granted audience = %v", got.GetGrantedAudience())
	}
	if got.GetSession().GetSubject() != "alice" {
		t.Errorf("subject = %q", got.GetSession().GetSubject())
	}
	if s, ok := got.GetSession().(*Session); !ok || s.IDTokenClaims().Subject != "alice" || s.ClientID != "app" {
		t.Errorf("session not restored: %#v", got.GetSession())
	}
	f := got.GetRequestForm()
	if f.Get("nonce") != "nonce-0123456789" || f.Get("redirect_uri") == "" {
		t.Errorf("form lost public values: %v", f)
	}
	for _, k := range secretFormKeys {
		if f.Has(k) {
			t.Errorf("form kept secret parameter %q", k)
		}
	}
}

func TestStoreAuthorizeCode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-code")
		if err := s.CreateAuthorizeCodeSession(ctx, "code-sig", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAuthorizeCodeSession(ctx, "code-sig", NewSession(""))
		if err != nil {
			t.Fatal(err)
		}
		checkRequester(t, got, req)

		// No secret reaches storage, not even inside the payload.
		rec, err := st.Ephemeral.GetRequest(ctx, storage.KindAuthorizeCode, "code-sig")
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"very-secret-value", "verifier-value", "hunter2", "raw-code-value", "raw-refresh-value"} {
			if strings.Contains(string(rec.Payload), secret) {
				t.Errorf("payload contains %q", secret)
			}
		}
		if rec.Subject != "alice" || rec.ClientID != "app" || rec.RequestID != "grant-code" {
			t.Errorf("record index fields = %q %q %q", rec.Subject, rec.ClientID, rec.RequestID)
		}

		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
			t.Fatal(err)
		}
		// fosite needs the requester WITH the error to revoke the grant
		// issued for a reused code (RFC 6749 §4.1.2).
		got, err = s.GetAuthorizeCodeSession(ctx, "code-sig", NewSession(""))
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("used code: err = %v, want ErrInvalidatedAuthorizeCode", err)
		}
		checkRequester(t, got, req)
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err == nil {
			t.Error("second invalidation succeeded")
		}
		if _, err := s.GetAuthorizeCodeSession(ctx, "unknown", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("unknown code: err = %v, want ErrNotFound", err)
		}
	})
}

func TestStoreAccessToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-at")
		if err := s.CreateAccessTokenSession(ctx, "at-sig", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAccessTokenSession(ctx, "at-sig", nil) // fosite's revocation passes a nil session
		if err != nil {
			t.Fatal(err)
		}
		checkRequester(t, got, req)
		if err := s.DeleteAccessTokenSession(ctx, "at-sig"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-sig", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("deleted: err = %v, want ErrNotFound", err)
		}
	})
}

// TestStoreRefreshRotation: RFC 9700 §4.14.2 refresh token rotation; the used
// token stays readable as inactive so that reuse can be detected.
func TestStoreRefreshRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-rt")
		if err := s.CreateAccessTokenSession(ctx, "at-1", req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRefreshTokenSession(ctx, "rt-1", NewSession(""))
		if err != nil {
			t.Fatal(err)
		}
		checkRequester(t, got, req)

		tctx, _ := s.BeginTX(ctx)
		if err := s.RotateRefreshToken(tctx, "grant-rt", "rt-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAccessTokenSession(tctx, "at-2", req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(tctx, "rt-2", "at-2", req); err != nil {
			t.Fatal(err)
		}
		// Nothing is visible before Commit.
		if _, err := s.GetAccessTokenSession(ctx, "at-2", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("before commit: err = %v, want ErrNotFound", err)
		}
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetRefreshTokenSession(ctx, "rt-1", NewSession(""))
		if !errors.Is(err, fosite.ErrInactiveToken) || got == nil {
			t.Fatalf("rotated token: (%v, %v), want requester + ErrInactiveToken", got, err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-1", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("old access token: err = %v, want ErrNotFound", err)
		}
		for _, sig := range []string{"at-2", "rt-2"} {
			get := s.GetAccessTokenSession
			if strings.HasPrefix(sig, "rt") {
				get = s.GetRefreshTokenSession
			}
			if _, err := get(ctx, sig, NewSession("")); err != nil {
				t.Errorf("%s: %v", sig, err)
			}
		}

		// A second rotation of rt-1 fails at commit and writes nothing.
		tctx, _ = s.BeginTX(ctx)
		if err := s.RotateRefreshToken(tctx, "grant-rt", "rt-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(tctx, "rt-3", "at-3", req); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(tctx); !errors.Is(err, fosite.ErrInactiveToken) || !errors.Is(err, storage.ErrInactive) {
			t.Fatalf("second rotation: err = %v, want ErrInactiveToken", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt-3", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("half-applied rotation: rt-3 err = %v", err)
		}

		// Reuse handling as fosite does it: one transaction revoking the grant.
		tctx, _ = s.BeginTX(ctx)
		_ = s.DeleteRefreshTokenSession(tctx, "rt-1")
		_ = s.RevokeRefreshToken(tctx, "grant-rt")
		_ = s.RevokeAccessToken(tctx, "grant-rt")
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		for _, sig := range []string{"at-2", "rt-2", "rt-1"} {
			get := s.GetAccessTokenSession
			if strings.HasPrefix(sig, "rt") {
				get = s.GetRefreshTokenSession
			}
			if _, err := get(ctx, sig, NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("%s after reuse: err = %v, want ErrNotFound", sig, err)
			}
		}
	})
}

// TestStoreRevokeByRequestID: RFC 7009 §2.1 revokes by grant.
func TestStoreRevokeByRequestID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-rv")
		other := testRequest(client, "grant-other")
		for _, c := range []struct {
			sig string
			r   *fosite.Request
		}{{"a", req}, {"b", other}} {
			if err := s.CreateAccessTokenSession(ctx, "at-"+c.sig, c.r); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateRefreshTokenSession(ctx, "rt-"+c.sig, "at-"+c.sig, c.r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RevokeRefreshToken(ctx, "grant-rv"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt-a", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("revoked refresh: err = %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-a", NewSession("")); err != nil {
			t.Errorf("access token must survive a refresh-only revocation: %v", err)
		}
		if err := s.RevokeAccessToken(ctx, "grant-rv"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-a", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("revoked access: err = %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-b", NewSession("")); err != nil {
			t.Errorf("another grant was touched: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt-b", NewSession("")); err != nil {
			t.Errorf("another grant was touched: %v", err)
		}
	})
}

func TestStorePKCEAndOIDC(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-pk")
		if err := s.CreatePKCERequestSession(ctx, "code-sig", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPKCERequestSession(ctx, "code-sig", NewSession(""))
		if err != nil {
			t.Fatal(err)
		}
		if got.GetRequestForm().Get("code_challenge") != "challenge" {
			t.Errorf("code_challenge lost: %v", got.GetRequestForm())
		}
		if err := s.DeletePKCERequestSession(ctx, "code-sig"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPKCERequestSession(ctx, "code-sig", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("deleted PKCE: err = %v", err)
		}

		// OIDC Core §3.1.3: the OIDC request is restored into the token
		// request's session; fosite hands the raw code, which is never a key.
		if err := s.CreateOpenIDConnectSession(ctx, "raw-code", req); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Ephemeral.GetRequest(ctx, storage.KindOIDC, "raw-code"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("raw code used as storage key: %v", err)
		}
		tokenReq := fosite.NewAccessRequest(NewSession(""))
		got, err = s.GetOpenIDConnectSession(ctx, "raw-code", tokenReq)
		if err != nil {
			t.Fatal(err)
		}
		checkRequester(t, got, req)
		if tokenReq.GetSession().GetSubject() != "alice" {
			t.Error("session not decoded into the caller's session object")
		}
		if err := s.DeleteOpenIDConnectSession(ctx, "raw-code"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetOpenIDConnectSession(ctx, "raw-code", tokenReq); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("deleted OIDC: err = %v", err)
		}
	})
}

// TestStorePAR: RFC 9126 §4 request_uri is single use.
func TestStorePAR(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		ar := fosite.NewAuthorizeRequest()
		ar.Request = *testRequest(client, "grant-par")
		ar.ResponseTypes = fosite.Arguments{"code"}
		ar.State = "state-0123456789"
		ar.RedirectURI, _ = url.Parse("https://app.example.test/cb")
		ar.ResponseMode = fosite.ResponseModeQuery
		uri := "urn:ietf:params:oauth:request_uri:abc"
		if err := s.CreatePARSession(ctx, uri, ar); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPARSession(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState() != ar.State || got.GetRedirectURI().String() != "https://app.example.test/cb" ||
			!got.GetResponseTypes().ExactOne("code") || got.GetResponseMode() != fosite.ResponseModeQuery {
			t.Errorf("authorize fields lost: %+v", got)
		}
		if got.GetClient().GetID() != "app" || got.GetRequestForm().Get("nonce") == "" {
			t.Errorf("request lost: client %q form %v", got.GetClient().GetID(), got.GetRequestForm())
		}
		if _, err := s.GetPARSession(ctx, uri); err == nil {
			t.Error("request_uri used twice")
		}
		if err := s.DeletePARSession(ctx, uri); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStoreClientAssertionReplay: RFC 7523 §3 item 7, a jti is used once.
func TestStoreClientAssertionReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, _ := newTestStore(t, st)
		exp := time.Now().Add(time.Hour)
		if err := s.ClientAssertionJWTValid(ctx, "jti-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetClientAssertionJWT(ctx, "jti-1", exp); err != nil {
			t.Fatal(err)
		}
		if err := s.SetClientAssertionJWT(ctx, "jti-1", exp); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("replayed jti: err = %v, want ErrJTIKnown", err)
		}
	})
}

func TestStoreTransactionRollbackAndAllOrNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-tx")

		tctx, _ := s.BeginTX(ctx)
		if err := s.CreateAccessTokenSession(tctx, "at-rb", req); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(tctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(tctx); err != nil { // nothing left to apply
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-rb", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("rolled back write is visible: %v", err)
		}

		// A code already used makes the whole exchange fail: no tokens.
		if err := s.CreateAuthorizeCodeSession(ctx, "code-tx", req); err != nil {
			t.Fatal(err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-tx"); err != nil {
			t.Fatal(err)
		}
		tctx, _ = s.BeginTX(ctx)
		_ = s.InvalidateAuthorizeCodeSession(tctx, "code-tx")
		_ = s.CreateAccessTokenSession(tctx, "at-tx", req)
		_ = s.CreateRefreshTokenSession(tctx, "rt-tx", "at-tx", req)
		if err := s.Commit(tctx); err == nil {
			t.Fatal("commit consuming a used code succeeded")
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-tx", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("half grant: access token exists (%v)", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt-tx", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("half grant: refresh token exists (%v)", err)
		}
	})
}

// TestStoreConcurrentCodeExchange: 50 exchanges of one code, exactly one
// yields a token (RFC 6749 §4.1.2: a code is single use).
func TestStoreConcurrentCodeExchange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		req := testRequest(client, "grant-race")
		if err := s.CreateAuthorizeCodeSession(ctx, "code-race", req); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []int
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tctx, _ := s.BeginTX(ctx)
				if err := s.InvalidateAuthorizeCodeSession(tctx, "code-race"); err != nil {
					return
				}
				if err := s.CreateAccessTokenSession(tctx, fmt.Sprintf("at-race-%d", i), req); err != nil {
					return
				}
				if err := s.Commit(tctx); err != nil {
					return
				}
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%d exchanges succeeded, want exactly 1", len(won))
		}
		issued := 0
		for i := range n {
			if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("at-race-%d", i), NewSession("")); err == nil {
				issued++
			}
		}
		if issued != 1 {
			t.Errorf("%d access tokens stored, want 1", issued)
		}
	})
}

func TestStoreDeletedClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		ctx := context.Background()
		s, client := newTestStore(t, st)
		if err := s.CreateAccessTokenSession(ctx, "at-del", testRequest(client, "grant-del")); err != nil {
			t.Fatal(err)
		}
		if err := st.Durable.DeleteClient(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		// A deleted client's tokens stop working at once.
		if _, err := s.GetAccessTokenSession(ctx, "at-del", NewSession("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetClient(ctx, "app"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("GetClient: err = %v, want ErrNotFound", err)
		}
	})
}
