package registration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

const issuer = "https://login.example.com"

// The Ed25519 key of RFC 8037 Appendix A.1/A.2.
const (
	publicJWK  = `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	privateJWK = `{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
)

// backend is one durable store that also holds grants (both test backends do).
type backend interface {
	storage.Durable
	storage.RequestStore
}

// eachBackend runs f on storage/memory and on SQLite.
func eachBackend(t *testing.T, f func(t *testing.T, store backend)) {
	t.Run("memory", func(t *testing.T) {
		st := memory.New()
		t.Cleanup(func() { st.Close() })
		f(t, st)
	})
	t.Run("sqlite", func(t *testing.T) { f(t, sqltest.NewSQLite(t)) })
}

type env struct {
	t       *testing.T
	h       *Handler
	srv     *httptest.Server
	clients *clients.Service
	store   backend
	now     atomic.Pointer[time.Time]
}

func newEnv(t *testing.T, store backend, policy Policy, tune func(*Config)) *env {
	t.Helper()
	ring, err := secrets.NewKeyring([]byte(strings.Repeat("r", 40)))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clients: clients.New(store, ring, nil)}
	now := time.Now()
	e.now.Store(&now)
	cfg := Config{
		Issuer: issuer, Clients: e.clients, Store: store, Ring: ring, Policy: policy,
		SigningAlgs: []string{"RS256", "ES256"}, Grants: store,
		Now: func() time.Time { return *e.now.Load() },
	}
	if tune != nil {
		tune(&cfg)
	}
	e.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The route lines server/routes.go is to get.
	r := mux.NewRouter()
	r.HandleFunc(Path, e.h.Register).Methods(http.MethodPost)
	r.HandleFunc(ClientPath, e.h.Read).Methods(http.MethodGet)
	r.HandleFunc(ClientPath, e.h.Update).Methods(http.MethodPut)
	r.HandleFunc(ClientPath, e.h.Delete).Methods(http.MethodDelete)
	e.srv = httptest.NewServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) advance(d time.Duration) {
	n := e.now.Load().Add(d)
	e.now.Store(&n)
}

type reply struct {
	status int
	header http.Header
	body   []byte
	info   clientInformation
	err    respond.ErrorBody
}

// do sends a request; uri may be a registration_client_uri (on the issuer).
func (e *env) do(method, uri, token, contentType, body string) reply {
	e.t.Helper()
	path := strings.TrimPrefix(uri, issuer)
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	rp := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &rp.info); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, b)
		}
		json.Unmarshal(b, &rp.err)
	}
	if resp.StatusCode >= 500 {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, cc)
	}
	return rp
}

func (e *env) register(token, body string) reply {
	e.t.Helper()
	return e.do(http.MethodPost, Path, token, "application/json", body)
}

// mustRegister registers and checks the RFC 7591 §3.2.1 response.
func (e *env) mustRegister(token, body string) clientInformation {
	e.t.Helper()
	r := e.register(token, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("register: %d %s", r.status, r.body)
	}
	in := r.info
	if in.ClientID == "" || in.RegistrationAccessToken == "" || in.RegistrationClientURI != issuer+Path+"/"+in.ClientID ||
		r.header.Get("Location") != in.RegistrationClientURI || in.ClientIDIssuedAt == 0 {
		e.t.Fatalf("register response: %s", r.body)
	}
	return in
}

func (e *env) wantError(r reply, status int, code, desc string) {
	e.t.Helper()
	if r.status != status || r.err.Error != code || !strings.Contains(r.err.ErrorDescription, desc) {
		e.t.Errorf("got %d %s, want %d %s mentioning %q", r.status, r.body, status, code, desc)
	}
}

const webClient = `{"redirect_uris":["https://app.example/cb"],"client_name":"App","grant_types":["authorization_code","refresh_token"],"scope":"openid profile offline_access"}`

