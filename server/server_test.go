package server

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// pingStore is a backend whose only working method is Ping: the health
// checks need a store that can be made to fail on demand. Any other call
// panics on the nil embedded interface, which would fail the test.
type pingStore struct {
	storage.Durable
	storage.Ephemeral
	mu  sync.Mutex
	err error
}

func (p *pingStore) Ping(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pingStore) Close() error { return nil }

func (p *pingStore) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// syncBuffer is a log sink safe for concurrent handlers.
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

// lines parses the JSON log lines.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	srv       *Server
	logs      *syncBuffer
	durable   *pingStore
	ephemeral *pingStore
}

const testJWKS = `{"keys":[]}`

func testRing(t testing.TB) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// jwksDoc serves testJWKS.
var jwksDoc = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	io.WriteString(w, testJWKS)
})

// testKeys stands in for the key manager: these tests serve its JWKS
// document but never sign.
type testKeys struct{ jwks http.Handler }

func (testKeys) SigningKey(context.Context, string) (string, crypto.Signer, error) {
	return "", nil, errors.New("no signing key in this test")
}
func (testKeys) PublicKeys() jose.JSONWebKeySet     { return jose.JSONWebKeySet{} }
func (k testKeys) JWKSHandler() http.Handler        { return k.jwks }
func (testKeys) Algorithms() []string               { return []string{"RS256"} }
func (testKeys) List() []keys.KeyInfo               { return nil }
func (testKeys) Rotate(context.Context, bool) error { return errors.New("no rotation in this test") }

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{logs: &syncBuffer{}, durable: &pingStore{}, ephemeral: &pingStore{}}
	cfg := Config{
		Issuer: "https://id.example.com",
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Stores: storage.Stores{Durable: f.durable, Ephemeral: f.ephemeral},
		Keys:   testKeys{jwks: jwksDoc},
		Ring:   testRing(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	return f
}

func do(h http.Handler, method, target string, hdr map[string]string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	st := &pingStore{}
	ok := Config{
		Issuer: "https://id.example.com",
		Logger: logger,
		Stores: storage.Stores{Durable: st, Ephemeral: st},
		Keys:   testKeys{jwks: http.NotFoundHandler()},
		Ring:   testRing(t),
	}
	for name, mod := range map[string]func(*Config){
		"no keyring":      func(c *Config) { c.Ring = nil },
		"bad reg policy":  func(c *Config) { c.Registration.Policy = "everyone" },
		"demo no secret":  func(c *Config) { c.Demo = &DemoConfig{} },
		"no logger":       func(c *Config) { c.Logger = nil },
		"no durable":      func(c *Config) { c.Stores.Durable = nil },
		"no ephemeral":    func(c *Config) { c.Stores.Ephemeral = nil },
		"no keys":         func(c *Config) { c.Keys = nil },
		"relative issuer": func(c *Config) { c.Issuer = "/id" },
		"ftp issuer":      func(c *Config) { c.Issuer = "ftp://id.example.com" },
		"bad accent":      func(c *Config) { c.Brand.AccentColor = "blue" },
		"missing tpl dir": func(c *Config) { c.TemplatesDir = t.TempDir() + "/nope" },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("complete config: %v", err)
	}
}

func TestHealthAlive(t *testing.T) {
	f := newFixture(t, nil)
	for _, h := range []http.Handler{f.srv.Handler(), f.srv.AdminHandler()} {
		rec := do(h, http.MethodGet, "/health/alive", nil, nil)
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
			t.Errorf("alive = %d %s", rec.Code, rec.Body)
		}
	}
}

func TestHealthReady(t *testing.T) {
	f := newFixture(t, nil)
	h := f.srv.AdminHandler()

	rec := do(h, http.MethodGet, "/health/ready", nil, nil)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("ready = %d %s", rec.Code, rec.Body)
	}

	secret := errors.New("dial tcp 10.0.0.7:6379: password=hunter2 refused")
	f.ephemeral.fail(secret)
	rec = do(h, http.MethodGet, "/health/ready", nil, nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("ready with failing ephemeral store = %d, want 503", rec.Code)
	}
	if got := strings.TrimSpace(rec.Body.String()); got != `{"status":"unavailable","failed":["ephemeral"]}` {
		t.Errorf("body = %s", got)
	}
	if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "10.0.0.7") {
		t.Errorf("body leaks the internal error: %s", rec.Body)
	}
	if !strings.Contains(f.logs.String(), `"check":"ephemeral"`) {
		t.Errorf("failed check not logged: %s", f.logs)
	}

	f.durable.fail(secret)
	rec = do(f.srv.Handler(), http.MethodGet, "/health/ready", nil, nil)
	if got := strings.TrimSpace(rec.Body.String()); rec.Code != 503 || got != `{"status":"unavailable","failed":["durable","ephemeral"]}` {
		t.Errorf("both failing: %d %s", rec.Code, got)
	}
}

