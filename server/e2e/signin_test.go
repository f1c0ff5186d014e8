package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// TestSignInOptions runs the OpenID Connect request options on every
// storage backend.
func TestSignInOptions(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, be.open(t), nil)
			for _, f := range signInOptions {
				t.Run(f.name, func(t *testing.T) {
					e := *e
					e.t = t
					f.run(t, &e)
				})
			}
		})
	}
}

var signInOptions = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"OIDCCore_5.5_ClaimsParameterUserInfoAndIDToken", testClaimsParameter},
	{"OIDCCore_5.5_InvalidClaimsParameterIsInvalidRequest", testBadClaimsParameter},
	{"OIDCCore_2_ACRAndAMRAfterPasswordSignIn", testACRAMR},
	{"OIDCCore_5.5.1.1_EssentialUnknownACRIsUnmet", testEssentialUnknownACR},
	{"OIDCCore_3.1.2.1_SelectAccountOffersCurrentAccount", testSelectAccount},
	{"OIDCCore_3.1.2.1_PromptNoneWithOtherValueIsInvalidRequest", testPromptNoneCombined},
	{"OIDCCore_3.1.2.1_LoginHintAndUILocales", testLoginHintUILocales},
	{"OIDCCore_3.1.2.1_IDTokenHintOtherSubject", testIDTokenHintOtherSubject},
	{"RFC9700_2.1.2_ImplicitOffByDefault", testImplicitOff},
	{"OIDCCore_11_NoRefreshTokenWithoutOfflineAccess", testNoRefreshWithoutOfflineAccess},
}

// idClaims decodes an ID token's claims.
func idClaims(t *testing.T, raw interface{ Claims(any) error }) map[string]any {
	t.Helper()
	var c map[string]any
	if err := raw.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) userInfo(token string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var out map[string]any
	if code := e.doJSON(req, &out); code != http.StatusOK {
		e.t.Fatalf("userinfo: %d %v", code, out)
	}
	return out
}

func testClaimsParameter(t *testing.T, e *env) {
	_, pw := e.user("claimsp")
	md := e.client(webClient())
	conf := e.rp(md, "openid") // no profile or email scope
	claims := `{"userinfo":{"email":{"essential":true},"name":null,"x-unknown":null},` +
		`"id_token":{"name":null,"email_verified":null,"acr":{"values":["1"]}}}`
	tok, idt := e.codeFlow(e.browser(), conf, "claimsp", pw, oauth2.SetAuthURLParam("claims", claims))
	c := idClaims(t, idt)
	if c["name"] != "Claimsp Example" || c["email_verified"] != true || c["acr"] != "1" {
		t.Errorf("ID token claims %v: want the requested name, email_verified and acr (OIDC Core §5.5)", c)
	}
	if _, ok := c["email"]; ok {
		t.Errorf("ID token has email, requested only for userinfo: %v", c)
	}
	ui := e.userInfo(tok.AccessToken)
	if ui["email"] != "claimsp@example.com" || ui["name"] != "Claimsp Example" {
		t.Errorf("userinfo %v: want the requested email and name (OIDC Core §5.5)", ui)
	}
	if _, ok := ui["x-unknown"]; ok {
		t.Errorf("userinfo %v has an unknown claim", ui)
	}
	if _, ok := ui["email_verified"]; ok {
		t.Errorf("userinfo %v: email_verified was requested for the ID token only", ui)
	}
	// A refreshed access token keeps the request (the session carries it).
	md2 := e.client(webClient())
	conf2 := e.rp(md2, "openid", "offline_access")
	tok2, _ := e.codeFlow(e.browser(), conf2, "claimsp", pw, oauth2.SetAuthURLParam("claims", `{"userinfo":{"email":null}}`))
	next, err := refresh(conf2, tok2.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if ui := e.userInfo(next.AccessToken); ui["email"] != "claimsp@example.com" {
		t.Errorf("userinfo after refresh %v: want the requested email", ui)
	}
}

func testBadClaimsParameter(t *testing.T, e *env) {
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	for _, bad := range []string{`{not json`, `["userinfo"]`, `{"userinfo":["email"]}`} {
		p := e.browser().get(conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("claims", bad)))
		if q := p.redirect(t); q.Get("error") != "invalid_request" {
			t.Errorf("claims=%s: %v, want invalid_request (OIDC Core §5.5)", bad, q)
		}
	}
	// The same check at the PAR endpoint (RFC 9126 §2.1).
	var out map[string]any
	code := e.clientPost(e.issuer+"/oauth2/par", md, url.Values{
		"response_type": {"code"}, "client_id": {md.ClientID}, "redirect_uri": {rpRedirect}, "scope": {"openid"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		"claims": {`{bad`}, "state": {"state-long-enough"},
	}, &out)
	if code != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Errorf("PAR with a bad claims parameter: %d %v, want 400 invalid_request", code, out)
	}
}

