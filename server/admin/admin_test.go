package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

// testToken is the admin token of the test APIs.
var testToken = strings.Repeat("k", 43)

// backend is one store holding every role (both test backends do).
type backend interface {
	storage.Durable
	storage.SessionStore
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

// recordingEnder is a SessionEnder that records the sessions it ends and
// deletes them, as server/logout does.
type recordingEnder struct {
	store storage.SessionStore
	mu    sync.Mutex
	ended []storage.Session
}

func (e *recordingEnder) EndSession(ctx context.Context, s storage.Session) error {
	e.mu.Lock()
	e.ended = append(e.ended, s)
	e.mu.Unlock()
	return e.store.DeleteSession(ctx, s.ID)
}

func (e *recordingEnder) endedIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, s := range e.ended {
		ids = append(ids, s.ID)
	}
	return ids
}

type env struct {
	t       *testing.T
	store   backend
	api     *API
	srv     *httptest.Server
	clients *clients.Service
	users   *users.Service
	keys    *keys.Manager
	ender   *recordingEnder
	token   string
}

type envOptions struct {
	token  string
	dev    bool
	ender  SessionEnder
	keys   bool // a real key manager (RSA key generation: only where needed)
	logger *slog.Logger
	tune   func(*Config)
}

func testRing(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring([]byte(strings.Repeat("s", 40)))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newEnv(t *testing.T, store backend, o envOptions) *env {
	t.Helper()
	ring := testRing(t)
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clients: clients.New(store, ring, nil), users: users.New(store, hasher, nil),
		ender: &recordingEnder{store: store}, token: o.token}
	var km KeyManager = noKeys{}
	if o.keys {
		e.keys, err = keys.New(context.Background(), store, ring, keys.Config{Algorithms: []string{"ES256"}})
		if err != nil {
			t.Fatal(err)
		}
		km = e.keys
	}
	cfg := Config{
		Token: o.token, Dev: o.dev,
		Clients: e.clients, Users: e.users, Tokens: registration.NewTokenService(store, ring, nil, nil),
		Keys: km, Sessions: store, Consents: store, Grants: store, Ender: e.ender,
		Logger: o.logger,
	}
	if o.ender != nil {
		cfg.Ender = o.ender
	}
	if o.tune != nil {
		o.tune(&cfg)
	}
	e.api, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.api.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// noKeys is a KeyManager with an empty set, for tests that do not touch
// keys (a real manager generates RSA keys, which is slow under -race).
type noKeys struct{}

func (noKeys) List() []keys.KeyInfo               { return nil }
func (noKeys) Rotate(context.Context, bool) error { return nil }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// items returns the "items" of a listing answer.
func (r response) items(t *testing.T) []map[string]any {
	t.Helper()
	var l struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil || l.Items == nil {
		t.Fatalf("answer %d is not a listing: %v: %s", r.status, err, r.body)
	}
	return l.Items
}

// do sends a request with the env's token; body is JSON-encoded unless it
// is a string, sent as is.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + e.token})
}

func (e *env) doWith(method, path string, body any, headers map[string]string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

// want checks the status, and for errors the JSON error code.
func (e *env) want(r response, status int, code string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if code != "" {
		if got := r.json(e.t)["error"]; got != code {
			e.t.Fatalf("error %v, want %q: %s", got, code, r.body)
		}
		if desc, _ := r.json(e.t)["error_description"].(string); desc == "" {
			e.t.Fatalf("error %q without error_description", code)
		}
	}
	if ct := r.header.Get("Content-Type"); len(r.body) > 0 && ct != "application/json" {
		e.t.Fatalf("Content-Type %q, want application/json", ct)
	}
}

func TestNewRefusesShortTokenAndMissingServices(t *testing.T) {
	st := memory.New()
	defer st.Close()
	_, err := New(Config{Token: strings.Repeat("x", MinTokenBytes-1)})
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("New without services = %v, want an error naming them", err)
	}
	ring := testRing(t)
	hasher, _ := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	cfg := Config{
		Token:   strings.Repeat("x", MinTokenBytes-1),
		Clients: clients.New(st, ring, nil), Users: users.New(st, hasher, nil),
		Tokens: registration.NewTokenService(st, ring, nil, nil), Keys: noKeys{},
		Sessions: st, Consents: st, Grants: st, Ender: &recordingEnder{store: st},
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("New with a 31-byte token = %v, want an error", err)
	}
}

