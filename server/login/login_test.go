package login_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

const (
	alicePassword = "correct horse battery staple"
	shopRedirect  = "https://shop.example/cb"
	shopLogout    = "https://shop.example/bye?from=idp"
)

// fakeFlow stands in for oauth.Provider's side of the seam with the same
// contract: a pending request is read any number of times and resumed or
// aborted once, which redirects to the client.
type fakeFlow struct {
	mu      sync.Mutex
	n       int
	pending map[string]oauth.AuthorizeRequest
	done    map[string]bool
	granted map[string]oauth.Decision
	aborted map[string]error
}

func newFakeFlow() *fakeFlow {
	return &fakeFlow{pending: map[string]oauth.AuthorizeRequest{}, done: map[string]bool{},
		granted: map[string]oauth.Decision{}, aborted: map[string]error{}}
}

func (f *fakeFlow) add(req oauth.AuthorizeRequest) oauth.AuthorizeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	req.Handle = "handle-" + string(rune('a'+f.n))
	req.RequestedAt = time.Now()
	if req.RedirectURI == "" {
		req.RedirectURI = shopRedirect
	}
	f.pending[req.Handle] = req
	return req
}

func (f *fakeFlow) PendingAuthorize(_ context.Context, handle string) (oauth.AuthorizeRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, ok := f.pending[handle]
	if !ok || f.done[handle] {
		return oauth.AuthorizeRequest{}, oauth.ErrPendingNotFound
	}
	return req, nil
}

func (f *fakeFlow) take(w http.ResponseWriter, r *http.Request, handle string) (oauth.AuthorizeRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, ok := f.pending[handle]
	if !ok || f.done[handle] {
		http.Error(w, "expired", http.StatusBadRequest)
		return req, false
	}
	f.done[handle] = true
	return req, true
}

func (f *fakeFlow) ResumeAuthorize(w http.ResponseWriter, r *http.Request, handle string, d oauth.Decision) {
	req, ok := f.take(w, r, handle)
	if !ok {
		return
	}
	f.mu.Lock()
	f.granted[handle] = d
	f.mu.Unlock()
	http.Redirect(w, r, req.RedirectURI+"?code=issued", http.StatusSeeOther)
}

func (f *fakeFlow) AbortAuthorize(w http.ResponseWriter, r *http.Request, handle string, err error) {
	req, ok := f.take(w, r, handle)
	if !ok {
		return
	}
	f.mu.Lock()
	f.aborted[handle] = err
	f.mu.Unlock()
	var ae *oauth.AuthorizeError
	errors.As(err, &ae)
	http.Redirect(w, r, req.RedirectURI+"?error="+ae.Code, http.StatusSeeOther)
}

func (f *fakeFlow) VerifyIDTokenHint(context.Context, string) (string, string, string, error) {
	return "", "", "", errors.New("the fake flow verifies no hint")
}

func (f *fakeFlow) decision(handle string) (oauth.Decision, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.granted[handle]
	return d, ok
}

type env struct {
	t       *testing.T
	store   *memory.Store
	flow    *fakeFlow
	h       *login.Handler
	srv     *httptest.Server
	client  *http.Client
	aliceID string
	now     time.Time
	// authorize is the request the next /authorize call is made with.
	mu   sync.Mutex
	next oauth.AuthorizeRequest
}