func TestJWKSRoute(t *testing.T) {
	f := newFixture(t, nil)
	rec := do(f.srv.Handler(), http.MethodGet, "/.well-known/jwks.json", nil, nil)
	if rec.Code != 200 || rec.Body.String() != testJWKS {
		t.Errorf("jwks = %d %s", rec.Code, rec.Body)
	}
	// The JWKS is public-listener only.
	if rec := do(f.srv.AdminHandler(), http.MethodGet, "/.well-known/jwks.json", nil, nil); rec.Code != 404 {
		t.Errorf("admin jwks = %d, want 404", rec.Code)
	}
}

func TestStaticRoute(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Brand.AccentColor = "#abcdef" })
	rec := do(f.srv.Handler(), http.MethodGet, "/static/theme.css", nil, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "#abcdef") {
		t.Errorf("theme.css = %d %s", rec.Code, rec.Body)
	}
	rec = do(f.srv.Handler(), http.MethodGet, "/static/missing.css", map[string]string{"Accept": "text/html"}, nil)
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "Page not found") {
		t.Errorf("missing asset = %d %s, want the styled 404", rec.Code, rec.Body)
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t, nil)
	h := f.srv.Handler()

	rec := do(h, http.MethodGet, "/nope", map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, nil)
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("404 page = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	id := rec.Header().Get("X-Request-ID")
	if !strings.Contains(body, "Page not found") || id == "" || !strings.Contains(body, id) {
		t.Errorf("404 page lacks its title or the request ID %q:\n%s", id, body)
	}
	// Security headers apply to answers the router produces itself.
	if rec.Header().Get("Content-Security-Policy") == "" {
		t.Error("404 page has no Content-Security-Policy")
	}

	rec = do(h, http.MethodGet, "/nope", map[string]string{"Accept": "application/json"}, nil)
	var e respond.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != 404 || e.Error != "not_found" || e.RequestID == "" {
		t.Errorf("404 JSON = %d %s (%v)", rec.Code, rec.Body, err)
	}
}

// RFC 9110 §15.5.6: a 405 response must list the allowed methods.
func TestMethodNotAllowedListsAllow(t *testing.T) {
	f := newFixture(t, nil)
	rec := do(f.srv.Handler(), http.MethodPost, "/health/ready", map[string]string{"Accept": "text/html"}, nil)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /health/ready = %d, want 405", rec.Code)
	}
	if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow = %q, want %q", allow, "GET, HEAD")
	}
	if !strings.Contains(rec.Body.String(), "Method not allowed") {
		t.Errorf("405 page:\n%s", rec.Body)
	}
	if rec := do(f.srv.Handler(), http.MethodHead, "/health/ready", nil, nil); rec.Code != 200 {
		t.Errorf("HEAD /health/ready = %d", rec.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	wantCSP := "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	for issuer, wantHSTS := range map[string]bool{"https://id.example.com": true, "http://localhost:8080": false} {
		f := newFixture(t, func(c *Config) { c.Issuer = issuer })
		for _, h := range []http.Handler{f.srv.Handler(), f.srv.AdminHandler()} {
			rec := do(h, http.MethodGet, "/health/alive", nil, nil)
			for k, v := range map[string]string{
				"Content-Security-Policy": wantCSP,
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %s = %q, want %q", issuer, k, got, v)
				}
			}
			if got := rec.Header().Get("Strict-Transport-Security") != ""; got != wantHSTS {
				t.Errorf("%s: HSTS sent = %v, want %v", issuer, got, wantHSTS)
			}
		}
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, nil)
	h := f.srv.Handler()

	rec := do(h, http.MethodGet, "/health/alive", map[string]string{"X-Request-ID": "from-proxy-123"}, nil)
	if got := rec.Header().Get("X-Request-ID"); got != "from-proxy-123" {
		t.Errorf("sane incoming ID: got %q", got)
	}
	rec = do(h, http.MethodGet, "/health/alive", map[string]string{"X-Request-ID": "bad id\" <x>"}, nil)
	if got := rec.Header().Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \"<") {
		t.Errorf("insane incoming ID: got %q, want a fresh one", got)
	}
	rec2 := do(h, http.MethodGet, "/health/alive", nil, nil)
	if a, b := rec.Header().Get("X-Request-ID"), rec2.Header().Get("X-Request-ID"); a == b {
		t.Errorf("two requests got the same ID %q", a)
	}
}