func TestAuth(t *testing.T) {
	st := memory.New()
	defer st.Close()
	var logs bytes.Buffer
	e := newEnv(t, st, envOptions{token: testToken, logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	// RFC 6750 §3.1: no credentials get a bare challenge.
	r := e.doWith("GET", "/admin/users", nil, nil)
	e.want(r, http.StatusUnauthorized, "invalid_token")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="gatehouse-admin"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	for _, h := range []string{"Basic " + testToken, "Bearer", "Bearer " + testToken + "x", "Bearer " + testToken[1:], "Bearer " + strings.ToUpper(testToken)} {
		r := e.doWith("GET", "/admin/users", nil, map[string]string{"Authorization": h})
		e.want(r, http.StatusUnauthorized, "invalid_token")
	}
	r = e.doWith("GET", "/admin/users", nil, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 43)})
	e.want(r, http.StatusUnauthorized, "invalid_token")
	if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate for a wrong token = %q, want error=\"invalid_token\"", got)
	}
	if !strings.Contains(logs.String(), "wrong token") || strings.Contains(logs.String(), testToken[1:]) || strings.Contains(logs.String(), strings.Repeat("x", 43)) {
		t.Errorf("wrong tokens must be logged without the token: %s", logs.String())
	}
	// The scheme is case-insensitive (RFC 9110 §11.1).
	e.want(e.doWith("GET", "/admin/users", nil, map[string]string{"Authorization": "bearer " + testToken}), http.StatusOK, "")
	r = e.do("GET", "/admin/users", nil)
	e.want(r, http.StatusOK, "")
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	// Every route is guarded, the OpenAPI document too.
	for _, rt := range e.api.routes() {
		path := strings.NewReplacer("{id}", "x", "{sid}", "y", "{client_id}", "z").Replace(rt.path)
		e.want(e.doWith(rt.method, path, nil, nil), http.StatusUnauthorized, "invalid_token")
	}
}