type envOption func(*login.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, store: memory.New(), flow: newFakeFlow(), now: time.Now()}
	t.Cleanup(func() { e.store.Close() })
	ctx := context.Background()

	ring, err := secrets.NewKeyring(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(session.Config{Store: e.store, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	// Cheap parameters: the tests check behaviour, not cost.
	hasher, err := password.New(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := hasher.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	e.aliceID = "u-alice"
	for _, u := range []storage.User{
		{ID: e.aliceID, Username: "alice", PasswordHash: hash, Claims: storage.Claims{Email: "alice@example.com"}},
		{ID: "u-mallory", Username: "mallory", PasswordHash: hash, Disabled: true},
	} {
		if err := e.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []storage.Client{
		{ID: "shop", Name: "Shop <&> Co", RedirectURIs: []string{shopRedirect}, PostLogoutRedirectURIs: []string{shopLogout},
			ClientURI: "https://shop.example/", PolicyURI: "https://shop.example/privacy", TOSURI: "javascript:alert(1)"},
		{ID: "portal", Name: "Portal", FirstParty: true, RedirectURIs: []string{"https://portal.example/cb"}},
	} {
		if err := e.store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	ui, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := login.Config{
		Users: e.store, Clients: e.store, Consents: e.store, Throttle: e.store,
		Sessions: sessions, Passwords: hasher, UI: ui, Flow: e.flow,
		VerifyIDTokenHint: func(_ context.Context, hint string) (string, string, string, error) {
			// "idtoken:<subject>:<client>" stands for a valid ID token.
			parts := strings.Split(hint, ":")
			if len(parts) != 3 || parts[0] != "idtoken" {
				return "", "", "", errors.New("bad hint")
			}
			return parts[1], parts[2], "sid", nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now },
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.h, err = login.New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", e.h.LoginPage)
	mux.HandleFunc("POST /login", e.h.LoginSubmit)
	mux.HandleFunc("GET /consent", e.h.ConsentPage)
	mux.HandleFunc("POST /consent", e.h.ConsentSubmit)
	mux.HandleFunc("GET /oauth2/logout", e.h.Logout)
	mux.HandleFunc("POST /oauth2/logout", e.h.Logout)
	// /authorize plays oauth.Provider.Authorize: store the pending request,
	// ask the Interaction, act on its answer.
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		req := e.flow.add(e.next)
		e.mu.Unlock()
		w.Header().Set("X-Handle", req.Handle)
		d, err := e.h.Authorize(w, r, req)
		switch {
		case err != nil:
			e.flow.AbortAuthorize(w, r, req.Handle, err)
		case d != nil:
			e.flow.ResumeAuthorize(w, r, req.Handle, *d)
		}
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	jar, _ := cookiejar.New(nil)
	e.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) location() string { return r.header.Get("Location") }

func (e *env) do(method, path string, form url.Values) response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

// authorize starts an authorization request and returns the response and
// the handle of the pending request.
func (e *env) authorize(req oauth.AuthorizeRequest) (response, string) {
	e.t.Helper()
	if req.MaxAge == 0 {
		req.MaxAge = -1
	}
	e.mu.Lock()
	e.next = req
	e.mu.Unlock()
	res := e.do(http.MethodGet, "/authorize", nil)
	return res, res.header.Get("X-Handle")
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfToken(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in page:\n%s", body)
	}
	return m[1]
}

// loginForm fetches the login page of handle and returns its CSRF token.
func (e *env) loginForm(handle string) string {
	e.t.Helper()
	res := e.do(http.MethodGet, "/login?handle="+url.QueryEscape(handle), nil)
	if res.status != http.StatusOK {
		e.t.Fatalf("login page: status %d\n%s", res.status, res.body)
	}
	return csrfToken(e.t, res.body)
}

func (e *env) submitLogin(handle, username, pw string, remember bool) response {
	e.t.Helper()
	form := url.Values{"csrf_token": {e.loginForm(handle)}, "handle": {handle}, "username": {username}, "password": {pw}}
	if remember {
		form.Set("remember", "on")
	}
	return e.do(http.MethodPost, "/login", form)
}

func (e *env) sessionCookie() *http.Cookie {
	u, _ := url.Parse(e.srv.URL)
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == "gh_session" {
			return c
		}
	}
	return nil
}

// signIn runs a whole sign-in for a first-party client and returns the
// session cookie value.
func (e *env) signIn(remember bool) string {
	e.t.Helper()
	res, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Scopes: []string{"openid"}})
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.location(), "/login?") {
		e.t.Fatalf("authorize without session: status %d location %q, want the login page", res.status, res.location())
	}
	res = e.submitLogin(handle, "alice", alicePassword, remember)
	if res.status != http.StatusSeeOther || !strings.Contains(res.location(), "code=issued") {
		e.t.Fatalf("sign-in: status %d location %q\n%s", res.status, res.location(), res.body)
	}
	c := e.sessionCookie()
	if c == nil {
		e.t.Fatal("no session cookie after sign-in")
	}
	return c.Value
}

func TestLoginSuccessStartsSessionAndRotatesID(t *testing.T) {
	e := newEnv(t)
	first := e.signIn(false)

	// prompt=login with a live session still shows the login page (OIDC Core §3.1.2.1).
	res, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Scopes: []string{"openid"}, Prompt: []string{"login"}})
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.location(), "/login?") {
		t.Fatalf("prompt=login: status %d location %q, want the login page", res.status, res.location())
	}
	res = e.submitLogin(handle, "alice@EXAMPLE.com", alicePassword, false) // by email, case-insensitively
	if res.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: status %d\n%s", res.status, res.body)
	}
	second := e.sessionCookie().Value
	if second == first {
		t.Fatal("the session ID did not change at sign-in (session fixation)")
	}
	d, ok := e.flow.decision(handle)
	if !ok || d.Subject != e.aliceID || d.SessionID == "" || len(d.AMR) != 1 || d.AMR[0] != "pwd" {
		t.Errorf("decision = %+v, %v", d, ok)
	}
	if d.SessionID == second {
		t.Error("the decision's session ID (the sid claim) is the cookie value")
	}
	sessions, err := e.store.ListSessions(context.Background(), e.aliceID)
	if err != nil || len(sessions) != 1 {
		t.Errorf("alice has %d sessions (%v), want 1: the old one must be deleted", len(sessions), err)
	}
	if len(sessions) == 1 && (sessions[0].ID != d.SessionID || len(sessions[0].ClientIDs) != 1 || sessions[0].ClientIDs[0] != "portal") {
		t.Errorf("session = %+v, want ID %s with client portal", sessions[0], d.SessionID)
	}
}