func testACRAMR(t *testing.T, e *env) {
	_, pw := e.user("acr")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	_, idt := e.codeFlow(b, conf, "acr", pw, oauth2.SetAuthURLParam("acr_values", "1 0"))
	c := idClaims(t, idt)
	amr, _ := c["amr"].([]any)
	if c["acr"] != "1" || len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("acr %v amr %v: want acr 1 and amr [pwd] after a password sign-in (OIDC Core §2, RFC 8176 §2)", c["acr"], c["amr"])
	}
	// A request for the lower class alone is answered with it: the
	// stronger authentication satisfies it (OIDC Core §5.5.1.1).
	_, idt = e.codeFlow(b, conf, "acr", pw, oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"value":"0"}}}`))
	if c := idClaims(t, idt); c["acr"] != "0" {
		t.Errorf("essential acr value 0: got %v", c["acr"])
	}
}

func testEssentialUnknownACR(t *testing.T, e *env) {
	_, pw := e.user("acrx")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	e.codeFlow(b, conf, "acrx", pw)
	p := b.get(conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:4"]}}}`)))
	if q := p.redirect(t); q.Get("error") != "unmet_authentication_requirements" {
		t.Errorf("essential unknown acr: %v, want unmet_authentication_requirements", q)
	}
	// Voluntary: the request goes through with what there is.
	p = b.get(conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("acr_values", "urn:example:loa:4")))
	if q := p.redirect(t); q.Get("code") == "" {
		t.Errorf("voluntary unknown acr_values: %v, want a code", q)
	}
}

func testSelectAccount(t *testing.T, e *env) {
	sub, pw := e.user("selacct")
	otherSub, otherPW := e.user("selother")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	b := e.browser()
	e.codeFlow(b, conf, "selacct", pw)

	authURL := func() string {
		return conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	// The login page names the current account and offers to keep it.
	p := b.get(authURL())
	if p.url.Path != "/login" || !strings.Contains(p.body, "selacct") || !strings.Contains(p.body, "Use another account") {
		t.Fatalf("prompt=select_account: %d at %s, want the login page naming selacct:\n%s", p.status, p.url, p.body)
	}
	fs := forms(t, p)
	if len(fs) != 2 {
		t.Fatalf("want the continue form and the login form, got %d forms", len(fs))
	}
	q := b.submit(fs[0], nil, "account=current").redirect(t)
	if q.Get("code") == "" {
		t.Fatalf("continue as the current account: %v", q)
	}

	// Or sign in as someone else.
	p = b.get(authURL())
	fs = forms(t, p)
	np := b.submit(fs[1], map[string]string{"username": "selother", "password": otherPW}, "")
	if np.url.Path == "/consent" {
		np = b.consent(np, "allow")
	}
	got := np.redirect(t)
	if got.Get("code") == "" {
		t.Fatalf("another account: %v", got)
	}
	if sub == otherSub {
		t.Fatal("two users with one ID")
	}
}

func testPromptNoneCombined(t *testing.T, e *env) {
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	p := e.browser().get(conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none login")))
	if q := p.redirect(t); q.Get("error") != "invalid_request" {
		t.Errorf("prompt=none login: %v, want invalid_request", q)
	}
}

func testLoginHintUILocales(t *testing.T, e *env) {
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	p := e.browser().get(conf.AuthCodeURL("state-long-enough", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("login_hint", "hinted@example.com"), oauth2.SetAuthURLParam("ui_locales", "fr-CA en")))
	if p.url.Path != "/login" {
		t.Fatalf("landed on %s", p.url)
	}
	if f := onlyForm(t, p); f.values.Get("username") != "hinted@example.com" {
		t.Errorf("username prefilled with %q, want the login_hint", f.values.Get("username"))
	}
	// English is the one supported locale: the page says so.
	if !strings.Contains(p.body, `<html lang="en">`) {
		t.Error(`the page's lang is not "en"`)
	}
}

func testIDTokenHintOtherSubject(t *testing.T, e *env) {
	_, pwA := e.user("hinta")
	_, pwB := e.user("hintb")
	md := e.client(webClient())
	conf := e.rp(md, "openid")
	tokB, _ := e.codeFlow(e.browser(), conf, "hintb", pwB)
	hintB, _ := tokB.Extra("id_token").(string)

	b := e.browser()
	e.codeFlow(b, conf, "hinta", pwA)
	hinted := func(prompt string) page {
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("id_token_hint", hintB)}
		if prompt != "" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
		}
		return b.get(conf.AuthCodeURL("state-long-enough", opts...))
	}
	if q := hinted("none").redirect(t); q.Get("error") != "login_required" {
		t.Errorf("prompt=none with another subject's id_token_hint: %v, want login_required", q)
	}
	if p := hinted(""); p.url.Path != "/login" {
		t.Errorf("another subject's id_token_hint: landed on %s, want the login page", p.url)
	}
}

func testImplicitOff(t *testing.T, e *env) {
	md := e.client(webClient())
	for _, rt := range []string{"token", "id_token"} {
		u := e.issuer + "/oauth2/authorize?" + url.Values{
			"response_type": {rt}, "client_id": {md.ClientID}, "redirect_uri": {rpRedirect},
			"scope": {"openid"}, "state": {"state-long-enough"}, "nonce": {"n"},
		}.Encode()
		p := e.browser().get(u)
		loc, _ := url.Parse(p.header.Get("Location"))
		vals := loc.Query()
		if loc.Fragment != "" {
			vals, _ = url.ParseQuery(loc.Fragment)
		}
		if vals.Get("error") != "unsupported_response_type" {
			t.Errorf("response_type=%s with implicit off: %d %s, want unsupported_response_type (RFC 9700 §2.1.2)", rt, p.status, loc)
		}
	}
}

