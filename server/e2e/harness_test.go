// Package e2e runs Gatehouse end to end: the real server, built from a
// configuration by server/app exactly as `gatehouse serve` builds it, on a
// real listener, over each storage backend, driven by golang.org/x/oauth2 and
// go-oidc as the relying party and by a cookie-keeping HTTP client that fills
// in the login and consent forms as a browser would.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/app"
	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

// backend opens a fresh pair of stores for one server.
type backend struct {
	name string
	open func(t testing.TB) storage.Stores
}

// backends are the deployments Gatehouse supports: everything in memory,
// SQLite alone (dev and small installs), PostgreSQL with Redis.
var backends = []backend{
	{"memory", func(t testing.TB) storage.Stores {
		m := memory.New()
		t.Cleanup(func() { m.Close() })
		return storage.Stores{Durable: m, Ephemeral: m}
	}},
	{"sqlite", func(t testing.TB) storage.Stores {
		db := sqltest.NewSQLite(t)
		return storage.Stores{Durable: db, Ephemeral: db}
	}},
	{"postgres+redis", func(t testing.TB) storage.Stores {
		return storage.Stores{Durable: sqltest.NewPostgres(t), Ephemeral: redistest.New(t)}
	}},
}

// rpRedirect is the relying parties' redirect URI. Nothing listens there:
// the browser stops at the redirect and the test reads the response from it.
const rpRedirect = "https://rp.example.test/cb"

// env is one running server.
type env struct {
	t      testing.TB
	issuer string
	app    *app.App
	logs   *syncBuffer
	// provider is the relying party's view of the issuer (OIDC Discovery).
	provider *oidc.Provider
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testConfig is the configuration a test server starts from: the defaults,
// a random system secret, cheap password hashing and open registration.
func testConfig(t testing.TB, issuer string) config.Config {
	cfg := config.Default()
	cfg.Issuer = issuer
	secret := make([]byte, 32)
	rand.Read(secret)
	cfg.Secrets.System = []config.Secret{config.NewSecret(base64.RawURLEncoding.EncodeToString(secret))}
	cfg.Registration.Policy = config.RegistrationOpen
	return cfg
}

// start runs the real server over stores on a loopback port. mod edits the
// configuration before it is validated and used.
func start(t testing.TB, stores storage.Stores, mod func(*config.Config)) *env {
	t.Helper()
	return startWith(t, stores, mod, app.Options{})
}

// startWith is start with app options (a clock); the logger is start's.
func startWith(t testing.TB, stores storage.Stores, mod func(*config.Config), opts app.Options) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	cfg := testConfig(t, issuer)
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	// Below the production minimum that Validate enforces: hashing at full
	// cost would make each sign-in slow under -race.
	cfg.PasswordHash = config.PasswordHash{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	opts.Logger = log
	a, err := app.New(ctx, cfg, stores, opts)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("app.New: %v", err)
	}
	srv := &http.Server{Handler: a.Server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	wg.Go(func() { _ = a.Run(ctx) })
	e := &env{t: t, issuer: issuer, app: a, logs: logs}
	t.Cleanup(func() {
		shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = srv.Shutdown(shutdownCtx)
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("server log (warnings and errors):\n%s", logs.String())
		}
	})
	e.provider, err = oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return e
}

// user creates a user and returns its ID and password.
func (e *env) user(name string) (id, password string) {
	e.t.Helper()
	password = "pw-" + name + "-correct-horse-battery"
	u, err := e.app.Users.Create(context.Background(), users.NewUser{
		Username: name,
		Password: password,
		Claims:   storageClaims(name),
	})
	if err != nil {
		e.t.Fatalf("creating user %s: %v", name, err)
	}
	return u.ID, password
}

