package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// The "Third-party apps" flows end to end: dynamic registration with an
// initial access token, client assertions (RFC 7523), request objects
// (RFC 9101), PAR (RFC 9126) and the admin API, each through the real server
// and real clients (x/oauth2, go-oidc, go-jose).

// adminToken is the admin API's bearer token in these tests.
var adminToken = strings.Repeat("a", 20) + strings.Repeat("b", 20)

// thirdPartyConfig: registration needs an initial access token, clients may
// use loopback logout and JWKS URIs (the test listeners), the admin API is on.
func thirdPartyConfig(c *config.Config) {
	c.Registration.Policy = config.RegistrationInitialAccessToken
	c.Clients.AllowPrivateJWKSURI = true
	c.Admin.Token = config.NewSecret(adminToken)
}

// TestThirdPartyApps runs the third-party flows on every backend: all of
// them on memory and SQLite, registration with private_key_jwt on
// PostgreSQL+Redis too (replay cache in Redis).
func TestThirdPartyApps(t *testing.T) {
	tests := []struct {
		name     string
		run      func(t *testing.T, e *env, st storage.Stores)
		postgres bool
	}{
		{"RFC7591_RFC7592_RFC7523_PrivateKeyJWT_RegisterSignInReplayManageDelete", testDCRPrivateKeyJWT, true},
		{"RFC7523_2.2_ClientSecretJWT_ClientCredentials", testClientSecretJWT, false},
		{"RFC9101_RFC9126_RequestObjectAndPAR", testRequestObjectAndPAR, false},
		{"AdminAPI_RoundTrip", testAdminRoundTrip, false},
		{"RFC7591_3.2.2_BadRegistrationsAre400", testBadRegistrations, false},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			st := be.open(t)
			e := start(t, st, thirdPartyConfig)
			for _, tc := range tests {
				if be.name == "postgres+redis" && !tc.postgres {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					e := *e
					e.t = t
					tc.run(t, &e, st)
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Client keys and assertions

// clientKey is a relying party's signing key and its public JWKS.
type clientKey struct {
	signer jose.Signer
	jwks   json.RawMessage
}

func newClientKey(t *testing.T, kid string) clientKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{
		signer: newSigner(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, ""),
		jwks:   mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}}),
	}
}

func newSigner(t *testing.T, key jose.SigningKey, typ jose.ContentType) jose.Signer {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(typ)
	}
	s, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertion is a client assertion (RFC 7523 §3): iss and sub the client,
// aud the token endpoint, a short exp and a fresh jti.
func assertion(t *testing.T, s jose.Signer, clientID, aud string) string {
	t.Helper()
	now := time.Now()
	raw, err := josejwt.Signed(s).Claims(josejwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: josejwt.Audience{aud},
		IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute)),
		ID: oauth2.GenerateVerifier(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionParams authenticate a token request with a client assertion
// (RFC 7521 §4.2).
func assertionParams(a string) []oauth2.AuthCodeOption {
	return []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("client_assertion_type", jwtBearer),
		oauth2.SetAuthURLParam("client_assertion", a),
	}
}

// ---------------------------------------------------------------------------
// Registration

