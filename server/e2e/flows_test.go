package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
)

const fullScope = "openid profile email offline_access"

// webClient is a confidential third-party web application: it gets the
// consent page, refresh tokens and the authorization code grant.
func webClient() clients.Metadata {
	return clients.Metadata{
		GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		Scope:      fullScope,
	}
}

// TestFlows runs the protocol flows against the real server on every
// storage backend.
func TestFlows(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, be.open(t), nil)
			for _, f := range flows {
				t.Run(f.name, func(t *testing.T) {
					e := *e
					e.t = t
					f.run(t, &e)
				})
			}
		})
	}
}

var flows = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"RFC6749_4.1_RFC7636_CodeWithPKCE_ConsentAndIDToken", testCodeFlow},
	{"RFC9700_4.14.2_RefreshRotationAndReuseRevokesGrant", testRefreshRotation},
	{"RFC6749_4.4_ClientCredentials", testClientCredentials},
	{"RFC7009_RFC7662_RevokeThenIntrospect", testRevokeIntrospect},
	{"OIDCCore_5.3.1_UserInfoGETAndPOST", testUserInfo},
	{"OIDCCore_3.1.2.6_PromptNoneWithoutSessionIsLoginRequired", testPromptNone},
	{"OIDCCore_3.1.2.1_MaxAgeForcesSignInAgain", testMaxAge},
	{"RFC6749_4.1.2.1_DenyIsAccessDenied", testDeny},
	{"RFC6749_4.1.2.1_WrongRedirectURIShowsErrorPage", testWrongRedirectURI},
	{"OAuthFormPost_2_ResponseModeFormPost", testFormPost},
	{"RFC9068_JWTAccessTokenVerifiedWithJWKS", testJWTAccessToken},
	{"RFC7591_3_RegisterThenSignIn", testRegisterThenSignIn},
	{"OIDCDiscovery_3_RFC8414_2_MetadataListsWhatIsEnabled", testDiscovery},
}

func testCodeFlow(t *testing.T, e *env) {
	sub, pw := e.user("ada")
	md := e.client(webClient())
	conf := e.rp(md, strings.Fields(fullScope)...)
	b := e.browser()

	p := b.get(conf.AuthCodeURL("state-one", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p = b.login(p, "ada", pw)
	if p.url.Path != "/consent" || !strings.Contains(p.body, "Test RP") {
		t.Fatalf("a third-party client must get the consent page; got %d at %s", p.status, p.url)
	}

	// Consent is remembered: the next request goes straight back.
	tok, idt := e.codeFlow(b, conf, "ada", pw)
	if idt == nil || idt.Subject != sub {
		t.Fatalf("ID token subject %v, want %s", idt, sub)
	}
	// Scope claims (email) are released at the UserInfo endpoint, since an
	// access token is issued (OIDC Core §5.4); the ID token has the session's.
	var claims struct {
		AuthTime int64  `json:"auth_time"`
		SID      string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.AuthTime == 0 || claims.SID == "" {
		t.Errorf("ID token claims %+v: want auth_time and sid (OIDC Core §2, Front-Channel Logout §3)", claims)
	}
	if tok.RefreshToken == "" {
		t.Error("offline_access granted but no refresh token (OIDC Core §11)")
	}
	// The code is single use (RFC 6749 §4.1.2).
	state, v := "state-two", oauth2.GenerateVerifier()
	q := b.signIn(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(v)), "ada", pw)
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(v)); err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(v)); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("second use of a code: %v, want invalid_grant", err)
	}
	// A wrong PKCE verifier is refused (RFC 7636 §4.6).
	q = b.signIn(conf.AuthCodeURL("state-three", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "ada", pw)
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("wrong code_verifier: %v, want invalid_grant", err)
	}
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	if err == nil {
		return "<no error>"
	}
	return err.Error()
}

func refresh(conf *oauth2.Config, rt string) (*oauth2.Token, error) {
	return conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
}

