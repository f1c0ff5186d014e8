package logout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/logout"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
)

const issuer = "https://idp.example"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

// Key generation is slow (RSA); one key set serves every test, which only
// read it.
var (
	keysOnce sync.Once
	keyMgr   *keys.Manager
	keysErr  error
)

func testKeys(t *testing.T) *keys.Manager {
	t.Helper()
	keysOnce.Do(func() {
		ring, err := secrets.NewKeyring(bytes.Repeat([]byte("k"), 32))
		if err != nil {
			keysErr = err
			return
		}
		keyMgr, keysErr = keys.New(context.Background(), memory.New(), ring,
			keys.Config{Algorithms: []string{keys.RS256, keys.ES256}, Logger: slog.New(slog.DiscardHandler)})
	})
	if keysErr != nil {
		t.Fatalf("keys.New: %v", keysErr)
	}
	return keyMgr
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// store is what the tests need of a backend: durable and session roles.
type store interface {
	storage.Durable
	storage.SessionStore
}

// receiver is a relying party's back-channel logout endpoint.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	// tokens are the logout_token values received, in order.
	tokens []string
	types  []string
	// answer gives the status of the n-th request (0-based); 200 when nil.
	answer func(n int, w http.ResponseWriter, r *http.Request) int
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request) int) *receiver {
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		n := len(rc.tokens)
		rc.tokens = append(rc.tokens, r.PostForm.Get("logout_token"))
		rc.types = append(rc.types, r.Header.Get("Content-Type"))
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, w, r)
		}
		if status != 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.tokens...)
}

type fixture struct {
	t     *testing.T
	st    store
	clock *clock
	svc   *logout.Service
	keys  *keys.Manager
}

