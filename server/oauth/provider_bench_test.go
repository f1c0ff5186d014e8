package oauth

// Benchmarks of the protocol hot paths through the real handlers, over each
// storage backend. Run them with
//
//	go test -run '^$' -bench . -benchmem ./server/oauth/
//
// CI runs them with -benchtime=1x so that they stay quick and keep compiling
// and working; no benchmark asserts a duration.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

const (
	benchIssuer   = "https://id.example.test"
	benchSecret   = "bench-secret-0123456789abcdef0123456789abcdef"
	benchRedirect = "http://127.0.0.1:9199/cb"
)

// benchBackend is one storage configuration; the production one is
// PostgreSQL + Redis, the embedded one SQLite alone.
type benchBackend struct {
	name string
	open func(tb testing.TB) storage.Stores
}

func benchBackends() []benchBackend {
	return []benchBackend{
		{"memory", func(testing.TB) storage.Stores {
			m := memory.New()
			return storage.Stores{Durable: m, Ephemeral: m}
		}},
		{"sqlite", func(tb testing.TB) storage.Stores {
			s := sqltest.NewSQLite(tb)
			return storage.Stores{Durable: s, Ephemeral: s}
		}},
		{"postgres+redis", func(tb testing.TB) storage.Stores {
			return storage.Stores{Durable: sqltest.NewPostgres(tb), Ephemeral: redistest.New(tb)}
		}},
	}
}

// benchKeys generates the keys once per process: RSA key generation would
// otherwise dominate short runs.
var benchKeys = sync.OnceValue(func() *testKeys {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &testKeys{rsa: r, ec: e}
})

type benchEnv struct {
	tb   testing.TB
	p    *Provider
	ring *secrets.Keyring
	mux  *http.ServeMux
}

// newBenchEnv builds a provider over st with these clients, all with the
// secret benchSecret (client_secret_basic): "svc" (client_credentials,
// opaque), "svc-jwt" (client_credentials, RFC 9068 JWT access tokens,
// ES256), "web" (authorization_code + refresh_token, RS256 ID tokens) and
// "web-es" (the same with ES256 ID tokens).
func newBenchEnv(tb testing.TB, st storage.Stores, keys *testKeys) *benchEnv {
	tb.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ring, err := secrets.NewKeyring(secret)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := New(Config{
		Issuer:      benchIssuer,
		Stores:      st,
		Ring:        ring,
		SigningKey:  keys.SigningKey,
		PublicKeys:  keys.PublicKeys,
		Interaction: approveInteraction{},
		// clients.cache_ttl's default, as the server runs.
		ClientCacheTTL: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/authorize", p.Authorize)
	mux.HandleFunc("/oauth2/token", p.Token)
	mux.HandleFunc("/oauth2/introspect", p.Introspect)
	mux.HandleFunc("/.well-known/openid-configuration", p.Discovery)

	now := time.Now().UTC()
	hash := HashClientSecret(ring, benchSecret)
	web := []string{"authorization_code", "refresh_token"}
	scopes := []string{"openid", "profile", "email", "offline_access"}
	clients := []storage.Client{
		{ID: "svc", SecretHash: hash, GrantTypes: []string{"client_credentials"}, Scopes: []string{"reports.read"}},
		{ID: "svc-jwt", SecretHash: hash, GrantTypes: []string{"client_credentials"}, Scopes: []string{"reports.read"},
			Audience: []string{"https://api.example.test"}, AccessTokenFormat: "jwt"},
		{ID: "web", SecretHash: hash, RedirectURIs: []string{benchRedirect}, GrantTypes: web, ResponseTypes: []string{"code"}, Scopes: scopes},
		{ID: "web-es", SecretHash: hash, RedirectURIs: []string{benchRedirect}, GrantTypes: web, ResponseTypes: []string{"code"}, Scopes: scopes,
			IDTokenSignedResponseAlg: "ES256"},
	}
	ctx := context.Background()
	// approveInteraction signs in "alice"; the token and introspection
	// endpoints refuse the grants of a user who does not exist.
	if err := st.Durable.CreateUser(context.Background(), storage.User{ID: "alice", Username: "alice", CreatedAt: now, UpdatedAt: now}); err != nil {
		tb.Fatal(err)
	}
	for _, c := range clients {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := st.Durable.CreateClient(ctx, c); err != nil {
			tb.Fatal(err)
		}
	}
	return &benchEnv{tb: tb, p: p, ring: ring, mux: mux}
}

// post sends a client_secret_basic form POST to the handler and decodes the
// JSON answer; a status other than 200 fails.
func (e *benchEnv) post(path, clientID string, form url.Values) map[string]any {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, benchSecret)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK {
		e.tb.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.String())
	}
	return body
}

