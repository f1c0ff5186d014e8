package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"

	"github.com/gatehouse-idp/gatehouse/server/app"
	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/logout"
	"github.com/gatehouse-idp/gatehouse/storage"
	sqlstore "github.com/gatehouse-idp/gatehouse/storage/sql"
)

// rpListener is a relying party's backchannel_logout_uri on loopback: it
// keeps every logout token POSTed to it and answers with status.
type rpListener struct {
	url    string
	tokens chan string
	status atomic.Int32
}

func newRPListener(t *testing.T) *rpListener {
	l := &rpListener{tokens: make(chan string, 16)}
	l.status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Back-Channel Logout 1.0 §2.5: a form POST with logout_token.
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case l.tokens <- r.PostForm.Get("logout_token"):
		default:
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(int(l.status.Load()))
	}))
	t.Cleanup(srv.Close)
	l.url = srv.URL + "/backchannel-logout"
	return l
}

// next waits for the next logout token; the bound only keeps a broken
// server from hanging the test.
func (l *rpListener) next(t *testing.T) string {
	t.Helper()
	select {
	case tok := <-l.tokens:
		return tok
	case <-time.After(20 * time.Second):
		t.Fatal("no back-channel logout received")
		return ""
	}
}

// none checks that nothing more was delivered.
func (l *rpListener) none(t *testing.T) {
	t.Helper()
	select {
	case tok := <-l.tokens:
		t.Errorf("unexpected back-channel logout: %s", tok)
	default:
	}
}

func (e *env) jwks() jose.JSONWebKeySet {
	e.t.Helper()
	var set jose.JSONWebKeySet
	req, _ := http.NewRequest(http.MethodGet, e.metadata("/.well-known/openid-configuration")["jwks_uri"].(string), nil)
	if code := e.doJSON(req, &set); code != http.StatusOK {
		e.t.Fatalf("jwks: %d", code)
	}
	return set
}

// logoutClaims are what a relying party reads from a verified logout token.
type logoutClaims struct {
	Issuer string                    `json:"iss"`
	Aud    any                       `json:"aud"`
	Sub    string                    `json:"sub"`
	SID    string                    `json:"sid"`
	IAT    int64                     `json:"iat"`
	Exp    int64                     `json:"exp"`
	JTI    string                    `json:"jti"`
	Events map[string]map[string]any `json:"events"`
	Nonce  *string                   `json:"nonce"`
}

// verifyLogoutToken validates a logout token as Back-Channel Logout 1.0
// §2.6 asks a relying party to: signature by a key of the OP's JWKS, iss,
// aud, iat, jti, the back-channel logout event, sid or sub, and no nonce.
func verifyLogoutToken(t *testing.T, raw string, set jose.JSONWebKeySet, issuer, clientID string) logoutClaims {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("logout token is not a JWS: %v", err)
	}
	hdr := jws.Signatures[0].Header
	if typ, _ := hdr.ExtraHeaders["typ"].(string); typ != logout.TokenType {
		t.Errorf("typ %q, want %s (§2.4, RFC 8725 §3.11)", typ, logout.TokenType)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("logout token kid %q: %d keys in the JWKS", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("logout token does not verify with the published key: %v", err)
	}
	var c logoutClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	aud := c.Aud
	if list, ok := aud.([]any); ok && len(list) == 1 {
		aud = list[0]
	}
	if c.Issuer != issuer || aud != clientID || c.IAT == 0 || c.JTI == "" || c.Exp <= c.IAT {
		t.Errorf("logout token claims %s: want iss %s, aud %s, iat, exp, jti (§2.4)", payload, issuer, clientID)
	}
	if ev, ok := c.Events[logout.BackchannelLogoutEvent]; !ok || len(ev) != 0 {
		t.Errorf("events %v, want {%q: {}} (§2.4)", c.Events, logout.BackchannelLogoutEvent)
	}
	if c.Nonce != nil {
		t.Errorf("logout token has a nonce (§2.4 forbids it): %s", payload)
	}
	return c
}

// sidOf is the sid claim of an ID token (Front-Channel Logout 1.0 §3).
func sidOf(t *testing.T, rawIDToken string, e *env, clientID string) string {
	t.Helper()
	idt, err := e.verifier(clientID).Verify(context.Background(), rawIDToken)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("ID token without sid: %v", err)
	}
	return c.SID
}