// RFC 7591 §3.1, §3.2.1: every metadata field is stored and returned;
// unknown fields are ignored (§2).
func TestOpenPolicyRegistersWithEveryField(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, PolicyOpen, nil)
		req := `{
			"redirect_uris": ["https://app.example/cb", "http://127.0.0.1:8123/cb"],
			"token_endpoint_auth_method": "private_key_jwt",
			"token_endpoint_auth_signing_alg": "ES256",
			"grant_types": ["authorization_code", "refresh_token"],
			"response_types": ["code"],
			"client_name": "App", "client_uri": "https://app.example", "logo_uri": "https://app.example/logo.png",
			"scope": "openid email", "contacts": ["ops@app.example"],
			"tos_uri": "https://app.example/tos", "policy_uri": "https://app.example/privacy",
			"jwks": {"keys": [` + publicJWK + `]},
			"software_id": "app", "software_version": "1.2",
			"application_type": "web", "subject_type": "public",
			"id_token_signed_response_alg": "ES256", "userinfo_signed_response_alg": "RS256",
			"request_object_signing_alg": "PS256",
			"default_max_age": 3600, "require_auth_time": true,
			"post_logout_redirect_uris": ["https://app.example/bye"],
			"backchannel_logout_uri": "https://app.example/bc", "backchannel_logout_session_required": true,
			"frontchannel_logout_uri": "https://app.example/fc",
			"client_id": "chosen-by-client", "client_secret": "chosen-too",
			"x_unknown_extension": {"nested": [1, 2]}
		}`
		in := e.mustRegister("", req)
		if in.ClientID == "chosen-by-client" || in.ClientSecret != "" || in.ClientSecretExpiresAt != nil {
			t.Errorf("issued fields came from the request: %+v", in.Metadata)
		}
		var want clients.Metadata
		json.Unmarshal([]byte(req), &want)
		want.ClientID, want.ClientSecret, want.ClientIDIssuedAt = in.ClientID, "", in.ClientIDIssuedAt
		gotJSON, _ := json.Marshal(in.Metadata)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("registered metadata:\n got %s\nwant %s", gotJSON, wantJSON)
		}
		if bytes.Contains(e.do(http.MethodGet, in.RegistrationClientURI, in.RegistrationAccessToken, "", "").body, []byte("x_unknown")) {
			t.Error("unknown field stored")
		}

		// RFC 7592 §2.1: read returns the same.
		r := e.do(http.MethodGet, in.RegistrationClientURI, in.RegistrationAccessToken, "", "")
		readJSON, _ := json.Marshal(r.info.Metadata)
		if r.status != http.StatusOK || !bytes.Equal(readJSON, wantJSON) || r.info.RegistrationAccessToken != in.RegistrationAccessToken ||
			r.info.RegistrationClientURI != in.RegistrationClientURI {
			t.Errorf("read: %d %s", r.status, r.body)
		}

		// A confidential client gets its secret, with client_secret_expires_at 0 (RFC 7591 §3.2.1).
		conf := e.mustRegister("", webClient)
		if len(conf.ClientSecret) != 43 || conf.ClientSecretExpiresAt == nil || *conf.ClientSecretExpiresAt != 0 ||
			conf.TokenEndpointAuthMethod != "client_secret_basic" {
			t.Errorf("confidential client: %+v", conf.Metadata)
		}
		c, err := e.clients.Get(context.Background(), conf.ClientID)
		if err != nil || !e.clients.VerifySecret(c, conf.ClientSecret) || c.FirstParty {
			t.Errorf("stored client: %+v %v", c, err)
		}
		if bytes.Contains(e.do(http.MethodGet, conf.RegistrationClientURI, conf.RegistrationAccessToken, "", "").body, []byte(conf.ClientSecret)) {
			t.Error("read shows the secret")
		}
	})
}