// client registers a client as the CLI would (trusted) and returns its
// metadata, secret included.
func (e *env) client(md clients.Metadata) clients.Metadata {
	e.t.Helper()
	if md.RedirectURIs == nil && !onlyClientCredentials(md.GrantTypes) {
		md.RedirectURIs = []string{rpRedirect}
	}
	if md.ClientName == "" {
		md.ClientName = "Test RP"
	}
	out, err := e.app.Clients.Create(context.Background(), md, clients.CreateOptions{Trusted: true})
	if err != nil {
		e.t.Fatalf("creating client: %v", err)
	}
	return out
}

func onlyClientCredentials(grants []string) bool {
	return len(grants) == 1 && grants[0] == clients.GrantClientCredentials
}

// rp is a relying party: the x/oauth2 configuration of a client.
func (e *env) rp(md clients.Metadata, scopes ...string) *oauth2.Config {
	ep := e.provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &oauth2.Config{
		ClientID:     md.ClientID,
		ClientSecret: md.ClientSecret,
		Endpoint:     ep,
		RedirectURL:  rpRedirect,
		Scopes:       scopes,
	}
}

// verifier checks ID tokens for a client as go-oidc does (OIDC Core §3.1.3.7).
func (e *env) verifier(clientID string) *oidc.IDTokenVerifier {
	return e.provider.Verifier(&oidc.Config{ClientID: clientID})
}

// ---------------------------------------------------------------------------
// The browser

// browser is a cookie-keeping HTTP client that follows redirects within the
// issuer and stops at the first one leaving it (to the relying party).
type browser struct {
	t testing.TB
	c *http.Client
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	host := strings.TrimPrefix(e.issuer, "http://")
	return &browser{t: e.t, c: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

// page is a response the browser read.
type page struct {
	status int
	url    *url.URL // where the browser ended up
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// redirect returns the parameters of the redirect to the relying party that
// p is, failing when p is not one.
func (p page) redirect(t testing.TB) url.Values {
	t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("expected a redirect to the relying party, got %d at %s:\n%s", p.status, p.url, p.body)
	}
	loc, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != rpRedirect {
		t.Fatalf("redirected to %s, want %s", loc, rpRedirect)
	}
	return loc.Query()
}

// form is an HTML form as a browser would submit it.
type form struct {
	action string
	method string
	values url.Values
	// buttons are the named submit buttons: name -> values.
	buttons map[string][]string
}

// forms parses every form of a page with the HTML tokenizer.
func forms(t testing.TB, p page) []form {
	t.Helper()
	var out []form
	z := html.NewTokenizer(strings.NewReader(p.body))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatalf("parsing HTML: %v", z.Err())
			}
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(k string) (string, bool) {
				for _, a := range tok.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch tok.Data {
			case "form":
				action, _ := attr("action")
				method, _ := attr("method")
				target, err := p.url.Parse(action)
				if err != nil {
					t.Fatalf("form action %q: %v", action, err)
				}
				out = append(out, form{action: target.String(), method: strings.ToUpper(method), values: url.Values{}, buttons: map[string][]string{}})
			case "input", "button":
				if len(out) == 0 {
					continue
				}
				f := &out[len(out)-1]
				name, _ := attr("name")
				value, _ := attr("value")
				typ, _ := attr("type")
				if name == "" {
					continue
				}
				switch {
				case tok.Data == "button" || typ == "submit":
					f.buttons[name] = append(f.buttons[name], value)
				case typ == "checkbox":
					if _, checked := attr("checked"); checked {
						f.values.Add(name, value)
					}
				default:
					f.values.Add(name, value)
				}
			}
		}
	}
}

// onlyForm returns the page's single form.
func onlyForm(t testing.TB, p page) form {
	t.Helper()
	fs := forms(t, p)
	if len(fs) != 1 {
		t.Fatalf("page %s has %d forms, want 1:\n%s", p.url, len(fs), p.body)
	}
	return fs[0]
}

