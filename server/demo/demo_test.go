package demo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

func testRing(t *testing.T, seed byte) *secrets.Keyring {
	t.Helper()
	s := make([]byte, 32)
	for i := range s {
		s[i] = seed + byte(i)
	}
	ring, err := secrets.NewKeyring(s)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func testPages(t *testing.T) *web.PageSet {
	t.Helper()
	ui, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := NewPages(ui, web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

// noNetwork fails the test on any back-channel call: responses that must be
// refused before the code is redeemed never reach the server.
type noNetwork struct{ t *testing.T }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("unexpected back-channel request to %s", r.URL)
	return nil, errors.New("no network in this test")
}

func testHandler(t *testing.T, issuer string, client *http.Client) *Handler {
	t.Helper()
	if client == nil {
		client = &http.Client{Transport: noNetwork{t}}
	}
	return New(Config{
		Issuer:       issuer,
		ClientSecret: "secret",
		HTTPClient:   client,
		Renderer:     testPages(t),
		Keyring:      testRing(t, 1),
	})
}

// flowCookieFor seals f as Start would and returns the cookie.
func flowCookieFor(t *testing.T, h *Handler, f flowState) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := h.jar.setFlow(rec, f); err != nil {
		t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("got %d cookies, want 1", len(cs))
	}
	return cs[0]
}

func TestCookieSealing(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	jar := cookieJar{ring: testRing(t, 1), secure: true, path: "/demo", now: func() time.Time { return now }}
	want := flowState{State: "state-in-the-clear", Nonce: "nonce-in-the-clear", Verifier: "verifier-in-the-clear"}
	rec := httptest.NewRecorder()
	if err := jar.setFlow(rec, want); err != nil {
		t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/demo" || c.MaxAge <= 0 {
		t.Errorf("cookie attributes: %+v", c)
	}
	for _, secret := range []string{want.State, want.Nonce, want.Verifier} {
		if strings.Contains(c.Value, secret) || strings.Contains(c.Value, base64.RawURLEncoding.EncodeToString([]byte(secret))) {
			t.Errorf("cookie value shows %q in clear", secret)
		}
	}
	req := func(c *http.Cookie) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/demo/callback", nil)
		r.AddCookie(c)
		return r
	}

	got, err := jar.flow(req(c))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if got.State != want.State || got.Nonce != want.Nonce || got.Verifier != want.Verifier {
		t.Errorf("got %+v, want %+v", got, want)
	}

	t.Run("tampered", func(t *testing.T) {
		box, _ := base64.RawURLEncoding.DecodeString(c.Value)
		box[len(box)/2] ^= 1
		bad := *c
		bad.Value = base64.RawURLEncoding.EncodeToString(box)
		if _, err := jar.flow(req(&bad)); !errors.Is(err, errCookie) {
			t.Errorf("tampered cookie: err = %v, want errCookie", err)
		}
	})
	t.Run("sealed for the other cookie", func(t *testing.T) {
		swapped := *c
		swapped.Name = tokensCookie
		if _, err := jar.tokens(req(&swapped)); !errors.Is(err, errCookie) {
			t.Errorf("flow box as tokens cookie: err = %v, want errCookie", err)
		}
	})
	t.Run("other keyring", func(t *testing.T) {
		other := jar
		other.ring = testRing(t, 100)
		if _, err := other.flow(req(c)); !errors.Is(err, errCookie) {
			t.Errorf("other keyring: err = %v, want errCookie", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		later := jar
		later.now = func() time.Time { return now.Add(flowLifetime) }
		if _, err := later.flow(req(c)); !errors.Is(err, errCookie) {
			t.Errorf("expired: err = %v, want errCookie", err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		if _, err := jar.flow(httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, errCookie) {
			t.Errorf("absent: err = %v, want errCookie", err)
		}
	})
	t.Run("plain http issuer", func(t *testing.T) {
		h := testHandler(t, "http://localhost:8080", nil)
		if c := flowCookieFor(t, h, want); c.Secure {
			t.Error("cookie is Secure on an http (dev) issuer: the browser would drop it")
		}
	})
}

// callback runs Callback with a sealed flow cookie and the given query.
func callback(t *testing.T, h *Handler, f flowState, q url.Values) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, CallbackPath+"?"+q.Encode(), nil)
	r.AddCookie(flowCookieFor(t, h, f))
	rec := httptest.NewRecorder()
	h.Callback(rec, r)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	// Whatever the outcome, the flow cookie is spent.
	cleared := false
	for _, c := range resp.Cookies() {
		if c.Name == flowCookie && c.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Error("callback did not clear the flow cookie")
	}
	return resp, string(body)
}

func TestCallbackRefusesBeforeRedeeming(t *testing.T) {
	const issuer = "http://localhost:8080"
	f := flowState{State: "the-state", Nonce: "n", Verifier: "v"}
	tests := []struct {
		name     string
		q        url.Values
		wantCode string
	}{
		{"RFC6749_10.12_state_mismatch", url.Values{"code": {"c"}, "state": {"other"}, "iss": {issuer}}, "state_mismatch"},
		{"RFC6749_10.12_state_missing", url.Values{"code": {"c"}, "iss": {issuer}}, "state_mismatch"},
		{"RFC9207_2.4_iss_mismatch", url.Values{"code": {"c"}, "state": {f.State}, "iss": {"https://evil.example"}}, "issuer_mismatch"},
		{"RFC9207_2.4_iss_missing", url.Values{"code": {"c"}, "state": {f.State}}, "issuer_mismatch"},
		{"RFC9207_2.4_iss_mismatch_on_error", url.Values{"error": {"access_denied"}, "state": {f.State}, "iss": {issuer + "/"}}, "issuer_mismatch"},
		{"RFC6749_4.1.2.1_error_response", url.Values{"error": {"access_denied"}, "error_description": {"<b>no</b>"}, "state": {f.State}, "iss": {issuer}}, "access_denied"},
		{"no_code", url.Values{"state": {f.State}, "iss": {issuer}}, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := testHandler(t, issuer, nil)
			resp, body := callback(t, h, f, tc.q)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if !strings.Contains(body, `<code id="error-code">`+tc.wantCode+`</code>`) {
				t.Errorf("page does not show error code %s:\n%s", tc.wantCode, body)
			}
			if strings.Contains(body, "<b>no</b>") {
				t.Error("error_description was not escaped")
			}
		})
	}
	t.Run("error_description_escaped", func(t *testing.T) {
		h := testHandler(t, issuer, nil)
		_, body := callback(t, h, f, tests[5].q)
		if !strings.Contains(body, "&lt;b&gt;no&lt;/b&gt;") {
			t.Errorf("error_description not shown escaped:\n%s", body)
		}
	})
}

func TestCallbackWithoutFlowCookie(t *testing.T) {
	h := testHandler(t, "http://localhost:8080", nil)
	rec := httptest.NewRecorder()
	h.Callback(rec, httptest.NewRequest(http.MethodGet, CallbackPath+"?code=c&state=s&iss=http%3A%2F%2Flocalhost%3A8080", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "demo_session_expired") {
		t.Errorf("status %d, body:\n%s", rec.Code, rec.Body)
	}
}

// TestStart checks the authorization request against a discovery document
// served by a stand-in issuer: PKCE S256 over the sealed verifier (RFC 7636
// §4.2), the state and nonce, and that discovery is fetched lazily, once.
func TestStart(t *testing.T) {
	fetches := 0
	var op *httptest.Server
	op = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		fetches++
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 op.URL,
			"authorization_endpoint": op.URL + "/oauth2/authorize",
			"token_endpoint":         op.URL + "/oauth2/token",
			"userinfo_endpoint":      op.URL + "/userinfo",
			"jwks_uri":               op.URL + "/.well-known/jwks.json",
			"end_session_endpoint":   op.URL + "/oauth2/logout",
		})
	}))
	defer op.Close()
	h := testHandler(t, op.URL, op.Client())
	if fetches != 0 {
		t.Fatal("New contacted the issuer")
	}
	for range 2 {
		rec := httptest.NewRecorder()
		h.Start(rec, httptest.NewRequest(http.MethodPost, LoginPath, nil))
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		if loc.Path != "/oauth2/authorize" || q.Get("client_id") != ClientID || q.Get("response_type") != "code" ||
			q.Get("redirect_uri") != op.URL+CallbackPath || q.Get("scope") != Scope {
			t.Errorf("authorization request: %s", loc)
		}
		r := httptest.NewRequest(http.MethodGet, CallbackPath, nil)
		for _, c := range rec.Result().Cookies() {
			r.AddCookie(c)
		}
		f, err := h.jar.flow(r)
		if err != nil {
			t.Fatalf("flow cookie: %v", err)
		}
		sum := sha256.Sum256([]byte(f.Verifier))
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("code_challenge does not match the sealed verifier: %s", loc.RawQuery)
		}
		if q.Get("state") != f.State || q.Get("nonce") != f.Nonce || len(f.State) < 32 || len(f.Nonce) < 32 {
			t.Errorf("state/nonce: query %q/%q, cookie %q/%q", q.Get("state"), q.Get("nonce"), f.State, f.Nonce)
		}
	}
	if fetches != 1 {
		t.Errorf("discovery fetched %d times, want once", fetches)
	}
}

