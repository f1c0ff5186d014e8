package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// testClock is the provider's injected clock: tests move it past a grace
// period instead of sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testGrace = 30 * time.Second

// newGraceEnv starts a provider with a refresh grace period and an injected clock.
func newGraceEnv(t *testing.T, st storage.Stores) (*env, *testClock) {
	clock := newTestClock()
	e := newEnv(t, st, func(c *Config) {
		c.RefreshGracePeriod = testGrace
		c.Now = clock.Now
	})
	return e, clock
}

type tokenResponse struct {
	status int
	raw    []byte
	body   map[string]any
}

func (r tokenResponse) str(k string) string { s, _ := r.body[k].(string); return s }

// refreshAs posts a refresh_token grant as a client (HTTP Basic).
func (e *env) refreshAs(client, secret, rt string) tokenResponse {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return tokenResponse{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := tokenResponse{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	if resp.Header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("token response Cache-Control = %q (RFC 6749 §5.1)", resp.Header.Get("Cache-Control"))
	}
	return out
}

// grantTokens runs the code flow for the web client with offline_access.
func (e *env) grantTokens() *oauth2.Token {
	e.t.Helper()
	return e.codeFlow(e.oauthConfig("web", webSecret, "openid", "offline_access"))
}

func (e *env) wantInactive(tokens ...string) {
	e.t.Helper()
	for _, tok := range tokens {
		if e.introspect(tok)["active"] != false {
			e.t.Errorf("token still active")
		}
	}
}

func wantReuseRejected(t *testing.T, r tokenResponse) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
		t.Fatalf("reuse answered %d %s, want invalid_grant", r.status, r.raw)
	}
}

// TestRefreshGraceRetryGetsSamePair: RFC 6749 §6 with the grace period
// relaxing RFC 9700 §4.14.2 — a retry with the rotated token within the window
// gets the same new pair byte for byte and the grant stays valid; once that
// pair's refresh token is rotated in turn, its predecessor is reuse again and
// revokes the grant.
func TestRefreshGraceRetryGetsSamePair(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		e, clock := newGraceEnv(t, st)
		tok := e.grantTokens()

		first := e.refreshAs("web", webSecret, tok.RefreshToken)
		if first.status != http.StatusOK || first.str("refresh_token") == "" || first.str("id_token") == "" {
			t.Fatalf("refresh: %d %s", first.status, first.raw)
		}
		clock.Advance(testGrace / 2)
		retry := e.refreshAs("web", webSecret, tok.RefreshToken)
		if retry.status != http.StatusOK || !bytes.Equal(retry.raw, first.raw) {
			t.Fatalf("retry within grace: %d %s\nwant the first response %s", retry.status, retry.raw, first.raw)
		}
		rt2, at2 := first.str("refresh_token"), first.str("access_token")
		if e.introspect(at2)["active"] != true || e.introspect(rt2)["active"] != true {
			t.Fatal("the retry revoked the grant")
		}
		// Rotation still dropped the old access token, and elsewhere than at the
		// token endpoint the rotated refresh token is plainly inactive.
		e.wantInactive(tok.AccessToken, tok.RefreshToken)

		// The pair keeps working: its refresh token rotates normally.
		next := e.refreshAs("web", webSecret, rt2)
		if next.status != http.StatusOK || next.str("refresh_token") == rt2 {
			t.Fatalf("refresh with the new token: %d %s", next.status, next.raw)
		}
		// Still within the first token's window, but the pair it would
		// replay is spent: that is reuse, and the grant goes.
		wantReuseRejected(t, e.refreshAs("web", webSecret, tok.RefreshToken))
		e.wantInactive(next.str("access_token"), next.str("refresh_token"))
	})
}

// TestRefreshGraceConcurrent: two tabs refresh with the same token at once
// (RFC 6749 §6); within the grace period every request gets the one new pair.
func TestRefreshGraceConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		e, _ := newGraceEnv(t, st)
		tok := e.grantTokens()

		const n = 4
		results := make([]tokenResponse, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i] = e.refreshAs("web", webSecret, tok.RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		for i, r := range results {
			if r.status != http.StatusOK || !bytes.Equal(r.raw, results[0].raw) {
				t.Fatalf("request %d: %d %s\nrequest 0: %d %s", i, r.status, r.raw, results[0].status, results[0].raw)
			}
		}
		if e.introspect(results[0].str("access_token"))["active"] != true {
			t.Error("the new access token is not active")
		}
		if next := e.refreshAs("web", webSecret, results[0].str("refresh_token")); next.status != http.StatusOK {
			t.Errorf("refresh with the shared new token: %d %s", next.status, next.raw)
		}
	})
}

// TestRefreshGraceWindowOver: RFC 9700 §4.14.2 — after the grace period a
// rotated token is reuse again and revokes the whole grant.
func TestRefreshGraceWindowOver(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		e, clock := newGraceEnv(t, st)
		tok := e.grantTokens()
		first := e.refreshAs("web", webSecret, tok.RefreshToken)
		if first.status != http.StatusOK {
			t.Fatalf("refresh: %d %s", first.status, first.raw)
		}
		clock.Advance(testGrace + time.Second)
		wantReuseRejected(t, e.refreshAs("web", webSecret, tok.RefreshToken))
		e.wantInactive(first.str("access_token"), first.str("refresh_token"))
		if r := e.refreshAs("web", webSecret, first.str("refresh_token")); r.status == http.StatusOK {
			t.Error("the new refresh token still works after reuse")
		}
	})
}