func TestDisabledWithoutToken(t *testing.T) {
	st := memory.New()
	defer st.Close()
	var logs bytes.Buffer
	e := newEnv(t, st, envOptions{logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer "}, {"Authorization": "Bearer " + testToken}} {
		r := e.doWith("GET", "/admin/clients", nil, h)
		e.want(r, http.StatusServiceUnavailable, "admin_api_disabled")
		if !strings.Contains(string(r.body), "GATEHOUSE_ADMIN_TOKEN") {
			t.Errorf("the disabled answer does not say how to enable the API: %s", r.body)
		}
	}
	if !strings.Contains(logs.String(), "admin API disabled") {
		t.Errorf("no log line says the admin API is disabled: %s", logs.String())
	}
}

func TestDevModeGeneratesAndLogsTokenOnce(t *testing.T) {
	st := memory.New()
	defer st.Close()
	var logs bytes.Buffer
	e := newEnv(t, st, envOptions{dev: true, logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	var token string
	n := 0
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if tok, ok := rec["admin_token"].(string); ok {
			token, n = tok, n+1
		}
	}
	if n != 1 || len(token) < MinTokenBytes {
		t.Fatalf("dev mode logged %d admin tokens (%d bytes), want one of at least %d bytes", n, len(token), MinTokenBytes)
	}
	e.want(e.doWith("GET", "/admin/users", nil, map[string]string{"Authorization": "Bearer " + token}), http.StatusOK, "")
	e.want(e.doWith("GET", "/admin/users", nil, nil), http.StatusUnauthorized, "invalid_token")
	// Requests never log it again.
	if strings.Count(logs.String(), token) != 1 {
		t.Error("the dev token is logged more than once")
	}
	// A configured token wins over dev mode's.
	logs.Reset()
	e2 := newEnv(t, st, envOptions{dev: true, token: testToken, logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	e2.want(e2.do("GET", "/admin/users", nil), http.StatusOK, "")
	if strings.Contains(logs.String(), "admin_token") || strings.Contains(logs.String(), testToken) {
		t.Errorf("a configured token is logged: %s", logs.String())
	}
}

func TestClientsRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken})
		md := map[string]any{
			"client_name":   "Shop",
			"redirect_uris": []string{"https://shop.example.com/cb"},
			"scope":         "openid profile",
			"first_party":   true, // policy: allowed to the admin API
		}
		r := e.do("POST", "/admin/clients", md)
		e.want(r, http.StatusCreated, "")
		created := r.json(t)
		id, _ := created["client_id"].(string)
		secret, _ := created["client_secret"].(string)
		if id == "" || len(secret) < 32 || created["first_party"] != true {
			t.Fatalf("created client = %s", r.body)
		}
		if got := r.header.Get("Location"); got != "/admin/clients/"+id {
			t.Errorf("Location = %q", got)
		}

		r = e.do("GET", "/admin/clients/"+id, nil)
		e.want(r, http.StatusOK, "")
		got := r.json(t)
		if got["client_name"] != "Shop" || got["client_secret"] != nil || strings.Contains(string(r.body), "hash") {
			t.Errorf("GET client = %s (want metadata without secret or hash)", r.body)
		}

		// A chosen client_id, then its duplicate.
		r = e.do("POST", "/admin/clients", map[string]any{"client_id": "spa", "redirect_uris": []string{"https://spa.example.com/cb"}, "token_endpoint_auth_method": "none"})
		e.want(r, http.StatusCreated, "")
		if m := r.json(t); m["client_id"] != "spa" || m["client_secret"] != nil {
			t.Errorf("public client = %s", r.body)
		}
		e.want(e.do("POST", "/admin/clients", map[string]any{"client_id": "spa", "redirect_uris": []string{"https://spa.example.com/cb"}, "token_endpoint_auth_method": "none"}), http.StatusConflict, "conflict")
		// RFC 7591 §3.2.2 codes pass through.
		e.want(e.do("POST", "/admin/clients", map[string]any{"redirect_uris": []string{"http://evil.example.com/cb"}}), http.StatusBadRequest, "invalid_redirect_uri")

		items := e.do("GET", "/admin/clients", nil).items(t)
		if len(items) != 2 {
			t.Errorf("listed %d clients, want 2", len(items))
		}

		// PUT replaces (RFC 7592 §2.2).
		md["client_name"] = "Shop 2"
		r = e.do("PUT", "/admin/clients/"+id, md)
		e.want(r, http.StatusOK, "")
		if m := r.json(t); m["client_name"] != "Shop 2" || m["client_secret"] != nil {
			t.Errorf("updated client = %s", r.body)
		}
		e.want(e.do("PUT", "/admin/clients/"+id, map[string]any{"client_id": "other", "redirect_uris": []string{"https://shop.example.com/cb"}}), http.StatusBadRequest, "invalid_request")
		e.want(e.do("PUT", "/admin/clients/nope", md), http.StatusNotFound, "not_found")

		// Rotation with overlap: both secrets work until the overlap ends.
		r = e.do("POST", "/admin/clients/"+id+"/secret", map[string]any{"overlap_seconds": 3600})
		e.want(r, http.StatusOK, "")
		rot := r.json(t)
		newSecret, _ := rot["client_secret"].(string)
		if newSecret == "" || newSecret == secret || rot["previous_secret_expires_at"] == nil {
			t.Fatalf("rotation answer = %s", r.body)
		}
		c, err := e.clients.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !e.clients.VerifySecret(c, newSecret) || !e.clients.VerifySecret(c, secret) {
			t.Error("after a rotation with overlap, the new and the old secret must both verify")
		}
		// Without a body: no overlap.
		r = e.do("POST", "/admin/clients/"+id+"/secret", nil)
		e.want(r, http.StatusOK, "")
		third, _ := r.json(t)["client_secret"].(string)
		c, _ = e.clients.Get(context.Background(), id)
		if !e.clients.VerifySecret(c, third) || e.clients.VerifySecret(c, newSecret) {
			t.Error("a rotation without overlap must end the previous secret")
		}
		e.want(e.do("POST", "/admin/clients/spa/secret", nil), http.StatusBadRequest, "invalid_client_metadata")
		e.want(e.do("POST", "/admin/clients/"+id+"/secret", map[string]any{"overlap_seconds": -1}), http.StatusBadRequest, "invalid_request")
		e.want(e.do("POST", "/admin/clients/nope/secret", nil), http.StatusNotFound, "not_found")

		// Grants of the client, then the client, go.
		putGrant(t, store, "g1", id, "alice")
		putGrant(t, store, "g2", id, "bob")
		putGrant(t, store, "g3", "spa", "alice")
		r = e.do("DELETE", "/admin/clients/"+id+"/grants", nil)
		e.want(r, http.StatusOK, "")
		if n := r.json(t)["revoked"]; n != float64(2) {
			t.Errorf("revoked %v grants, want 2", n)
		}
		e.want(e.do("DELETE", "/admin/clients/nope/grants", nil), http.StatusNotFound, "not_found")
		r = e.do("DELETE", "/admin/clients/spa", nil)
		e.want(r, http.StatusOK, "")
		if n := r.json(t)["revoked"]; n != float64(1) {
			t.Errorf("deleting a client revoked %v grants, want 1", n)
		}
		if _, err := store.GetRequest(context.Background(), storage.KindAccessToken, "g3"); !asNotFound(err) {
			t.Errorf("the deleted client's grant is still there: %v", err)
		}
		e.want(e.do("GET", "/admin/clients/spa", nil), http.StatusNotFound, "not_found")
		e.want(e.do("DELETE", "/admin/clients/spa", nil), http.StatusNotFound, "not_found")
	})
}

