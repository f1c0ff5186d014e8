package oauth

import (
	"context"
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
	// The one single write is the pending request the interaction resumes
	// (written before the login page, storePending).
	if counting.creates != 1 || counting.batches != 1 || counting.batchCreates != 3 {
		t.Errorf("authorize wrote %d single records and %d batches with %d records, want 1, 1 and 3",
			counting.creates, counting.batches, counting.batchCreates)
	}
}
