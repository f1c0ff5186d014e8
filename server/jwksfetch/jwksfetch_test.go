package jwksfetch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8":             true,
		"2606:4700::1111":     true,
		"127.0.0.1":           false,
		"::1":                 false,
		"10.1.2.3":            false,
		"172.16.0.1":          false,
		"192.168.1.1":         false,
		"169.254.169.254":     false, // cloud metadata
		"fe80::1":             false,
		"fc00::1":             false,
		"0.0.0.0":             false,
		"::":                  false,
		"224.0.0.1":           false,
		"ff02::1":             false,
		"100.64.0.1":          false, // CGNAT
		"::ffff:127.0.0.1":    false, // IPv4-mapped loopback
		"::ffff:169.254.1.1":  false,
		"64:ff9b::a00:1":      false, // NAT64 of 10.0.0.1
		"255.255.255.255":     false,
		"198.18.0.1":          false,
		"100.63.255.255":      true,
		"100.128.0.1":         true,
		"2001:4860:4860::888": true,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func publicSet(t *testing.T, kid string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlsServer serves body at /jwks and counts the requests.
func tlsServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func newFetcher(srv *httptest.Server, allow bool, c *clock) *Fetcher {
	cfg := Config{AllowPrivate: allow, RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	if c != nil {
		cfg.Now = c.Now
	}
	return New(cfg)
}

func TestPrivateAddressRefusedWithoutKnob(t *testing.T) {
	set := publicSet(t, "k1")
	srv, hits := tlsServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(set) })
	_, err := newFetcher(srv, false, nil).KeySet(context.Background(), srv.URL+"/jwks")
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the server was reached %d times", hits.Load())
	}
	// A host name resolving to loopback is checked after resolution too.
	_, err = newFetcher(srv, false, nil).KeySet(context.Background(), strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/jwks")
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("via localhost: err = %v, want ErrForbiddenAddress", err)
	}
	keys, err := newFetcher(srv, true, nil).KeySet(context.Background(), srv.URL+"/jwks")
	if err != nil || len(keys.Key("k1")) != 1 {
		t.Fatalf("with the knob: %v %v", keys, err)
	}
}

func TestOnlyHTTPS(t *testing.T) {
	f := New(Config{AllowPrivate: true})
	for _, u := range []string{"http://127.0.0.1/jwks", "file:///etc/passwd", "https://user:pw@example.test/", "/relative"} {
		if _, err := f.Fetch(context.Background(), u, ""); err == nil {
			t.Errorf("%s fetched", u)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	srv, hits := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			http.Redirect(w, r, "/other", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	})
	if _, err := newFetcher(srv, true, nil).KeySet(context.Background(), srv.URL+"/jwks"); err == nil {
		t.Fatal("redirect followed")
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", hits.Load())
	}
}

func TestOversizedRefused(t *testing.T) {
	big := `{"keys":[],"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	srv, _ := tlsServer(t, func(w http.ResponseWriter, _ *http.Request) {
		// No Content-Length: the cap must hold on the stream as well.
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte(big))
	})
	_, err := newFetcher(srv, true, nil).KeySet(context.Background(), srv.URL+"/jwks")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestPrivateKeyMaterialRefused(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "p", Algorithm: "ES256"}}})
	if _, err := ParseKeySet(priv); !errors.Is(err, ErrPrivateKey) {
		t.Errorf("private EC key: %v", err)
	}
	oct := []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
	if _, err := ParseKeySet(oct); !errors.Is(err, ErrPrivateKey) {
		t.Errorf("symmetric key: %v", err)
	}
	if _, err := ParseKeySet([]byte(`{"keys":[{"kty":"weird"}]}`)); !errors.Is(err, ErrNoKeys) {
		t.Errorf("no usable key: %v", err)
	}
	set, err := ParseKeySet(publicSet(t, "ok"))
	if err != nil || len(set.Keys) != 1 {
		t.Errorf("public set: %v %v", set, err)
	}
}

func TestCacheAndRefresh(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	set := publicSet(t, "k1")
	srv, hits := tlsServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(set) })
	f := newFetcher(srv, true, c)
	ctx := context.Background()
	uri := srv.URL + "/jwks"
	for range 3 {
		if _, err := f.KeySet(ctx, uri); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("cached set refetched: %d hits", hits.Load())
	}
	// An unknown kid forces at most one refetch per MinRefresh.
	if _, err := f.Refresh(ctx, uri); err != nil || hits.Load() != 1 {
		t.Fatalf("refresh right after a fetch: %v, %d hits", err, hits.Load())
	}
	c.Add(61 * time.Second)
	if _, err := f.Refresh(ctx, uri); err != nil || hits.Load() != 2 {
		t.Fatalf("refresh after MinRefresh: %v, %d hits", err, hits.Load())
	}
	c.Add(5*time.Minute + time.Second)
	if _, err := f.KeySet(ctx, uri); err != nil || hits.Load() != 3 {
		t.Fatalf("after the TTL: %v, %d hits", err, hits.Load())
	}
}

func TestCacheBounded(t *testing.T) {
	set := publicSet(t, "k1")
	srv, hits := tlsServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(set) })
	f := New(Config{AllowPrivate: true, CacheSize: 2, RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
	ctx := context.Background()
	for _, p := range []string{"/a", "/b", "/c", "/a"} {
		if _, err := f.KeySet(ctx, srv.URL+p); err != nil {
			t.Fatal(err)
		}
	}
	// /a was evicted by /c, so it was fetched twice.
	if hits.Load() != 4 || f.lru.Len() != 2 {
		t.Fatalf("hits = %d, cached = %d", hits.Load(), f.lru.Len())
	}
}