// client_secret_jwt clients get a secret the server can use to check their
// HMAC assertions (RFC 7523 §3).
func TestRegisterClientSecretJWT(t *testing.T) {
	e := newEnv(t, memory.New(), PolicyOpen, nil)
	in := e.mustRegister("", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS256"}`)
	c, _ := e.clients.Get(context.Background(), in.ClientID)
	if got, err := e.clients.SharedSecret(c); err != nil || string(got) != in.ClientSecret || in.ClientSecret == "" {
		t.Errorf("sealed secret: %q %v", got, err)
	}
}

// RFC 7591 §3: an initial access token, as a bearer token, gates registration.
func TestInitialAccessTokenPolicy(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, PolicyInitialAccessToken, nil)
		ctx := context.Background()
		tokens := e.h.Tokens()

		r := e.register("", webClient)
		e.wantError(r, http.StatusUnauthorized, "invalid_token", "initial access token is required")
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || strings.Contains(ch, "error=") {
			t.Errorf("RFC 6750 §3.1: no token, no error code: %q", ch)
		}
		r = e.register("not-a-token", webClient)
		e.wantError(r, http.StatusUnauthorized, "invalid_token", "unknown, expired or used up")
		if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
			t.Errorf("bad token challenge: %q", ch)
		}

		single, _, err := tokens.CreateToken(ctx, TokenOptions{Uses: 1, ExpiresIn: time.Hour, Description: "one"})
		if err != nil {
			t.Fatal(err)
		}
		// Bad metadata does not spend the token.
		e.wantError(e.register(single, `{"redirect_uris":["http://app.example/cb"]}`), http.StatusBadRequest, "invalid_redirect_uri", "use https")
		e.mustRegister(single, webClient)
		e.wantError(e.register(single, webClient), http.StatusUnauthorized, "invalid_token", "used up")

		multi, _, _ := tokens.CreateToken(ctx, TokenOptions{Uses: 3})
		for range 3 {
			e.mustRegister(multi, webClient)
		}
		e.wantError(e.register(multi, webClient), http.StatusUnauthorized, "invalid_token", "used up")
		list, err := tokens.ListTokens(ctx)
		if err != nil || len(list) != 2 || list[0].UsesLeft != 0 || list[1].UsesLeft != 0 {
			t.Errorf("used up tokens stay listed: %+v %v", list, err)
		}

		unlimited, _, _ := tokens.CreateToken(ctx, TokenOptions{Uses: storage.UnlimitedUses})
		for range 4 {
			e.mustRegister(unlimited, webClient)
		}

		// Issued an hour and a half ago with a one-hour lifetime: expired.
		e.advance(-90 * time.Minute)
		expired, _, _ := tokens.CreateToken(ctx, TokenOptions{Uses: 5, ExpiresIn: time.Hour})
		e.advance(90 * time.Minute)
		e.wantError(e.register(expired, webClient), http.StatusUnauthorized, "invalid_token", "expired")

		deleted, rec, _ := tokens.CreateToken(ctx, TokenOptions{Uses: 5})
		if err := tokens.DeleteToken(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		e.wantError(e.register(deleted, webClient), http.StatusUnauthorized, "invalid_token", "unknown")
	})
}

