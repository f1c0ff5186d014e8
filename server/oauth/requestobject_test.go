package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func (a *authEnv) requestObject(mod func(c map[string]any)) map[string]any {
	c := map[string]any{
		"iss": "ro", "aud": a.issuer, "client_id": "ro", "response_type": "code",
		"redirect_uri": redirectURI, "scope": "openid profile", "state": "state-from-object",
		"nonce": "nonce-from-object", "max_age": 600,
		"exp": time.Now().Add(5 * time.Minute).Unix(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// authorizeWith sends an authorization request with PKCE and returns the
// redirect's parameters (nil when the server answered with an error page).
func (a *authEnv) authorizeWith(params url.Values) (*http.Response, url.Values) {
	a.t.Helper()
	params.Set("code_challenge", oauth2.S256ChallengeFromVerifier("verifier-0123456789-0123456789-0123456789-0123"))
	params.Set("code_challenge_method", "S256")
	return a.authorize(a.issuer + "/oauth2/authorize?" + params.Encode())
}

// TestRequestObject_RFC9101 accepts a signed request object by value and by
// reference and uses its parameters over the outer ones (OIDC Core §6.3.3);
// unsigned, wrongly signed and mis-addressed objects are refused.
func TestRequestObject_RFC9101(t *testing.T) {
	a := newAuthEnv(t, memoryStores(), authOpts{allowPrivate: true})
	outer := func(extra url.Values) url.Values {
		v := url.Values{"client_id": {"ro"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"outer-state-0123"}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	// §5.1 by value; the object's state and scope win over the outer ones.
	obj := sign(t, "RS256", a.rsaKey, "r1", a.requestObject(nil))
	_, q := a.authorizeWith(outer(url.Values{"request": {obj}}))
	if q.Get("code") == "" || q.Get("state") != "state-from-object" {
		t.Fatalf("request by value: %v", q)
	}
	// The parameters reached the interaction.
	var seen AuthorizeRequest
	a.p.cfg.Interaction = InteractionFunc(func(w http.ResponseWriter, r *http.Request, req AuthorizeRequest) (*Decision, error) {
		seen = req
		return aliceDecision(req), nil
	})
	_, q = a.authorizeWith(outer(url.Values{"request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(nil))}}))
	if q.Get("code") == "" || !slices.Contains(seen.Scopes, "profile") || seen.MaxAge != 600 || !seen.HasNonce {
		t.Fatalf("object parameters not used: %+v %v", seen, q)
	}

	// §5.2 by reference, from a registered request_uri.
	a.served["/ro.jwt"] = []byte(sign(t, "RS256", a.rsaKey, "r1", a.requestObject(nil)))
	_, q = a.authorizeWith(outer(url.Values{"request_uri": {a.docs.URL + "/ro.jwt"}}))
	if q.Get("code") == "" || q.Get("state") != "state-from-object" {
		t.Fatalf("request by reference: %v", q)
	}

	other := must(rsa.GenerateKey(rand.Reader, 2048))
	unsigned := func() string {
		b, _ := json.Marshal(a.requestObject(nil))
		return b64(`{"alg":"none"}`) + "." + b64(string(b)) + "."
	}()
	for name, params := range map[string]url.Values{
		"unsigned (alg none)":     outer(url.Values{"request": {unsigned}}),
		"signed by another key":   outer(url.Values{"request": {sign(t, "RS256", other, "r1", a.requestObject(nil))}}),
		"wrong aud (§4)":          outer(url.Values{"request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(func(c map[string]any) { c["aud"] = "https://other.example" }))}}),
		"wrong iss (§4)":          outer(url.Values{"request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(func(c map[string]any) { c["iss"] = "web" }))}}),
		"client_id mismatch §5":   outer(url.Values{"request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(func(c map[string]any) { c["client_id"] = "web" }))}}),
		"expired":                 outer(url.Values{"request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))}}),
		"unregistered uri":        outer(url.Values{"request_uri": {a.docs.URL + "/other.jwt"}}),
		"request and request_uri": outer(url.Values{"request": {obj}, "request_uri": {a.docs.URL + "/ro.jwt"}}),
		"client without keys":     {"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "request": {sign(t, "RS256", a.rsaKey, "r1", a.requestObject(func(c map[string]any) { c["iss"], c["client_id"] = "web", "web" }))}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, q := a.authorizeWith(params)
			if q.Get("code") != "" || resp.StatusCode == http.StatusOK {
				t.Fatalf("accepted: %d %v", resp.StatusCode, q)
			}
		})
	}
}

// TestPARRequired_RFC9126_5: a client registered with
// require_pushed_authorization_requests, or every client when the server
// requires it, is refused at the authorization endpoint unless it pushed the
// request first; a pushed request may carry a request object (RFC 9126 §3).
func TestPARRequired_RFC9126_5(t *testing.T) {
	verifier := oauth2.GenerateVerifier()
	pushed := func(a *authEnv, client string, extra url.Values) url.Values {
		t.Helper()
		form := url.Values{
			"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirectURI}, "scope": {"openid"},
			"state": {"state-0123456789"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		}
		for k, v := range extra {
			form[k] = v
		}
		status, body, _ := a.postForm("/oauth2/par", form, client, webSecret)
		if status != http.StatusCreated {
			t.Fatalf("PAR for %s: %d %v", client, status, body)
		}
		return url.Values{"client_id": {client}, "request_uri": {body["request_uri"].(string)}}
	}
	direct := url.Values{"client_id": {"parreq"}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {"openid"}, "state": {"state-0123456789"}}

	a := newAuthEnv(t, memoryStores(), authOpts{})
	if resp, q := a.authorizeWith(direct); q.Get("code") != "" || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("per-client PAR requirement bypassed: %d %v", resp.StatusCode, q)
	}
	if _, q := a.authorize(a.issuer + "/oauth2/authorize?" + pushed(a, "parreq", nil).Encode()); q.Get("code") == "" {
		t.Fatalf("pushed request refused: %v", q)
	}
	// Other clients may still send requests directly.
	if _, q := a.authorizeWith(url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {"openid"}, "state": {"state-0123456789"}}); q.Get("code") == "" {
		t.Fatalf("direct request of an ordinary client: %v", q)
	}
	// A signed request object pushed by its client.
	obj := sign(t, "RS256", a.rsaKey, "r1", a.requestObject(nil))
	_, q := a.authorize(a.issuer + "/oauth2/authorize?" + pushed(a, "ro", url.Values{"request": {obj}}).Encode())
	if q.Get("code") == "" || q.Get("state") != "state-from-object" {
		t.Fatalf("pushed request object: %v", q)
	}

	a = newAuthEnv(t, memoryStores(), authOpts{requirePAR: true})
	web := url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {"openid"}, "state": {"state-0123456789"}}
	if resp, q := a.authorizeWith(web); q.Get("code") != "" || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("server-wide PAR requirement bypassed: %d %v", resp.StatusCode, q)
	}
	if _, q := a.authorize(a.issuer + "/oauth2/authorize?" + pushed(a, "web", nil).Encode()); q.Get("code") == "" {
		t.Fatalf("pushed request refused: %v", q)
	}
	var meta map[string]any
	resp, err := http.Get(a.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	if meta["require_pushed_authorization_requests"] != true || meta["request_parameter_supported"] != true ||
		len(meta["token_endpoint_auth_methods_supported"].([]any)) != 5 || meta["request_object_signing_alg_values_supported"] == nil {
		t.Errorf("discovery: %v", meta)
	}
}