func TestRememberMeCookie(t *testing.T) {
	for _, remember := range []bool{false, true} {
		e := newEnv(t)
		_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true})
		res := e.submitLogin(handle, "alice", alicePassword, remember)
		var setCookie string
		for _, v := range res.header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "gh_session=") {
				setCookie = v
			}
		}
		persistent := strings.Contains(setCookie, "Max-Age=") || strings.Contains(setCookie, "Expires=")
		if persistent != remember {
			t.Errorf("remember=%v: Set-Cookie %q persistent=%v", remember, setCookie, persistent)
		}
		for _, flag := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(setCookie, flag) {
				t.Errorf("Set-Cookie %q lacks %s", setCookie, flag)
			}
		}
	}
}

func TestFailedLoginsLookAlike(t *testing.T) {
	e := newEnv(t)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true})
	errRE := regexp.MustCompile(`<p class="error"[^>]*>([^<]*)</p>`)
	var bodies []string
	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "alice", "wrong"},
		{"unknown user", "nobody", alicePassword},
		{"unknown email", "nobody@example.com", alicePassword},
		{"disabled user, right password", "mallory", alicePassword},
	} {
		res := e.submitLogin(handle, tc.user, tc.pw, false)
		m := errRE.FindStringSubmatch(res.body)
		if res.status != http.StatusOK || m == nil || m[1] != "Invalid username or password." {
			t.Errorf("%s: status %d, message %v\n%s", tc.name, res.status, m, res.body)
		}
		if e.sessionCookie() != nil {
			t.Errorf("%s: a session cookie was set", tc.name)
		}
		bodies = append(bodies, strings.ReplaceAll(csrfRE.ReplaceAllString(res.body, ""), tc.user, "USER"))
	}
	for i := 1; i < len(bodies); i++ {
		if bodies[i] != bodies[0] {
			t.Errorf("failure page %d differs from the first:\n%s\n---\n%s", i, bodies[i], bodies[0])
		}
	}
}

func TestThrottling(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.Throttling = login.ThrottleConfig{MaxAccountFailures: 3, MaxIPFailures: 100}
	})
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true})

	// A success resets the account's counter: 2 failures, a success, 2 more.
	for i := 0; i < 2; i++ {
		e.submitLogin(handle, "alice", "wrong", false)
	}
	if res := e.submitLogin(handle, "alice", alicePassword, false); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in after 2 failures: status %d", res.status)
	}
	_, handle = e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Prompt: []string{"login"}})
	for i := 0; i < 3; i++ {
		if res := e.submitLogin(handle, "alice", "wrong", false); res.status != http.StatusOK {
			t.Fatalf("failure %d: status %d, want 200 (not yet throttled)", i+1, res.status)
		}
	}
	// After 3 failures even the right password is refused, by email too.
	for _, user := range []string{"alice", "alice@example.com"} {
		res := e.submitLogin(handle, user, alicePassword, false)
		if res.status != http.StatusTooManyRequests {
			t.Fatalf("%s after 3 failures: status %d, want 429", user, res.status)
		}
		if ra := res.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After = %q, want a positive number of seconds", ra)
		}
	}
	// Unknown accounts are throttled the same way.
	for i := 0; i < 3; i++ {
		e.submitLogin(handle, "ghost", "x", false)
	}
	if res := e.submitLogin(handle, "ghost", "x", false); res.status != http.StatusTooManyRequests {
		t.Errorf("unknown user after 3 failures: status %d, want 429", res.status)
	}
}

func TestThrottlingPerIP(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.Throttling = login.ThrottleConfig{MaxAccountFailures: 100, MaxIPFailures: 4}
	})
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true})
	for i := 0; i < 4; i++ {
		e.submitLogin(handle, "user"+string(rune('a'+i)), "x", false)
	}
	res := e.submitLogin(handle, "alice", alicePassword, false)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Errorf("after 4 failures from one address: status %d Retry-After %q, want 429 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
}