func newFixture(t *testing.T, st store) *fixture {
	t.Helper()
	f := &fixture{t: t, st: st, clock: &clock{t: time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)}, keys: testKeys(t)}
	svc, err := logout.New(logout.Config{Issuer: issuer, Clients: st, Sessions: st, Outbox: st,
		Logger: testLogger(t), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) deliverer(cfg logout.DelivererConfig) *logout.Deliverer {
	f.t.Helper()
	cfg.Outbox, cfg.Clients, cfg.Keys = f.st, f.st, f.keys
	if cfg.Logger == nil {
		cfg.Logger = testLogger(f.t)
	}
	cfg.Now = f.clock.Now
	cfg.AllowPrivate = true // the receivers listen on loopback
	d, err := logout.NewDeliverer(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) addClient(c storage.Client) {
	f.t.Helper()
	if err := f.st.CreateClient(context.Background(), c); err != nil {
		f.t.Fatal(err)
	}
}

// session stores a session of alice with the given clients.
func (f *fixture) session(clientIDs ...string) storage.Session {
	f.t.Helper()
	now := f.clock.Now()
	s := storage.Session{ID: "sid-" + clientIDs[0], Subject: "u-alice", AuthTime: now, ClientIDs: clientIDs,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := f.st.CreateSession(context.Background(), s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// endWithOneClient enqueues one notification for a client posting to rc.
func (f *fixture) endWithOneClient(rc *receiver) storage.Session {
	f.t.Helper()
	f.addClient(storage.Client{ID: "rp", BackchannelLogoutURI: rc.srv.URL + "/bc", BackchannelLogoutSessionRequired: true})
	s := f.session("rp")
	if err := f.svc.EndSession(context.Background(), s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) queue() []storage.LogoutNotification {
	f.t.Helper()
	ns, err := f.st.ListLogouts(context.Background(), 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return ns
}

func (f *fixture) deliverDue(d *logout.Deliverer, want int) {
	f.t.Helper()
	n, err := d.DeliverDue(context.Background())
	if err != nil {
		f.t.Fatalf("DeliverDue: %v", err)
	}
	if n != want {
		f.t.Fatalf("DeliverDue claimed %d notifications, want %d", n, want)
	}
}

// verify checks a logout token against the published JWKS and returns its
// header and claims.
func (f *fixture) verify(token string) (jose.Header, map[string]any) {
	f.t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		f.t.Fatalf("parsing logout token: %v", err)
	}
	h := jws.Signatures[0].Header
	set := f.keys.PublicKeys()
	ks := set.Key(h.KeyID)
	if len(ks) != 1 {
		f.t.Fatalf("kid %q: %d keys in the JWKS, want 1", h.KeyID, len(ks))
	}
	payload, err := jws.Verify(ks[0])
	if err != nil {
		f.t.Fatalf("verifying logout token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		f.t.Fatal(err)
	}
	return h, claims
}

func TestBackChannelLogoutToken_BCL_2_4_and_2_5(t *testing.T) {
	f := newFixture(t, sqltest.NewSQLite(t))
	rc := newReceiver(t, nil)
	f.addClient(storage.Client{ID: "rp-es", IDTokenSignedResponseAlg: "ES256", BackchannelLogoutURI: rc.srv.URL + "/es"})
	f.addClient(storage.Client{ID: "rp-rs", BackchannelLogoutURI: rc.srv.URL + "/rs"})
	f.addClient(storage.Client{ID: "rp-none"}) // no back-channel URI: not notified
	sess := f.session("rp-es", "rp-rs", "rp-none", "deleted-client")

	if err := f.svc.EndSession(context.Background(), sess); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.GetSession(context.Background(), sess.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session after EndSession: %v, want ErrNotFound", err)
	}
	queued := f.queue()
	if len(queued) != 2 {
		t.Fatalf("%d notifications queued, want 2: %+v", len(queued), queued)
	}
	for _, n := range queued {
		if bytes.Contains(n.Payload, []byte("nonce")) {
			t.Errorf("queued payload has a nonce: %s", n.Payload)
		}
	}

	f.clock.Advance(time.Minute) // iat and exp are the delivery's
	f.deliverDue(f.deliverer(logout.DelivererConfig{}), 2)
	if q := f.queue(); len(q) != 0 {
		t.Errorf("%d notifications left after delivery", len(q))
	}
	tokens := rc.received()
	if len(tokens) != 2 {
		t.Fatalf("receiver got %d tokens, want 2", len(tokens))
	}
	for _, ct := range rc.types {
		if ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	algs := map[string]string{}
	jtis := map[string]bool{}
	now := f.clock.Now().Unix()
	for _, tok := range tokens {
		h, c := f.verify(tok)
		if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != logout.TokenType {
			t.Errorf("typ %q, want %q", typ, logout.TokenType)
		}
		aud, _ := c["aud"].(string)
		algs[aud] = h.Algorithm
		if c["iss"] != issuer || c["sub"] != "u-alice" || c["sid"] != sess.ID {
			t.Errorf("iss, sub, sid = %v, %v, %v", c["iss"], c["sub"], c["sid"])
		}
		if iat, _ := c["iat"].(float64); int64(iat) != now {
			t.Errorf("iat %v, want the delivery time %d", c["iat"], now)
		}
		if exp, _ := c["exp"].(float64); int64(exp) <= now {
			t.Errorf("exp %v is not after iat %d", c["exp"], now)
		}
		jti, _ := c["jti"].(string)
		if jti == "" || jtis[jti] {
			t.Errorf("jti %q empty or repeated", jti)
		}
		jtis[jti] = true
		events, _ := c["events"].(map[string]any)
		if ev, ok := events[logout.BackchannelLogoutEvent].(map[string]any); !ok || len(ev) != 0 || len(events) != 1 {
			t.Errorf("events %v, want exactly {%q: {}}", c["events"], logout.BackchannelLogoutEvent)
		}
		if _, ok := c["nonce"]; ok {
			t.Error("logout token carries a nonce (§2.4 forbids it)")
		}
	}
	if algs["rp-es"] != "ES256" || algs["rp-rs"] != "RS256" {
		t.Errorf("algorithms by client %v, want rp-es ES256 (id_token_signed_response_alg) and rp-rs RS256", algs)
	}
}

func TestBackChannelRetriesWithBackoff_BCL_2_5(t *testing.T) {
	f := newFixture(t, memory.New())
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent // §2.8 allows frameworks' 204
	})
	f.endWithOneClient(rc)
	d := f.deliverer(logout.DelivererConfig{})

	for attempt := 1; attempt <= 2; attempt++ {
		start := f.clock.Now()
		f.deliverDue(d, 1)
		q := f.queue()
		if len(q) != 1 {
			t.Fatalf("attempt %d: %d queued, want 1", attempt, len(q))
		}
		n := q[0]
		if n.Attempts != attempt || !strings.Contains(n.LastError, "500") || !n.NextAttemptAt.After(start) {
			t.Fatalf("attempt %d: recorded %+v", attempt, n)
		}
		f.deliverDue(d, 0) // not due again yet
		f.clock.Advance(n.NextAttemptAt.Sub(start))
	}
	f.deliverDue(d, 1)
	if q := f.queue(); len(q) != 0 {
		t.Errorf("still queued after the third attempt succeeded: %+v", q)
	}
	if got := len(rc.received()); got != 3 {
		t.Errorf("receiver got %d requests, want 3", got)
	}
}

func TestBackChannelBackoffDoublesUpToCap_BCL_2_5(t *testing.T) {
	f := newFixture(t, memory.New())
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusServiceUnavailable })
	f.endWithOneClient(rc)
	d := f.deliverer(logout.DelivererConfig{FirstRetry: 10 * time.Second, MaxBackoff: time.Minute, MaxAttempts: 100})
	var delays []time.Duration
	for range 5 {
		start := f.clock.Now()
		f.deliverDue(d, 1)
		next := f.queue()[0].NextAttemptAt
		delays = append(delays, next.Sub(start))
		f.clock.Advance(next.Sub(start))
	}
	// Nominal 10s, 20s, 40s, 60s, 60s, less up to a quarter of jitter.
	nominal := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	for i, got := range delays {
		if got > nominal[i] || got < nominal[i]*3/4 {
			t.Errorf("delay after failure %d: %s, want in [%s, %s]", i+1, got, nominal[i]*3/4, nominal[i])
		}
	}
}

func TestBackChannelGivesUp_BCL_2_5(t *testing.T) {
	t.Run("after MaxAttempts", func(t *testing.T) {
		f := newFixture(t, memory.New())
		rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusBadRequest })
		f.endWithOneClient(rc)
		d := f.deliverer(logout.DelivererConfig{MaxAttempts: 2})
		f.deliverDue(d, 1)
		f.clock.Advance(time.Hour)
		f.deliverDue(d, 1)
		if q := f.queue(); len(q) != 0 {
			t.Errorf("still queued after MaxAttempts: %+v", q)
		}
	})
	t.Run("after GiveUpAfter", func(t *testing.T) {
		f := newFixture(t, memory.New())
		rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int { return http.StatusBadGateway })
		f.endWithOneClient(rc)
		d := f.deliverer(logout.DelivererConfig{})
		f.clock.Advance(25 * time.Hour)
		f.deliverDue(d, 1)
		if q := f.queue(); len(q) != 0 {
			t.Errorf("still queued a day later: %+v", q)
		}
		if got := len(rc.received()); got != 1 {
			t.Errorf("receiver got %d requests, want the one last attempt", got)
		}
	})
}

func TestBackChannelSurvivesRestartMidDelivery_BCL_2_5(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRestartMidDelivery(t, sqltest.NewSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { testRestartMidDelivery(t, sqltest.NewPostgres(t)) })
}

func testRestartMidDelivery(t *testing.T, st store) {
	f := newFixture(t, st)
	arrived := make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, r *http.Request) int {
		if n == 0 {
			// The first delivery hangs until its sender goes away.
			arrived <- struct{}{}
			<-r.Context().Done()
			return 0
		}
		return http.StatusOK
	})
	f.endWithOneClient(rc)

	// Deliverer A claims the notification and "crashes" mid-POST.
	a := f.deliverer(logout.DelivererConfig{Lease: time.Minute})
	ctxA, crash := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := a.DeliverDue(ctxA); done <- err }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("deliverer A never posted")
	}
	crash()
	if err := <-done; err != nil {
		t.Fatalf("A.DeliverDue: %v", err)
	}
	q := f.queue()
	if len(q) != 1 || q[0].Attempts != 0 {
		t.Fatalf("after the crash: %+v, want the notification still queued with no attempt recorded", q)
	}

	// Deliverer B, a new process on the same database, waits out A's lease.
	b := f.deliverer(logout.DelivererConfig{Lease: time.Minute})
	f.deliverDue(b, 0)
	f.clock.Advance(time.Minute)
	f.deliverDue(b, 1)
	f.deliverDue(b, 0)
	if q := f.queue(); len(q) != 0 {
		t.Errorf("still queued after B delivered: %+v", q)
	}
	if got := len(rc.received()); got != 2 {
		t.Errorf("receiver got %d requests, want A's abandoned one and exactly one from B", got)
	}
}