// registered is the client information response (RFC 7591 §3.2.1, RFC 7592 §3).
type registered struct {
	clients.Metadata
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

// registrationCall sends a JSON body (nil: none) with a bearer token to a
// registration URL and decodes the answer into out.
func (e *env) registrationCall(method, u, bearer string, body, out any) int {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(e.t, body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return e.doJSON(req, out)
}

// initialAccessToken issues an initial access token through the service
// `gatehouse clients registration-token create` uses.
func (e *env) initialAccessToken(st storage.Stores, uses int) string {
	e.t.Helper()
	svc := registration.NewTokenService(st.Durable, e.app.Ring, nil, nil)
	tok, _, err := svc.CreateToken(context.Background(), registration.TokenOptions{Uses: uses, ExpiresIn: time.Hour, Description: "e2e"})
	if err != nil {
		e.t.Fatalf("creating an initial access token: %v", err)
	}
	return tok
}

// observer is a trusted client the tests introspect with.
func (e *env) observer() clients.Metadata {
	return e.client(clients.Metadata{GrantTypes: []string{clients.GrantClientCredentials}, Scope: "observe"})
}

func testDCRPrivateKeyJWT(t *testing.T, e *env, st storage.Stores) {
	sub, pw := e.user("pkjwt")
	key := newClientKey(t, "rp-key-1")
	body := map[string]any{
		"redirect_uris":                   []string{rpRedirect},
		"client_name":                     "Key RP",
		"grant_types":                     []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method":      "private_key_jwt",
		"token_endpoint_auth_signing_alg": "ES256",
		"jwks":                            key.jwks,
		"scope":                           fullScope,
		"an_unknown_field":                "ignored (RFC 7591 §2)",
	}
	reg := e.issuer + "/oauth2/register"

	// RFC 7591 §3: the policy asks for an initial access token.
	var errBody map[string]any
	if code := e.registrationCall(http.MethodPost, reg, "", body, &errBody); code != http.StatusUnauthorized {
		t.Fatalf("registration without an initial access token: %d %v, want 401", code, errBody)
	}
	iat := e.initialAccessToken(st, 1)
	var got registered
	if code := e.registrationCall(http.MethodPost, reg, iat, body, &got); code != http.StatusCreated {
		t.Fatalf("registration: %d %+v", code, got)
	}
	if got.ClientID == "" || got.ClientSecret != "" || got.RegistrationAccessToken == "" || got.TokenEndpointAuthMethod != "private_key_jwt" {
		t.Fatalf("RFC 7591 §3.2.1 response for a private_key_jwt client (no secret): %+v", got)
	}
	// The token was single-use.
	if code := e.registrationCall(http.MethodPost, reg, iat, body, &errBody); code != http.StatusUnauthorized {
		t.Errorf("second use of a single-use initial access token: %d %v, want 401", code, errBody)
	}

	// Sign in with x/oauth2, authenticating the code exchange with a
	// client assertion (OIDC Core §9 private_key_jwt).
	ep := e.provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	conf := &oauth2.Config{ClientID: got.ClientID, Endpoint: ep, RedirectURL: rpRedirect, Scopes: strings.Fields(fullScope)}
	b := e.browser()
	state, nonce, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	q := b.signIn(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "pkjwt", pw)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("authorization response %v", q)
	}
	a := assertion(t, key.signer, got.ClientID, ep.TokenURL)
	tok, err := conf.Exchange(context.Background(), q.Get("code"), append(assertionParams(a), oauth2.VerifierOption(verifier))...)
	if err != nil {
		t.Fatalf("code exchange with private_key_jwt: %v", err)
	}
	idt, err := e.verifier(got.ClientID).Verify(context.Background(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("go-oidc verification of the ID token: %v", err)
	}
	if idt.Subject != sub || idt.Nonce != nonce {
		t.Errorf("ID token sub %q nonce %q, want %q %q", idt.Subject, idt.Nonce, sub, nonce)
	}

	// RFC 7523 §3 item 7: the same assertion a second time is refused.
	state, verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	q = b.signIn(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "pkjwt", pw)
	if _, err := conf.Exchange(context.Background(), q.Get("code"), append(assertionParams(a), oauth2.VerifierOption(verifier))...); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("replayed client assertion: %v, want invalid_client", err)
	}
	// An assertion signed by another key is refused too.
	other := newClientKey(t, "rp-key-1")
	if _, err := conf.Exchange(context.Background(), q.Get("code"), append(assertionParams(assertion(t, other.signer, got.ClientID, ep.TokenURL)), oauth2.VerifierOption(verifier))...); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("assertion signed with an unregistered key: %v, want invalid_client", err)
	}
	// Without its assertion the client is not authenticated (OIDC Core §9).
	rt, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if oauthErrorCode(err) != "invalid_client" {
		t.Errorf("refresh without any client authentication: %v %v, want invalid_client", rt, err)
	}

	// RFC 7592 §2.1 read.
	rat := got.RegistrationAccessToken
	var read registered
	if code := e.registrationCall(http.MethodGet, got.RegistrationClientURI, rat, nil, &read); code != http.StatusOK || read.ClientName != "Key RP" || read.ClientSecret != "" {
		t.Errorf("RFC 7592 §2.1 read: %d %+v", code, read)
	}
	if code := e.registrationCall(http.MethodGet, got.RegistrationClientURI, "wrong-token", nil, &errBody); code != http.StatusUnauthorized {
		t.Errorf("read with a wrong registration access token: %d, want 401 (RFC 7592 §2.1)", code)
	}
	// RFC 7592 §2.2 update: the full metadata, client_id included.
	upd := read.Metadata
	upd.ClientName = "Key RP renamed"
	var updated registered
	if code := e.registrationCall(http.MethodPut, got.RegistrationClientURI, rat, upd, &updated); code != http.StatusOK || updated.ClientName != "Key RP renamed" {
		t.Fatalf("RFC 7592 §2.2 update: %d %+v", code, updated)
	}
	if updated.RegistrationAccessToken != "" {
		rat = updated.RegistrationAccessToken
	}
	// The updated client still authenticates with its key.
	if _, err := conf.Exchange(context.Background(), "not-a-code", assertionParams(assertion(t, key.signer, got.ClientID, e.issuer))...); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("updated client, aud = issuer, unknown code: %v, want invalid_grant (authenticated, then the code refused)", err)
	}

	// RFC 7592 §2.3 delete: the client and its tokens stop working at once.
	obs := e.observer()
	if in := e.introspect(obs, tok.AccessToken); in["active"] != true {
		t.Fatalf("access token before deletion: %v", in)
	}
	if code := e.registrationCall(http.MethodDelete, got.RegistrationClientURI, rat, nil, nil); code != http.StatusNoContent {
		t.Fatalf("RFC 7592 §2.3 delete: %d", code)
	}
	for name, tk := range map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken} {
		if in := e.introspect(obs, tk); in["active"] != false {
			t.Errorf("a deleted client's %s token: %v, want active:false (RFC 7662 §2.2)", name, in)
		}
	}
	if code := e.registrationCall(http.MethodGet, got.RegistrationClientURI, rat, nil, &errBody); code != http.StatusUnauthorized {
		t.Errorf("read after delete: %d, want 401 (RFC 7592 §2.3)", code)
	}
	if _, err := conf.Exchange(context.Background(), "not-a-code", assertionParams(assertion(t, key.signer, got.ClientID, ep.TokenURL))...); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("token request by a deleted client: %v, want invalid_client", err)
	}
}