// Retry-After is the lock's length: BaseBackoff at the first lock (the
// growth itself is checked by TestBackoff in the package).
func TestThrottleRetryAfter(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.Throttling = login.ThrottleConfig{MaxAccountFailures: 1, MaxIPFailures: 100, BaseBackoff: time.Minute, MaxBackoff: time.Hour}
	})
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true})
	e.submitLogin(handle, "alice", "wrong", false)
	res := e.submitLogin(handle, "alice", "wrong", false)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "60" {
		t.Errorf("first lock: status %d Retry-After %q, want 429 and 60", res.status, res.header.Get("Retry-After"))
	}
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}})
	token := e.loginForm(handle)
	for name, form := range map[string]url.Values{
		"missing":             {"handle": {handle}, "username": {"alice"}, "password": {alicePassword}},
		"bad":                 {"csrf_token": {token[:len(token)-4] + "AAAA"}, "handle": {handle}, "username": {"alice"}, "password": {alicePassword}},
		"cookie value itself": {"csrf_token": {e.cookie("gh_csrf")}, "handle": {handle}, "username": {"alice"}, "password": {alicePassword}},
	} {
		res := e.do(http.MethodPost, "/login", form)
		if res.status != http.StatusForbidden {
			t.Errorf("login POST with %s token: status %d, want 403", name, res.status)
		}
	}
	if e.sessionCookie() != nil {
		t.Error("a session was started without a valid CSRF token")
	}
	// Consent and logout confirmation are protected too.
	e.signIn(false)
	_, handle = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}})
	if res := e.do(http.MethodPost, "/consent", url.Values{"handle": {handle}, "decision": {"allow"}}); res.status != http.StatusForbidden {
		t.Errorf("consent POST without token: status %d, want 403", res.status)
	}
	if _, ok := e.flow.decision(handle); ok {
		t.Error("consent was granted without a CSRF token")
	}
	if res := e.do(http.MethodPost, "/oauth2/logout", url.Values{"confirm": {"yes"}}); res.status != http.StatusForbidden {
		t.Errorf("logout confirmation without token: status %d, want 403", res.status)
	}
	if e.sessionCookie() == nil {
		t.Error("logout without a CSRF token ended the session")
	}
}

func (e *env) cookie(name string) string {
	u, _ := url.Parse(e.srv.URL)
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// consent answers the consent page of handle.
func (e *env) consent(handle, decision string) response {
	e.t.Helper()
	page := e.do(http.MethodGet, "/consent?handle="+url.QueryEscape(handle), nil)
	if page.status != http.StatusOK {
		e.t.Fatalf("consent page: status %d location %q", page.status, page.location())
	}
	return e.do(http.MethodPost, "/consent", url.Values{"csrf_token": {csrfToken(e.t, page.body)}, "handle": {handle}, "decision": {decision}})
}

func TestConsent(t *testing.T) {
	e := newEnv(t)
	e.signIn(false)

	res, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid", "profile"}})
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.location(), "/consent?") {
		t.Fatalf("third-party client without consent: status %d location %q, want the consent page", res.status, res.location())
	}
	res = e.consent(handle, "allow")
	if res.status != http.StatusSeeOther || res.location() != shopRedirect+"?code=issued" {
		t.Fatalf("allow: status %d location %q", res.status, res.location())
	}
	d, _ := e.flow.decision(handle)
	if strings.Join(d.GrantedScopes, " ") != "openid profile" {
		t.Errorf("granted %v, want openid profile", d.GrantedScopes)
	}

	// The same or a smaller set of scopes: remembered, no page.
	for _, scopes := range [][]string{{"openid", "profile"}, {"openid"}} {
		res, handle = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: scopes})
		if res.status != http.StatusSeeOther || !strings.Contains(res.location(), "code=issued") {
			t.Errorf("scopes %v after consent: location %q, want a code at once", scopes, res.location())
		}
	}
	// A larger set asks again; allowing adds to what is remembered.
	res, handle = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid", "email"}})
	if !strings.HasPrefix(res.location(), "/consent?") {
		t.Fatalf("superset of consented scopes: location %q, want the consent page", res.location())
	}
	e.consent(handle, "allow")
	res, _ = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"profile", "email"}})
	if !strings.Contains(res.location(), "code=issued") {
		t.Errorf("scopes within the union of consents: location %q, want a code", res.location())
	}
	// prompt=consent asks even so (OIDC Core §3.1.2.1).
	res, _ = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}, Prompt: []string{"consent"}})
	if !strings.HasPrefix(res.location(), "/consent?") {
		t.Errorf("prompt=consent: location %q, want the consent page", res.location())
	}
	// An expired consent is not reused.
	e.advance(login.DefaultConsentLifetime + time.Minute)
	res, _ = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}})
	if !strings.HasPrefix(res.location(), "/consent?") {
		t.Errorf("expired consent: location %q, want the consent page", res.location())
	}
}