func testRefreshRotation(t *testing.T, e *env) {
	_, pw := e.user("rot")
	md := e.client(webClient())
	conf := e.rp(md, strings.Fields(fullScope)...)
	tok, _ := e.codeFlow(e.browser(), conf, "rot", pw)

	next, err := refresh(conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatal("refresh must rotate the refresh token and issue a new access token")
	}
	if raw, _ := next.Extra("id_token").(string); raw != "" {
		if _, err := e.verifier(md.ClientID).Verify(context.Background(), raw); err != nil {
			t.Errorf("refreshed ID token: %v (OIDC Core §12.2)", err)
		}
	}
	// Reusing the rotated token is refused and revokes the whole grant.
	if _, err := refresh(conf, tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("reuse of a rotated refresh token: %v, want invalid_grant", err)
	}
	if _, err := refresh(conf, next.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("after reuse the newest refresh token still works: %v", err)
	}
	if active := e.introspect(md, next.AccessToken)["active"]; active != false {
		t.Errorf("after reuse the newest access token is active=%v", active)
	}
}

func testClientCredentials(t *testing.T, e *env) {
	md := e.client(clients.Metadata{
		GrantTypes: []string{clients.GrantClientCredentials},
		Scope:      "reports.read",
	})
	cc := clientcredentials.Config{
		ClientID: md.ClientID, ClientSecret: md.ClientSecret,
		TokenURL: e.provider.Endpoint().TokenURL, Scopes: []string{"reports.read"},
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if tok.RefreshToken != "" {
		t.Error("client_credentials must not issue a refresh token (RFC 6749 §4.4.3)")
	}
	in := e.introspect(md, tok.AccessToken)
	if in["active"] != true || in["client_id"] != md.ClientID || in["scope"] != "reports.read" {
		t.Errorf("introspection %v", in)
	}
	cc.ClientSecret = "wrong"
	if _, err := cc.Token(context.Background()); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("wrong secret: %v, want invalid_client (RFC 6749 §5.2)", err)
	}
}

func (e *env) introspect(md clients.Metadata, token string) map[string]any {
	e.t.Helper()
	var out map[string]any
	if code := e.clientPost(e.issuer+"/oauth2/introspect", md, url.Values{"token": {token}}, &out); code != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", code, out)
	}
	return out
}

func testRevokeIntrospect(t *testing.T, e *env) {
	_, pw := e.user("rev")
	md := e.client(webClient())
	conf := e.rp(md, strings.Fields(fullScope)...)
	tok, _ := e.codeFlow(e.browser(), conf, "rev", pw)

	in := e.introspect(md, tok.AccessToken)
	if in["active"] != true || in["client_id"] != md.ClientID {
		t.Errorf("before revocation: %v", in)
	}
	if in["iss"] != e.issuer {
		t.Errorf("introspection iss %v, want %s", in["iss"], e.issuer)
	}
	// Revoking the refresh token revokes the grant's access tokens too (RFC 7009 §2.1).
	if code := e.clientPost(e.issuer+"/oauth2/revoke", md, url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	for name, tk := range map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken} {
		if in := e.introspect(md, tk); in["active"] != false {
			t.Errorf("%s token after revocation: %v (RFC 7662 §2.2)", name, in)
		}
	}
	// Revoking an unknown token is still 200 (RFC 7009 §2.2).
	if code := e.clientPost(e.issuer+"/oauth2/revoke", md, url.Values{"token": {"no-such-token"}}, nil); code != http.StatusOK {
		t.Errorf("revoking an unknown token: %d, want 200", code)
	}
	if _, err := refresh(conf, tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("revoked refresh token: %v, want invalid_grant", err)
	}
}