func testClientSecretJWT(t *testing.T, e *env, st storage.Stores) {
	var got registered
	body := map[string]any{
		"client_name":                "Batch job",
		"grant_types":                []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_jwt",
		"scope":                      "reports.read",
	}
	if code := e.registrationCall(http.MethodPost, e.issuer+"/oauth2/register", e.initialAccessToken(st, 1), body, &got); code != http.StatusCreated {
		t.Fatalf("registration: %d %+v", code, got)
	}
	if got.ClientSecret == "" || got.TokenEndpointAuthMethod != "client_secret_jwt" {
		t.Fatalf("client_secret_jwt registration: %+v", got)
	}
	tokenURL := e.provider.Endpoint().TokenURL
	hs := newSigner(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(got.ClientSecret)}, "")
	a := assertion(t, hs, got.ClientID, tokenURL)
	cc := clientcredentials.Config{
		ClientID: got.ClientID, TokenURL: tokenURL, Scopes: []string{"reports.read"},
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {a}},
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials with client_secret_jwt: %v", err)
	}
	if in := e.introspect(e.observer(), tok.AccessToken); in["active"] != true || in["client_id"] != got.ClientID {
		t.Errorf("introspection: %v", in)
	}
	// RFC 7523 §3 item 7: replay.
	if _, err := cc.Token(context.Background()); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("replayed HS256 assertion: %v, want invalid_client", err)
	}
	// A MAC under another secret.
	wrong := newSigner(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("x", 43))}, "")
	cc.EndpointParams.Set("client_assertion", assertion(t, wrong, got.ClientID, tokenURL))
	if _, err := cc.Token(context.Background()); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("assertion under a wrong secret: %v, want invalid_client", err)
	}
	// The secret itself is not accepted in place of the assertion: the
	// client registered client_secret_jwt (OIDC Core §9).
	cc.EndpointParams = nil
	cc.ClientSecret = got.ClientSecret
	if _, err := cc.Token(context.Background()); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("client_secret_post by a client_secret_jwt client: %v, want invalid_client", err)
	}
}