// iframes lists the src of a page's iframes.
func iframes(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	z := html.NewTokenizer(strings.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatal(z.Err())
			}
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data != "iframe" {
				continue
			}
			for _, a := range tok.Attr {
				if a.Key == "src" {
					out = append(out, a.Val)
				}
			}
		}
	}
}

// logoutClient is a web client with a back-channel logout listener.
func (e *env) logoutClient(l *rpListener, frontChannel string) clients.Metadata {
	m := webClient()
	m.BackchannelLogoutURI = l.url
	m.BackchannelLogoutSessionRequired = true
	m.FrontchannelLogoutURI = frontChannel
	return e.client(m)
}

// TestLogoutPropagation signs in to two clients in one browser session and
// checks that ending the session reaches both, on memory and SQLite.
func TestLogoutPropagation(t *testing.T) {
	for _, be := range backends[:2] {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, be.open(t), thirdPartyConfig)
			t.Run("OIDCBackChannelLogout_2.5_FrontChannelLogout_3_RPInitiatedLogoutReachesEveryClient", func(t *testing.T) {
				e := *e
				e.t = t
				testRPInitiatedLogoutPropagates(t, &e)
			})
			t.Run("OIDCBackChannelLogout_2.5_AdminEndsSession", func(t *testing.T) {
				e := *e
				e.t = t
				testAdminEndsSessionPropagates(t, &e)
			})
		})
	}
}

func testRPInitiatedLogoutPropagates(t *testing.T, e *env) {
	sub, pw := e.user("twoapps")
	l1, l2 := newRPListener(t), newRPListener(t)
	c1 := e.logoutClient(l1, "")
	c2 := e.logoutClient(l2, "https://rp2.example.test/frontchannel-logout?app=2")
	b := e.browser()
	tok1, _ := e.codeFlow(b, e.rp(c1, "openid"), "twoapps", pw)
	tok2, _ := e.codeFlow(b, e.rp(c2, "openid"), "twoapps", pw) // the same session: no second login
	raw1 := tok1.Extra("id_token").(string)
	sid := sidOf(t, raw1, e, c1.ClientID)
	if sid2 := sidOf(t, tok2.Extra("id_token").(string), e, c2.ClientID); sid2 != sid {
		t.Fatalf("one browser session, two sids: %s and %s", sid, sid2)
	}

	// RP-Initiated Logout 1.0 §2 with c1's id_token_hint.
	p := b.get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {raw1}}.Encode())
	if p.status != http.StatusOK {
		t.Fatalf("logout: %d at %s:\n%s", p.status, p.url, p.body)
	}
	// Front-Channel Logout 1.0 §3: c2's URI in an iframe, with iss and sid
	// added to its own query.
	frames := iframes(t, p.body)
	if len(frames) != 1 {
		t.Fatalf("logged-out page iframes %v, want c2's front-channel logout URI only", frames)
	}
	fu, err := url.Parse(frames[0])
	if err != nil {
		t.Fatal(err)
	}
	if fq := fu.Query(); fu.Host != "rp2.example.test" || fu.Path != "/frontchannel-logout" || fq.Get("iss") != e.issuer || fq.Get("sid") != sid || fq.Get("app") != "2" {
		t.Errorf("front-channel iframe %s, want iss=%s sid=%s and the registered query (§3)", frames[0], e.issuer, sid)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "https://rp2.example.test") {
		t.Errorf("CSP %q does not let the page frame the client", csp)
	}

	// Back-Channel Logout 1.0 §2.5: both clients are told, each with its own token.
	set := e.jwks()
	for _, c := range []struct {
		l  *rpListener
		md clients.Metadata
	}{{l1, c1}, {l2, c2}} {
		got := verifyLogoutToken(t, c.l.next(t), set, e.issuer, c.md.ClientID)
		if got.SID != sid || got.Sub != sub {
			t.Errorf("client %s: logout token sid %q sub %q, want the ID token's %q %q", c.md.ClientID, got.SID, got.Sub, sid, sub)
		}
	}
	l1.none(t)
	l2.none(t)
}