func TestAccessLogOmitsQuery(t *testing.T) {
	f := newFixture(t, nil)
	do(f.srv.Handler(), http.MethodGet, "/.well-known/jwks.json?code=SECRETCODE&token=SECRETTOKEN",
		map[string]string{"X-Request-ID": "req-log-1"}, nil)
	if strings.Contains(f.logs.String(), "SECRET") {
		t.Fatalf("access log contains the query string: %s", f.logs)
	}
	var found bool
	for _, l := range f.logs.lines(t) {
		if l["msg"] != "http request" {
			continue
		}
		found = true
		if l["path"] != "/.well-known/jwks.json" || l["method"] != "GET" || l["status"] != float64(200) ||
			l["bytes"] != float64(len(testJWKS)) || l["request_id"] != "req-log-1" || l["remote_ip"] != "192.0.2.1" ||
			l["listener"] != "public" {
			t.Errorf("access log line = %v", l)
		}
		if _, ok := l["duration_ms"].(float64); !ok {
			t.Errorf("access log line has no duration_ms: %v", l)
		}
	}
	if !found {
		t.Fatalf("no access log line: %s", f.logs)
	}
}

func TestPanicRecovery(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Keys = testKeys{jwks: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("boom: internal detail")
		})}
	})
	h := f.srv.Handler()

	rec := do(h, http.MethodGet, "/.well-known/jwks.json", map[string]string{"Accept": "text/html", "X-Request-ID": "req-panic"}, nil)
	if rec.Code != 500 {
		t.Fatalf("panic = %d, want 500", rec.Code)
	}
	if body := rec.Body.String(); strings.Contains(body, "boom") || strings.Contains(body, "goroutine") || !strings.Contains(body, "req-panic") {
		t.Errorf("500 page leaks the panic or lacks the request ID:\n%s", body)
	}
	rec = do(h, http.MethodGet, "/.well-known/jwks.json", map[string]string{"Accept": "application/json"}, nil)
	var e respond.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != 500 || e.Error != "server_error" || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("500 JSON = %d %s", rec.Code, rec.Body)
	}

	var logged bool
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "panic serving request" {
			logged = true
			if !strings.Contains(l["panic"].(string), "boom") || !strings.Contains(l["stack"].(string), "goroutine") || l["request_id"] != "req-panic" {
				t.Errorf("panic log line = %v", l)
			}
			break
		}
	}
	if !logged {
		t.Errorf("panic not logged: %s", f.logs)
	}
	// The access log records the 500 the client saw.
	if !strings.Contains(f.logs.String(), `"status":500`) {
		t.Errorf("access log lacks status 500: %s", f.logs)
	}
}

func TestBodyLimit(t *testing.T) {
	var readErr error
	f := newFixture(t, func(c *Config) {
		c.MaxBodyBytes = 10
		c.Keys = testKeys{jwks: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, readErr = io.ReadAll(r.Body)
		})}
	})
	// The JWKS route only takes GET; a GET with a body is enough to see the limit.
	do(f.srv.Handler(), http.MethodGet, "/.well-known/jwks.json", nil, strings.NewReader("0123456789"))
	if readErr != nil {
		t.Fatalf("body at the limit: %v", readErr)
	}
	do(f.srv.Handler(), http.MethodGet, "/.well-known/jwks.json", nil, strings.NewReader("0123456789X"))
	var mbe *http.MaxBytesError
	if !errors.As(readErr, &mbe) {
		t.Fatalf("body over the limit: err = %v, want *http.MaxBytesError", readErr)
	}
}

// The security headers' values are shared by every response (built once):
// a handler that adds to one or replaces one changes its own response only.
func TestSecurityHeaderValuesAreNotSharedMutably(t *testing.T) {
	f := newFixture(t, nil)
	widen := f.srv.securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Frame-Options", "SAMEORIGIN")
		w.Header().Add("Referrer-Policy", "origin")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
	}))
	plain := f.srv.securityHeaders(http.NotFoundHandler())
	if got := do(widen, http.MethodGet, "/", nil, nil).Header().Values("X-Frame-Options"); len(got) != 2 {
		t.Fatalf("the widening handler's X-Frame-Options = %q, want DENY and SAMEORIGIN", got)
	}
	h := do(plain, http.MethodGet, "/", nil, nil).Header()
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
		if got := h.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("next response's %s = %q, want only %q", k, got, want)
		}
	}
	if got := h.Get("Content-Security-Policy"); got != web.ContentSecurityPolicy() {
		t.Errorf("next response's CSP = %q, want the default", got)
	}
}