// requestObject signs an authorization request as a request object
// (RFC 9101 §4): iss the client, aud the issuer.
func requestObject(t *testing.T, s jose.Signer, clientID, issuer string, params map[string]any) string {
	t.Helper()
	claims := map[string]any{
		"iss": clientID, "aud": issuer, "client_id": clientID,
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "jti": oauth2.GenerateVerifier(),
	}
	for k, v := range params {
		claims[k] = v
	}
	raw, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// refused checks that an authorization request got no code: an error
// redirect to the client or an error page.
func refused(t *testing.T, p page, what string) {
	t.Helper()
	switch p.status {
	case http.StatusFound, http.StatusSeeOther:
		loc, _ := url.Parse(p.header.Get("Location"))
		if q := loc.Query(); q.Get("code") != "" || q.Get("error") == "" {
			t.Errorf("%s: redirected to %s, want an error", what, loc)
		}
	case http.StatusBadRequest:
	default:
		t.Errorf("%s: %d at %s, want an error", what, p.status, p.url)
	}
}

func testRequestObjectAndPAR(t *testing.T, e *env, _ storage.Stores) {
	sub, pw := e.user("reqobj")
	key := newClientKey(t, "ro-key")
	m := webClient()
	m.JWKS = key.jwks
	md := e.client(m)
	conf := e.rp(md, "openid")
	b := e.browser()
	authURL := e.provider.Endpoint().AuthURL

	authorizeParams := func(state, nonce, verifier string) map[string]any {
		return map[string]any{
			"response_type": "code", "redirect_uri": rpRedirect, "scope": "openid profile",
			"state": state, "nonce": nonce,
			"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
		}
	}
	finish := func(what string, q url.Values, state, nonce, verifier string) {
		t.Helper()
		if q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("%s: authorization response %v", what, q)
		}
		tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("%s: exchange: %v", what, err)
		}
		idt, err := e.verifier(md.ClientID).Verify(context.Background(), tok.Extra("id_token").(string))
		if err != nil || idt.Subject != sub || idt.Nonce != nonce {
			t.Fatalf("%s: ID token %v %v, want sub %s and the object's nonce", what, idt, err, sub)
		}
	}

	// RFC 9101 §5.1: the request by value, its parameters only inside.
	state, nonce, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	ro := requestObject(t, key.signer, md.ClientID, e.issuer, authorizeParams(state, nonce, verifier))
	q := b.signIn(authURL+"?"+url.Values{"client_id": {md.ClientID}, "response_type": {"code"}, "scope": {"openid"}, "request": {ro}}.Encode(), "reqobj", pw)
	finish("request object", q, state, nonce, verifier)

	// Signed by a key the client did not register, or for another audience: refused.
	other := newClientKey(t, "ro-key")
	for what, obj := range map[string]string{
		"unregistered key (RFC 9101 §6.2)": requestObject(t, other.signer, md.ClientID, e.issuer, authorizeParams("s", "n", verifier)),
		"wrong aud (RFC 9101 §4)":          requestObject(t, key.signer, md.ClientID, "https://other.example.test", authorizeParams("s", "n", verifier)),
	} {
		refused(t, b.get(authURL+"?"+url.Values{"client_id": {md.ClientID}, "response_type": {"code"}, "scope": {"openid"}, "request": {obj}}.Encode()), what)
	}

	// RFC 9126 §2: push the parameters, then authorize with the request_uri.
	parURL, _ := e.metadata("/.well-known/openid-configuration")["pushed_authorization_request_endpoint"].(string)
	push := func(client clients.Metadata, form url.Values) string {
		t.Helper()
		form.Set("client_id", client.ClientID)
		var out struct {
			RequestURI string `json:"request_uri"`
			ExpiresIn  int    `json:"expires_in"`
		}
		if code := e.clientPost(parURL, client, form, &out); code != http.StatusCreated || !strings.HasPrefix(out.RequestURI, "urn:ietf:params:oauth:request_uri:") || out.ExpiresIn <= 0 {
			t.Fatalf("PAR: %d %+v, want 201 with a request_uri (RFC 9126 §2.2)", code, out)
		}
		return out.RequestURI
	}
	formOf := func(params map[string]any) url.Values {
		f := url.Values{}
		for k, v := range params {
			f.Set(k, v.(string))
		}
		return f
	}
	state, nonce, verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	uri := push(md, formOf(authorizeParams(state, nonce, verifier)))
	q = b.signIn(authURL+"?"+url.Values{"client_id": {md.ClientID}, "request_uri": {uri}}.Encode(), "reqobj", pw)
	finish("PAR", q, state, nonce, verifier)
	// A request_uri is used once (RFC 9126 §4).
	refused(t, b.get(authURL+"?"+url.Values{"client_id": {md.ClientID}, "request_uri": {uri}}.Encode()), "reused request_uri")

	// RFC 9126 §3: a request object pushed by value.
	state, nonce, verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	uri = push(md, url.Values{"request": {requestObject(t, key.signer, md.ClientID, e.issuer, authorizeParams(state, nonce, verifier))}})
	q = b.signIn(authURL+"?"+url.Values{"client_id": {md.ClientID}, "request_uri": {uri}}.Encode(), "reqobj", pw)
	finish("PAR with a request object", q, state, nonce, verifier)

	// RFC 9126 §5: a client registered with
	// require_pushed_authorization_requests is refused a plain request...
	pm := webClient()
	pm.RequirePushedAuthorizationRequests = true
	parOnly := e.client(pm)
	parConf := e.rp(parOnly, "openid")
	state, verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	refused(t, b.get(parConf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), "plain request by a PAR-only client")
	// ...and served a pushed one.
	f := formOf(authorizeParams(state, nonce, verifier))
	uri = push(parOnly, f)
	q = b.signIn(authURL+"?"+url.Values{"client_id": {parOnly.ClientID}, "request_uri": {uri}}.Encode(), "reqobj", pw)
	if q.Get("code") == "" || q.Get("state") != state {
		t.Fatalf("PAR-only client through PAR: %v", q)
	}
	if _, err := parConf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("PAR-only client's code: %v", err)
	}
}

