package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testRing(t *testing.T) *secrets.Keyring {
	t.Helper()
	r, err := secrets.NewKeyring(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testConfig(t *testing.T, c *clock, algs ...string) Config {
	return Config{
		Algorithms:     algs,
		RotationPeriod: 30 * 24 * time.Hour,
		PublishAhead:   24 * time.Hour,
		RetireAfter:    48 * time.Hour,
		JWKSMaxAge:     15 * time.Minute,
		PollInterval:   10 * time.Millisecond,
		Logger:         testLogger(t),
		Now:            c.Now,
	}
}

func newManager(t *testing.T, store storage.KeyStore, ring *secrets.Keyring, cfg Config) *Manager {
	t.Helper()
	m, err := New(context.Background(), store, ring, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// byState returns the kid of the single key of alg in state, failing when
// there is not exactly one.
func byState(t *testing.T, infos []KeyInfo, alg string, state storage.KeyState) KeyInfo {
	t.Helper()
	var found []KeyInfo
	for _, k := range infos {
		if k.Algorithm == alg && k.State == state {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s %s keys: %d, want 1 (%+v)", alg, state, len(found), infos)
	}
	return found[0]
}

func countState(infos []KeyInfo, alg string, state storage.KeyState) int {
	n := 0
	for _, k := range infos {
		if k.Algorithm == alg && k.State == state {
			n++
		}
	}
	return n
}

func TestFirstStartCreatesActiveAndNext(t *testing.T) {
	c := newClock()
	store := newStore()
	m := newManager(t, store, testRing(t), testConfig(t, c, ES256, EdDSA, PS256))
	// OIDC Core §15.1: RS256 is always there even when not asked for.
	if got, want := m.Algorithms(), []string{ES256, EdDSA, PS256, RS256}; !slices.Equal(got, want) {
		t.Errorf("Algorithms = %v, want %v", got, want)
	}
	infos := m.List()
	if len(infos) != 8 {
		t.Fatalf("%d keys, want 8: %+v", len(infos), infos)
	}
	for _, alg := range m.Algorithms() {
		a := byState(t, infos, alg, storage.KeyActive)
		n := byState(t, infos, alg, storage.KeyNext)
		// The very first key signs at once; its successor waits PublishAhead.
		if !a.ActivateAt.Equal(c.Now()) || !a.CreatedAt.Equal(c.Now()) {
			t.Errorf("%s active: created %v activate %v, want both %v", alg, a.CreatedAt, a.ActivateAt, c.Now())
		}
		if !n.ActivateAt.Equal(c.Now().Add(24 * time.Hour)) {
			t.Errorf("%s next activates %v", alg, n.ActivateAt)
		}
		kid, key, err := m.SigningKey(context.Background(), alg)
		if err != nil || kid != a.KID || key == nil {
			t.Errorf("SigningKey(%s) = %q, %v, %v; want kid %q", alg, kid, key, err, a.KID)
		}
	}
	if store.writeCount() != 1 {
		t.Errorf("%d writes, want 1", store.writeCount())
	}
	if m.Version() != 1 {
		t.Errorf("Version = %d", m.Version())
	}
}

func TestSecondManagerLoadsSameKeys(t *testing.T) {
	c := newClock()
	store := newStore()
	ring := testRing(t)
	a := newManager(t, store, ring, testConfig(t, c, ES256))
	c.Advance(time.Hour)
	b := newManager(t, store, ring, testConfig(t, c, ES256))
	if store.writeCount() != 1 {
		t.Errorf("second manager wrote: %d writes", store.writeCount())
	}
	if !slices.Equal(a.List(), b.List()) {
		t.Errorf("lists differ:\n%+v\n%+v", a.List(), b.List())
	}
	for _, alg := range a.Algorithms() {
		ka, sa, _ := a.SigningKey(context.Background(), alg)
		kb, sb, _ := b.SigningKey(context.Background(), alg)
		if ka != kb || !samePublic(sa.Public(), sb.Public()) {
			t.Errorf("%s: different signing keys %s / %s", alg, ka, kb)
		}
	}
	if !bytes.Equal(a.snap.Load().body, b.snap.Load().body) {
		t.Error("JWKS documents differ")
	}
}

func TestSecondManagerAddsAlgorithm(t *testing.T) {
	c := newClock()
	store := newStore()
	ring := testRing(t)
	a := newManager(t, store, ring, testConfig(t, c, RS256))
	b := newManager(t, store, ring, testConfig(t, c, RS256, ES256))
	if store.writeCount() != 2 {
		t.Errorf("%d writes, want 2", store.writeCount())
	}
	if byState(t, b.List(), RS256, storage.KeyActive) != byState(t, a.List(), RS256, storage.KeyActive) {
		t.Error("adding an algorithm changed the RS256 key")
	}
	byState(t, b.List(), ES256, storage.KeyActive)
	if _, _, err := a.SigningKey(context.Background(), ES256); err == nil {
		t.Error("SigningKey of an algorithm the manager is not configured for succeeded")
	}
}

// privateMembers are the JWK members that carry private key material
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func fetchJWKS(t *testing.T, m *Manager) (*http.Response, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, JWKSPath, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func TestJWKSPublishesEveryKeyAndNoPrivateMember(t *testing.T) {
	c := newClock()
	m := newManager(t, newStore(), testRing(t), testConfig(t, c, RS256, ES256, EdDSA, PS256))
	c.Advance(25 * time.Hour)
	if err := m.Rotate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	res, body := fetchJWKS(t, m)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("decoding JWKS: %v", err)
	}
	var kids []string
	for _, k := range doc.Keys {
		for _, p := range privateMembers {
			if _, ok := k[p]; ok {
				t.Errorf("key %v has private member %q", k["kid"], p)
			}
		}
		if k["use"] != "sig" || k["alg"] == nil || k["kid"] == nil {
			t.Errorf("key lacks use/alg/kid: %v", k)
		}
		kids = append(kids, k["kid"].(string))
	}
	var want []string
	for _, k := range m.List() {
		want = append(want, k.KID)
	}
	// 4 algorithms x (retired, active, next).
	if len(want) != 12 || !slices.Equal(kids, want) {
		t.Errorf("JWKS kids %v, want %v", kids, want)
	}
	if pk := m.PublicKeys(); len(pk.Keys) != 12 {
		t.Errorf("PublicKeys: %d keys", len(pk.Keys))
	} else {
		for _, k := range pk.Keys {
			if !k.IsPublic() {
				t.Errorf("PublicKeys holds a non-public key %s", k.KeyID)
			}
		}
	}
	// The first key is a signing key, for clients that take the first.
	if kid, _, _ := m.SigningKey(context.Background(), doc.Keys[0]["alg"].(string)); kid != doc.Keys[0]["kid"] {
		t.Errorf("first JWKS key %v is not an active key", doc.Keys[0]["kid"])
	}
}

func TestSignedJWSVerifiesWithJWKS(t *testing.T) {
	c := newClock()
	m := newManager(t, newStore(), testRing(t), testConfig(t, c, RS256, ES256, EdDSA, PS256))
	_, body := fetchJWKS(t, m)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	for _, alg := range m.Algorithms() {
		t.Run(alg, func(t *testing.T) {
			kid, key, err := m.SigningKey(context.Background(), alg)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := jose.NewSigner(jose.SigningKey{
				Algorithm: jose.SignatureAlgorithm(alg),
				Key:       jose.JSONWebKey{Key: key, KeyID: kid},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			viaSigner, err := m.Signer(alg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []jose.Signer{signer, viaSigner} {
				jws, err := s.Sign([]byte(`{"sub":"alice"}`))
				if err != nil {
					t.Fatal(err)
				}
				compact, _ := jws.CompactSerialize()
				parsed, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatal(err)
				}
				hkid := parsed.Signatures[0].Header.KeyID
				if hkid != kid {
					t.Fatalf("header kid %q, want %q", hkid, kid)
				}
				keys := set.Key(hkid)
				if len(keys) != 1 || keys[0].Algorithm != alg {
					t.Fatalf("JWKS has %d keys for kid %s", len(keys), hkid)
				}
				payload, err := parsed.Verify(keys[0])
				if err != nil || string(payload) != `{"sub":"alice"}` {
					t.Fatalf("Verify: %q, %v", payload, err)
				}
			}
		})
	}
}

func TestRotateRespectsPublishAheadAndRetireAfter(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	m := newManager(t, store, testRing(t), testConfig(t, c, ES256))
	before := m.List()

	// OIDC Core §10.1.1: a next key may not sign before relying parties
	// could have fetched it.
	c.Advance(23 * time.Hour)
	err := m.Rotate(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "2030-01-02T00:00:00Z") {
		t.Fatalf("early Rotate: err = %v, want a refusal naming when it becomes possible", err)
	}
	if !slices.Equal(m.List(), before) || store.writeCount() != 1 {
		t.Fatal("refused rotation changed the set")
	}

	c.Advance(time.Hour)
	if err := m.Rotate(ctx, false); err != nil {
		t.Fatalf("Rotate after PublishAhead: %v", err)
	}
	after := m.List()
	for _, alg := range m.Algorithms() {
		oldActive := byState(t, before, alg, storage.KeyActive)
		oldNext := byState(t, before, alg, storage.KeyNext)
		if a := byState(t, after, alg, storage.KeyActive); a.KID != oldNext.KID || !a.ActivateAt.Equal(c.Now()) {
			t.Errorf("%s: active %+v, want the old next key activated now", alg, a)
		}
		r := byState(t, after, alg, storage.KeyRetired)
		if r.KID != oldActive.KID || !r.RetiredAt.Equal(c.Now()) || !r.DeleteAt.Equal(c.Now().Add(48*time.Hour)) {
			t.Errorf("%s: retired %+v", alg, r)
		}
		if n := byState(t, after, alg, storage.KeyNext); n.KID == oldNext.KID || n.KID == oldActive.KID {
			t.Errorf("%s: no new next key", alg)
		}
		if kid, _, _ := m.SigningKey(ctx, alg); kid != oldNext.KID {
			t.Errorf("%s: signing with %s after rotation", alg, kid)
		}
	}
	// The retired key is still published.
	retired := byState(t, after, RS256, storage.KeyRetired).KID
	if pk := m.PublicKeys(); len(pk.Key(retired)) != 1 {
		t.Error("retired key not published")
	}

	// Just before RetireAfter the retired key stays; at RetireAfter it goes.
	c.Advance(48*time.Hour - time.Microsecond)
	if err := m.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(pubKeys(m).Key(retired)) != 1 {
		t.Error("retired key dropped before RetireAfter")
	}
	c.Advance(time.Microsecond)
	if err := m.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(pubKeys(m).Key(retired)) != 0 || countState(m.List(), RS256, storage.KeyRetired) != 0 {
		t.Error("retired key still published after RetireAfter")
	}
	if len(m.List()) != 4 {
		t.Errorf("%d keys after pruning, want 4", len(m.List()))
	}
}

func TestRotateForce(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := newManager(t, newStore(), testRing(t), testConfig(t, c, RS256))
	next := byState(t, m.List(), RS256, storage.KeyNext).KID
	if err := m.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	if kid, _, _ := m.SigningKey(ctx, RS256); kid != next {
		t.Errorf("forced rotation did not promote next")
	}
}

func TestRunRotatesAfterRotationPeriod(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	m := newManager(t, store, testRing(t), testConfig(t, c, RS256))
	if err := m.poll(ctx); err != nil || store.writeCount() != 1 {
		t.Fatalf("poll with nothing due wrote (%d writes, err %v)", store.writeCount(), err)
	}
	next := byState(t, m.List(), RS256, storage.KeyNext).KID
	c.Advance(30*24*time.Hour - time.Second)
	if err := m.poll(ctx); err != nil || store.writeCount() != 1 {
		t.Fatalf("rotated before RotationPeriod (%d writes, err %v)", store.writeCount(), err)
	}
	c.Advance(time.Second)
	if err := m.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if kid, _, _ := m.SigningKey(ctx, RS256); kid != next {
		t.Errorf("signing with %s after RotationPeriod, want %s", kid, next)
	}
}

// waitFor polls cond until it holds, failing after a generous bound: no
// duration is asserted, the bound only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runManager(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestRotationSeenByOtherReplicaThroughPolling(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	ring := testRing(t)
	a := newManager(t, store, ring, testConfig(t, c, ES256))
	b := newManager(t, store, ring, testConfig(t, c, ES256))
	runManager(t, b)
	_, etagBefore := fetchETag(t, b, "")

	if err := a.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	want, _, _ := a.SigningKey(ctx, ES256)
	waitFor(t, "replica b to sign with the rotated key", func() bool {
		kid, _, _ := b.SigningKey(ctx, ES256)
		return kid == want
	})
	if b.Version() != a.Version() {
		t.Errorf("versions differ: a %d, b %d", a.Version(), b.Version())
	}
	if code, etag := fetchETag(t, b, etagBefore); code != http.StatusOK || etag == etagBefore {
		t.Errorf("after rotation: status %d etag %s (before %s)", code, etag, etagBefore)
	}
}

func TestConcurrentRotationRotatesOnce(t *testing.T) {
	c := newClock()
	store := newStore()
	ring := testRing(t)
	var ms []*Manager
	for range 3 {
		ms = append(ms, newManager(t, store, ring, testConfig(t, c, RS256, ES256)))
	}
	before := ms[0].List()
	c.Advance(30 * 24 * time.Hour)
	for _, m := range ms {
		runManager(t, m)
	}
	// Every replica finds its key due at its next poll; one CAS wins.
	waitFor(t, "every replica to serve one rotated set", func() bool {
		v := ms[0].Version()
		for _, m := range ms {
			if m.Version() != v || countState(m.List(), RS256, storage.KeyRetired) == 0 {
				return false
			}
		}
		return true
	})
	if store.writeCount() != 2 {
		t.Errorf("%d writes, want 2 (creation and one rotation)", store.writeCount())
	}
	for _, alg := range []string{RS256, ES256} {
		want := byState(t, before, alg, storage.KeyNext).KID
		for i, m := range ms {
			infos := m.List()
			if countState(infos, alg, storage.KeyRetired) != 1 || len(infos) != 6 {
				t.Errorf("replica %d: %s keys %+v", i, alg, infos)
			}
			if kid, _, _ := m.SigningKey(context.Background(), alg); kid != want {
				t.Errorf("replica %d signs %s with %s, want %s", i, alg, kid, want)
			}
		}
	}
}

func TestConcurrentExplicitRotate(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	ring := testRing(t)
	a := newManager(t, store, ring, testConfig(t, c, ES256))
	b := newManager(t, store, ring, testConfig(t, c, ES256))
	c.Advance(24 * time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, m := range []*Manager{a, b} {
		wg.Go(func() { errs[i] = m.Rotate(ctx, false) })
	}
	wg.Wait()
	// The loser of the CAS adopts the winner's rotation; a replica that only
	// started after it sees fresh next keys and is refused.
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !strings.Contains(err.Error(), "too recently") {
			t.Errorf("Rotate: %v", err)
		}
	}
	if ok == 0 {
		t.Error("neither rotation succeeded")
	}
	if store.writeCount() != 2 {
		t.Errorf("%d writes, want 2", store.writeCount())
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ka, _, _ := a.SigningKey(ctx, ES256)
	kb, _, _ := b.SigningKey(ctx, ES256)
	if ka != kb || countState(a.List(), ES256, storage.KeyRetired) != 1 {
		t.Errorf("replicas disagree: %s / %s, %+v", ka, kb, a.List())
	}
}

func fetchETag(t *testing.T, m *Manager, ifNoneMatch string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, JWKSPath, nil)
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	m.JWKSHandler().ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("ETag")
}

func TestJWKSHandlerCaching(t *testing.T) {
	c := newClock()
	m := newManager(t, newStore(), testRing(t), testConfig(t, c, ES256))
	h := m.JWKSHandler()
	res, body := fetchJWKS(t, m)
	etag := res.Header.Get("ETag")
	if ct := res.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=900" {
		t.Errorf("Cache-Control %q", cc)
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
		t.Errorf("ETag %q is not a strong entity tag", etag)
	}
	if _, again := fetchJWKS(t, m); !bytes.Equal(again, body) {
		t.Error("body changes between requests")
	}

	// RFC 9110 §13.1.2: a matching If-None-Match gets 304 without a body.
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, JWKSPath, nil)
		req.Header.Set("If-None-Match", inm)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: status %d, body %d bytes", inm, rec.Code, rec.Body.Len())
		}
		if rec.Header().Get("ETag") != etag || rec.Header().Get("Cache-Control") == "" {
			t.Errorf("304 lacks ETag or Cache-Control: %v", rec.Header())
		}
	}
	if code, _ := fetchETag(t, m, `"stale"`); code != http.StatusOK {
		t.Errorf("non-matching If-None-Match: status %d", code)
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, JWKSPath, nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
		t.Errorf("HEAD: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, JWKSPath, nil))
	if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "GET") {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}

	// A change of the set changes the document and its tag.
	if err := m.Rotate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if code, newTag := fetchETag(t, m, etag); code != http.StatusOK || newTag == etag {
		t.Errorf("after rotation: status %d, ETag %s (was %s)", code, newTag, etag)
	}
}

func TestStoredPrivateKeyIsEncrypted(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	ring := testRing(t)
	m := newManager(t, store, ring, testConfig(t, c, RS256, ES256, EdDSA))
	set, _ := store.GetKeySet(ctx)
	other, _ := secrets.NewKeyring(bytes.Repeat([]byte("o"), 32))
	for _, k := range set.Keys {
		if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err == nil {
			t.Errorf("%s: stored private key parses as plaintext PKCS #8", k.ID)
		}
		if bytes.Contains(k.PublicJWK, []byte(`"d"`)) {
			t.Errorf("%s: stored public JWK has a private member", k.ID)
		}
		if _, err := other.Open(k.PrivateKey, []byte(k.ID)); !errors.Is(err, secrets.ErrOpen) {
			t.Errorf("%s: opens under another keyring", k.ID)
		}
		// The kid is the additional data: a box moved to another record does not open.
		if _, err := ring.Open(k.PrivateKey, []byte(k.ID+"x")); !errors.Is(err, secrets.ErrOpen) {
			t.Errorf("%s: opens with the wrong kid", k.ID)
		}
		der, err := ring.Open(k.PrivateKey, []byte(k.ID))
		if err != nil {
			t.Fatalf("%s: %v", k.ID, err)
		}
		if k.State != storage.KeyActive {
			continue
		}
		_, signer, _ := m.SigningKey(ctx, k.Algorithm)
		want, _ := x509.MarshalPKCS8PrivateKey(signer)
		if !bytes.Equal(der, want) {
			t.Errorf("%s: decrypted key is not the signing key", k.ID)
		}
		if bytes.Contains(k.PrivateKey, want) {
			t.Errorf("%s: stored record contains the plaintext key", k.ID)
		}
	}
	// A replica without the right secret cannot load the set.
	if _, err := New(ctx, store, other, testConfig(t, c, RS256, ES256, EdDSA)); err == nil {
		t.Error("New with the wrong keyring succeeded")
	}
}

func TestRunKeepsServingWhenStorageFails(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	m := newManager(t, store, testRing(t), testConfig(t, c, RS256))
	kid, _, _ := m.SigningKey(ctx, RS256)
	store.setFailure(errors.New("connection refused"))
	if err := m.poll(ctx); err == nil {
		t.Error("poll against a failing store succeeded")
	}
	if got, _, err := m.SigningKey(ctx, RS256); got != kid || err != nil {
		t.Errorf("SigningKey after a storage failure: %q, %v", got, err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{}
	got, err := ok.withDefaults()
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if !slices.Equal(got.Algorithms, []string{RS256, ES256}) || got.RSABits != 2048 ||
		got.PollInterval != 5*time.Second || got.JWKSMaxAge != 15*time.Minute {
		t.Errorf("defaults: %+v", got)
	}
	if got, _ := (Config{Algorithms: []string{ES256, ES256}}).withDefaults(); !slices.Equal(got.Algorithms, []string{ES256, RS256}) {
		t.Errorf("RS256 not added or duplicates kept: %v", got.Algorithms)
	}
	bad := map[string]Config{
		"rsa 1024":                 {RSABits: 1024},
		"rsa 2047":                 {RSABits: 2047},
		"unknown alg":              {Algorithms: []string{"HS256"}},
		"none alg":                 {Algorithms: []string{"none"}},
		"poll above 10s":           {PollInterval: 11 * time.Second},
		"negative poll":            {PollInterval: -time.Second},
		"publish ahead < max age":  {PublishAhead: time.Minute, JWKSMaxAge: time.Hour},
		"retire after < max age":   {RetireAfter: time.Minute},
		"rotation < publish ahead": {RotationPeriod: time.Hour, PublishAhead: 2 * time.Hour},
		"negative rotation period": {RotationPeriod: -time.Hour},
		"max age below a second":   {JWKSMaxAge: time.Millisecond},
	}
	for name, c := range bad {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(context.Background(), newStore(), testRing(t), c); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

func TestSigningKeyUnconfiguredAlgorithm(t *testing.T) {
	m := newManager(t, newStore(), testRing(t), testConfig(t, newClock(), RS256))
	for _, alg := range []string{"HS256", "none", ES256, ""} {
		if _, _, err := m.SigningKey(context.Background(), alg); err == nil {
			t.Errorf("SigningKey(%q) succeeded", alg)
		}
		if _, err := m.Signer(alg); err == nil {
			t.Errorf("Signer(%q) succeeded", alg)
		}
	}
}

func pubKeys(m *Manager) *jose.JSONWebKeySet {
	s := m.PublicKeys()
	return &s
}

func TestReloadAcceptsRestoredOlderSet(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store := newStore()
	m := newManager(t, store, testRing(t), testConfig(t, c, RS256))
	saved, _ := store.GetKeySet(ctx)
	oldKID, _, _ := m.SigningKey(ctx, RS256)
	if err := m.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	// A database restored from a backup goes back to an older version; the
	// replica must follow it rather than keep serving its newer memory.
	restored := memory.New()
	if _, err := restored.ReplaceKeySet(ctx, 0, saved.Keys); err != nil {
		t.Fatal(err)
	}
	store.swap(restored)
	if err := m.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if kid, _, _ := m.SigningKey(ctx, RS256); kid != oldKID || m.Version() != saved.Version {
		t.Errorf("after restore: signing with %s at version %d, want %s at %d", kid, m.Version(), oldKID, saved.Version)
	}
}

func BenchmarkSigningKey(b *testing.B) {
	m, err := New(context.Background(), newStore(), mustBenchRing(b), Config{Algorithms: []string{ES256}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.SigningKey(ctx, ES256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWKSHandler(b *testing.B) {
	m, err := New(context.Background(), newStore(), mustBenchRing(b), Config{Algorithms: []string{ES256}})
	if err != nil {
		b.Fatal(err)
	}
	h := m.JWKSHandler()
	req := httptest.NewRequest(http.MethodGet, JWKSPath, nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}

func mustBenchRing(b *testing.B) *secrets.Keyring {
	r, err := secrets.NewKeyring(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func TestConcurrentFirstStartCreatesOneSet(t *testing.T) {
	c := newClock()
	store := newStore()
	ring := testRing(t)
	ms := make([]*Manager, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { ms[i], errs[i] = New(context.Background(), store, ring, testConfig(t, c, ES256)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	// Each replica made keys, but only one CAS won; the others adopted its set.
	if store.writeCount() != 1 {
		t.Errorf("%d writes, want 1", store.writeCount())
	}
	for i, m := range ms[1:] {
		if !slices.Equal(m.List(), ms[0].List()) {
			t.Errorf("replica %d serves another set", i+1)
		}
	}
}