// putGrant stores an access token record of a grant (its signature is the grant ID).
func putGrant(t *testing.T, store storage.RequestStore, grant, clientID, subject string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := store.CreateRequest(context.Background(), storage.Request{
		Kind: storage.KindAccessToken, Signature: grant, RequestID: grant, ClientID: clientID, Subject: subject,
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}"),
	}); err != nil {
		t.Fatal(err)
	}
}

func TestUsersRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken})
		ctx := context.Background()
		r := e.do("POST", "/admin/users", map[string]any{
			"username": "alice", "password": "correct horse battery staple",
			"claims": map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice"},
		})
		e.want(r, http.StatusCreated, "")
		u := r.json(t)
		id, _ := u["id"].(string)
		if id == "" || u["has_password"] != true || strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), "staple") {
			t.Fatalf("created user = %s", r.body)
		}
		if got := r.header.Get("Location"); got != "/admin/users/"+id {
			t.Errorf("Location = %q", got)
		}
		e.want(e.do("POST", "/admin/users", map[string]any{"username": "alice"}), http.StatusConflict, "conflict")
		e.want(e.do("POST", "/admin/users", map[string]any{"username": "bob", "claims": map[string]any{"email": "ALICE@example.com"}}), http.StatusConflict, "conflict")
		e.want(e.do("POST", "/admin/users", map[string]any{"username": "x", "password": "short"}), http.StatusBadRequest, "invalid_request")
		e.want(e.do("POST", "/admin/users", map[string]any{"username": ""}), http.StatusBadRequest, "invalid_request")

		r = e.do("GET", "/admin/users/"+id, nil)
		e.want(r, http.StatusOK, "")
		if claims, _ := r.json(t)["claims"].(map[string]any); claims["email"] != "alice@example.com" {
			t.Errorf("GET user = %s", r.body)
		}

		// PATCH changes only what it names; a new email is unverified.
		r = e.do("PATCH", "/admin/users/"+id, map[string]any{"claims": map[string]any{"email": "a@example.org"}})
		e.want(r, http.StatusOK, "")
		claims, _ := r.json(t)["claims"].(map[string]any)
		if claims["email"] != "a@example.org" || claims["name"] != "Alice" || claims["email_verified"] != nil {
			t.Errorf("patched user = %s", r.body)
		}
		e.want(e.do("PATCH", "/admin/users/"+id, map[string]any{"username": "bad name\n"}), http.StatusBadRequest, "invalid_request")
		e.want(e.do("PATCH", "/admin/users/nope", map[string]any{}), http.StatusNotFound, "not_found")

		// Password, through the same service as sign-in.
		e.want(e.do("POST", "/admin/users/"+id+"/password", map[string]any{"password": "another long passphrase"}), http.StatusNoContent, "")
		if _, err := e.users.Authenticate(ctx, "alice", "another long passphrase"); err != nil {
			t.Errorf("the new password does not work: %v", err)
		}
		e.want(e.do("POST", "/admin/users/"+id+"/password", map[string]any{"password": "x"}), http.StatusBadRequest, "invalid_request")
		e.want(e.do("POST", "/admin/users/nope/password", map[string]any{"password": "another long passphrase"}), http.StatusNotFound, "not_found")

		r = e.do("POST", "/admin/users/"+id+"/disable", nil)
		e.want(r, http.StatusOK, "")
		if r.json(t)["disabled"] != true {
			t.Errorf("disable answered %s", r.body)
		}
		if _, err := e.users.Authenticate(ctx, "alice", "another long passphrase"); err == nil {
			t.Error("a disabled user signs in")
		}
		r = e.do("POST", "/admin/users/"+id+"/enable", nil)
		e.want(r, http.StatusOK, "")
		if r.json(t)["disabled"] != false {
			t.Errorf("enable answered %s", r.body)
		}
		e.want(e.do("POST", "/admin/users/nope/disable", nil), http.StatusNotFound, "not_found")

		// Deleting signs the user out everywhere first.
		putSession(t, store, "s1", id)
		putGrant(t, store, "g1", "c", id)
		r = e.do("DELETE", "/admin/users/"+id, nil)
		e.want(r, http.StatusOK, "")
		if m := r.json(t); m["sessions_ended"] != float64(1) || m["grants_revoked"] != float64(1) {
			t.Errorf("delete answered %s", r.body)
		}
		if ids := e.ender.endedIDs(); len(ids) != 1 || ids[0] != "s1" {
			t.Errorf("sessions ended through the SessionEnder: %v, want [s1]", ids)
		}
		e.want(e.do("GET", "/admin/users/"+id, nil), http.StatusNotFound, "not_found")
		e.want(e.do("DELETE", "/admin/users/"+id, nil), http.StatusNotFound, "not_found")
	})
}