func TestMethods(t *testing.T) {
	h := testHandler(t, "http://localhost:8080", nil)
	for _, tc := range []struct {
		method string
		h      http.HandlerFunc
	}{{http.MethodPost, h.Home}, {http.MethodDelete, h.Start}, {http.MethodPost, h.Callback}, {http.MethodGet, h.Refresh}, {http.MethodGet, h.Logout}} {
		rec := httptest.NewRecorder()
		tc.h(rec, httptest.NewRequest(tc.method, "/demo", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
			t.Errorf("%s: status %d, Allow %q", tc.method, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestHome(t *testing.T) {
	h := testHandler(t, "http://localhost:8080", nil)
	rec := httptest.NewRecorder()
	h.Home(rec, httptest.NewRequest(http.MethodGet, HomePath, nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, `action="/demo/login"`) || !strings.Contains(body, "Sign in with Gatehouse") {
		t.Errorf("status %d, body:\n%s", rec.Code, body)
	}
}

type services struct {
	users   *users.Service
	clients *clients.Service
}

func (services) usersOn(store storage.UserStore, h *password.Hasher) *users.Service {
	return users.New(store, h, slog.New(slog.DiscardHandler))
}

func (services) clientsOn(store clients.Store, ring *secrets.Keyring) *clients.Service {
	return clients.New(store, ring, slog.New(slog.DiscardHandler))
}

func testServices(t *testing.T) services {
	t.Helper()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	// Small argon2 parameters: these tests are about bootstrap, not hashing cost.
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	return services{users: users.New(store, hasher, log), clients: clients.New(store, testRing(t, 1), log)}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	s := testServices(t)
	deps := Deps{Issuer: "http://localhost:8080", Users: s.users, Clients: s.clients}

	first, err := Bootstrap(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	if !first.UserCreated || first.Password == "" || !first.ClientCreated || first.ClientSecret == "" {
		t.Fatalf("first run: %+v", first)
	}
	if _, err := s.users.Authenticate(ctx, Username, first.Password); err != nil {
		t.Errorf("alice cannot sign in with the returned password: %v", err)
	}
	c, err := s.clients.Get(ctx, ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if !s.clients.VerifySecret(c, first.ClientSecret) {
		t.Error("returned client secret does not verify")
	}
	if !c.FirstParty || c.TokenEndpointAuthMethod != clients.AuthClientSecretBasic ||
		strings.Join(c.RedirectURIs, " ") != "http://localhost:8080/demo/callback" ||
		strings.Join(c.PostLogoutRedirectURIs, " ") != "http://localhost:8080/demo" ||
		strings.Join(c.GrantTypes, " ") != "authorization_code refresh_token" ||
		strings.Join(c.Scopes, " ") != Scope {
		t.Errorf("demo client registered as %+v", c)
	}

	t.Run("again", func(t *testing.T) {
		again, err := Bootstrap(ctx, deps)
		if err != nil {
			t.Fatal(err)
		}
		if again.UserCreated || again.Password != "" || again.ClientCreated || again.ClientSecret == "" {
			t.Fatalf("second run: %+v", again)
		}
		if _, err := s.users.Authenticate(ctx, Username, first.Password); err != nil {
			t.Errorf("alice's password changed on restart: %v", err)
		}
		c, _ := s.clients.Get(ctx, ClientID)
		if !s.clients.VerifySecret(c, again.ClientSecret) || s.clients.VerifySecret(c, first.ClientSecret) {
			t.Error("the client secret was not rotated")
		}
	})
	t.Run("reset password", func(t *testing.T) {
		d := deps
		d.ResetPassword = true
		reset, err := Bootstrap(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if reset.UserCreated || reset.Password == "" || reset.Password == first.Password {
			t.Fatalf("reset run: %+v", reset)
		}
		if _, err := s.users.Authenticate(ctx, Username, reset.Password); err != nil {
			t.Errorf("reset password does not work: %v", err)
		}
	})
	t.Run("issuer moved", func(t *testing.T) {
		d := deps
		d.Issuer = "http://127.0.0.1:9999"
		moved, err := Bootstrap(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := s.clients.Get(ctx, ClientID)
		if !moved.ClientCreated || strings.Join(c.RedirectURIs, " ") != "http://127.0.0.1:9999/demo/callback" || !s.clients.VerifySecret(c, moved.ClientSecret) {
			t.Errorf("client not re-registered for the new issuer: %+v", c)
		}
	})
}