func testAdminEndsSessionPropagates(t *testing.T, e *env) {
	sub, pw := e.user("adminlogout")
	l := newRPListener(t)
	c := e.logoutClient(l, "")
	tok, _ := e.codeFlow(e.browser(), e.rp(c, "openid"), "adminlogout", pw)
	sid := sidOf(t, tok.Extra("id_token").(string), e, c.ClientID)

	admin := e.adminAPI()
	ss := admin.sessions(sub)
	if len(ss) != 1 || ss[0].ID != sid {
		t.Fatalf("sessions %+v, want the one with sid %s", ss, sid)
	}
	if code := admin.call(http.MethodDelete, "/admin/users/"+sub+"/sessions/"+sid, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE /admin/users/{id}/sessions/{sid}: %d", code)
	}
	got := verifyLogoutToken(t, l.next(t), e.jwks(), e.issuer, c.ClientID)
	if got.SID != sid || got.Sub != sub {
		t.Errorf("logout token sid %q sub %q, want %q %q", got.SID, got.Sub, sid, sub)
	}
	if ss := admin.sessions(sub); len(ss) != 0 {
		t.Errorf("sessions after the admin ended it: %+v", ss)
	}
}

// openSQLiteFile opens (and migrates) the SQLite store at path, closed when
// the test ends.
func openSQLiteFile(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{URL: "sqlite://" + path})
	if err != nil {
		t.Fatalf("opening SQLite store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrating SQLite store: %v", err)
	}
	return st
}

// TestBackChannelLogoutSurvivesRestart_OIDCBackChannelLogout_2_5: server A
// queues a logout whose delivery fails (the relying party answers 500) and
// stops; server B, started on the same database, delivers it once the retry
// is due. B's clock runs two minutes ahead, past the retry backoff and the
// claim lease, so the test does not wait for them.
func TestBackChannelLogoutSurvivesRestart_OIDCBackChannelLogout_2_5(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	secret := make([]byte, 32)
	rand.Read(secret)
	mod := func(c *config.Config) {
		thirdPartyConfig(c)
		// B must decrypt the signing keys A stored.
		c.Secrets.System = []config.Secret{config.NewSecret(base64.RawURLEncoding.EncodeToString(secret))}
	}
	l := newRPListener(t)
	l.status.Store(http.StatusInternalServerError)

	var issuerA, clientID, sub, sid string
	ok := t.Run("A_QueuesAndFails", func(t *testing.T) {
		st := openSQLiteFile(t, path)
		e := start(t, storage.Stores{Durable: st, Ephemeral: st}, mod)
		issuerA = e.issuer
		var pw string
		sub, pw = e.user("restart")
		c := e.logoutClient(l, "")
		clientID = c.ClientID
		b := e.browser()
		tok, _ := e.codeFlow(b, e.rp(c, "openid"), "restart", pw)
		raw := tok.Extra("id_token").(string)
		sid = sidOf(t, raw, e, clientID)
		if p := b.get(e.issuer + "/oauth2/logout?" + url.Values{"id_token_hint": {raw}}.Encode()); p.status != http.StatusOK {
			t.Fatalf("logout: %d", p.status)
		}
		// The first attempt arrives and is answered 500...
		verifyLogoutToken(t, l.next(t), e.jwks(), e.issuer, clientID)
		// ...and A records the failure for a later retry.
		waitFor(t, "the failed attempt to be recorded", func() bool {
			ns, err := st.ListLogouts(context.Background(), 0)
			return err == nil && len(ns) == 1 && ns[0].Attempts == 1
		})
	})
	if !ok {
		return
	}
	l.status.Store(http.StatusOK)

	ok = t.Run("B_DeliversAfterRestart", func(t *testing.T) {
		st := openSQLiteFile(t, path)
		if ns, err := st.ListLogouts(context.Background(), 0); err != nil || len(ns) != 1 {
			t.Fatalf("queued notifications after A stopped: %v %v, want the one pending", ns, err)
		}
		e := startWith(t, storage.Stores{Durable: st, Ephemeral: st}, mod,
			app.Options{Now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
		got := verifyLogoutToken(t, l.next(t), e.jwks(), issuerA, clientID)
		if got.SID != sid || got.Sub != sub {
			t.Errorf("logout token sid %q sub %q, want %q %q", got.SID, got.Sub, sid, sub)
		}
		waitFor(t, "the delivery to be recorded", func() bool {
			ns, err := st.ListLogouts(context.Background(), 0)
			return err == nil && len(ns) == 0
		})
	})
	if ok {
		l.none(t)
	}
}

// waitFor polls cond; the bound only keeps a broken server from hanging the
// test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