func putSession(t *testing.T, store storage.SessionStore, id, subject string, clientIDs ...string) storage.Session {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := storage.Session{
		ID: id, Subject: subject, AuthTime: now, AMR: []string{"pwd"}, ClientIDs: clientIDs,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	if err := store.CreateSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) newUser(name string) string {
	e.t.Helper()
	u, err := e.users.Create(context.Background(), users.NewUser{Username: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

func TestSessionsConsentsGrants(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken})
		ctx := context.Background()
		alice, bob := e.newUser("alice"), e.newUser("bob")
		putSession(t, store, "sa1", alice, "c1")
		putSession(t, store, "sa2", alice)
		putSession(t, store, "sb1", bob)

		items := e.do("GET", "/admin/users/"+alice+"/sessions", nil).items(t)
		if len(items) != 2 || items[0]["id"] != "sa1" || items[0]["user_id"] != alice || items[1]["id"] != "sa2" {
			t.Fatalf("alice's sessions = %v", items)
		}
		if ids, _ := items[0]["client_ids"].([]any); len(ids) != 1 || ids[0] != "c1" {
			t.Errorf("session client_ids = %v", items[0]["client_ids"])
		}
		e.want(e.do("GET", "/admin/users/nope/sessions", nil), http.StatusNotFound, "not_found")

		// Bob's session is not Alice's to end.
		e.want(e.do("DELETE", "/admin/users/"+alice+"/sessions/sb1", nil), http.StatusNotFound, "not_found")
		e.want(e.do("DELETE", "/admin/users/"+alice+"/sessions/nope", nil), http.StatusNotFound, "not_found")
		e.want(e.do("DELETE", "/admin/users/"+alice+"/sessions/sa1", nil), http.StatusNoContent, "")
		if ids := e.ender.endedIDs(); len(ids) != 1 || ids[0] != "sa1" {
			t.Errorf("ended %v, want [sa1]", ids)
		}
		r := e.do("DELETE", "/admin/users/"+alice+"/sessions", nil)
		e.want(r, http.StatusOK, "")
		if n := r.json(t)["ended"]; n != float64(1) {
			t.Errorf("ending all of alice's sessions ended %v, want 1", n)
		}
		if _, err := store.GetSession(ctx, "sb1"); err != nil {
			t.Errorf("bob's session is gone: %v", err)
		}
		if items := e.do("GET", "/admin/users/"+alice+"/sessions", nil).items(t); len(items) != 0 {
			t.Errorf("alice still has sessions: %v", items)
		}

		// Consents.
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, c := range []string{"c2", "c1"} {
			if err := store.PutConsent(ctx, storage.Consent{Subject: alice, ClientID: c, Scopes: []string{"openid"}, GrantedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		items = e.do("GET", "/admin/users/"+alice+"/consents", nil).items(t)
		if len(items) != 2 || items[0]["client_id"] != "c1" || items[1]["client_id"] != "c2" {
			t.Fatalf("consents = %v", items)
		}
		if _, ok := items[0]["expires_at"]; ok {
			t.Errorf("a consent without expiry shows expires_at: %v", items[0])
		}
		e.want(e.do("DELETE", "/admin/users/"+alice+"/consents/c1", nil), http.StatusNoContent, "")
		e.want(e.do("DELETE", "/admin/users/"+alice+"/consents/c1", nil), http.StatusNotFound, "not_found")
		e.want(e.do("DELETE", "/admin/users/"+bob+"/consents/c2", nil), http.StatusNotFound, "not_found")
		if _, err := store.GetConsent(ctx, alice, "c2"); err != nil {
			t.Errorf("the other consent is gone: %v", err)
		}

		// Grants of a user.
		putGrant(t, store, "ga1", "c1", alice)
		putGrant(t, store, "ga2", "c2", alice)
		putGrant(t, store, "gb1", "c1", bob)
		r = e.do("DELETE", "/admin/users/"+alice+"/grants", nil)
		e.want(r, http.StatusOK, "")
		if n := r.json(t)["revoked"]; n != float64(2) {
			t.Errorf("revoked %v of alice's grants, want 2", n)
		}
		if _, err := store.GetRequest(ctx, storage.KindAccessToken, "gb1"); err != nil {
			t.Errorf("bob's grant is gone: %v", err)
		}
		e.want(e.do("DELETE", "/admin/users/nope/grants", nil), http.StatusNotFound, "not_found")
	})
}

func TestKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken, keys: true})
		items := e.do("GET", "/admin/keys", nil).items(t)
		active := map[string]string{}
		for _, k := range items {
			if k["kid"] == "" || k["alg"] == "" || k["created_at"] == nil {
				t.Errorf("key = %v", k)
			}
			for _, secret := range []string{"d", "private_key", "PrivateKey"} {
				if _, ok := k[secret]; ok {
					t.Errorf("key %v shows %s", k["kid"], secret)
				}
			}
			if k["state"] == "active" {
				active[k["alg"].(string)] = k["kid"].(string)
			}
		}
		if len(active) == 0 {
			t.Fatalf("no active key listed: %v", items)
		}
		// The next keys were just published: rotating now would sign with
		// keys relying parties may not know (OIDC Core §10.1.1).
		e.want(e.do("POST", "/admin/keys/rotate", nil), http.StatusConflict, "rotation_not_ready")
		e.want(e.do("POST", "/admin/keys/rotate?force=maybe", nil), http.StatusBadRequest, "invalid_request")
		r := e.do("POST", "/admin/keys/rotate?force=true", nil)
		e.want(r, http.StatusOK, "")
		for _, k := range r.items(t) {
			if k["state"] == "active" && k["kid"] == active[k["alg"].(string)] {
				t.Errorf("key %v is still active after a forced rotation", k["kid"])
			}
		}
		if e.keys.Version() < 2 {
			t.Errorf("key set version %d after a rotation", e.keys.Version())
		}
	})
}

func TestRegistrationTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken})
		r := e.do("POST", "/admin/registration-tokens", map[string]any{"uses": 3, "expires_in": 3600, "description": "ci"})
		e.want(r, http.StatusCreated, "")
		tok := r.json(t)
		token, _ := tok["token"].(string)
		id, _ := tok["id"].(string)
		if len(token) < 32 || id == "" || tok["uses_left"] != float64(3) || tok["expires_at"] == nil {
			t.Fatalf("created token = %s", r.body)
		}
		// The token works at the registration service and is not stored.
		svc := registration.NewTokenService(store, testRing(t), nil, nil)
		if got, err := svc.UseToken(context.Background(), token); err != nil || got.ID != id {
			t.Fatalf("using the created token: %v (id %q, want %q)", err, got.ID, id)
		}
		r = e.do("POST", "/admin/registration-tokens", nil)
		e.want(r, http.StatusCreated, "")
		if m := r.json(t); m["uses_left"] != float64(1) || m["expires_at"] != nil {
			t.Errorf("default token = %s", r.body)
		}
		r = e.do("POST", "/admin/registration-tokens", map[string]any{"unlimited": true})
		e.want(r, http.StatusCreated, "")
		if m := r.json(t); m["uses_left"] != float64(-1) {
			t.Errorf("unlimited token = %s", r.body)
		}
		r = e.do("GET", "/admin/registration-tokens", nil)
		items := r.items(t)
		if len(items) != 3 || strings.Contains(string(r.body), token) || strings.Contains(string(r.body), `"token"`) {
			t.Fatalf("token listing = %s", r.body)
		}
		for _, body := range []map[string]any{{"uses": 0}, {"uses": 2, "unlimited": true}, {"expires_in": -5}, {"description": "a\nb"}} {
			e.want(e.do("POST", "/admin/registration-tokens", body), http.StatusBadRequest, "invalid_request")
		}
		e.want(e.do("DELETE", "/admin/registration-tokens/"+id, nil), http.StatusNoContent, "")
		e.want(e.do("DELETE", "/admin/registration-tokens/"+id, nil), http.StatusNotFound, "not_found")
		if items := e.do("GET", "/admin/registration-tokens", nil).items(t); len(items) != 2 {
			t.Errorf("%d tokens after a delete, want 2", len(items))
		}
	})
}