// RFC 7591 §3 with a token of N uses: of concurrent registrations exactly N succeed.
func TestSingleUseTokenUnderConcurrency(t *testing.T) {
	e := newEnv(t, sqltest.NewSQLite(t), PolicyInitialAccessToken, nil)
	token, _, err := e.h.Tokens().CreateToken(context.Background(), TokenOptions{Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var created, refused atomic.Int32
	for range 6 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+Path, strings.NewReader(webClient))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusUnauthorized:
				refused.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if created.Load() != 2 || refused.Load() != 4 {
		t.Errorf("created %d, refused %d; want 2 and 4", created.Load(), refused.Load())
	}
}

func TestDisabledPolicy(t *testing.T) {
	e := newEnv(t, memory.New(), PolicyDisabled, nil)
	e.wantError(e.register("", webClient), http.StatusForbidden, "access_denied", "disabled")
	e.wantError(e.do(http.MethodGet, Path+"/x", "tok", "", ""), http.StatusForbidden, "access_denied", "disabled")
	if e.h.Endpoint() != "" {
		t.Errorf("disabled registration advertises %q", e.h.Endpoint())
	}
	if open := newEnv(t, memory.New(), PolicyOpen, nil); open.h.Endpoint() != issuer+"/oauth2/register" {
		t.Errorf("Endpoint = %q", open.h.Endpoint())
	}
}

// RFC 7591 §3.2.2: a bad request is a 400 with an error code, never a 500.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, memory.New(), PolicyOpen, func(c *Config) { c.MaxBodyBytes = 4096 })
	big := `{"client_name":"` + strings.Repeat("a", 5000) + `"}`
	for _, tc := range []struct {
		name, contentType, body, code, desc string
	}{
		{"form body", "application/x-www-form-urlencoded", "redirect_uris=https://a.example/cb", "invalid_client_metadata", "Content-Type: application/json"},
		{"no content type", "", webClient, "invalid_client_metadata", "Content-Type: application/json"},
		{"too large", "application/json", big, "invalid_client_metadata", "request body too large: at most 4096 bytes"},
		{"not JSON", "application/json", "{redirect_uris:", "invalid_client_metadata", "not valid JSON"},
		{"array", "application/json", `[` + webClient + `]`, "invalid_client_metadata", "must be a JSON object"},
		{"null", "application/json", `null`, "invalid_client_metadata", "must be a JSON object"},
		{"trailing data", "application/json", webClient + `{}`, "invalid_client_metadata", "not valid JSON"},
		{"string for array", "application/json", `{"redirect_uris":"https://a.example/cb"}`, "invalid_client_metadata", "redirect_uris must be an array of strings, not a JSON string"},
		{"number for string", "application/json", `{"client_name":5,"redirect_uris":["https://a.example/cb"]}`, "invalid_client_metadata", "client_name must be a string, not a JSON number"},
		{"string for bool", "application/json", `{"require_auth_time":"yes"}`, "invalid_client_metadata", "require_auth_time must be a boolean"},
		{"fraction for integer", "application/json", `{"default_max_age":1.5}`, "invalid_client_metadata", "default_max_age must be an integer"},
		{"javascript", "application/json", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri", "javascript"},
		{"data", "application/json", `{"redirect_uris":["data:text/html,hi"]}`, "invalid_redirect_uri", "data"},
		{"fragment", "application/json", `{"redirect_uris":["https://a.example/cb#frag"]}`, "invalid_redirect_uri", "fragment"},
		{"wildcard", "application/json", `{"redirect_uris":["https://*.a.example/cb"]}`, "invalid_redirect_uri", "wildcard"},
		{"relative", "application/json", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri", "absolute"},
		{"http non-loopback", "application/json", `{"redirect_uris":["http://a.example/cb"]}`, "invalid_redirect_uri", "use https"},
		{"private scheme on web", "application/json", `{"redirect_uris":["com.example.app:/cb"]}`, "invalid_redirect_uri", "native"},
		{"no redirect", "application/json", `{}`, "invalid_redirect_uri", "required"},
		{"grant/response mismatch", "application/json", `{"grant_types":["client_credentials"],"response_types":["code"]}`, "invalid_client_metadata", "RFC 7591 §2.1"},
		{"implicit", "application/json", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "invalid_client_metadata", "response_types"},
		{"jwks and jwks_uri", "application/json", `{"redirect_uris":["https://a.example/cb"],"jwks_uri":"https://a.example/jwks","jwks":{"keys":[` + publicJWK + `]}}`, "invalid_client_metadata", "must not both"},
		{"private jwk", "application/json", `{"redirect_uris":["https://a.example/cb"],"jwks":{"keys":[` + privateJWK + `]}}`, "invalid_client_metadata", "private"},
		{"jwks not a set", "application/json", `{"redirect_uris":["https://a.example/cb"],"jwks":"keys"}`, "invalid_client_metadata", "JSON Web Key Set"},
		{"unknown auth method", "application/json", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`, "invalid_client_metadata", "token_endpoint_auth_method"},
		{"alg without keys", "application/json", `{"redirect_uris":["https://a.example/cb"],"id_token_signed_response_alg":"EdDSA"}`, "invalid_client_metadata", "signs with RS256, ES256 only"},
		{"userinfo alg none", "application/json", `{"redirect_uris":["https://a.example/cb"],"userinfo_signed_response_alg":"none"}`, "invalid_client_metadata", "userinfo_signed_response_alg"},
		{"logo javascript", "application/json", `{"redirect_uris":["https://a.example/cb"],"logo_uri":"javascript:x"}`, "invalid_client_metadata", "logo_uri"},
		{"policy field", "application/json", `{"redirect_uris":["https://a.example/cb"],"first_party":true}`, "invalid_client_metadata", "administrator"},
		{"negative max age", "application/json", `{"redirect_uris":["https://a.example/cb"],"default_max_age":-1}`, "invalid_client_metadata", "default_max_age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.wantError(e.do(http.MethodPost, Path, "", tc.contentType, tc.body), http.StatusBadRequest, tc.code, tc.desc)
		})
	}
	e.t = t
	// A charset parameter is fine.
	if r := e.do(http.MethodPost, Path, "", "application/json; charset=utf-8", webClient); r.status != http.StatusCreated {
		t.Errorf("charset: %d %s", r.status, r.body)
	}
	// Everything stored is what was valid: nothing of the refused requests.
	cs, _ := e.clients.List(context.Background(), storage.Page{})
	if len(cs) != 1 {
		t.Errorf("%d clients stored, want 1", len(cs))
	}
}

// RFC 7592 §2: the client configuration endpoint, with the registration
// access token.
func TestManagement(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, PolicyOpen, func(c *Config) { c.SecretRotationOverlap = time.Hour })
		ctx := context.Background()
		a := e.mustRegister("", webClient)
		b := e.mustRegister("", webClient)

		// A wrong token, another client's token and a missing client get the same answer.
		wrong := e.do(http.MethodGet, a.RegistrationClientURI, "wrong", "", "")
		e.wantError(wrong, http.StatusUnauthorized, "invalid_token", "not valid for this client")
		other := e.do(http.MethodGet, a.RegistrationClientURI, b.RegistrationAccessToken, "", "")
		missing := e.do(http.MethodGet, issuer+Path+"/no-such-client", a.RegistrationAccessToken, "", "")
		if other.err != wrong.err || missing.err != wrong.err || other.status != 401 || missing.status != 401 ||
			missing.header.Get("WWW-Authenticate") != wrong.header.Get("WWW-Authenticate") {
			t.Errorf("answers tell clients apart:\n%s\n%s\n%s", wrong.body, other.body, missing.body)
		}
		e.wantError(e.do(http.MethodGet, a.RegistrationClientURI, "", "", ""), http.StatusUnauthorized, "invalid_token", "required")
		// A client made by the CLI has no registration access token at all.
		cli, err := e.clients.Create(ctx, clients.Metadata{GrantTypes: []string{"client_credentials"}}, clients.CreateOptions{Trusted: true})
		if err != nil {
			t.Fatal(err)
		}
		e.wantError(e.do(http.MethodGet, e.h.ClientURI(cli.ClientID), a.RegistrationAccessToken, "", ""), http.StatusUnauthorized, "invalid_token", "not valid")

		// Update: a full replacement (RFC 7592 §2.2), echoing the read metadata.
		read := e.do(http.MethodGet, a.RegistrationClientURI, a.RegistrationAccessToken, "", "").info
		read.ClientName = "Renamed"
		read.Scope = ""
		read.RedirectURIs = []string{"https://app.example/cb2"}
		body, _ := json.Marshal(read) // carries registration_access_token and _uri: ignored
		r := e.do(http.MethodPut, a.RegistrationClientURI, a.RegistrationAccessToken, "application/json", string(body))
		if r.status != http.StatusOK || r.info.ClientName != "Renamed" || r.info.Scope != "" || r.info.RedirectURIs[0] != "https://app.example/cb2" ||
			r.info.ClientSecret != "" || r.info.RegistrationAccessToken != a.RegistrationAccessToken || r.info.ClientIDIssuedAt != a.ClientIDIssuedAt {
			t.Errorf("update: %d %s", r.status, r.body)
		}
		e.wantError(e.do(http.MethodPut, a.RegistrationClientURI, "wrong", "application/json", string(body)), http.StatusUnauthorized, "invalid_token", "")
		e.wantError(e.do(http.MethodPut, b.RegistrationClientURI, b.RegistrationAccessToken, "application/json", string(body)),
			http.StatusBadRequest, "invalid_client_metadata", "client_id")
		e.wantError(e.do(http.MethodPut, a.RegistrationClientURI, a.RegistrationAccessToken, "application/json", `{"redirect_uris":["https://app.example/cb"]}`),
			http.StatusBadRequest, "invalid_client_metadata", "client_id is required")
		e.wantError(e.do(http.MethodPut, a.RegistrationClientURI, a.RegistrationAccessToken, "application/json",
			`{"client_id":"`+a.ClientID+`","client_secret":"mine","redirect_uris":["https://app.example/cb"]}`), http.StatusBadRequest, "invalid_client_metadata", "client_secret does not match")
		e.wantError(e.do(http.MethodPut, a.RegistrationClientURI, a.RegistrationAccessToken, "application/json",
			`{"client_id":"`+a.ClientID+`","redirect_uris":["javascript:x"]}`), http.StatusBadRequest, "invalid_redirect_uri", "javascript")
		// The current secret may be sent back.
		if r := e.do(http.MethodPut, a.RegistrationClientURI, a.RegistrationAccessToken, "application/json",
			`{"client_id":"`+a.ClientID+`","client_secret":"`+a.ClientSecret+`","redirect_uris":["https://app.example/cb"]}`); r.status != http.StatusOK {
			t.Errorf("update with the current secret: %d %s", r.status, r.body)
		}

		// Rotation on request, with the configured overlap.
		r = e.do(http.MethodPut, a.RegistrationClientURI+"?rotate_secret=true", a.RegistrationAccessToken, "application/json",
			`{"client_id":"`+a.ClientID+`","redirect_uris":["https://app.example/cb"]}`)
		c, _ := e.clients.Get(ctx, a.ClientID)
		if r.status != http.StatusOK || len(r.info.ClientSecret) != 43 || r.info.ClientSecret == a.ClientSecret ||
			!e.clients.VerifySecret(c, r.info.ClientSecret) || !e.clients.VerifySecret(c, a.ClientSecret) {
			t.Errorf("rotation: %d %s", r.status, r.body)
		}
		e.wantError(e.do(http.MethodPut, a.RegistrationClientURI+"?rotate_secret=maybe", a.RegistrationAccessToken, "application/json",
			`{"client_id":"`+a.ClientID+`","redirect_uris":["https://app.example/cb"]}`), http.StatusBadRequest, "invalid_request", "rotate_secret")

		// Delete (RFC 7592 §2.3): 204, then the token, client and grants are gone.
		if err := e.store.CreateRequest(ctx, storage.Request{Kind: storage.KindAccessToken, Signature: "sig-a", RequestID: "grant-a",
			ClientID: a.ClientID, Subject: "alice", Active: true, RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().UTC().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		e.wantError(e.do(http.MethodDelete, a.RegistrationClientURI, b.RegistrationAccessToken, "", ""), http.StatusUnauthorized, "invalid_token", "")
		if r := e.do(http.MethodDelete, a.RegistrationClientURI, a.RegistrationAccessToken, "", ""); r.status != http.StatusNoContent {
			t.Errorf("delete: %d %s", r.status, r.body)
		}
		e.wantError(e.do(http.MethodGet, a.RegistrationClientURI, a.RegistrationAccessToken, "", ""), http.StatusUnauthorized, "invalid_token", "")
		if _, err := e.clients.Get(ctx, a.ClientID); err == nil {
			t.Error("client still stored")
		}
		if _, err := e.store.GetRequest(ctx, storage.KindAccessToken, "sig-a"); err == nil {
			t.Error("deleted client's grant kept")
		}
		if r := e.do(http.MethodGet, b.RegistrationClientURI, b.RegistrationAccessToken, "", ""); r.status != http.StatusOK {
			t.Errorf("the other client: %d", r.status)
		}
	})
}

func TestRegistrationAccessTokenLifetime(t *testing.T) {
	e := newEnv(t, memory.New(), PolicyOpen, func(c *Config) { c.AccessTokenLifetime = time.Hour })
	in := e.mustRegister("", webClient)
	if r := e.do(http.MethodGet, in.RegistrationClientURI, in.RegistrationAccessToken, "", ""); r.status != http.StatusOK {
		t.Fatalf("fresh token: %d", r.status)
	}
	// The expiry rides in the token under the MAC: changing it breaks the token.
	head, _, _ := strings.Cut(in.RegistrationAccessToken, ".")
	e.wantError(e.do(http.MethodGet, in.RegistrationClientURI, head+".99999999999", "", ""), http.StatusUnauthorized, "invalid_token", "")
	e.wantError(e.do(http.MethodGet, in.RegistrationClientURI, head, "", ""), http.StatusUnauthorized, "invalid_token", "")
	e.advance(time.Hour + time.Second)
	e.wantError(e.do(http.MethodGet, in.RegistrationClientURI, in.RegistrationAccessToken, "", ""), http.StatusUnauthorized, "invalid_token", "")
}

func TestTokenService(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		ring, _ := secrets.NewKeyring([]byte(strings.Repeat("r", 40)))
		s := NewTokenService(store, ring, nil, nil)
		ctx := context.Background()
		for _, o := range []TokenOptions{{Uses: 0}, {Uses: -2}, {Uses: 1, ExpiresIn: -time.Second},
			{Uses: 1, Description: "a\nb"}, {Uses: 1, Description: strings.Repeat("d", 300)}} {
			if _, _, err := s.CreateToken(ctx, o); err == nil {
				t.Errorf("CreateToken(%+v) accepted", o)
			}
		}
		token, rec, err := s.CreateToken(ctx, TokenOptions{Uses: 2, ExpiresIn: 24 * time.Hour, Description: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != 43 || rec.ID != s.TokenID(token) || len(rec.ID) != 64 || strings.Contains(rec.ID, token) ||
			rec.UsesLeft != 2 || rec.ExpiresAt.Sub(rec.CreatedAt) != 24*time.Hour {
			t.Errorf("token %q record %+v", token, rec)
		}
		list, err := s.ListTokens(ctx)
		if err != nil || len(list) != 1 || list[0].ID != rec.ID || list[0].Description != "ci" {
			t.Errorf("ListTokens: %+v %v", list, err)
		}
		if got, err := s.UseToken(ctx, token); err != nil || got.UsesLeft != 1 {
			t.Errorf("UseToken: %+v %v", got, err)
		}
		if err := s.DeleteToken(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteToken(ctx, rec.ID); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("deleting twice: %v", err)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	ring, _ := secrets.NewKeyring([]byte(strings.Repeat("r", 40)))
	st := memory.New()
	good := Config{Issuer: issuer, Clients: clients.New(st, ring, nil), Store: st, Ring: ring, Policy: PolicyOpen}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Issuer = "" },
		func(c *Config) { c.Clients = nil },
		func(c *Config) { c.Policy = "anyone" },
		func(c *Config) { c.MaxBodyBytes = -1 },
	} {
		c := good
		bad(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
	if _, err := New(good); err != nil {
		t.Error(err)
	}
}
