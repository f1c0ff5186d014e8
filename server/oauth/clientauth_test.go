package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	josev4 "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

const jwtSecret = "jwt-secret-0123456789abcdef0123456789abcdef"

// authEnv is an env whose provider has the client-policy knobs set, with
// clients of every authentication method and a TLS server for jwks_uri and
// request_uri documents.
type authEnv struct {
	*env
	ring   *secrets.Keyring
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	docs   *httptest.Server
	served map[string][]byte // path -> body on docs
}

type authOpts struct {
	allowPrivate bool // clients.allow_private_jwks_uri
	requirePAR   bool // oauth.require_pushed_authorization_requests
}

func newAuthEnv(t *testing.T, st storage.Stores, o authOpts) *authEnv {
	t.Helper()
	ctx := context.Background()
	a := &authEnv{env: &env{t: t, st: st, keys: newTestKeys(t)}, served: map[string][]byte{}}
	var err error
	if a.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if a.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	a.docs = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := a.served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(a.docs.Close)
	ecSet, _ := json.Marshal(josev4.JSONWebKeySet{Keys: []josev4.JSONWebKey{{Key: a.ecKey.Public(), KeyID: "e1", Algorithm: "ES256", Use: "sig"}}})
	a.served["/ec-jwks"] = ecSet
	a.served["/big-jwks"] = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 65<<10) + `"}`)

	mux := http.NewServeMux()
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	a.issuer = a.srv.URL
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if a.ring, err = secrets.NewKeyring(secret); err != nil {
		t.Fatal(err)
	}
	a.p, err = New(Config{
		Issuer: a.issuer, Stores: st, Ring: a.ring, SigningKey: a.keys.SigningKey, PublicKeys: a.keys.PublicKeys,
		Interaction:                        approveInteraction{},
		RequirePushedAuthorizationRequests: o.requirePAR,
		JWKSFetcher: jwksfetch.New(jwksfetch.Config{
			AllowPrivate: o.allowPrivate,
			RootCAs:      a.docs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/oauth2/authorize", a.p.Authorize)
	mux.HandleFunc("/oauth2/token", a.p.Token)
	mux.HandleFunc("/oauth2/revoke", a.p.Revoke)
	mux.HandleFunc("/oauth2/par", a.p.PAR)
	mux.HandleFunc("/.well-known/openid-configuration", a.p.Discovery)
	a.noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	rsaSet, _ := json.Marshal(josev4.JSONWebKeySet{Keys: []josev4.JSONWebKey{{Key: a.rsaKey.Public(), KeyID: "r1"}}})
	sealed, err := a.ring.Seal([]byte(jwtSecret), sealedSecretAAD("secjwt"))
	if err != nil {
		t.Fatal(err)
	}
	cc := func(c storage.Client) storage.Client {
		c.GrantTypes, c.Scopes = []string{"client_credentials"}, []string{"reports.read"}
		return c
	}
	web := func(c storage.Client) storage.Client {
		c.RedirectURIs, c.GrantTypes, c.ResponseTypes = []string{redirectURI}, []string{"authorization_code"}, []string{"code"}
		c.Scopes = []string{"openid", "profile"}
		return c
	}
	now := time.Now().UTC()
	for _, c := range []storage.Client{
		cc(storage.Client{ID: "pk-rsa", TokenEndpointAuthMethod: "private_key_jwt", JWKS: rsaSet}),
		cc(storage.Client{ID: "pk-ec", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: a.docs.URL + "/ec-jwks"}),
		cc(storage.Client{ID: "pk-big", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: a.docs.URL + "/big-jwks"}),
		cc(storage.Client{ID: "secjwt", TokenEndpointAuthMethod: "client_secret_jwt", SecretHash: HashClientSecret(a.ring, jwtSecret), SecretSealed: sealed}),
		cc(storage.Client{ID: "basic", SecretHash: HashClientSecret(a.ring, svcSecret)}),
		cc(storage.Client{ID: "post", TokenEndpointAuthMethod: "client_secret_post", SecretHash: HashClientSecret(a.ring, svcSecret)}),
		web(storage.Client{ID: "ro", SecretHash: HashClientSecret(a.ring, webSecret), JWKS: rsaSet,
			RequestURIs: []string{a.docs.URL + "/ro.jwt"}}),
		web(storage.Client{ID: "web", SecretHash: HashClientSecret(a.ring, webSecret)}),
		web(storage.Client{ID: "parreq", SecretHash: HashClientSecret(a.ring, webSecret), RequirePushedAuthorizationRequests: true}),
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := st.Durable.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// sign returns a compact JWS of claims.
func sign(t *testing.T, alg string, key any, kid string, claims any) string {
	t.Helper()
	sk := josev4.SigningKey{Algorithm: josev4.SignatureAlgorithm(alg), Key: key}
	if kid != "" {
		sk.Key = josev4.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := josev4.NewSigner(sk, (&josev4.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (a *authEnv) assertionClaims(clientID string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": a.issuer + "/oauth2/token",
		"exp": now.Add(2 * time.Minute).Unix(), "iat": now.Unix(), "jti": randomJTI(),
	}
}

func randomJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// clientCredentials asks the token endpoint for a token with a client
// assertion and returns the status, body and headers.
func (a *authEnv) clientCredentials(assertion string, extra url.Values) (int, map[string]any, http.Header) {
	form := url.Values{
		"grant_type": {"client_credentials"}, "scope": {"reports.read"},
		"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion},
	}
	for k, v := range extra {
		form[k] = v
	}
	return a.postForm("/oauth2/token", form, "", "")
}

func wantInvalidClient(t *testing.T, status int, body map[string]any, h http.Header) {
	t.Helper()
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("got %d %v, want 401 invalid_client", status, body)
	}
	if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no Basic challenge (RFC 6749 §5.2): %q", h.Get("WWW-Authenticate"))
	}
}

// TestPrivateKeyJWT_RFC7523 authenticates with RSA keys registered as jwks
// (through x/oauth2) and EC keys at a jwks_uri, and refuses a replayed
// assertion (RFC 7523 §3 item 7), on every backend's replay cache.
func TestPrivateKeyJWT_RFC7523(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		a := newAuthEnv(t, st, authOpts{allowPrivate: true})
		conf := clientcredentials.Config{
			ClientID: "pk-rsa", TokenURL: a.issuer + "/oauth2/token", Scopes: []string{"reports.read"},
			EndpointParams: url.Values{
				"client_assertion_type": {clientAssertionType},
				"client_assertion":      {sign(t, "RS256", a.rsaKey, "r1", a.assertionClaims("pk-rsa"))},
			},
		}
		if tok, err := conf.Token(context.Background()); err != nil || tok.AccessToken == "" {
			t.Fatalf("RS256 private_key_jwt: %v", err)
		}
		// The same assertion again: its jti is spent.
		_, err := conf.Token(context.Background())
		if err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Fatalf("replayed assertion: %v", err)
		}

		assertion := sign(t, "ES256", a.ecKey, "e1", a.assertionClaims("pk-ec"))
		if status, body, _ := a.clientCredentials(assertion, nil); status != http.StatusOK {
			t.Fatalf("ES256 via jwks_uri: %d %v", status, body)
		}
		status, body, h := a.clientCredentials(assertion, nil)
		wantInvalidClient(t, status, body, h)
	})
}

// TestClientSecretJWT_RFC7523 authenticates with an HS256 assertion keyed
// with the client secret (OIDC Core §9), which fosite alone refuses.
func TestClientSecretJWT_RFC7523(t *testing.T) {
	a := newAuthEnv(t, memoryStores(), authOpts{})
	assertion := sign(t, "HS256", []byte(jwtSecret), "", a.assertionClaims("secjwt"))
	if status, body, _ := a.clientCredentials(assertion, nil); status != http.StatusOK {
		t.Fatalf("client_secret_jwt: %d %v", status, body)
	}
	wrong := sign(t, "HS256", []byte(strings.Repeat("w", 40)), "", a.assertionClaims("secjwt"))
	status, body, h := a.clientCredentials(wrong, nil)
	wantInvalidClient(t, status, body, h)
}

// TestAssertionRefused_RFC7523_3 covers the assertion checks of RFC 7523 §3
// and the algorithm rules; every one ends in invalid_client.
func TestAssertionRefused_RFC7523_3(t *testing.T) {
	a := newAuthEnv(t, memoryStores(), authOpts{allowPrivate: true})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(a.rsaKey.Public()))})
	with := func(client string, f func(c map[string]any)) map[string]any {
		c := a.assertionClaims(client)
		f(c)
		return c
	}
	rs := func(c map[string]any) string { return sign(t, "RS256", a.rsaKey, "r1", c) }
	none := func(c map[string]any) string {
		h := `{"alg":"none","typ":"JWT"}`
		b, _ := json.Marshal(c)
		return b64(h) + "." + b64(string(b)) + "."
	}
	now := time.Now()
	for name, assertion := range map[string]string{
		"expired (item 4)":              rs(with("pk-rsa", func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"exp far in the future":         rs(with("pk-rsa", func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() })),
		"no exp (item 4)":               rs(with("pk-rsa", func(c map[string]any) { delete(c, "exp") })),
		"nbf in the future (item 5)":    rs(with("pk-rsa", func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
		"wrong aud (item 3)":            rs(with("pk-rsa", func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" })),
		"wrong iss (item 1)":            rs(with("pk-rsa", func(c map[string]any) { c["iss"] = "pk-ec" })),
		"wrong sub (item 2)":            rs(with("pk-rsa", func(c map[string]any) { c["sub"] = "pk-ec"; c["iss"] = "pk-ec" })),
		"no jti (item 7)":               rs(with("pk-rsa", func(c map[string]any) { delete(c, "jti") })),
		"alg none":                      none(a.assertionClaims("pk-rsa")),
		"HS256 over the public key":     sign(t, "HS256", pubPEM, "r1", a.assertionClaims("pk-rsa")),
		"signed by another key":         sign(t, "RS256", must(rsa.GenerateKey(rand.Reader, 2048)), "r1", a.assertionClaims("pk-rsa")),
		"RS256 for client_secret_jwt":   rs(a.assertionClaims("secjwt")),
		"assertion from a basic client": rs(a.assertionClaims("basic")),
	} {
		t.Run(name, func(t *testing.T) {
			status, body, h := a.clientCredentials(assertion, nil)
			wantInvalidClient(t, status, body, h)
		})
	}
	t.Run("wrong assertion type", func(t *testing.T) {
		status, body, h := a.clientCredentials(rs(a.assertionClaims("pk-rsa")), url.Values{"client_assertion_type": {"urn:example:saml"}})
		wantInvalidClient(t, status, body, h)
	})
	t.Run("client_id differs from sub", func(t *testing.T) {
		status, body, h := a.clientCredentials(rs(a.assertionClaims("pk-rsa")), url.Values{"client_id": {"pk-ec"}})
		wantInvalidClient(t, status, body, h)
	})
	// The issuer itself and the PAR endpoint (where it is called) are
	// audiences too.
	if status, body, _ := a.clientCredentials(rs(with("pk-rsa", func(c map[string]any) { c["aud"] = []string{a.issuer} })), nil); status != http.StatusOK {
		t.Errorf("aud = issuer: %d %v", status, body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestRegisteredMethodOnly_OIDCRegistration2: a client authenticates only
// with its token_endpoint_auth_method, and with one method at a time (RFC
// 6749 §2.3).
func TestRegisteredMethodOnly_OIDCRegistration2(t *testing.T) {
	a := newAuthEnv(t, memoryStores(), authOpts{})
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"reports.read"}}
	post := func(extra url.Values, user, pass string) (int, map[string]any, http.Header) {
		f := url.Values{}
		for k, v := range cc {
			f[k] = v
		}
		for k, v := range extra {
			f[k] = v
		}
		return a.postForm("/oauth2/token", f, user, pass)
	}
	if status, body, _ := post(nil, "basic", svcSecret); status != http.StatusOK {
		t.Fatalf("basic client with Basic: %d %v", status, body)
	}
	if status, body, _ := post(url.Values{"client_id": {"post"}, "client_secret": {svcSecret}}, "", ""); status != http.StatusOK {
		t.Fatalf("post client with the body: %d %v", status, body)
	}
	status, body, h := post(url.Values{"client_id": {"basic"}, "client_secret": {svcSecret}}, "", "")
	wantInvalidClient(t, status, body, h)
	status, body, h = post(nil, "post", svcSecret)
	wantInvalidClient(t, status, body, h)
	status, body, h = post(nil, "pk-rsa", "anything")
	wantInvalidClient(t, status, body, h)
	status, body, h = post(nil, "basic", "wrong")
	wantInvalidClient(t, status, body, h)
	// A confidential client presenting no secret at all.
	status, body, h = post(url.Values{"client_id": {"basic"}}, "", "")
	wantInvalidClient(t, status, body, h)
	// Two methods at once.
	if status, body, _ := post(url.Values{"client_secret": {svcSecret}}, "basic", svcSecret); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("two methods: %d %v", status, body)
	}
}

// TestJWKSURISSRF: a jwks_uri on a loopback address is not fetched unless
// clients.allow_private_jwks_uri is on, and an oversized key set is refused.
func TestJWKSURISSRF(t *testing.T) {
	a := newAuthEnv(t, memoryStores(), authOpts{allowPrivate: false})
	status, body, h := a.clientCredentials(sign(t, "ES256", a.ecKey, "e1", a.assertionClaims("pk-ec")), nil)
	wantInvalidClient(t, status, body, h)

	a = newAuthEnv(t, memoryStores(), authOpts{allowPrivate: true})
	status, body, h = a.clientCredentials(sign(t, "ES256", a.ecKey, "e1", a.assertionClaims("pk-big")), nil)
	wantInvalidClient(t, status, body, h)
}

func TestSealedSecretAADMatchesClients(t *testing.T) {
	if got := string(sealedSecretAAD("c1")); got != "client-secret-jwt:c1" {
		t.Errorf("AAD = %q", got)
	}
}
