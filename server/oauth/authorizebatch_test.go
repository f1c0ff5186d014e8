package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// countingEphemeral counts request-record writes.
type countingEphemeral struct {
	storage.Ephemeral
	mu               sync.Mutex
	creates, batches int
	batchCreates     int
}

func (c *countingEphemeral) CreateRequest(ctx context.Context, r storage.Request) error {
	c.mu.Lock()
	c.creates++
	c.mu.Unlock()
	return c.Ephemeral.CreateRequest(ctx, r)
}

func (c *countingEphemeral) ApplyRequests(ctx context.Context, b storage.RequestBatch) error {
	c.mu.Lock()
	c.batches++
	c.batchCreates += len(b.Create)
	c.mu.Unlock()
	return c.Ephemeral.ApplyRequests(ctx, b)
}

// TestAuthorizeWritesOneBatch: the authorization response's records (the
// code, the PKCE and the OIDC request, RFC 6749 §4.1.2, RFC 7636 §4.4) are
// written as one batch, not one by one.
func TestAuthorizeWritesOneBatch(t *testing.T) {
	st := memoryStores()
	counting := &countingEphemeral{Ephemeral: st.Ephemeral}
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: counting})
	conf := e.oauthConfig("web", webSecret, "openid")
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789",
		oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", "nonce-0123456789")))
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	// The interaction decided at once (single sign-on): no pending request
	// was stored for a login page.
	if counting.creates != 0 || counting.batches != 1 || counting.batchCreates != 3 {
		t.Errorf("authorize wrote %d single records and %d batches with %d records, want 0, 1 and 3",
			counting.creates, counting.batches, counting.batchCreates)
	}
}

// TestAuthorizePendingOnlyForPages: the pending request is stored when, and
// only when, the interaction sends the browser to a page with the handle;
// the page then resumes it exactly once.
func TestAuthorizePendingOnlyForPages(t *testing.T) {
	st := memoryStores()
	counting := &countingEphemeral{Ephemeral: st.Ephemeral}
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: counting})
	conf := e.oauthConfig("web", webSecret, "openid")
	authURL := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("nonce", "nonce-0123456789"), oauth2.SetAuthURLParam("login_hint", "defer"))
	resp, err := e.noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != "/login" || loc.Query().Get("handle") == "" {
		t.Fatalf("want a redirect to the login page with a handle, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if counting.creates != 1 {
		t.Fatalf("stored %d pending requests, want 1", counting.creates)
	}
	// The page resumes it: a code for the client; a second resume fails.
	for i, want := range []int{http.StatusSeeOther, http.StatusBadRequest} {
		resp, err := e.noRedirect.Get(e.issuer + loc.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(i == 0 && resp.StatusCode == http.StatusFound) {
			t.Fatalf("resume %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
		if i == 0 && !strings.HasPrefix(resp.Header.Get("Location"), redirectURI) {
			t.Fatalf("resume: Location %q, want the client's redirect URI", resp.Header.Get("Location"))
		}
	}

	// login_required (prompt=none-like refusal) stores nothing either.
	before := counting.creates
	_, q := e.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("login_hint", "none")))
	if q.Get("error") != "login_required" || counting.creates != before {
		t.Fatalf("login_required: %v, %d new records", q, counting.creates-before)
	}
}

// failingCreate fails every single-record write.
type failingCreate struct{ storage.Ephemeral }

func (failingCreate) CreateRequest(context.Context, storage.Request) error {
	return errors.New("storage down")
}

// TestAuthorizePendingStoreFails: when the pending request cannot be stored,
// the interaction's redirect to its page never leaves (its handle would not
// resolve); the client gets server_error instead (RFC 6749 §4.1.2.1).
func TestAuthorizePendingStoreFails(t *testing.T) {
	st := memoryStores()
	e := newEnv(t, storage.Stores{Durable: st.Durable, Ephemeral: failingCreate{st.Ephemeral}})
	status, loc := authorizeDeferred(t, e)
	if loc == nil || strings.HasPrefix(loc.Path, "/login") || loc.Query().Get("error") != "server_error" {
		t.Fatalf("got %d %v, want a server_error redirect to the client", status, loc)
	}
}