func testUserInfo(t *testing.T, e *env) {
	sub, pw := e.user("uinfo")
	md := e.client(webClient())
	conf := e.rp(md, "openid", "email")
	tok, _ := e.codeFlow(e.browser(), conf, "uinfo", pw)

	get, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	get.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	post, _ := http.NewRequest(http.MethodPost, e.issuer+"/userinfo", strings.NewReader(url.Values{"access_token": {tok.AccessToken}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for name, req := range map[string]*http.Request{"GET with a bearer header (RFC 6750 §2.1)": get, "POST with a form body (RFC 6750 §2.2)": post} {
		var claims map[string]any
		if code := e.doJSON(req, &claims); code != http.StatusOK {
			t.Errorf("%s: %d %v", name, code, claims)
			continue
		}
		if claims["sub"] != sub || claims["email"] != "uinfo@example.com" {
			t.Errorf("%s: claims %v", name, claims)
		}
		if _, ok := claims["name"]; ok {
			t.Errorf("%s: profile claims released without the profile scope (OIDC Core §5.4): %v", name, claims)
		}
	}
	// go-oidc's own call agrees.
	ui, err := e.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != sub {
		t.Errorf("go-oidc UserInfo: %v %v", ui, err)
	}
	bad, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	bad.Header.Set("Authorization", "Bearer not-a-token")
	if code := e.doJSON(bad, nil); code != http.StatusUnauthorized {
		t.Errorf("bad token: %d, want 401 (RFC 6750 §3.1)", code)
	}
}

func testPromptNone(t *testing.T, e *env) {
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	p := e.browser().get(conf.AuthCodeURL("state-abc", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	q := p.redirect(t)
	if q.Get("error") != "login_required" || q.Get("state") != "state-abc" || q.Get("code") != "" {
		t.Errorf("prompt=none without a session: %v, want error=login_required and the state", q)
	}
}

func testMaxAge(t *testing.T, e *env) {
	_, pw := e.user("maxage")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	_, first := e.codeFlow(b, conf, "maxage", pw)

	// With the session, a request goes straight back...
	p := b.get(conf.AuthCodeURL("state-aaa", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if q := p.redirect(t); q.Get("code") == "" {
		t.Fatalf("signed in and consented, expected a code: %v", q)
	}
	// ...but max_age=0 asks for a fresh authentication.
	p = b.get(conf.AuthCodeURL("state-bbb", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "0")))
	if p.url.Path != "/login" {
		t.Fatalf("max_age=0 with a session: landed on %s (%d), want the login page", p.url, p.status)
	}
	// No waiting: the new auth_time must be no earlier than this request.
	asked := time.Now().Unix()
	_, second := e.codeFlow(b, conf, "maxage", pw, oauth2.SetAuthURLParam("max_age", "0"))
	var c1, c2 struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = first.Claims(&c1)
	_ = second.Claims(&c2)
	if c2.AuthTime < asked || c2.AuthTime < c1.AuthTime {
		t.Errorf("auth_time %d after re-authentication asked at %d, first %d: want the new sign-in's (OIDC Core §2)", c2.AuthTime, asked, c1.AuthTime)
	}
}

func testDeny(t *testing.T, e *env) {
	_, pw := e.user("deny")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	p := b.get(conf.AuthCodeURL("state-abc", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p = b.consent(b.login(p, "deny", pw), "deny")
	q := p.redirect(t)
	if q.Get("error") != "access_denied" || q.Get("state") != "state-abc" || q.Get("code") != "" {
		t.Errorf("deny: %v, want error=access_denied", q)
	}
}

func testWrongRedirectURI(t *testing.T, e *env) {
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	conf.RedirectURL = "https://attacker.example.test/cb"
	p := e.browser().get(conf.AuthCodeURL("state-abc", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
		t.Fatalf("unregistered redirect_uri: %d Location=%q, want 400 and no redirect (RFC 6749 §3.1.2.4)", p.status, p.header.Get("Location"))
	}
	if !strings.Contains(p.header.Get("Content-Type"), "text/html") || strings.Contains(p.body, "attacker.example.test") {
		t.Errorf("want an HTML error page that does not link the unregistered URI:\n%s", p.body)
	}
}

func testFormPost(t *testing.T, e *env) {
	_, pw := e.user("formpost")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	p := b.get(conf.AuthCodeURL("fp-state", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("response_mode", "form_post")))
	p = b.consent(b.login(p, "formpost", pw), "allow")
	if p.status != http.StatusOK {
		t.Fatalf("form_post: %d, want 200 with an auto-submitting form:\n%s", p.status, p.body)
	}
	f := onlyForm(t, p)
	if f.action != rpRedirect || f.method != http.MethodPost || f.values.Get("state") != "fp-state" || f.values.Get("code") == "" {
		t.Fatalf("form_post form: %+v", f)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "rp.example.test") {
		t.Errorf("CSP %q does not allow posting to the client", csp)
	}
	if _, err := conf.Exchange(context.Background(), f.values.Get("code"), oauth2.VerifierOption(v)); err != nil {
		t.Errorf("redeeming the form_post code: %v", err)
	}
}

func testJWTAccessToken(t *testing.T, e *env) {
	sub, pw := e.user("jwtat")
	m := webClient()
	m.AccessTokenFormat = "jwt"
	md := e.client(m)
	conf := e.rp(md, "openid")
	tok, _ := e.codeFlow(e.browser(), conf, "jwtat", pw)

	jws, err := jose.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("access token is not a JWS: %v", err)
	}
	hdr := jws.Signatures[0].Header
	if typ, _ := hdr.ExtraHeaders["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
		t.Errorf("typ %q, want at+jwt (RFC 9068 §2.1)", typ)
	}
	var jwks jose.JSONWebKeySet
	req, _ := http.NewRequest(http.MethodGet, e.metadata("/.well-known/openid-configuration")["jwks_uri"].(string), nil)
	if code := e.doJSON(req, &jwks); code != http.StatusOK {
		t.Fatalf("jwks: %d", code)
	}
	keys := jwks.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verifying with the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != e.issuer || claims["sub"] != sub || claims["client_id"] != md.ClientID || claims["exp"] == nil || claims["jti"] == nil {
		t.Errorf("RFC 9068 §2.2 claims: %v", claims)
	}
	if in := e.introspect(md, tok.AccessToken); in["active"] != true {
		t.Errorf("introspecting the JWT access token: %v", in)
	}
}

func testRegisterThenSignIn(t *testing.T, e *env) {
	_, pw := e.user("dcr")
	reg := map[string]any{
		"redirect_uris":              []string{rpRedirect},
		"client_name":                "Registered RP",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      fullScope,
	}
	body, _ := json.Marshal(reg)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/register", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	var got struct {
		clients.Metadata
		RegistrationAccessToken string `json:"registration_access_token"`
		RegistrationClientURI   string `json:"registration_client_uri"`
	}
	if code := e.doJSON(req, &got); code != http.StatusCreated {
		t.Fatalf("register: %d %+v", code, got)
	}
	if got.ClientID == "" || got.ClientSecret == "" || got.RegistrationAccessToken == "" || !strings.HasPrefix(got.RegistrationClientURI, e.issuer+"/oauth2/register/") {
		t.Fatalf("RFC 7591 §3.2.1 / RFC 7592 §3 response: %+v", got)
	}
	read, _ := http.NewRequest(http.MethodGet, got.RegistrationClientURI, nil)
	read.Header.Set("Authorization", "Bearer "+got.RegistrationAccessToken)
	var readBack clients.Metadata
	if code := e.doJSON(read, &readBack); code != http.StatusOK || readBack.ClientName != "Registered RP" {
		t.Errorf("RFC 7592 §2.1 read: %d %+v", code, readBack)
	}

	conf := e.rp(got.Metadata, strings.Fields(fullScope)...)
	b := e.browser()
	p := b.login(b.get(conf.AuthCodeURL("state-xyz", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), "dcr", pw)
	if p.url.Path != "/consent" || !strings.Contains(p.body, "Registered RP") {
		t.Fatalf("a registered client is third-party: want the consent page naming it, got %s", p.url)
	}
	tok, idt := e.codeFlow(b, conf, "dcr", pw)
	if idt == nil || tok.RefreshToken == "" {
		t.Fatal("the registered client got no ID token or refresh token")
	}

	// Deleting the registration stops the client (RFC 7592 §2.3).
	del, _ := http.NewRequest(http.MethodDelete, got.RegistrationClientURI, nil)
	del.Header.Set("Authorization", "Bearer "+got.RegistrationAccessToken)
	if code := e.doJSON(del, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if _, err := refresh(conf, tok.RefreshToken); oauthErrorCode(err) != "invalid_client" && oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh by a deleted client: %v", err)
	}
}

func testDiscovery(t *testing.T, e *env) {
	oidcDoc := e.metadata("/.well-known/openid-configuration")
	oauthDoc := e.metadata("/.well-known/oauth-authorization-server")
	a, _ := json.Marshal(oidcDoc)
	b, _ := json.Marshal(oauthDoc)
	if string(a) != string(b) {
		t.Error("the two metadata documents differ")
	}
	checkDiscovery(t, e, oidcDoc, true)
}

// checkDiscovery checks that the document advertises exactly what the
// server does: every endpoint answers at its advertised URL (never 404),
// registration_endpoint only when registration is on, and only the code
// response type and S256 since implicit, hybrid and plain PKCE are off.
func checkDiscovery(t *testing.T, e *env, md map[string]any, registration bool) {
	t.Helper()
	if md["issuer"] != e.issuer {
		t.Errorf("issuer %v, want %s (OIDC Discovery §4.3)", md["issuer"], e.issuer)
	}
	endpoints := map[string]string{
		"authorization_endpoint":                GET,
		"token_endpoint":                        POST,
		"userinfo_endpoint":                     GET,
		"jwks_uri":                              GET,
		"revocation_endpoint":                   POST,
		"introspection_endpoint":                POST,
		"pushed_authorization_request_endpoint": POST,
		"end_session_endpoint":                  GET,
	}
	if registration {
		endpoints["registration_endpoint"] = POST
	} else if _, ok := md["registration_endpoint"]; ok {
		t.Errorf("registration is disabled but registration_endpoint is advertised")
	}
	for key, method := range endpoints {
		u, _ := md[key].(string)
		if !strings.HasPrefix(u, e.issuer+"/") {
			t.Errorf("%s = %q, want a URL under the issuer", key, u)
			continue
		}
		req, _ := http.NewRequest(method, u, strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s %s (%s): %d", method, u, key, resp.StatusCode)
		}
	}
	wantList := func(key string, want ...string) {
		t.Helper()
		var got []string
		for _, v := range md[key].([]any) {
			got = append(got, v.(string))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	wantList("response_types_supported", "code")
	wantList("grant_types_supported", "authorization_code", "refresh_token", "client_credentials")
	wantList("code_challenge_methods_supported", "S256")
	wantList("response_modes_supported", "query", "form_post")
	wantList("id_token_signing_alg_values_supported", e.app.Keys.Algorithms()...)
}

const (
	GET  = http.MethodGet
	POST = http.MethodPost
)

// TestRefreshGracePeriod runs with tokens.refresh_token_grace_period set: a
// client retrying a refresh with the token it just rotated (its response was
// lost) gets the same new pair instead of a revoked grant; outside the grace
// period, or with the newer token already used, RFC 9700 §4.14.2 applies.
func TestRefreshGracePeriod_RFC9700_4_14_2(t *testing.T) {
	e := start(t, backends[0].open(t), func(c *config.Config) { c.Tokens.RefreshTokenGracePeriod = time.Minute })
	_, pw := e.user("grace")
	md := e.client(webClient())
	conf := e.rp(md, strings.Fields(fullScope)...)
	tok, _ := e.codeFlow(e.browser(), conf, "grace", pw)

	first, err := refresh(conf, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := refresh(conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("retry within the grace period: %v", err)
	}
	if retry.RefreshToken != first.RefreshToken || retry.AccessToken != first.AccessToken {
		t.Error("a retry within the grace period must return the same pair")
	}
	if _, err := refresh(conf, first.RefreshToken); err != nil {
		t.Fatalf("the new refresh token: %v", err)
	}
}

// TestRegistrationDisabled: with registration.policy disabled, discovery
// has no registration_endpoint and the endpoint does not exist.
func TestRegistrationDisabled_RFC8414_2(t *testing.T) {
	e := start(t, backends[0].open(t), func(c *config.Config) { c.Registration.Policy = config.RegistrationDisabled })
	checkDiscovery(t, e, e.metadata("/.well-known/openid-configuration"), false)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/register", strings.NewReader(`{"redirect_uris":["`+rpRedirect+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	if code := e.doJSON(req, &map[string]any{}); code != http.StatusNotFound {
		t.Errorf("POST /oauth2/register with registration disabled: %d, want 404", code)
	}
}

// TestAdminAPIOnAdminListenerOnly: the admin API is mounted on the admin
// handler, behind its bearer token, and absent from the public one.
func TestAdminAPIOnAdminListenerOnly(t *testing.T) {
	token := strings.Repeat("k", 40)
	e := start(t, backends[0].open(t), func(c *config.Config) { c.Admin.Token = config.NewSecret(token) })
	md := e.client(webClient())
	admin := httptest.NewServer(e.app.Server.AdminHandler())
	defer admin.Close()

	get := func(base, auth string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, base+"/admin/clients/"+md.ClientID, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		var out map[string]any
		return e.doJSON(req, &out), out
	}
	if code, _ := get(admin.URL, ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without the token: %d, want 401", code)
	}
	if code, out := get(admin.URL, token); code != http.StatusOK || out["client_id"] != md.ClientID {
		t.Errorf("admin API with the token: %d %v", code, out)
	}
	if code, _ := get(e.issuer, token); code != http.StatusNotFound {
		t.Errorf("admin API on the public listener: %d, want 404", code)
	}
}

// TestRPInitiatedLogout_OIDCRPInitiatedLogout_2: a logout with the client's
// id_token_hint ends the session and returns to the registered
// post_logout_redirect_uri with the state; the next prompt=none request
// then has no session (OIDC Core §3.1.2.6 login_required).
func TestRPInitiatedLogout_OIDCRPInitiatedLogout_2(t *testing.T) {
	e := start(t, backends[0].open(t), nil)
	_, pw := e.user("bye")
	m := webClient()
	m.PostLogoutRedirectURIs = []string{"https://rp.example.test/bye"}
	md := e.client(m)
	conf := e.rp(md, "openid")
	b := e.browser()
	tok, _ := e.codeFlow(b, conf, "bye", pw)

	q := url.Values{
		"id_token_hint":            {tok.Extra("id_token").(string)},
		"post_logout_redirect_uri": {"https://rp.example.test/bye"},
		"state":                    {"logout-state"},
	}
	p := b.get(e.issuer + "/oauth2/logout?" + q.Encode())
	// Logout may pass through a page loading front-channel logout iframes
	// before continuing; with no front-channel client it redirects at once.
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("logout: %d at %s, want a redirect:\n%s", p.status, p.url, p.body)
	}
	loc, _ := url.Parse(p.header.Get("Location"))
	if loc.Host != "rp.example.test" || loc.Path != "/bye" || loc.Query().Get("state") != "logout-state" {
		t.Errorf("logout redirected to %s, want https://rp.example.test/bye?state=logout-state (RP-Initiated Logout §3)", loc)
	}
	p = b.get(conf.AuthCodeURL("after-logout", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if got := p.redirect(t).Get("error"); got != "login_required" {
		t.Errorf("prompt=none after logout: error=%q, want login_required", got)
	}
}