// TestRefreshGraceOtherClient: RFC 6749 §6 — the token was issued to another
// client, so the grace period does not apply: invalid_grant, and the reuse
// revokes the grant as in strict mode (RFC 9700 §4.14.2).
func TestRefreshGraceOtherClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st storage.Stores) {
		e, _ := newGraceEnv(t, st)
		tok := e.grantTokens()
		first := e.refreshAs("web", webSecret, tok.RefreshToken)
		if first.status != http.StatusOK {
			t.Fatalf("refresh: %d %s", first.status, first.raw)
		}
		r := e.refreshAs("jwt", webSecret, tok.RefreshToken)
		wantReuseRejected(t, r)
		if bytes.Contains(r.raw, []byte(first.str("refresh_token"))) {
			t.Fatal("another client was given the new pair")
		}
		e.wantInactive(first.str("access_token"), first.str("refresh_token"))
	})
}

// TestRefreshGraceNoStoredResponse: when the first request's response never
// got stored (it failed after the rotation), a retry cannot be given the pair
// and is treated as reuse once its bounded wait is over (RFC 9700 §4.14.2).
func TestRefreshGraceNoStoredResponse(t *testing.T) {
	e, _ := newGraceEnv(t, memoryStores())
	e.p.graceWait = 50 * time.Millisecond
	tok := e.grantTokens()
	first := e.refreshAs("web", webSecret, tok.RefreshToken)
	if first.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", first.status, first.raw)
	}
	sig := e.p.tokens.RefreshTokenSignature(context.Background(), tok.RefreshToken)
	ref := storage.RequestRef{Kind: storage.KindRefreshGrace, Signature: graceResponseSignature(sig)}
	if err := e.st.Ephemeral.DeleteRequest(context.Background(), ref); err != nil {
		t.Fatalf("deleting the stored response: %v", err)
	}
	wantReuseRejected(t, e.refreshAs("web", webSecret, tok.RefreshToken))
	e.wantInactive(first.str("access_token"), first.str("refresh_token"))
}

// TestRefreshGraceStoresNoTokenInClear: the kept response is sealed; neither
// new token can be read from storage.
func TestRefreshGraceStoresNoTokenInClear(t *testing.T) {
	e, _ := newGraceEnv(t, memoryStores())
	tok := e.grantTokens()
	first := e.refreshAs("web", webSecret, tok.RefreshToken)
	sig := e.p.tokens.RefreshTokenSignature(context.Background(), tok.RefreshToken)
	ctx := context.Background()
	for _, s := range []string{sig, graceResponseSignature(sig)} {
		rec, err := e.st.Ephemeral.GetRequest(ctx, storage.KindRefreshGrace, s)
		if err != nil {
			t.Fatalf("grace record %q: %v", s, err)
		}
		for _, secret := range []string{first.str("refresh_token"), first.str("access_token")} {
			if bytes.Contains(rec.Payload, []byte(secret)) {
				t.Errorf("grace record %q holds a token in the clear", s)
			}
		}
		if rec.ClientID != "web" || rec.ExpiresAt.After(time.Now().Add(testGrace+time.Minute)) {
			t.Errorf("grace record %q: client %q, expires %v", s, rec.ClientID, rec.ExpiresAt)
		}
	}
}

// TestIntrospectClientSecretPost: RFC 7662 §2.1 lets the server pick the
// client authentication; client_secret_post (RFC 6749 §2.3.1) works beside
// HTTP Basic, but never both at once, never with the secret in the URL, and
// an access_token parameter never stands in for the client's credentials.
func TestIntrospectClientSecretPost(t *testing.T) {
	e := newEnv(t, memoryStores())
	tok, other := e.grantTokens(), e.grantTokens()

	status, body, _ := e.postForm("/oauth2/introspect", url.Values{
		"token": {tok.AccessToken}, "client_id": {"svc"}, "client_secret": {svcSecret},
	}, "", "")
	if status != http.StatusOK || body["active"] != true || body["client_id"] != "web" {
		t.Fatalf("client_secret_post: %d %v", status, body)
	}
	for name, c := range map[string]struct {
		form       url.Values
		user, pass string
		path       string
	}{
		"wrong secret":  {form: url.Values{"client_id": {"svc"}, "client_secret": {"wrong"}}},
		"no secret":     {form: url.Values{"client_id": {"svc"}}},
		"both methods":  {form: url.Values{"client_id": {"svc"}, "client_secret": {svcSecret}}, user: "svc", pass: svcSecret},
		"secret in URL": {form: url.Values{"client_id": {"svc"}}, path: "?client_secret=" + svcSecret},
		"bearer param":  {form: url.Values{"access_token": {other.AccessToken}}, user: "svc", pass: "wrong"},
	} {
		c.form.Set("token", tok.AccessToken)
		status, body, _ := e.postForm("/oauth2/introspect"+c.path, c.form, c.user, c.pass)
		if status != http.StatusUnauthorized || body["active"] == true {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
}