func TestPagination(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		e := newEnv(t, store, envOptions{token: testToken})
		want := map[string]bool{}
		for _, n := range []string{"u1", "u2", "u3", "u4", "u5"} {
			want[e.newUser(n)] = true
		}
		seen := map[string]bool{}
		after, pages := "", 0
		for {
			r := e.do("GET", "/admin/users?limit=2&after="+after, nil)
			e.want(r, http.StatusOK, "")
			var l struct {
				Items []struct{ ID string } `json:"items"`
				Next  string                `json:"next"`
			}
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
			pages++
			for _, it := range l.Items {
				if seen[it.ID] || it.ID <= after {
					t.Fatalf("user %s listed twice or out of order", it.ID)
				}
				seen[it.ID] = true
			}
			if l.Next == "" {
				break
			}
			if len(l.Items) != 2 || l.Next != l.Items[1].ID {
				t.Fatalf("page %d: %d items, next %q", pages, len(l.Items), l.Next)
			}
			after = l.Next
		}
		if pages != 3 || len(seen) != len(want) {
			t.Errorf("%d pages listing %d users, want 3 pages of all %d", pages, len(seen), len(want))
		}
		// A page that ends exactly at the last item has no next.
		r := e.do("GET", "/admin/users?limit=5", nil)
		if m := r.json(t); m["next"] != nil || len(r.items(t)) != 5 {
			t.Errorf("a full last page = %s", r.body)
		}
		for _, bad := range []string{"0", "-1", "x", "1001"} {
			e.want(e.do("GET", "/admin/users?limit="+bad, nil), http.StatusBadRequest, "invalid_request")
		}

		// In-memory paging of one owner's records.
		alice := e.newUser("alice")
		for _, s := range []string{"s3", "s1", "s2"} {
			putSession(t, store, s, alice)
		}
		r = e.do("GET", "/admin/users/"+alice+"/sessions?limit=2", nil)
		items := r.items(t)
		if len(items) != 2 || items[0]["id"] != "s1" || r.json(t)["next"] != "s2" {
			t.Fatalf("first page of sessions = %s", r.body)
		}
		r = e.do("GET", "/admin/users/"+alice+"/sessions?limit=2&after=s2", nil)
		if items := r.items(t); len(items) != 1 || items[0]["id"] != "s3" || r.json(t)["next"] != nil {
			t.Fatalf("second page of sessions = %s", r.body)
		}
		r = e.do("GET", "/admin/users/"+alice+"/sessions?after=s10", nil)
		if items := r.items(t); len(items) != 2 || items[0]["id"] != "s2" {
			t.Fatalf("sessions after s10 = %s", r.body)
		}
	})
}