// submit posts a form with some fields set and, when button is given, the
// named submit button pressed ("decision=allow").
func (b *browser) submit(f form, set map[string]string, button string) page {
	b.t.Helper()
	vals := url.Values{}
	for k, v := range f.values {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range set {
		vals.Set(k, v)
	}
	if button != "" {
		k, v, _ := strings.Cut(button, "=")
		found := false
		for _, bv := range f.buttons[k] {
			found = found || bv == v
		}
		if !found {
			b.t.Fatalf("form has no button %s (buttons: %v)", button, f.buttons)
		}
		vals.Set(k, v)
	}
	if f.method != http.MethodPost {
		b.t.Fatalf("form method %q, want POST", f.method)
	}
	return b.post(f.action, vals)
}

// login fills in and submits the login page p.
func (b *browser) login(p page, username, password string) page {
	b.t.Helper()
	if p.url.Path != "/login" || p.status != http.StatusOK {
		b.t.Fatalf("expected the login page, got %d at %s:\n%s", p.status, p.url, p.body)
	}
	return b.submit(onlyForm(b.t, p), map[string]string{"username": username, "password": password}, "")
}

// consent answers the consent page p: "allow" or "deny".
func (b *browser) consent(p page, decision string) page {
	b.t.Helper()
	if p.url.Path != "/consent" || p.status != http.StatusOK {
		b.t.Fatalf("expected the consent page, got %d at %s:\n%s", p.status, p.url, p.body)
	}
	return b.submit(onlyForm(b.t, p), nil, "decision="+decision)
}

// signIn runs the browser part of an authorization request: the login page
// when it shows, the consent page (allowing) when it shows, up to the
// redirect to the relying party, whose parameters it returns.
func (b *browser) signIn(authURL, username, password string) url.Values {
	b.t.Helper()
	p := b.get(authURL)
	if p.url.Path == "/login" && p.status == http.StatusOK {
		p = b.login(p, username, password)
	}
	if p.url.Path == "/consent" && p.status == http.StatusOK {
		p = b.consent(p, "allow")
	}
	return p.redirect(b.t)
}

// ---------------------------------------------------------------------------
// Relying-party helpers

// codeFlow signs in through a fresh authorization code request with PKCE
// (RFC 7636 §4) and a state and nonce, checks the state and RFC 9207 iss,
// and redeems the code.
func (e *env) codeFlow(b *browser, conf *oauth2.Config, username, password string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	e.t.Helper()
	state, nonce, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}, opts...)
	q := b.signIn(conf.AuthCodeURL(state, opts...), username, password)
	if q.Get("state") != state {
		e.t.Fatalf("state %q, want %q (RFC 6749 §4.1.2)", q.Get("state"), state)
	}
	if q.Get("iss") != e.issuer {
		e.t.Fatalf("iss %q, want %q (RFC 9207 §2)", q.Get("iss"), e.issuer)
	}
	if q.Get("error") != "" {
		e.t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchanging the code: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return tok, nil
	}
	idt, err := e.verifier(conf.ClientID).Verify(context.Background(), raw)
	if err != nil {
		e.t.Fatalf("verifying the ID token: %v", err)
	}
	if idt.Nonce != nonce {
		e.t.Fatalf("nonce %q, want %q (OIDC Core §3.1.3.7)", idt.Nonce, nonce)
	}
	return tok, idt
}

// clientPost posts a form to an endpoint authenticating as the client with
// HTTP Basic (RFC 6749 §2.3.1) and decodes the JSON answer.
func (e *env) clientPost(endpoint string, md clients.Metadata, form url.Values, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(md.ClientID), url.QueryEscape(md.ClientSecret))
	return e.doJSON(req, out)
}

func (e *env) doJSON(req *http.Request, out any) int {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %v\n%s", req.Method, req.URL, resp.StatusCode, err, body)
		}
	}
	return resp.StatusCode
}

// metadata returns the discovery document.
func (e *env) metadata(path string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+path, nil)
	var md map[string]any
	if code := e.doJSON(req, &md); code != http.StatusOK {
		e.t.Fatalf("GET %s: %d", path, code)
	}
	return md
}

func storageClaims(name string) storage.Claims {
	return storage.Claims{
		Name:          strings.ToUpper(name[:1]) + name[1:] + " Example",
		Email:         name + "@example.com",
		EmailVerified: true,
	}
}
