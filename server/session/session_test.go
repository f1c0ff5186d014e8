package session_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

func newKeyring(t *testing.T, secretList ...[]byte) *secrets.Keyring {
	t.Helper()
	if len(secretList) == 0 {
		secretList = [][]byte{bytes.Repeat([]byte("k"), 32)}
	}
	ring, err := secrets.NewKeyring(secretList...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return ring
}

type fixture struct {
	m     *session.Manager
	store *memory.Store
	now   time.Time
}

func newFixture(t *testing.T, secure bool) *fixture {
	t.Helper()
	f := &fixture{store: memory.New(), now: time.Now()}
	t.Cleanup(func() { f.store.Close() })
	m, err := session.New(session.Config{
		Store:  f.store,
		Keys:   newKeyring(t),
		Secure: secure,
		Now:    func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatalf("session.New: %v", err)
	}
	f.m = m
	return f
}

// start signs "alice" in on a request carrying cookies and returns the
// response's cookies.
func (f *fixture) start(t *testing.T, remember bool, cookies ...*http.Cookie) (storage.Session, []*http.Cookie) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/login", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	s, err := f.m.Start(w, r, "alice", []string{"pwd"}, "", remember)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s, w.Result().Cookies()
}

func findCookie(t *testing.T, cs []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cookie %q among %v", name, cs)
	return nil
}

func requestWith(cs ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range cs {
		r.AddCookie(c)
	}
	return r
}

func TestCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		secure   bool
		wantName string
	}{
		{"http dev issuer", false, "gh_session"},
		{"https issuer uses __Host- prefix", true, "__Host-gh_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.secure)
			_, cs := f.start(t, false)
			c := findCookie(t, cs, tc.wantName)
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Secure != tc.secure {
				t.Errorf("session cookie flags: HttpOnly=%v SameSite=%v Path=%q Domain=%q Secure=%v", c.HttpOnly, c.SameSite, c.Path, c.Domain, c.Secure)
			}
			if len(c.Value) != 43 {
				t.Errorf("session cookie value has %d characters, want 43 (256 bits, base64url)", len(c.Value))
			}

			w := httptest.NewRecorder()
			if _, err := f.m.CSRFToken(w, requestWith()); err != nil {
				t.Fatal(err)
			}
			wantCSRF := strings.Replace(tc.wantName, "session", "csrf", 1)
			cc := findCookie(t, w.Result().Cookies(), wantCSRF)
			if !cc.HttpOnly || cc.SameSite != http.SameSiteStrictMode || cc.Path != "/" || cc.Domain != "" || cc.Secure != tc.secure {
				t.Errorf("csrf cookie flags: HttpOnly=%v SameSite=%v Path=%q Domain=%q Secure=%v", cc.HttpOnly, cc.SameSite, cc.Path, cc.Domain, cc.Secure)
			}
		})
	}
}

func TestRememberMe(t *testing.T) {
	f := newFixture(t, false)

	s, cs := f.start(t, false)
	c := findCookie(t, cs, "gh_session")
	if c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Errorf("browser-session cookie has MaxAge=%d Expires=%v, want neither", c.MaxAge, c.Expires)
	}
	if !s.ExpiresAt.Equal(f.now.Add(session.DefaultSessionFor)) || s.Remember {
		t.Errorf("browser session: ExpiresAt=%v Remember=%v", s.ExpiresAt, s.Remember)
	}

	s, cs = f.start(t, true)
	c = findCookie(t, cs, "gh_session")
	if c.MaxAge != int(session.DefaultRememberFor/time.Second) {
		t.Errorf("remember-me cookie MaxAge=%d, want %d", c.MaxAge, int(session.DefaultRememberFor/time.Second))
	}
	if !s.ExpiresAt.Equal(f.now.Add(session.DefaultRememberFor)) || !s.Remember {
		t.Errorf("remembered session: ExpiresAt=%v Remember=%v", s.ExpiresAt, s.Remember)
	}
}

func TestGet(t *testing.T) {
	f := newFixture(t, false)
	s, cs := f.start(t, false)
	c := findCookie(t, cs, "gh_session")

	got, err := f.m.Get(requestWith(c))
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != s.ID || got.Subject != "alice" || len(got.AMR) != 1 || got.AMR[0] != "pwd" {
		t.Errorf("Get returned %+v, want the started session %+v", got, s)
	}
	if got.ID == c.Value {
		t.Error("the record ID is the cookie value; the store must not hold usable cookies")
	}

	for name, r := range map[string]*http.Request{
		"no cookie":           requestWith(),
		"malformed cookie":    requestWith(&http.Cookie{Name: "gh_session", Value: "x"}),
		"unknown cookie":      requestWith(&http.Cookie{Name: "gh_session", Value: strings.Repeat("A", 43)}),
		"record ID as cookie": requestWith(&http.Cookie{Name: "gh_session", Value: s.ID}),
	} {
		if _, err := f.m.Get(r); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("%s: Get error %v, want ErrNoSession", name, err)
		}
	}

	f.now = f.now.Add(session.DefaultSessionFor)
	if _, err := f.m.Get(requestWith(c)); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("expired session: Get error %v, want ErrNoSession", err)
	}
}

