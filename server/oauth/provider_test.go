package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	josev4 "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

// testKeys stands in for server/keys: one RSA and one P-256 key.
type testKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKeys{rsa: r, ec: e}
}

func (k *testKeys) SigningKey(_ context.Context, alg string) (string, crypto.Signer, error) {
	switch alg {
	case "RS256":
		return "rsa-1", k.rsa, nil
	case "ES256":
		return "ec-1", k.ec, nil
	}
	return "", nil, fmt.Errorf("unconfigured algorithm %s", alg)
}

func (k *testKeys) PublicKeys() josev4.JSONWebKeySet {
	return josev4.JSONWebKeySet{Keys: []josev4.JSONWebKey{
		{Key: k.rsa.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: k.ec.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}}
}

const (
	redirectURI = "http://127.0.0.1:9999/cb" // never fetched: redirects are read, not followed
	webSecret   = "web-secret-0123456789abcdef0123456789abcdef"
	svcSecret   = "svc-secret-0123456789abcdef0123456789abcdef"
)

type env struct {
	t      *testing.T
	srv    *httptest.Server
	p      *Provider
	st     storage.Stores
	keys   *testKeys
	issuer string
	// noRedirect reads a redirect instead of following it.
	noRedirect *http.Client
}

// approveInteraction approves alice, except: login_hint "none" answers
// login_required, "defer" sends the browser to a login page carrying the
// handle (the test's /login resumes it).
type approveInteraction struct{}

func (approveInteraction) Authorize(w http.ResponseWriter, r *http.Request, req AuthorizeRequest) (*Decision, error) {
	switch req.LoginHint {
	case "none":
		return nil, ErrLoginRequired
	case "defer":
		http.Redirect(w, r, "/login?handle="+url.QueryEscape(req.Handle), http.StatusSeeOther)
		return nil, nil
	}
	return aliceDecision(req), nil
}

func aliceDecision(req AuthorizeRequest) *Decision {
	return &Decision{
		Subject:         "alice",
		AuthTime:        time.Now(),
		AMR:             []string{"pwd"},
		SessionID:       "sid-1",
		GrantedScopes:   req.Scopes,
		GrantedAudience: req.Audience,
	}
}

// newEnv starts a provider over st; opts adjust its config.
func newEnv(t *testing.T, st storage.Stores, opts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, st: st, keys: newTestKeys(t)}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ring, err := secrets.NewKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Issuer:      e.issuer,
		Stores:      st,
		Ring:        ring,
		SigningKey:  e.keys.SigningKey,
		PublicKeys:  e.keys.PublicKeys,
		Interaction: approveInteraction{},
		RenderError: func(w http.ResponseWriter, _ *http.Request, status int, title, msg string) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<h1>%s</h1><p>%s</p>", title, msg)
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.p, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/oauth2/authorize", e.p.Authorize)
	mux.HandleFunc("/oauth2/token", e.p.Token)
	mux.HandleFunc("/oauth2/revoke", e.p.Revoke)
	mux.HandleFunc("/oauth2/introspect", e.p.Introspect)
	mux.HandleFunc("/oauth2/par", e.p.PAR)
	mux.HandleFunc("/userinfo", e.p.UserInfo)
	mux.HandleFunc("/.well-known/openid-configuration", e.p.Discovery)
	mux.HandleFunc("/.well-known/oauth-authorization-server", e.p.Discovery)
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(e.keys.PublicKeys())
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		h := r.URL.Query().Get("handle")
		req, err := e.p.PendingAuthorize(r.Context(), h)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("deny") != "" {
			e.p.AbortAuthorize(w, r, h, ErrAccessDenied)
			return
		}
		e.p.ResumeAuthorize(w, r, h, *aliceDecision(req))
	})
	e.noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	now := time.Now().UTC()
	clients := []storage.Client{
		{ID: "web", SecretHash: HashClientSecret(ring, webSecret), RedirectURIs: []string{redirectURI},
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			Scopes: []string{"openid", "profile", "email", "address", "phone", "offline_access"}, Name: "Web App"},
		{ID: "spa", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"}},
		{ID: "jwt", SecretHash: HashClientSecret(ring, webSecret), RedirectURIs: []string{redirectURI},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "offline_access"},
			Audience: []string{"https://api.example.test"}, AccessTokenFormat: "jwt", IDTokenSignedResponseAlg: "ES256"},
		{ID: "svc", SecretHash: HashClientSecret(ring, svcSecret), GrantTypes: []string{"client_credentials"},
			Scopes: []string{"reports.read"}},
	}
	for _, c := range clients {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := st.Durable.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err = st.Durable.CreateUser(ctx, storage.User{ID: "alice", Username: "alice", CreatedAt: now, UpdatedAt: now,
		Claims: storage.Claims{Name: "Alice Liddell", GivenName: "Alice", Email: "alice@example.test", EmailVerified: true,
			PhoneNumber: "+1 555 0100", Address: storage.Address{Locality: "Oxford", Country: "UK"}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func memoryStores() storage.Stores {
	m := memory.New()
	return storage.Stores{Durable: m, Ephemeral: m}
}

func (e *env) oauthConfig(clientID, secret string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURL:  redirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.issuer + "/oauth2/authorize",
			TokenURL:  e.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
	}
}

// authorize runs the authorization request and returns the redirect's
// parameters (query or fragment).
func (e *env) authorize(authURL string) (*http.Response, url.Values) {
	e.t.Helper()
	resp, err := e.noRedirect.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return resp, nil
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	if loc.Fragment != "" {
		v, _ := url.ParseQuery(loc.Fragment)
		return resp, v
	}
	return resp, loc.Query()
}

// codeFlow gets an authorization code with PKCE S256 and exchanges it.
func (e *env) codeFlow(conf *oauth2.Config, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	opts = append(opts, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-0123456789"))
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", opts...))
	if q.Get("code") == "" {
		e.t.Fatalf("no code: %v", q)
	}
	// RFC 9207 §2: iss in the authorization response.
	if q.Get("iss") != e.issuer || q.Get("state") != "state-0123456789" {
		e.t.Fatalf("iss/state = %q/%q", q.Get("iss"), q.Get("state"))
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

func (e *env) postForm(path string, form url.Values, user, pass string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, resp.Header
}

func (e *env) introspect(token string) map[string]any {
	e.t.Helper()
	status, body, _ := e.postForm("/oauth2/introspect", url.Values{"token": {token}}, "svc", svcSecret)
	if status != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", status, body)
	}
	return body
}

// TestAuthorizationCodeFlowWithPKCE covers RFC 6749 §4.1, RFC 7636 (S256),
// and OIDC Core §3.1: the ID token verifies against the JWKS with go-oidc.
func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.open(t))
			ctx := context.Background()
			conf := e.oauthConfig("web", webSecret, "openid", "profile", "email", "offline_access")
			tok := e.codeFlow(conf)
			if tok.AccessToken == "" || tok.RefreshToken == "" || strings.Count(tok.AccessToken, ".") != 1 {
				t.Fatalf("token = %+v", tok)
			}
			if tok.Type() != "Bearer" {
				t.Errorf("token type %q", tok.Type())
			}
			provider, err := oidc.NewProvider(ctx, e.issuer)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: "web"}).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("verifying ID token: %v", err)
			}
			if idt.Subject != "alice" || idt.Nonce != "nonce-0123456789" {
				t.Errorf("sub/nonce = %q/%q", idt.Subject, idt.Nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			var claims struct {
				AuthTime int64    `json:"auth_time"`
				AMR      []string `json:"amr"`
				SID      string   `json:"sid"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if claims.AuthTime == 0 || claims.SID != "sid-1" || len(claims.AMR) != 1 || claims.AMR[0] != "pwd" {
				t.Errorf("claims = %+v", claims)
			}
			// RS256 by default (OIDC Dynamic Registration §2).
			checkAlg(t, raw, "RS256")
		})
	}
}

func checkAlg(t *testing.T, raw, alg string) {
	t.Helper()
	if _, err := josev4.ParseSigned(raw, []josev4.SignatureAlgorithm{josev4.SignatureAlgorithm(alg)}); err != nil {
		t.Errorf("token not signed with %s: %v", alg, err)
	}
}

// TestPKCERequired: RFC 9700 §2.1.1 and RFC 7636 §4.2 — plain is refused and
// a request without a challenge is refused.
func TestPKCERequired(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid")
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789",
		oauth2.SetAuthURLParam("code_challenge", "plain-challenge-0123456789012345678901234567"),
		oauth2.SetAuthURLParam("code_challenge_method", "plain")))
	if q.Get("error") != "invalid_request" || q.Get("iss") != e.issuer {
		t.Errorf("plain: %v", q)
	}
	_, q = e.authorize(conf.AuthCodeURL("state-0123456789"))
	if q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Errorf("no challenge: %v", q)
	}
	// A wrong verifier fails the exchange (RFC 7636 §4.6).
	_, q = e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Error("exchange with the wrong verifier succeeded")
	}
}

// TestRefreshRotationAndReuse: RFC 9700 §4.14.2 — each refresh rotates the
// token; reusing a rotated token revokes the whole grant.
func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid", "offline_access")
	tok := e.codeFlow(conf)

	refresh := func(rt string) (int, map[string]any) {
		s, b, h := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret)
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("token response Cache-Control = %q", h.Get("Cache-Control"))
		}
		return s, b
	}
	status, body := refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}
	rt2, _ := body["refresh_token"].(string)
	at2, _ := body["access_token"].(string)
	if rt2 == "" || rt2 == tok.RefreshToken || body["id_token"] == nil {
		t.Fatalf("refresh response = %v", body)
	}
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("the access token of the rotated refresh token is still active")
	}
	if e.introspect(at2)["active"] != true {
		t.Error("new access token inactive")
	}

	// Reuse of the first refresh token.
	status, body = refresh(tok.RefreshToken)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", status, body)
	}
	if e.introspect(at2)["active"] != false || e.introspect(rt2)["active"] != false {
		t.Error("reuse did not revoke the grant")
	}
	if status, _ := refresh(rt2); status == http.StatusOK {
		t.Error("refresh token of a revoked grant still works")
	}
}

// TestRefreshTokenNeedsOfflineAccess: OIDC Core §11.
func TestRefreshTokenNeedsOfflineAccess(t *testing.T) {
	e := newEnv(t, memoryStores())
	tok := e.codeFlow(e.oauthConfig("web", webSecret, "openid"))
	if tok.RefreshToken != "" {
		t.Error("refresh token issued without offline_access")
	}
}

// TestCodeReuseRevokesTokens: RFC 6749 §4.1.2 — a code is single use and its
// second use revokes what the first issued.
func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid", "offline_access")
	verifier := oauth2.GenerateVerifier()
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("code used twice")
	}
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("tokens of a reused code are still active")
	}
}

// TestConcurrentCodeExchange: 50 simultaneous exchanges of one code yield
// exactly one token response.
func TestConcurrentCodeExchange(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid", "offline_access")
	verifier := oauth2.GenerateVerifier()
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, serverErrors := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := e.postForm("/oauth2/token", form, "web", webSecret)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusOK:
				ok++
			case status >= 500:
				serverErrors++
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d exchanges succeeded, want 1", ok)
	}
	if serverErrors != 0 {
		t.Errorf("%d exchanges got a server error; losers must get invalid_grant", serverErrors)
	}
}

// TestClientCredentialsRevokeIntrospect: RFC 6749 §4.4, RFC 7009, RFC 7662.
func TestClientCredentialsRevokeIntrospect(t *testing.T) {
	e := newEnv(t, memoryStores())
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.issuer + "/oauth2/token",
		Scopes: []string{"reports.read"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	info := e.introspect(tok.AccessToken)
	if info["active"] != true || info["client_id"] != "svc" || info["scope"] != "reports.read" || info["iss"] != e.issuer {
		t.Errorf("introspection = %v", info)
	}
	status, _, _ := e.postForm("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "svc", svcSecret)
	if status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if info := e.introspect(tok.AccessToken); info["active"] != false || len(info) != 1 {
		t.Errorf("after revocation: %v", info)
	}
	// RFC 7662 §2.2: unknown tokens are just inactive.
	if e.introspect("not-a-token")["active"] != false {
		t.Error("unknown token active")
	}
	// A wrong client secret is refused (and so is a bearer token as credential).
	if status, _, _ := e.postForm("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, "svc", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("bad client secret: %d", status)
	}
	cc.ClientSecret = "wrong"
	if _, err := cc.Token(context.Background()); err == nil {
		t.Error("token with a wrong client secret")
	}
}

// TestUserInfo: OIDC Core §5.3 (GET and POST), §5.4 (claims by scope), and
// RFC 6750 §3 (WWW-Authenticate on failure).
func TestUserInfo(t *testing.T) {
	e := newEnv(t, memoryStores())
	tok := e.codeFlow(e.oauthConfig("web", webSecret, "openid", "email"))

	get := func(method, token string, inBody bool) (int, map[string]any, http.Header) {
		var body io.Reader
		if inBody {
			body = strings.NewReader(url.Values{"access_token": {token}}.Encode())
		}
		req, _ := http.NewRequest(method, e.issuer+"/userinfo", body)
		if inBody {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m, resp.Header
	}
	for _, c := range []struct {
		method string
		body   bool
	}{{http.MethodGet, false}, {http.MethodPost, false}, {http.MethodPost, true}} {
		status, claims, _ := get(c.method, tok.AccessToken, c.body)
		if status != http.StatusOK {
			t.Fatalf("%s body=%v: %d", c.method, c.body, status)
		}
		if claims["sub"] != "alice" || claims["email"] != "alice@example.test" || claims["email_verified"] != true {
			t.Errorf("claims = %v", claims)
		}
		if claims["name"] != nil || claims["address"] != nil || claims["phone_number"] != nil {
			t.Errorf("claims beyond the granted scopes: %v", claims)
		}
	}
	status, _, h := get(http.MethodGet, "", false)
	if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") != fmt.Sprintf("Bearer realm=%q", e.issuer) {
		t.Errorf("no token: %d %q", status, h.Get("WWW-Authenticate"))
	}
	status, _, h = get(http.MethodGet, "bogus.token", false)
	if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("bad token: %d %q", status, h.Get("WWW-Authenticate"))
	}

	// A token without openid (client_credentials) is insufficient.
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	svcTok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	status, _, h = get(http.MethodGet, svcTok.AccessToken, false)
	if status != http.StatusForbidden || !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("no openid scope: %d %q", status, h.Get("WWW-Authenticate"))
	}
}

// TestJWTAccessToken: RFC 9068 — typ at+jwt, ES256, iss sub aud client_id
// scope jti exp iat, verifiable with the JWKS; still revocable.
func TestJWTAccessToken(t *testing.T) {
	e := newEnv(t, memoryStores())
	ctx := context.Background()
	tok := e.codeFlow(e.oauthConfig("jwt", webSecret, "openid", "profile"),
		oauth2.SetAuthURLParam("audience", "https://api.example.test"))
	parsed, err := josejwt.ParseSigned(tok.AccessToken, []josev4.SignatureAlgorithm{josev4.ES256})
	if err != nil {
		t.Fatalf("access token is not an ES256 JWT: %v", err)
	}
	if typ, _ := parsed.Headers[0].ExtraHeaders["typ"].(string); typ != "at+jwt" {
		t.Errorf("typ = %q", typ)
	}
	var claims struct {
		josejwt.Claims
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	jwks := e.keys.PublicKeys()
	if err := parsed.Claims(&jwks, &claims); err != nil {
		t.Fatalf("verifying with the JWKS: %v", err)
	}
	if claims.Issuer != e.issuer || claims.Subject != "alice" || claims.ClientID != "jwt" || claims.ID == "" ||
		claims.Expiry == nil || claims.IssuedAt == nil || claims.Scope != "openid profile" || !claims.Audience.Contains("https://api.example.test") {
		t.Errorf("claims = %+v", claims)
	}
	if err := claims.Validate(josejwt.Expected{Issuer: e.issuer, Time: time.Now()}); err != nil {
		t.Errorf("claims invalid: %v", err)
	}
	// The client's id_token_signed_response_alg is honoured.
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if _, err := provider.Verifier(&oidc.Config{ClientID: "jwt", SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, raw); err != nil {
		t.Errorf("ES256 ID token: %v", err)
	}
	if e.introspect(tok.AccessToken)["active"] != true {
		t.Error("JWT access token not active")
	}
	// Without a requested audience the token is for the issuer (RFC 9068 §3).
	tok2 := e.codeFlow(e.oauthConfig("jwt", webSecret, "openid"))
	parsed, err = josejwt.ParseSigned(tok2.AccessToken, []josev4.SignatureAlgorithm{josev4.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims2 josejwt.Claims
	if err := parsed.Claims(&jwks, &claims2); err != nil || len(claims2.Audience) != 1 || claims2.Audience[0] != e.issuer {
		t.Errorf("default aud = %v (%v)", claims2.Audience, err)
	}
	status, _, _ := e.postForm("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "jwt", webSecret)
	if status != http.StatusOK || e.introspect(tok.AccessToken)["active"] != false {
		t.Errorf("revoking a JWT access token: %d", status)
	}
}

// TestDiscovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2, advertising
// exactly what is enabled.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, memoryStores())
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		resp, err := http.Get(e.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// A fixed length, not chunks: the document is encoded once.
		if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
			t.Errorf("%s: Content-Length %d, Transfer-Encoding %v for a %d-byte body", path, resp.ContentLength, resp.TransferEncoding, len(body))
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if m["issuer"] != e.issuer || m["token_endpoint"] != e.issuer+"/oauth2/token" || m["jwks_uri"] != e.issuer+"/.well-known/jwks.json" {
			t.Errorf("%s: endpoints %v", path, m)
		}
		if fmt.Sprint(m["response_types_supported"]) != "[code]" {
			t.Errorf("response types = %v (implicit/hybrid are off)", m["response_types_supported"])
		}
		if fmt.Sprint(m["code_challenge_methods_supported"]) != "[S256]" {
			t.Errorf("PKCE methods = %v", m["code_challenge_methods_supported"])
		}
		if m["authorization_response_iss_parameter_supported"] != true {
			t.Error("RFC 9207 not advertised")
		}
		if strings.Contains(fmt.Sprint(m["grant_types_supported"]), "implicit") || strings.Contains(fmt.Sprint(m["grant_types_supported"]), "password") {
			t.Errorf("grant types = %v", m["grant_types_supported"])
		}
	}
}

// TestDuplicateParameter: RFC 6749 §3.1 — parameters must not repeat.
func TestDuplicateParameter(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid")
	u := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())) + "&scope=profile"
	_, q := e.authorize(u)
	if q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Errorf("repeated scope: %v", q)
	}
	// A repeated client_id gives an error page, not a redirect.
	resp, _ := e.authorize(conf.AuthCodeURL("state-0123456789") + "&client_id=spa")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("repeated client_id: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestUntrustedRedirectNeverRedirects: RFC 6749 §4.1.2.1 — unknown client or
// unregistered redirect_uri gets an error page.
func TestUntrustedRedirectNeverRedirects(t *testing.T) {
	e := newEnv(t, memoryStores())
	for name, conf := range map[string]*oauth2.Config{
		"unknown redirect_uri": {ClientID: "web", RedirectURL: "https://evil.example.test/cb", Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize"}},
		"unknown client":       {ClientID: "nobody", RedirectURL: redirectURI, Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize"}},
	} {
		resp, _ := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q %q", name, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
		}
	}
}

// TestInteractionSeam: the interaction can defer to a login page and the
// flow resumes once (the handle is single use), deny with access_denied, or
// answer login_required (OIDC Core §3.1.2.6) for prompt=none.
func TestInteractionSeam(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("spa", "", "openid")
	verifier := oauth2.GenerateVerifier()
	resp, _ := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "defer")))
	loginURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loginURL, "/login?handle=") {
		t.Fatalf("defer: %d %q", resp.StatusCode, loginURL)
	}
	handle, _ := url.Parse(loginURL)
	view, err := e.p.PendingAuthorize(context.Background(), handle.Query().Get("handle"))
	if err != nil || view.ClientID != "spa" || view.LoginHint != "defer" || view.RedirectURI != redirectURI {
		t.Fatalf("pending view = %+v, %v", view, err)
	}
	_, q := e.authorize(e.issuer + loginURL)
	if q.Get("code") == "" || q.Get("iss") != e.issuer {
		t.Fatalf("resume: %v", q)
	}
	// Public client, PKCE: exchange without a secret.
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("public client exchange: %v", err)
	}
	// The handle was consumed.
	resp, _ = e.authorize(e.issuer + loginURL)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("second resume: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp, _ = e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "defer")))
	_, q = e.authorize(e.issuer + resp.Header.Get("Location") + "&deny=1")
	if q.Get("error") != "access_denied" || q.Get("state") != "state-0123456789" || q.Get("iss") != e.issuer {
		t.Errorf("deny: %v", q)
	}

	_, q = e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("login_hint", "none")))
	if q.Get("error") != "login_required" || q.Get("iss") != e.issuer {
		t.Errorf("prompt=none: %v", q)
	}
}

// TestPushedAuthorizationRequest: RFC 9126 — push, then authorize with the
// request_uri only once.
func TestPushedAuthorizationRequest(t *testing.T) {
	e := newEnv(t, memoryStores())
	verifier := oauth2.GenerateVerifier()
	conf := e.oauthConfig("web", webSecret, "openid")
	status, body, _ := e.postForm("/oauth2/par", url.Values{
		"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirectURI}, "scope": {"openid"},
		"state": {"state-0123456789"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}, "web", webSecret)
	if status != http.StatusCreated {
		t.Fatalf("PAR: %d %v", status, body)
	}
	requestURI, _ := body["request_uri"].(string)
	authURL := e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"web"}, "request_uri": {requestURI}}.Encode()
	_, q := e.authorize(authURL)
	if q.Get("code") == "" || q.Get("state") != "state-0123456789" {
		t.Fatalf("authorize with request_uri: %v", q)
	}
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("exchange: %v", err)
	}
	resp, q := e.authorize(authURL)
	if q.Get("code") != "" {
		t.Errorf("request_uri used twice: %d %v", resp.StatusCode, q)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Issuer: "ftp://x", RefreshGracePeriod: -time.Second})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"issuer", "stores", "keyring", "signing key", "interaction", "grace"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestFormPostResponseMode: OAuth 2.0 Form Post Response Mode §2, under a
// CSP that allows exactly the page's script and a post to the client.
func TestFormPostResponseMode(t *testing.T) {
	e := newEnv(t, memoryStores())
	conf := e.oauthConfig("web", webSecret, "openid")
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"code":  {oauth2.S256ChallengeOption(oauth2.GenerateVerifier())},
		"error": {}, // no PKCE: invalid_request, also posted
	} {
		opts = append(opts, oauth2.SetAuthURLParam("response_mode", "form_post"))
		resp, err := e.noRedirect.Get(conf.AuthCodeURL("state-0123456789", opts...))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `action="`+redirectURI+`"`) {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, page)
		}
		want := `name="code"`
		if name == "error" {
			want = `name="error" value="invalid_request"`
		}
		if !strings.Contains(page, want) || !strings.Contains(page, `name="iss"`) || !strings.Contains(page, `name="state" value="state-0123456789"`) {
			t.Errorf("%s: page lacks %s, iss or state: %s", name, want, page)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "form-action http://127.0.0.1:9999") || !strings.Contains(csp, "script-src "+formPostScriptHash) {
			t.Errorf("%s: CSP = %q", name, csp)
		}
	}
}

// TestDisabledUserGrantRefused: a disabled or deleted user's refresh token
// and authorization code get invalid_grant (RFC 6749 §5.2), as UserInfo
// already refuses them (OIDC Core §5.3.3), and are not used up by the refusal.
func TestDisabledUserGrantRefused(t *testing.T) {
	e := newEnv(t, memoryStores())
	ctx := context.Background()
	conf := e.oauthConfig("web", webSecret, "openid", "offline_access")
	tok := e.codeFlow(conf)
	setDisabled := func(disabled bool) {
		t.Helper()
		_, err := e.st.Durable.UpdateUser(ctx, "alice", func(u storage.User) (storage.User, error) {
			u.Disabled = disabled
			return u, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	refresh := func(rt string) (int, map[string]any) {
		s, b, _ := e.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret)
		return s, b
	}

	setDisabled(true)
	if status, body := refresh(tok.RefreshToken); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh for a disabled user: %d %v, want 400 invalid_grant", status, body)
	}
	// RFC 7662 §2.2: resource servers hear that the tokens are not usable.
	if got := e.introspect(tok.AccessToken); got["active"] != false || len(got) != 1 {
		t.Errorf("introspection of a disabled user's access token = %v, want only active false", got)
	}
	if got := e.introspect(tok.RefreshToken); got["active"] != false {
		t.Errorf("introspection of a disabled user's refresh token = %v, want active false", got)
	}
	// A code issued before the user was disabled.
	setDisabled(false)
	verifier := oauth2.GenerateVerifier()
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	setDisabled(true)
	_, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("code exchange for a disabled user: %v, want invalid_grant", err)
	}

	// The refusal used nothing up: enabled again, the same token works.
	setDisabled(false)
	status, body := refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after re-enabling: %d %v", status, body)
	}
	rt2, _ := body["refresh_token"].(string)
	at2, _ := body["access_token"].(string)
	if e.introspect(at2)["active"] != true {
		t.Error("an enabled user's new access token is inactive at introspection")
	}

	if err := e.st.Durable.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if status, body := refresh(rt2); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh for a deleted user: %d %v, want 400 invalid_grant", status, body)
	}
}

// TestIDTokenHintRefusesOtherJWTs: a JWT access token (typ at+jwt, RFC 9068
// §2.1) is signed with the ID tokens' keys and names the user, but is not an
// ID token; explicit typing (RFC 8725 §3.11) keeps it from serving as an
// id_token_hint (OIDC Core §3.1.2.1, RP-Initiated Logout 1.0 §2).
func TestIDTokenHintRefusesOtherJWTs(t *testing.T) {
	e := newEnv(t, memoryStores())
	ctx := context.Background()
	tok := e.codeFlow(e.oauthConfig("jwt", webSecret, "openid", "profile"))
	idt, _ := tok.Extra("id_token").(string)
	sub, aud, _, err := e.p.VerifyIDTokenHint(ctx, idt)
	if err != nil || sub != "alice" || aud != "jwt" {
		t.Fatalf("ID token as hint: %q %q %v, want alice jwt", sub, aud, err)
	}
	if sub, _, _, err := e.p.VerifyIDTokenHint(ctx, tok.AccessToken); err == nil {
		t.Errorf("JWT access token accepted as id_token_hint (sub %q)", sub)
	}
	// At the authorization endpoint too: invalid_request, not a hint.
	conf := e.oauthConfig("jwt", webSecret, "openid")
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("id_token_hint", tok.AccessToken)))
	if q.Get("error") != "invalid_request" {
		t.Errorf("authorization request with an access token as id_token_hint: %v, want invalid_request", q)
	}
}
