package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/ttlcache"
)

// pendingTraffic returns how many pending records c has seen read and
// claimed since its last reset, and resets it. withCode counts the claims
// made in the same batch as an authorization code's creation.
func pendingTraffic(c *roundTrips) (reads, claims, withCode int) {
	for _, r := range c.read() {
		if isPending(r) {
			reads++
		}
	}
	c.mu.Lock()
	claims = c.deactivateSingle
	for _, b := range c.batches {
		n := 0
		for _, r := range b.Deactivate {
			if isPending(r) {
				n++
			}
		}
		claims += n
		if n > 0 && slices.ContainsFunc(b.Create, func(r storage.Request) bool { return r.Kind == storage.KindAuthorizeCode }) {
			withCode += n
		}
	}
	c.mu.Unlock()
	c.reset()
	return reads, claims, withCode
}

func isPending(r storage.RequestRef) bool {
	return r.Kind == storage.KindPAR && strings.HasPrefix(r.Signature, pendingPrefix)
}

// authorizeDeferred starts an authorization whose interaction defers to the
// login page (login_hint=defer) and returns the status and the Location
// (nil when it does not parse).
func authorizeDeferred(t *testing.T, e *env) (int, *url.URL) {
	t.Helper()
	conf := e.oauthConfig("web", webSecret, "openid")
	resp, err := e.noRedirect.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("login_hint", "defer")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, loc
}

// startPending runs an authorization that stops at the login page and
// returns the page's URL.
func startPending(t *testing.T, e *env) *url.URL {
	t.Helper()
	status, loc := authorizeDeferred(t, e)
	if loc == nil || loc.Path != "/login" || loc.Query().Get("handle") == "" {
		t.Fatalf("want a redirect to the login page, got %d %v", status, loc)
	}
	return loc
}

func (e *env) resume(t *testing.T, page *url.URL) int {
	t.Helper()
	resp, err := e.noRedirect.Get(e.issuer + page.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPendingReadFromProcessCache: the pages of one sign-in read the pending
// authorization this process stored without a store round trip; the claim
// still goes to the store, once, in the batch that creates the code, and a
// second claim fails.
func TestPendingReadFromProcessCache(t *testing.T) {
	st := memoryStores()
	counting := &roundTrips{Ephemeral: st.Ephemeral}
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: counting})
	page := startPending(t, e)
	h := page.Query().Get("handle")
	for range 3 { // login page, login form, consent page
		if _, err := e.p.PendingAuthorize(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if s := e.resume(t, page); s != http.StatusSeeOther && s != http.StatusFound {
		t.Fatalf("resume: %d", s)
	}
	if reads, claims, withCode := pendingTraffic(counting); reads != 0 || claims != 1 || withCode != 1 {
		t.Errorf("a sign-in read the pending record %d times and claimed it %d times (%d with the code), want 0 and 1 (1)", reads, claims, withCode)
	}
	if s := e.resume(t, page); s != http.StatusBadRequest {
		t.Errorf("second resume: %d, want 400", s)
	}
	if _, err := e.p.PendingAuthorize(context.Background(), h); err == nil {
		t.Error("a claimed pending authorization is still shown by the process that claimed it")
	}
}

// TestPendingAcrossReplicas: another process (a fresh cache) reads the store
// once, then from its cache; a record claimed elsewhere is never resumed
// twice, even while this process still has it cached.
func TestPendingAcrossReplicas(t *testing.T) {
	st := memoryStores()
	counting := &roundTrips{Ephemeral: st.Ephemeral}
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: counting})
	page := startPending(t, e)
	h := page.Query().Get("handle")

	e.p.pending = ttlcache.New[string, storage.Request](pendingCacheSize, nil) // as on another replica
	for range 2 {
		if _, err := e.p.PendingAuthorize(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if reads, _, _ := pendingTraffic(counting); reads != 1 {
		t.Errorf("a replica read the pending record %d times, want 1", reads)
	}

	// Another replica claims it: this one, which has it cached, refuses.
	if err := st.Ephemeral.DeactivateRequest(context.Background(),
		storage.RequestRef{Kind: storage.KindPAR, Signature: pendingSignature(h)}); err != nil {
		t.Fatal(err)
	}
	if s := e.resume(t, page); s != http.StatusBadRequest {
		t.Errorf("resume after a claim elsewhere: %d, want 400", s)
	}
}

// TestPendingSurvivesAFailedWrite: when the batch that claims the pending
// request and creates the code fails, nothing of it is written, so the
// request can still be completed (no half-done sign-in), and then only
// once.
func TestPendingSurvivesAFailedWrite(t *testing.T) {
	st := memoryStores()
	counting := &roundTrips{Ephemeral: st.Ephemeral}
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: counting})
	page := startPending(t, e)

	counting.mu.Lock()
	counting.failApply = errors.New("storage unavailable")
	counting.mu.Unlock()
	resp, err := e.noRedirect.Get(e.issuer + page.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("error") != "server_error" || loc.Query().Get("code") != "" {
		t.Fatalf("resume with a failing store: %d %v, want a redirect with error=server_error and no code", resp.StatusCode, loc)
	}
	if s := e.resume(t, page); s != http.StatusSeeOther && s != http.StatusFound {
		t.Fatalf("resume after the failed write: %d, want the redirect with a code", s)
	}
	if s := e.resume(t, page); s != http.StatusBadRequest {
		t.Errorf("third resume: %d, want 400 (already completed)", s)
	}
}
