package demo

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

// testIssuer assembles the real protocol and page handlers (server/oauth,
// server/login, server/keys) behind an httptest server whose URL is the
// issuer, bootstraps the demo, and mounts it.
func testIssuer(t *testing.T) (*httptest.Server, Info) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var handler http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	issuer := srv.URL

	store := memory.New()
	stores := storage.Stores{Durable: store, Ephemeral: store}
	ring := testRing(t, 1)
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.New(ctx, store, ring, keys.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ui, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(session.Config{Store: store, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	lh, err := login.New(login.Config{
		Users: store, Clients: store, Consents: store, Throttle: store,
		Sessions: sessions, Passwords: hasher, UI: ui, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := oauth.New(oauth.Config{
		Issuer: issuer, Stores: stores, Ring: ring,
		SigningKey:  km.SigningKey,
		PublicKeys:  km.PublicKeys,
		Interaction: lh,
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	lh.SetFlow(p)

	svc := testServices(t)
	info, err := Bootstrap(ctx, Deps{Issuer: issuer, Users: svc.usersOn(store, hasher), Clients: svc.clientsOn(store, ring)})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := NewPages(ui, web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	demo := New(Config{Issuer: issuer, ClientSecret: info.ClientSecret, HTTPClient: srv.Client(), Renderer: pages, Keyring: ring, Logger: log})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.Discovery)
	mux.Handle("GET /.well-known/jwks.json", km.JWKSHandler())
	mux.HandleFunc("/oauth2/authorize", p.Authorize)
	mux.HandleFunc("POST /oauth2/token", p.Token)
	mux.HandleFunc("/userinfo", p.UserInfo)
	mux.HandleFunc(login.LogoutPath, lh.Logout)
	mux.HandleFunc("GET "+login.LoginPath, lh.LoginPage)
	mux.HandleFunc("POST "+login.LoginPath, lh.LoginSubmit)
	mux.HandleFunc("GET "+login.ConsentPath, lh.ConsentPage)
	mux.HandleFunc("POST "+login.ConsentPath, lh.ConsentSubmit)
	demo.Routes(mux)
	handler = mux
	return srv, info
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestEndToEnd runs the whole demo in a cookie-keeping browser: sign in as
// alice through the real authorization endpoint and login page (first-party:
// no consent), see her verified claims, refresh, and sign out through the
// end_session_endpoint back to the demo.
func TestEndToEnd(t *testing.T) {
	srv, info := testIssuer(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar}

	resp, body := get(t, browser, srv.URL+LoginPath)
	if resp.Request.URL.Path != login.LoginPath {
		t.Fatalf("expected the login page, landed on %s (%d):\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	form := url.Values{"username": {Username}, "password": {info.Password}}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, body = post(t, browser, srv.URL+login.LoginPath, form)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != CallbackPath {
		t.Fatalf("after login: %d at %s:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	page := html.UnescapeString(body)
	for _, want := range []string{`"email": "alice@example.com"`, `"preferred_username": "alice"`, `"aud": [`, `"gatehouse-demo"`, `"nonce": "`, `"iss": "` + srv.URL + `"`, "Signed in"} {
		if !strings.Contains(page, want) {
			t.Errorf("result page lacks %s:\n%s", want, page)
		}
	}

	resp, body = post(t, browser, srv.URL+RefreshPath, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Tokens refreshed") || !strings.Contains(body, "alice@example.com") {
		t.Fatalf("refresh: %d:\n%s", resp.StatusCode, body)
	}

	resp, body = post(t, browser, srv.URL+LogoutPath, nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != srv.URL+HomePath {
		t.Fatalf("sign-out ended at %s (%d), want %s:\n%s", resp.Request.URL, resp.StatusCode, srv.URL+HomePath, body)
	}
	// Signed out at the server too: a new sign-in asks for the password again.
	resp, _ = get(t, browser, srv.URL+LoginPath)
	if resp.Request.URL.Path != login.LoginPath {
		t.Errorf("after sign-out the server still had a session: landed on %s", resp.Request.URL)
	}
}