// TestClientMistakes: nothing a caller sends makes the API answer 500.
func TestClientMistakes(t *testing.T) {
	st := memory.New()
	defer st.Close()
	e := newEnv(t, st, envOptions{token: testToken, tune: func(c *Config) { c.MaxBodyBytes = 1024 }})
	id := e.newUser("alice")
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	withType := func(ct string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": ct}
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		headers            map[string]string
		status             int
		code               string
	}{
		{"bad JSON", "POST", "/admin/users", `{"username":`, auth, 400, "invalid_request"},
		{"not an object", "POST", "/admin/users", `["alice"]`, auth, 400, "invalid_request"},
		{"two objects", "POST", "/admin/users", `{"username":"a1"} {}`, auth, 400, "invalid_request"},
		{"wrong type", "POST", "/admin/users", `{"username": 5}`, auth, 400, "invalid_request"},
		{"wrong nested type", "PATCH", "/admin/users/" + id, `{"claims": {"email_verified": "yes"}}`, auth, 400, "invalid_request"},
		{"unknown member", "POST", "/admin/users", `{"username":"a2","passwrd":"x"}`, auth, 400, "invalid_request"},
		{"empty body", "POST", "/admin/users", nil, auth, 400, "invalid_request"},
		{"not JSON", "POST", "/admin/users", `username=a3`, withType("application/x-www-form-urlencoded"), 415, "unsupported_media_type"},
		{"too large", "POST", "/admin/users", `{"username":"` + strings.Repeat("a", 2000) + `"}`, auth, 413, "request_too_large"},
		{"bad client JSON", "POST", "/admin/clients", `{"redirect_uris": "https://x.example/cb"}`, auth, 400, "invalid_request"},
		{"bad jwks", "POST", "/admin/clients", `{"redirect_uris": ["https://x.example/cb"], "jwks": 5}`, auth, 400, ""},
		{"overlap type", "POST", "/admin/clients/x/secret", `{"overlap_seconds": "1h"}`, auth, 400, "invalid_request"},
		{"unknown path", "GET", "/admin/nothing", nil, auth, 404, "not_found"},
		{"unknown user", "GET", "/admin/users/nope", nil, auth, 404, "not_found"},
		{"unknown client", "GET", "/admin/clients/nope", nil, auth, 404, "not_found"},
		{"wrong method", "PUT", "/admin/users", nil, auth, 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.doWith(tc.method, tc.path, tc.body, tc.headers)
			if r.status >= 500 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			e.want(r, tc.status, tc.code)
		})
	}
	e.t = t
	r := e.doWith("PUT", "/admin/users", nil, auth)
	if got := r.header.Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow = %q, want GET, POST", got)
	}
}