// code runs an authorization request (PKCE S256, nonce) that the test
// interaction approves at once, as for a user with a session and remembered
// consent, and returns the code and its verifier.
func (e *benchEnv) code(clientID, scope string) (code, verifier string) {
	verifier = oauth2.GenerateVerifier()
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {benchRedirect}, "scope": {scope},
		"state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/authorize?"+q.Encode(), nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		e.tb.Fatalf("authorize: %d %q %s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
	}
	return loc.Query().Get("code"), verifier
}

func (e *benchEnv) exchange(clientID, code, verifier string) map[string]any {
	return e.post("/oauth2/token", clientID, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {benchRedirect}, "code_verifier": {verifier},
	})
}

// BenchmarkToken measures the token endpoint per grant (RFC 6749 §4.1.3,
// §4.4, §6) with client_secret_basic, through the real handler.
func BenchmarkToken(b *testing.B) {
	keys := benchKeys()
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			e := newBenchEnv(b, be.open(b), keys)
			cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"reports.read"}}

			b.Run("client_credentials", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					e.post("/oauth2/token", "svc", cc)
				}
			})
			b.Run("client_credentials_jwt", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					e.post("/oauth2/token", "svc-jwt", cc)
				}
			})
			for _, client := range []string{"web", "web-es"} {
				alg := map[string]string{"web": "RS256", "web-es": "ES256"}[client]
				// One iteration: authorization request that is approved at
				// once plus the code exchange, as the sso scenario does.
				b.Run("authorization_code_"+alg, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						c, v := e.code(client, "openid")
						if e.exchange(client, c, v)["id_token"] == nil {
							b.Fatal("no id_token")
						}
					}
				})
				// Rotation on every use, with a new ID token each time.
				b.Run("refresh_token_"+alg, func(b *testing.B) {
					c, v := e.code(client, "openid offline_access")
					rt, _ := e.exchange(client, c, v)["refresh_token"].(string)
					b.ReportAllocs()
					for b.Loop() {
						body := e.post("/oauth2/token", client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
						rt, _ = body["refresh_token"].(string)
					}
				})
			}
		})
	}
}

// BenchmarkIntrospect measures RFC 7662 introspection of an opaque access
// token by an authenticated client.
func BenchmarkIntrospect(b *testing.B) {
	keys := benchKeys()
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			e := newBenchEnv(b, be.open(b), keys)
			at, _ := e.post("/oauth2/token", "svc", url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
			form := url.Values{"token": {at}}
			b.ReportAllocs()
			for b.Loop() {
				if e.post("/oauth2/introspect", "svc", form)["active"] != true {
					b.Fatal("token inactive")
				}
			}
		})
	}
}

// BenchmarkDiscovery measures the discovery document (OpenID Connect
// Discovery 1.0 §4), which is encoded once at start.
func BenchmarkDiscovery(b *testing.B) {
	e := newBenchEnv(b, benchBackends()[0].open(b), benchKeys())
	req := httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkClientSecretCompare measures the client_secret_basic check: a
// keyed hash, no key stretching (a server-generated secret has 256 bits).
func BenchmarkClientSecretCompare(b *testing.B) {
	ring, err := secrets.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	h := secretHasher{ring: ring}
	hash := HashClientSecret(ring, benchSecret)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Compare(ctx, hash, []byte(benchSecret)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign measures one ID token or JWT access token signature through
// the key signer, per algorithm (RSA-2048 and P-256).
func BenchmarkSign(b *testing.B) {
	keys := benchKeys()
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			s := &keySigner{signingKey: keys.SigningKey, publicKeys: keys.PublicKeys, defaultAlg: alg}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				claims := jwt.MapClaims{
					"iss": benchIssuer, "sub": "alice", "aud": []string{"web"}, "nonce": "nonce-0123456789",
					"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "auth_time": time.Now().Unix(),
				}
				if _, _, err := s.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"alg": alg}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenParallel is end to end: client_credentials over real HTTP
// (loopback, keep-alive) with parallel clients, as the load tool does.
func BenchmarkTokenParallel(b *testing.B) {
	keys := benchKeys()
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			e := newBenchEnv(b, be.open(b), keys)
			srv := httptest.NewServer(e.mux)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			body := url.Values{"grant_type": {"client_credentials"}}.Encode()
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("svc", benchSecret)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Error(fmt.Sprintf("status %d", resp.StatusCode))
						return
					}
				}
			})
		})
	}
}
