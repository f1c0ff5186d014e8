package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// countingDurable counts client reads, to see which requests the cache serves.
type countingDurable struct {
	storage.Durable
	reads int
}

func (d *countingDurable) GetClient(ctx context.Context, id string) (storage.Client, error) {
	d.reads++
	return d.Durable.GetClient(ctx, id)
}

const testClientCacheTTL = 10 * time.Second

func newCacheEnv(t *testing.T) (*env, *countingDurable, *testClock) {
	t.Helper()
	st := memoryStores()
	counting := &countingDurable{Durable: st.Durable}
	clock := newTestClock()
	e := newEnv(t, storage.Stores{Durable: counting, Ephemeral: st.Ephemeral}, func(c *Config) {
		c.ClientCacheTTL = testClientCacheTTL
		c.Now = clock.Now
	})
	return e, counting, clock
}

// clientCredentials returns the status, or 401 for any invalid_client
// refusal (fosite answers an unknown client with 400).
func (e *env) clientCredentials(secret string) int {
	e.t.Helper()
	status, body, _ := e.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", secret)
	if status != http.StatusOK && body["error"] == "invalid_client" {
		return http.StatusUnauthorized
	}
	return status
}

// TestClientCacheServesRepeatedReads: client authentication (RFC 6749
// §2.3.1) reads the client once per TTL, not once per request.
func TestClientCacheServesRepeatedReads(t *testing.T) {
	e, counting, clock := newCacheEnv(t)
	for range 5 {
		if s := e.clientCredentials(svcSecret); s != http.StatusOK {
			t.Fatalf("client_credentials: %d", s)
		}
	}
	if counting.reads != 1 {
		t.Errorf("%d client reads for 5 requests, want 1", counting.reads)
	}
	clock.Advance(testClientCacheTTL)
	if s := e.clientCredentials(svcSecret); s != http.StatusOK || counting.reads != 2 {
		t.Errorf("after the TTL: status %d, %d reads, want 200 and 2", s, counting.reads)
	}
}

// TestClientCacheNewSecretWorksAtOnce: a refusal is decided on the stored
// client, so a rotated secret works at once even with the old one cached.
func TestClientCacheNewSecretWorksAtOnce(t *testing.T) {
	e, _, _ := newCacheEnv(t)
	if s := e.clientCredentials(svcSecret); s != http.StatusOK {
		t.Fatalf("client_credentials: %d", s)
	}
	const newSecret = "svc-secret-rotated-0123456789abcdef0123456789"
	_, err := e.st.Durable.UpdateClient(context.Background(), "svc", func(c storage.Client) (storage.Client, error) {
		c.SecretHash = HashClientSecret(e.p.cfg.Ring, newSecret)
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := e.clientCredentials(newSecret); s != http.StatusOK {
		t.Errorf("new secret: %d, want 200", s)
	}
	// That refusal path re-read the client: the old secret is now refused.
	if s := e.clientCredentials(svcSecret); s != http.StatusUnauthorized {
		t.Errorf("old secret after the re-read: %d, want 401", s)
	}
}

// TestClientCacheDeletedClient: a client deleted on another replica stops
// working within the TTL; one deleted through this process at once.
func TestClientCacheDeletedClient(t *testing.T) {
	e, _, clock := newCacheEnv(t)
	if s := e.clientCredentials(svcSecret); s != http.StatusOK {
		t.Fatalf("client_credentials: %d", s)
	}
	if err := e.st.Durable.DeleteClient(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(testClientCacheTTL)
	if s := e.clientCredentials(svcSecret); s != http.StatusUnauthorized {
		t.Errorf("deleted client after the TTL: %d, want 401", s)
	}

	e2, _, _ := newCacheEnv(t)
	if s := e2.clientCredentials(svcSecret); s != http.StatusOK {
		t.Fatalf("client_credentials: %d", s)
	}
	if err := e2.st.Durable.DeleteClient(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	e2.p.ForgetClient("svc")
	if s := e2.clientCredentials(svcSecret); s != http.StatusUnauthorized {
		t.Errorf("deleted and forgotten client: %d, want 401", s)
	}
}

// TestClientCacheBounded: the cache never holds more than its size.
func TestClientCacheBounded(t *testing.T) {
	clock := newTestClock()
	cc := newClientCache(time.Minute, 3, clock.Now)
	for i := range 10 {
		cc.put(storage.Client{ID: fmt.Sprint("c", i)})
		if n := cc.len(); n > 3 {
			t.Fatalf("%d entries after %d puts, want at most 3", n, i+1)
		}
	}
	if _, ok := cc.get("c9"); !ok {
		t.Error("the latest entry is missing")
	}
	clock.Advance(time.Minute)
	if _, ok := cc.get("c9"); ok {
		t.Error("an expired entry was returned")
	}
	if newClientCache(0, 3, clock.Now) != nil {
		t.Error("a zero TTL must turn the cache off")
	}
}