// testBadRegistrations: bodies that are not JSON, too large or of wrong
// types, and unsafe redirect URIs, get a 400 with the RFC 7591 §3.2.2 error,
// never a 500, and do not use up the initial access token.
func testBadRegistrations(t *testing.T, e *env, st storage.Stores) {
	iat := e.initialAccessToken(st, 1)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+iat)
		var out map[string]any
		return e.doJSON(req, &out), out
	}
	for name, tc := range map[string]struct{ body, want string }{
		"not JSON":          {`redirect_uris=https://rp.example.test/cb`, "invalid_client_metadata"},
		"over 64 KiB":       {`{"client_name":"` + strings.Repeat("x", 70<<10) + `","redirect_uris":["` + rpRedirect + `"]}`, "invalid_client_metadata"},
		"wrong type":        {`{"redirect_uris":"` + rpRedirect + `"}`, "invalid_client_metadata"},
		"javascript: URI":   {`{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		"fragment":          {`{"redirect_uris":["https://rp.example.test/cb#x"]}`, "invalid_redirect_uri"},
		"http off loopback": {`{"redirect_uris":["http://rp.example.test/cb"]}`, "invalid_redirect_uri"},
	} {
		if code, out := post(tc.body); code != http.StatusBadRequest || out["error"] != tc.want {
			t.Errorf("%s: %d %v, want 400 %s", name, code, out, tc.want)
		}
	}
	// The token survived the refusals.
	if code, out := post(`{"redirect_uris":["` + rpRedirect + `"]}`); code != http.StatusCreated {
		t.Errorf("valid registration after refused ones: %d %v", code, out)
	}
}