func TestBackChannelDoesNotFollowRedirects_BCL_2_7(t *testing.T) {
	f := newFixture(t, memory.New())
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	}))
	t.Cleanup(elsewhere.Close)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) int {
		w.Header().Set("Location", elsewhere.URL+"/steal")
		return http.StatusTemporaryRedirect
	})
	f.endWithOneClient(rc)
	f.deliverDue(f.deliverer(logout.DelivererConfig{}), 1)
	if followed.Load() != 0 {
		t.Error("the redirect was followed")
	}
	q := f.queue()
	if len(q) != 1 || q[0].Attempts != 1 || !strings.Contains(q[0].LastError, "307") {
		t.Errorf("after a redirect: %+v, want a failed attempt to retry", q)
	}
}

func TestBackChannelRefusesPrivateAddressesByDefault(t *testing.T) {
	f := newFixture(t, memory.New())
	rc := newReceiver(t, nil)
	f.endWithOneClient(rc)
	d, err := logout.NewDeliverer(logout.DelivererConfig{Outbox: f.st, Clients: f.st, Keys: f.keys,
		Logger: testLogger(t), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.deliverDue(d, 1)
	if len(rc.received()) != 0 {
		t.Error("the default client posted to a loopback address")
	}
	if q := f.queue(); len(q) != 1 || !strings.Contains(q[0].LastError, "address not allowed") {
		t.Errorf("queue %+v, want a retry recording the refused address", q)
	}
}

func TestBackChannelTokenNeverLogged(t *testing.T) {
	f := newFixture(t, memory.New())
	rc := newReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	f.endWithOneClient(rc)
	var logs bytes.Buffer
	var mu sync.Mutex
	d := f.deliverer(logout.DelivererConfig{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	f.deliverDue(d, 1)
	f.clock.Advance(time.Hour)
	f.deliverDue(d, 1)
	mu.Lock()
	defer mu.Unlock()
	for _, tok := range rc.received() {
		sig := tok[strings.LastIndex(tok, ".")+1:]
		if strings.Contains(logs.String(), sig) || strings.Contains(logs.String(), url.QueryEscape(tok)) {
			t.Error("a logout token appears in the log")
		}
	}
	if !strings.Contains(logs.String(), "back-channel logout delivered") {
		t.Errorf("no delivery log line:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRunDeliversWhenNotified_BCL_2_5(t *testing.T) {
	st := memory.New()
	f := newFixture(t, st)
	got := make(chan string, 1)
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) int {
		got <- "posted"
		return http.StatusOK
	})
	claims := make(chan struct{}, 10)
	d, err := logout.NewDeliverer(logout.DelivererConfig{Outbox: claimSignal{st, claims}, Clients: st, Keys: f.keys,
		AllowPrivate: true, Interval: time.Hour, // only Notify can wake it in time
		Logger: testLogger(t), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := logout.New(logout.Config{Issuer: issuer, Clients: st, Sessions: st, Outbox: st,
		Notify: d.Notify, Logger: testLogger(t), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Run's first pass finds the queue empty, so the delivery below is the
	// notification's doing.
	<-claims
	f.addClient(storage.Client{ID: "rp", BackchannelLogoutURI: rc.srv.URL + "/bc"})
	if err := svc.EndSession(ctx, f.session("rp")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not deliver after Notify")
	}
}

func TestFrontChannelURLs_FCL_2_and_3(t *testing.T) {
	f := newFixture(t, memory.New())
	f.addClient(storage.Client{ID: "a", FrontchannelLogoutURI: "https://a.example/fc?x=1", FrontchannelLogoutSessionRequired: true})
	f.addClient(storage.Client{ID: "b", FrontchannelLogoutURI: "https://b.example:8443/logout"})
	f.addClient(storage.Client{ID: "c", BackchannelLogoutURI: "https://c.example/bc"})
	sess := f.session("a", "b", "c", "deleted")
	urls, err := f.svc.FrontChannelURLs(context.Background(), sess)
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 2 {
		t.Fatalf("urls %v, want the two clients with a frontchannel_logout_uri", urls)
	}
	for i, want := range []string{"https://a.example/fc", "https://b.example:8443/logout"} {
		u, err := url.Parse(urls[i])
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if got := u.Scheme + "://" + u.Host + u.Path; got != want || q.Get("iss") != issuer || q.Get("sid") != sess.ID {
			t.Errorf("url %q: want %s with iss=%s and sid=%s", urls[i], want, issuer, sess.ID)
		}
		if i == 0 && q.Get("x") != "1" {
			t.Errorf("url %q lost the registered query", urls[i])
		}
	}
}

func TestEndSessionEnqueuesAllOrNothing_BCL_2_5(t *testing.T) {
	f := newFixture(t, sqltest.NewSQLite(t))
	f.addClient(storage.Client{ID: "a", BackchannelLogoutURI: "https://a.example/bc"})
	f.addClient(storage.Client{ID: "b", BackchannelLogoutURI: "https://b.example/bc"})
	sess := f.session("a", "b")
	if err := f.svc.EndSession(context.Background(), sess); err != nil {
		t.Fatal(err)
	}
	q := f.queue()
	if len(q) != 2 {
		t.Fatalf("queued %d, want 2", len(q))
	}
	for _, n := range q {
		var c map[string]any
		if err := json.Unmarshal(n.Payload, &c); err != nil {
			t.Fatal(err)
		}
		if c["aud"] != n.ClientID || c["sid"] != sess.ID || n.NextAttemptAt.After(f.clock.Now()) {
			t.Errorf("notification %+v payload %v", n, c)
		}
	}
	// Ending a session that is already gone still notifies (a retry after a
	// failed delete) and does not fail.
	if err := f.svc.EndSession(context.Background(), sess); err != nil {
		t.Errorf("second EndSession: %v", err)
	}
}

// claimSignal reports every ClaimLogouts call.
type claimSignal struct {
	storage.LogoutOutbox
	claimed chan<- struct{}
}

func (c claimSignal) ClaimLogouts(ctx context.Context, now, leaseUntil time.Time, limit int) ([]storage.LogoutNotification, error) {
	ns, err := c.LogoutOutbox.ClaimLogouts(ctx, now, leaseUntil, limit)
	c.claimed <- struct{}{}
	return ns, err
}

func TestReplicasShareTheOutbox_BCL_2_5(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testReplicasShare(t, sqltest.NewSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { testReplicasShare(t, sqltest.NewPostgres(t)) })
}

// testReplicasShare runs two deliverers at once on one outbox: every
// notification reaches its client exactly once.
func testReplicasShare(t *testing.T, st store) {
	f := newFixture(t, st)
	rc := newReceiver(t, nil)
	var ids []string
	for i := range 12 {
		id := "rp" + string(rune('a'+i))
		f.addClient(storage.Client{ID: id, BackchannelLogoutURI: rc.srv.URL + "/" + id})
		ids = append(ids, id)
	}
	if err := f.svc.EndSession(context.Background(), f.session(ids...)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		d := f.deliverer(logout.DelivererConfig{BatchSize: 3, Parallelism: 2})
		wg.Go(func() {
			for {
				n, err := d.DeliverDue(context.Background())
				if err != nil {
					t.Errorf("DeliverDue: %v", err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, tok := range rc.received() {
		_, c := f.verify(tok)
		aud, _ := c["aud"].(string)
		seen[aud]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("client %s got %d logout tokens, want 1", id, seen[id])
		}
	}
	if q := f.queue(); len(q) != 0 {
		t.Errorf("%d notifications left", len(q))
	}
}