func TestStartRotatesID(t *testing.T) {
	f := newFixture(t, false)
	first, cs := f.start(t, false)
	old := findCookie(t, cs, "gh_session")

	second, cs := f.start(t, true, old)
	fresh := findCookie(t, cs, "gh_session")
	if fresh.Value == old.Value || second.ID == first.ID {
		t.Fatal("session ID did not change at sign-in")
	}
	if _, err := f.store.GetSession(context.Background(), first.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("previous session record still readable after sign-in: %v", err)
	}
	if _, err := f.m.Get(requestWith(old)); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("previous cookie still valid: %v", err)
	}
	if _, err := f.m.Get(requestWith(fresh)); err != nil {
		t.Errorf("new cookie: %v", err)
	}
}

func TestAddClientAndEnd(t *testing.T) {
	f := newFixture(t, false)
	s, cs := f.start(t, false)
	c := findCookie(t, cs, "gh_session")
	ctx := context.Background()
	for _, id := range []string{"shop", "blog", "shop"} {
		if err := f.m.AddClient(ctx, s.ID, id); err != nil {
			t.Fatalf("AddClient: %v", err)
		}
	}
	got, err := f.m.Get(requestWith(c))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.ClientIDs, ",") != "shop,blog" {
		t.Errorf("ClientIDs = %v, want [shop blog]", got.ClientIDs)
	}

	w := httptest.NewRecorder()
	if err := f.m.End(w, requestWith(c)); err != nil {
		t.Fatalf("End: %v", err)
	}
	cleared := findCookie(t, w.Result().Cookies(), "gh_session")
	if cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Errorf("End did not clear the cookie: %+v", cleared)
	}
	if _, err := f.store.GetSession(ctx, s.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session record remains after End: %v", err)
	}
	// Ending without a session only clears the cookie.
	if err := f.m.End(httptest.NewRecorder(), requestWith()); err != nil {
		t.Errorf("End without a session: %v", err)
	}
}

// csrfPost builds a form POST carrying the given cookie and token.
func csrfPost(cookie *http.Cookie, token string, withToken bool) *http.Request {
	form := url.Values{}
	if withToken {
		form.Set(session.CSRFField, token)
	}
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		r.AddCookie(cookie)
	}
	return r
}

func TestCSRF(t *testing.T) {
	f := newFixture(t, false)
	w := httptest.NewRecorder()
	r := requestWith()
	token, err := f.m.CSRFToken(w, r)
	if err != nil {
		t.Fatal(err)
	}
	cookie := findCookie(t, w.Result().Cookies(), "gh_csrf")
	if token == cookie.Value {
		t.Fatal("the form token is the raw cookie value")
	}
	// A second call on the same request reuses the cookie it just set.
	again, err := f.m.CSRFToken(w, r)
	if err != nil || again != token {
		t.Errorf("second CSRFToken on one request = %q, %v; want %q", again, err, token)
	}
	if n := len(w.Result().Cookies()); n != 1 {
		t.Errorf("%d cookies set, want 1", n)
	}
	// A request that already carries the cookie gets the same token and no new cookie.
	w2 := httptest.NewRecorder()
	if tok, _ := f.m.CSRFToken(w2, requestWith(cookie)); tok != token || len(w2.Result().Cookies()) != 0 {
		t.Errorf("with cookie: token %q (want %q), cookies set %v", tok, token, w2.Result().Cookies())
	}

	_, otherCookies := func() (string, []*http.Cookie) {
		w := httptest.NewRecorder()
		tok, _ := f.m.CSRFToken(w, requestWith())
		return tok, w.Result().Cookies()
	}()
	other := findCookie(t, otherCookies, "gh_csrf")

	if err := f.m.CheckCSRF(csrfPost(cookie, token, true)); err != nil {
		t.Errorf("valid token rejected: %v", err)
	}
	for name, r := range map[string]*http.Request{
		"missing token":             csrfPost(cookie, "", false),
		"empty token":               csrfPost(cookie, "", true),
		"missing cookie":            csrfPost(nil, token, true),
		"token of another cookie":   csrfPost(other, token, true),
		"raw cookie value as token": csrfPost(cookie, cookie.Value, true),
		"garbage token":             csrfPost(cookie, "!!not base64!!", true),
		"truncated token":           csrfPost(cookie, token[:len(token)-2], true),
	} {
		if err := f.m.CheckCSRF(r); !errors.Is(err, session.ErrCSRF) {
			t.Errorf("%s: CheckCSRF = %v, want ErrCSRF", name, err)
		}
	}
}

// A token issued before a secret rotation stays valid after it, so forms open
// during a rolling restart still submit.
func TestCSRFSurvivesSecretRotation(t *testing.T) {
	oldSecret := bytes.Repeat([]byte("o"), 32)
	newSecret := bytes.Repeat([]byte("n"), 32)
	store := memory.New()
	t.Cleanup(func() { store.Close() })
	before, err := session.New(session.Config{Store: store, Keys: newKeyring(t, oldSecret)})
	if err != nil {
		t.Fatal(err)
	}
	after, err := session.New(session.Config{Store: store, Keys: newKeyring(t, newSecret, oldSecret)})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	token, err := before.CSRFToken(w, requestWith())
	if err != nil {
		t.Fatal(err)
	}
	cookie := findCookie(t, w.Result().Cookies(), "gh_csrf")
	if err := after.CheckCSRF(csrfPost(cookie, token, true)); err != nil {
		t.Errorf("token from before the rotation rejected: %v", err)
	}
}