func TestConsentDeny(t *testing.T) {
	e := newEnv(t)
	e.signIn(false)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}})
	res := e.consent(handle, "deny")
	if res.location() != shopRedirect+"?error=access_denied" {
		t.Errorf("deny: location %q, want access_denied to the client", res.location())
	}
	if _, err := e.store.GetConsent(context.Background(), e.aliceID, "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a denied consent was stored: %v", err)
	}
}

func TestConsentPageContent(t *testing.T) {
	e := newEnv(t)
	e.signIn(false)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "shop", ClientName: "Shop <&> Co", ClientURI: "https://shop.example/",
		PolicyURI: "https://shop.example/privacy", TOSURI: "javascript:alert(1)", LogoURI: "http://insecure.example/logo.png",
		Scopes: []string{"openid", "email", "offline_access", "orders:read"}})
	res := e.do(http.MethodGet, "/consent?handle="+handle, nil)
	for _, want := range []string{
		"Shop &lt;&amp;&gt; Co",
		"See your email address",
		"Keep access to your account when you are not using it",
		"<code>orders:read</code>",
		`href="https://shop.example/privacy"`,
		`value="allow"`, `value="deny"`,
		"Signed in as <strong>alice</strong>",
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	for _, bad := range []string{"javascript:", "insecure.example", "<script", "style="} {
		if strings.Contains(res.body, bad) {
			t.Errorf("consent page contains %q", bad)
		}
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	// The form may end in a redirect to the client: CSP form-action allows it.
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://shop.example") {
		t.Errorf("CSP = %q, want form-action allowing the client's origin", csp)
	}
}

func TestFirstPartySkipsConsent(t *testing.T) {
	e := newEnv(t)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Scopes: []string{"openid", "email"}})
	res := e.submitLogin(handle, "alice", alicePassword, false)
	if !strings.Contains(res.location(), "code=issued") {
		t.Fatalf("first-party client: location %q, want a code without consent", res.location())
	}
	if d, _ := e.flow.decision(handle); strings.Join(d.GrantedScopes, " ") != "openid email" {
		t.Errorf("granted %v", d.GrantedScopes)
	}
}

func TestLoginPage(t *testing.T) {
	e := newEnv(t)
	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "shop", ClientName: "Shop", LoginHint: `al"ice`, UILocales: []string{"fr"}})
	res := e.do(http.MethodGet, "/login?handle="+handle, nil)
	for _, want := range []string{`<html lang="en">`, `<label for="username">`, `<label for="password">`, `<label for="remember">`,
		`value="al&#34;ice"`, "<strong>Shop</strong>", `autocomplete="current-password"`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(res.body, "<script") || strings.Contains(res.body, "style=") {
		t.Error("login page has inline script or style")
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.header.Get("Cache-Control"))
	}
	if res := e.do(http.MethodGet, "/login?handle=unknown", nil); res.status != http.StatusBadRequest {
		t.Errorf("unknown handle: status %d, want 400", res.status)
	}
}

