package login_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

// TestWithProvider drives the real authorization endpoint through the seam:
// login, consent, code exchange, the ID token's sid, then RP-initiated
// logout with that ID token as id_token_hint, and prompt=none afterwards.
func TestWithProvider(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	t.Cleanup(func() { store.Close() })
	ring, err := secrets.NewKeyring(bytes.Repeat([]byte("p"), 32))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.New(ctx, store, ring, keys.Config{Algorithms: []string{"RS256", "ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := hasher.Hash(alicePassword)
	if err := store.CreateUser(ctx, storage.User{ID: "u-alice", Username: "alice", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	const redirectURI = "http://127.0.0.1:9/cb"
	const logoutURI = "http://127.0.0.1:9/bye"
	if err := store.CreateClient(ctx, storage.Client{
		ID: "shop", Name: "Shop", RedirectURIs: []string{redirectURI}, PostLogoutRedirectURIs: []string{logoutURI},
		TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "profile"},
	}); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	sessions, err := session.New(session.Config{Store: store, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	ui, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := login.New(login.Config{Users: store, Clients: store, Consents: store, Throttle: store,
		Sessions: sessions, Passwords: hasher, UI: ui, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	p, err := oauth.New(oauth.Config{Issuer: srv.URL, Stores: storage.Stores{Durable: store, Ephemeral: store}, Ring: ring,
		SigningKey: km.SigningKey, PublicKeys: km.PublicKeys, Interaction: h, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h.SetFlow(p)
	mux.HandleFunc("/oauth2/authorize", p.Authorize)
	mux.HandleFunc("POST /oauth2/token", p.Token)
	mux.HandleFunc("GET /login", h.LoginPage)
	mux.HandleFunc("POST /login", h.LoginSubmit)
	mux.HandleFunc("GET /consent", h.ConsentPage)
	mux.HandleFunc("POST /consent", h.ConsentSubmit)
	mux.HandleFunc("/oauth2/logout", h.Logout)

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		res, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	post := func(u string, form url.Values) *http.Response {
		t.Helper()
		res, err := browser.PostForm(u, form)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	follow := func(res *http.Response) string {
		t.Helper()
		loc, err := res.Location()
		if err != nil {
			t.Fatalf("status %d without Location", res.StatusCode)
		}
		return loc.String()
	}

	rp := oauth2.Config{ClientID: "shop", RedirectURL: redirectURI, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/authorize", TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := rp.AuthCodeURL("state-one-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-one-1"))

	res, _ := get(authURL)
	loginURL := follow(res)
	if !strings.Contains(loginURL, "/login?handle=") {
		t.Fatalf("authorize without session: redirected to %q", loginURL)
	}
	_, body := get(loginURL)
	handle, _ := url.Parse(loginURL)
	res = post(srv.URL+"/login", url.Values{"csrf_token": {csrfToken(t, body)}, "handle": {handle.Query().Get("handle")},
		"username": {"alice"}, "password": {alicePassword}})
	consentURL := follow(res)
	if !strings.HasPrefix(consentURL, srv.URL+"/consent?handle=") {
		t.Fatalf("after sign-in: redirected to %q, want the consent page", consentURL)
	}
	_, body = get(consentURL)
	res = post(srv.URL+"/consent", url.Values{"csrf_token": {csrfToken(t, body)}, "handle": {handle.Query().Get("handle")}, "decision": {"allow"}})
	cb, err := url.Parse(follow(res))
	if err != nil || !strings.HasPrefix(cb.String(), redirectURI) || cb.Query().Get("state") != "state-one-1" || cb.Query().Get("code") == "" {
		t.Fatalf("after consent: redirected to %q, want the client's redirect URI with code and state", cb)
	}

	tok, err := rp.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	claims := jwtClaims(t, idToken)
	sess, err := store.ListSessions(ctx, "u-alice")
	if err != nil || len(sess) != 1 {
		t.Fatalf("sessions: %v %v", sess, err)
	}
	if claims["sub"] != "u-alice" || claims["sid"] != sess[0].ID || claims["nonce"] != "nonce-one-1" || claims["auth_time"] == nil {
		t.Errorf("ID token claims = %v, want sub u-alice, sid %s, nonce, auth_time", claims, sess[0].ID)
	}
	if got := sess[0].ClientIDs; len(got) != 1 || got[0] != "shop" {
		t.Errorf("session clients = %v, want [shop]", got)
	}

	// A second request is answered from the session and remembered consent.
	res, _ = get(rp.AuthCodeURL("state-two-2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
	if loc := follow(res); !strings.Contains(loc, "code=") || !strings.Contains(loc, "state=state-two-2") {
		t.Errorf("prompt=none with session and consent: redirected to %q, want a code", loc)
	}

	// RP-Initiated Logout 1.0 with the ID token as hint.
	q := url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {logoutURI}, "state": {"bye"}}
	res, _ = get(srv.URL + "/oauth2/logout?" + q.Encode())
	if loc := follow(res); loc != logoutURI+"?state=bye" {
		t.Errorf("logout: redirected to %q, want %s?state=bye", loc, logoutURI)
	}
	if left, _ := store.ListSessions(ctx, "u-alice"); len(left) != 0 {
		t.Errorf("%d sessions left after logout", len(left))
	}
	res, _ = get(rp.AuthCodeURL("state-three-3", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
	if loc := follow(res); !strings.Contains(loc, "error=login_required") {
		t.Errorf("prompt=none after logout: redirected to %q, want login_required (OIDC Core §3.1.2.6)", loc)
	}
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