func testNoRefreshWithoutOfflineAccess(t *testing.T, e *env) {
	_, pw := e.user("nooffline")
	md := e.client(webClient())
	tok, _ := e.codeFlow(e.browser(), e.rp(md, "openid", "email"), "nooffline", pw)
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access (OIDC Core §11)")
	}
}

// TestProtocolPolicyConfig runs with the oauth.* switches on: implicit and
// hybrid response types, PKCE for public clients only, and a client that
// gets refresh tokens without offline_access.
func TestProtocolPolicyConfig_RFC9700_2_1(t *testing.T) {
	stores := backends[0].open(t)
	e := start(t, stores, func(c *config.Config) {
		c.OAuth.ImplicitEnabled = true
		c.OAuth.HybridEnabled = true
		c.OAuth.PKCE = config.PKCEPublicClients
		c.OAuth.RefreshWithoutOfflineAccess = []string{"refresh-app"}
	})
	md := e.metadata("/.well-known/openid-configuration")
	rts, _ := json.Marshal(md["response_types_supported"])
	modes, _ := json.Marshal(md["response_modes_supported"])
	for _, want := range []string{`"id_token"`, `"id_token token"`, `"code id_token"`} {
		if !strings.Contains(string(rts), want) {
			t.Errorf("response_types_supported %s lacks %s", rts, want)
		}
	}
	if !strings.Contains(string(modes), `"fragment"`) {
		t.Errorf("response_modes_supported %s lacks fragment", modes)
	}

	_, pw := e.user("policy")
	// OIDC Core §3.2: an implicit id_token flow, verified with go-oidc.
	// server/clients registers no implicit client (RFC 9700 §2.1.2), so
	// the operator's record is written to storage directly.
	implicit := e.client(clients.Metadata{Scope: "openid email", TokenEndpointAuthMethod: "none"})
	if _, err := stores.Durable.UpdateClient(context.Background(), implicit.ClientID, func(c storage.Client) (storage.Client, error) {
		c.GrantTypes = append(c.GrantTypes, "implicit")
		c.ResponseTypes = append(c.ResponseTypes, "id_token")
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	u := e.issuer + "/oauth2/authorize?" + url.Values{
		"response_type": {"id_token"}, "client_id": {implicit.ClientID}, "redirect_uri": {rpRedirect},
		"scope": {"openid email"}, "state": {"state-long-enough"}, "nonce": {"nonce-123456"},
	}.Encode()
	p := b.get(u)
	if p.url.Path == "/login" {
		p = b.login(p, "policy", pw)
	}
	if p.url.Path == "/consent" {
		p = b.consent(p, "allow")
	}
	loc, err := url.Parse(p.header.Get("Location"))
	if err != nil || loc.Fragment == "" {
		t.Fatalf("implicit response: %d %s, want a fragment (OIDC Core §3.2.2.5)", p.status, p.header.Get("Location"))
	}
	frag, _ := url.ParseQuery(loc.Fragment)
	idt, err := e.verifier(implicit.ClientID).Verify(context.Background(), frag.Get("id_token"))
	if err != nil {
		t.Fatalf("verifying the implicit ID token: %v (%v)", err, frag)
	}
	c := idClaims(t, idt)
	if idt.Nonce != "nonce-123456" || c["email"] != "policy@example.com" || frag.Get("state") != "state-long-enough" {
		t.Errorf("implicit ID token %v state %q: want the nonce and, with no access token, the email scope's claims (OIDC Core §5.4)", c, frag.Get("state"))
	}

	// PKCE only for public clients: a confidential client may go without.
	conf := e.rp(e.client(webClient()), "openid")
	q := b.signIn(conf.AuthCodeURL("state-long-enough"), "policy", pw)
	if _, err := conf.Exchange(context.Background(), q.Get("code")); err != nil {
		t.Errorf("confidential client without PKCE under oauth.pkce=public_clients: %v", err)
	}

	// The listed client gets a refresh token without offline_access.
	rmd := webClient()
	rmd.RedirectURIs, rmd.ClientName = []string{rpRedirect}, "Refresh RP"
	rmd, err = e.app.Clients.Create(context.Background(), rmd, clients.CreateOptions{Trusted: true, ClientID: "refresh-app"})
	if err != nil {
		t.Fatal(err)
	}
	rconf := e.rp(rmd, "openid")
	tok, _ := e.codeFlow(b, rconf, "policy", pw)
	if tok.RefreshToken == "" {
		t.Fatal("oauth.refresh_without_offline_access client got no refresh token")
	}
	if _, err := refresh(rconf, tok.RefreshToken); err != nil {
		t.Errorf("refreshing without offline_access: %v", err)
	}
}