func TestPromptAndMaxAge(t *testing.T) {
	e := newEnv(t)
	shop := func(mod func(*oauth.AuthorizeRequest)) oauth.AuthorizeRequest {
		r := oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Scopes: []string{"openid"}}
		mod(&r)
		return r
	}

	// OIDC Core §3.1.2.6: prompt=none without a session -> login_required.
	res, _ := e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.Prompt = []string{"none"} }))
	if res.location() != "https://shop.example/cb?error=login_required" {
		t.Errorf("prompt=none without session: location %q", res.location())
	}

	e.signIn(false)
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.Prompt = []string{"none"} }))
	if !strings.Contains(res.location(), "code=issued") {
		t.Errorf("prompt=none with session: location %q, want a code", res.location())
	}
	// prompt=none needing consent -> consent_required.
	res, _ = e.authorize(oauth.AuthorizeRequest{ClientID: "shop", Scopes: []string{"openid"}, Prompt: []string{"none"}})
	if res.location() != shopRedirect+"?error=consent_required" {
		t.Errorf("prompt=none needing consent: location %q", res.location())
	}
	// prompt=login forces the login page.
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.Prompt = []string{"login"} }))
	if !strings.HasPrefix(res.location(), "/login?") {
		t.Errorf("prompt=login: location %q", res.location())
	}
	// id_token_hint of another user: login_required under prompt=none, else login.
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.Prompt = []string{"none"}; r.IDTokenHintSubject = "u-bob" }))
	if !strings.HasSuffix(res.location(), "error=login_required") {
		t.Errorf("id_token_hint of another user, prompt=none: location %q", res.location())
	}
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.IDTokenHintSubject = "u-bob" }))
	if !strings.HasPrefix(res.location(), "/login?") {
		t.Errorf("id_token_hint of another user: location %q", res.location())
	}
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.IDTokenHintSubject = e.aliceID }))
	if !strings.Contains(res.location(), "code=issued") {
		t.Errorf("id_token_hint of the session's user: location %q", res.location())
	}

	// OIDC Core §3.1.2.1 max_age: within it, no login; beyond it, login again.
	e.advance(10 * time.Minute)
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.MaxAge = 3600 }))
	if !strings.Contains(res.location(), "code=issued") {
		t.Errorf("max_age not exceeded: location %q", res.location())
	}
	res, _ = e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.MaxAge = 60; r.Prompt = []string{"none"} }))
	if !strings.HasSuffix(res.location(), "error=login_required") {
		t.Errorf("max_age exceeded, prompt=none: location %q", res.location())
	}
	res, handle := e.authorize(shop(func(r *oauth.AuthorizeRequest) { r.MaxAge = 60 }))
	if !strings.HasPrefix(res.location(), "/login?") {
		t.Fatalf("max_age exceeded: location %q, want the login page", res.location())
	}
	// Signing in for that request satisfies it even with max_age=0: no loop.
	res = e.submitLogin(handle, "alice", alicePassword, false)
	if !strings.Contains(res.location(), "code=issued") {
		t.Errorf("sign-in after max_age: location %q, want a code", res.location())
	}
}

func TestDisabledUserLosesSession(t *testing.T) {
	e := newEnv(t)
	e.signIn(false)
	if _, err := e.store.UpdateUser(context.Background(), e.aliceID, func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	res, _ := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Prompt: []string{"none"}})
	if !strings.HasSuffix(res.location(), "error=login_required") {
		t.Errorf("disabled user's session, prompt=none: location %q, want login_required", res.location())
	}
}

func TestLogout(t *testing.T) {
	hintAlice := "idtoken:u-alice:shop"

	t.Run("valid hint and registered URI redirects with state", func(t *testing.T) {
		e := newEnv(t)
		e.signIn(false)
		q := url.Values{"id_token_hint": {hintAlice}, "post_logout_redirect_uri": {shopLogout}, "state": {"xyz 1"}}
		res := e.do(http.MethodGet, "/oauth2/logout?"+q.Encode(), nil)
		if res.status != http.StatusSeeOther || res.location() != shopLogout+"&state=xyz+1" {
			t.Errorf("status %d location %q, want 303 to %s&state=xyz+1", res.status, res.location(), shopLogout)
		}
		e.assertSignedOut(t)
	})

	t.Run("unregistered URI never redirects", func(t *testing.T) {
		e := newEnv(t)
		e.signIn(false)
		for _, target := range []string{"https://evil.example/", "https://shop.example/bye", shopLogout + "&x=1"} {
			q := url.Values{"id_token_hint": {hintAlice}, "post_logout_redirect_uri": {target}, "state": {"s"}}
			res := e.do(http.MethodGet, "/oauth2/logout?"+q.Encode(), nil)
			if res.status != http.StatusOK || res.location() != "" || strings.Contains(res.body, target) {
				t.Errorf("%s: status %d location %q, want a page and no redirect", target, res.status, res.location())
			}
		}
		e.assertSignedOut(t)
	})

	t.Run("without hint asks for confirmation", func(t *testing.T) {
		e := newEnv(t)
		e.signIn(false)
		q := url.Values{"client_id": {"shop"}, "post_logout_redirect_uri": {shopLogout}, "state": {"st"}}
		res := e.do(http.MethodGet, "/oauth2/logout?"+q.Encode(), nil)
		if res.status != http.StatusOK || !strings.Contains(res.body, `name="confirm"`) {
			t.Fatalf("status %d, want the confirmation page:\n%s", res.status, res.body)
		}
		if e.sessionCookie() == nil {
			t.Fatal("the session ended before confirmation")
		}
		if _, err := e.store.ListSessions(context.Background(), e.aliceID); err != nil {
			t.Fatal(err)
		}
		form := url.Values{"csrf_token": {csrfToken(t, res.body)}, "confirm": {"yes"}, "client_id": {"shop"},
			"post_logout_redirect_uri": {shopLogout}, "state": {"st"}}
		res = e.do(http.MethodPost, "/oauth2/logout", form)
		if res.status != http.StatusSeeOther || res.location() != shopLogout+"&state=st" {
			t.Errorf("confirmed: status %d location %q", res.status, res.location())
		}
		e.assertSignedOut(t)
	})

	// RP-Initiated Logout 1.0 §3: no redirection without an id_token_hint
	// unless the target is confirmed otherwise, session or not.
	t.Run("without session or hint asks before redirecting", func(t *testing.T) {
		e := newEnv(t)
		q := url.Values{"client_id": {"shop"}, "post_logout_redirect_uri": {shopLogout}, "state": {"st"}}
		res := e.do(http.MethodGet, "/oauth2/logout?"+q.Encode(), nil)
		if res.status != http.StatusOK || res.location() != "" || !strings.Contains(res.body, `name="confirm"`) {
			t.Fatalf("status %d location %q, want the confirmation page and no redirect", res.status, res.location())
		}
		form := url.Values{"csrf_token": {csrfToken(t, res.body)}, "confirm": {"yes"}, "client_id": {"shop"},
			"post_logout_redirect_uri": {shopLogout}, "state": {"st"}}
		res = e.do(http.MethodPost, "/oauth2/logout", form)
		if res.status != http.StatusSeeOther || res.location() != shopLogout+"&state=st" {
			t.Errorf("confirmed: status %d location %q, want 303 to %s&state=st", res.status, res.location(), shopLogout)
		}
		// A valid hint names the client: no question asked.
		q = url.Values{"id_token_hint": {hintAlice}, "post_logout_redirect_uri": {shopLogout}}
		res = e.do(http.MethodGet, "/oauth2/logout?"+q.Encode(), nil)
		if res.status != http.StatusSeeOther || res.location() != shopLogout {
			t.Errorf("with hint: status %d location %q, want 303 to %s", res.status, res.location(), shopLogout)
		}
	})

	t.Run("hint of another user asks for confirmation", func(t *testing.T) {
		e := newEnv(t)
		e.signIn(false)
		res := e.do(http.MethodGet, "/oauth2/logout?id_token_hint=idtoken:u-bob:shop", nil)
		if res.status != http.StatusOK || !strings.Contains(res.body, `name="confirm"`) {
			t.Errorf("status %d, want the confirmation page", res.status)
		}
		if sessions, _ := e.store.ListSessions(context.Background(), e.aliceID); len(sessions) != 1 {
			t.Error("another user's hint ended the session")
		}
	})

	t.Run("client_id not matching the hint is refused", func(t *testing.T) {
		e := newEnv(t)
		e.signIn(false)
		res := e.do(http.MethodGet, "/oauth2/logout?id_token_hint="+hintAlice+"&client_id=portal", nil)
		if res.status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", res.status)
		}
	})
}

func (e *env) assertSignedOut(t *testing.T) {
	t.Helper()
	if sessions, _ := e.store.ListSessions(context.Background(), e.aliceID); len(sessions) != 0 {
		t.Errorf("%d session records remain after logout", len(sessions))
	}
	if e.sessionCookie() != nil {
		t.Error("the session cookie was not cleared")
	}
}

// countingSessionStore counts session writes.
type countingSessionStore struct {
	storage.SessionStore
	mu      sync.Mutex
	updates int
}

func (c *countingSessionStore) UpdateSession(ctx context.Context, id string, f func(storage.Session) (storage.Session, error)) (storage.Session, error) {
	c.mu.Lock()
	c.updates++
	c.mu.Unlock()
	return c.SessionStore.UpdateSession(ctx, id, f)
}

// TestSSOAddsClientToSessionOnce: the session lists each client it signed
// in to once (for logout, OIDC Back-Channel Logout §2.7); a repeated single
// sign-on to the same client does not write the session again.
func TestSSOAddsClientToSessionOnce(t *testing.T) {
	var counting *countingSessionStore
	e := newEnv(t, func(cfg *login.Config) {
		counting = &countingSessionStore{SessionStore: cfg.Users.(*memory.Store)} // the env's one store
		ring, err := secrets.NewKeyring(bytes.Repeat([]byte("s"), 32))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Sessions, err = session.New(session.Config{Store: counting, Keys: ring}); err != nil {
			t.Fatal(err)
		}
	})
	e.signIn(false)
	sso := func(client string, scopes ...string) {
		t.Helper()
		res, _ := e.authorize(oauth.AuthorizeRequest{ClientID: client, FirstParty: true, Scopes: scopes})
		if res.status != http.StatusSeeOther || !strings.Contains(res.location(), "code=issued") {
			t.Fatalf("sso to %s: status %d location %q", client, res.status, res.location())
		}
	}
	base := counting.updates
	for range 3 {
		sso("portal", "openid")
	}
	if n := counting.updates - base; n != 0 {
		t.Errorf("3 sign-ins to a listed client wrote the session %d times, want 0", n)
	}
	sso("shop", "openid")
	sso("shop", "openid")
	if n := counting.updates - base; n != 1 {
		t.Errorf("2 sign-ins to a new client wrote the session %d times, want 1", n)
	}
	sessions, err := e.store.ListSessions(context.Background(), e.aliceID)
	if err != nil || len(sessions) != 1 || !slices.Equal(sessions[0].ClientIDs, []string{"portal", "shop"}) {
		t.Fatalf("sessions %+v (%v), want one listing portal and shop", sessions, err)
	}
}

// countingThrottle counts the throttle's storage calls: each is a round trip
// on Redis or SQL.
type countingThrottle struct {
	storage.Throttle
	mu                  sync.Mutex
	counts, resets, hit int
	keys                []string // every key Count read
}

func (c *countingThrottle) keysSeen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.keys)
}

func (c *countingThrottle) Count(ctx context.Context, keys ...string) ([]int64, error) {
	c.mu.Lock()
	c.counts++
	c.keys = append(c.keys, keys...)
	c.mu.Unlock()
	return c.Throttle.Count(ctx, keys...)
}

func (c *countingThrottle) Reset(ctx context.Context, keys ...string) error {
	c.mu.Lock()
	c.resets++
	c.mu.Unlock()
	return c.Throttle.Reset(ctx, keys...)
}

func (c *countingThrottle) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	c.mu.Lock()
	c.hit++
	c.mu.Unlock()
	return c.Throttle.Hit(ctx, key, window)
}

// A successful sign-in reads the account's and the address's locks and the
// account's failure count in one call. Only when the account had failures
// (or a lock) does it clear them, in one more call: one round trip on the
// usual sign-in, two after a failure, never one per key.
func TestSuccessfulSignInTouchesTheThrottleOnceUnlessItFailedBefore(t *testing.T) {
	ct := &countingThrottle{}
	var store storage.Throttle
	e := newEnv(t, func(c *login.Config) {
		c.Throttling = login.ThrottleConfig{MaxAccountFailures: 3, MaxIPFailures: 100}
		store = c.Throttle
		ct.Throttle = c.Throttle
		c.Throttle = ct
	})
	calls := func() (counts, resets, hits int) {
		ct.mu.Lock()
		defer ct.mu.Unlock()
		counts, resets, hits = ct.counts, ct.resets, ct.hit
		ct.counts, ct.resets, ct.hit = 0, 0, 0
		return counts, resets, hits
	}
	e.signIn(false)
	if c, r, h := calls(); c != 1 || r != 0 || h != 0 {
		t.Errorf("sign-in without failures: %d Count, %d Reset, %d Hit; want 1, 0, 0", c, r, h)
	}

	_, handle := e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Prompt: []string{"login"}})
	e.submitLogin(handle, "alice", "wrong", false)
	calls()
	if res := e.submitLogin(handle, "alice", alicePassword, false); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in after a failure: status %d", res.status)
	}
	if c, r, h := calls(); c != 1 || r != 1 || h != 0 {
		t.Errorf("sign-in after a failure: %d Count, %d Reset, %d Hit; want 1, 1, 0", c, r, h)
	}
	// The reset really cleared the account's counter, so the next success
	// has nothing to reset again.
	keys := []string{}
	for _, k := range ct.keysSeen() {
		if strings.Contains(k, ":fail:acct:") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		t.Fatal("no account failure key was read")
	}
	if n, err := store.Count(context.Background(), keys...); err != nil || slices.Max(n) != 0 {
		t.Errorf("account failure counts after the success: %v (%v), want 0", n, err)
	}
	_, handle = e.authorize(oauth.AuthorizeRequest{ClientID: "portal", FirstParty: true, Prompt: []string{"login"}})
	if res := e.submitLogin(handle, "alice", alicePassword, false); res.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: status %d", res.status)
	}
	if c, r, _ := calls(); c != 1 || r != 0 {
		t.Errorf("sign-in after the reset: %d Count, %d Reset; want 1, 0", c, r)
	}
}
