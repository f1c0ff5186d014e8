package logout

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Defaults of DelivererConfig.
const (
	DefaultInterval    = 5 * time.Second
	DefaultLease       = time.Minute
	DefaultTimeout     = 5 * time.Second
	DefaultTokenTTL    = 2 * time.Minute
	DefaultFirstRetry  = 10 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultMaxAttempts = 30
	DefaultGiveUpAfter = 24 * time.Hour
	DefaultBatchSize   = 50
	DefaultParallelism = 8
)

// TokenType is the typ header of logout tokens (Back-Channel Logout 1.0
// §2.4, explicit typing as RFC 8725 §3.11 recommends).
const TokenType = "logout+jwt"

// Keys is the part of *keys.Manager the Deliverer signs with.
type Keys interface {
	// Algorithms lists the algorithms with a signing key.
	Algorithms() []string
	// SigningKey returns the kid and the active key of alg.
	SigningKey(ctx context.Context, alg string) (string, crypto.Signer, error)
}

// DelivererConfig holds a Deliverer's dependencies and settings. Zero
// durations and counts take the defaults above.
type DelivererConfig struct {
	Outbox storage.LogoutOutbox
	// Clients gives each client's id_token_signed_response_alg, the
	// algorithm its logout tokens are signed with (RS256 otherwise).
	Clients storage.ClientStore
	Keys    Keys
	// HTTPClient, when set, replaces the default client. It must not follow
	// redirects (Back-Channel Logout 1.0 §2.7).
	HTTPClient *http.Client
	// AllowPrivate lets the default client reach loopback and private
	// addresses; off, a client's backchannel_logout_uri cannot make the
	// server probe its own network.
	AllowPrivate bool
	Interval     time.Duration // how often the outbox is polled
	Lease        time.Duration // how long a claimed notification is ours
	Timeout      time.Duration // per POST
	TokenTTL     time.Duration // exp - iat of a logout token
	// FirstRetry is the delay after the first failure; it doubles with each
	// further failure up to MaxBackoff, with jitter.
	FirstRetry  time.Duration
	MaxBackoff  time.Duration
	MaxAttempts int           // attempts before giving up
	GiveUpAfter time.Duration // age at which a notification is given up
	BatchSize   int           // notifications claimed at once
	Parallelism int           // concurrent POSTs
	Logger      *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Deliverer sends queued back-channel logout notifications. It is safe for
// concurrent use; several Deliverers (one per replica) share an outbox.
type Deliverer struct {
	cfg    DelivererConfig
	client *http.Client
	log    *slog.Logger
	wake   chan struct{}
}

// NewDeliverer returns a Deliverer; start it with Run.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	switch {
	case cfg.Outbox == nil || cfg.Clients == nil || cfg.Keys == nil:
		return nil, errors.New("logout deliverer config: Outbox, Clients and Keys are required")
	case cfg.Logger == nil:
		return nil, errors.New("logout deliverer config: Logger is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.Lease, DefaultLease)
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.TokenTTL, DefaultTokenTTL)
	def(&cfg.FirstRetry, DefaultFirstRetry)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.GiveUpAfter, DefaultGiveUpAfter)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = DefaultParallelism
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lease <= cfg.Timeout {
		return nil, fmt.Errorf("logout deliverer config: lease %s must be longer than the timeout %s", cfg.Lease, cfg.Timeout)
	}
	d := &Deliverer{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if d.client == nil {
		d.client = newHTTPClient(cfg.Timeout, cfg.AllowPrivate)
	}
	return d, nil
}

// newHTTPClient returns a client that follows no redirect (§2.7: a redirect
// could carry the token elsewhere) and, unless allowPrivate, dials public
// addresses only.
func newHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("parsing dialed address %q: %w", address, err)
			}
			if !jwksfetch.PublicAddr(ap.Addr()) {
				return fmt.Errorf("dialing %s: %w", ap.Addr(), jwksfetch.ErrForbiddenAddress)
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would be dialed instead of the checked address
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Notify makes Run look at the outbox now rather than at its next tick;
// it never blocks.
func (d *Deliverer) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due notifications every Interval and whenever notified,
// until ctx ends; then it returns nil. Deliveries in flight are abandoned
// without being recorded: their lease runs out and they are sent again, by
// this replica after a restart or by another one.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		for {
			n, err := d.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				d.log.ErrorContext(ctx, "delivering back-channel logouts", "error", err)
			}
			// A full batch suggests more are due.
			if err != nil || n < d.cfg.BatchSize || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// DeliverDue claims the due notifications (one batch) and attempts each
// once, returning how many it claimed.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	now := d.cfg.Now()
	ns, err := d.cfg.Outbox.ClaimLogouts(ctx, now, now.Add(d.cfg.Lease), d.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("claiming logout notifications: %w", err)
	}
	sem := make(chan struct{}, d.cfg.Parallelism)
	var wg sync.WaitGroup
	for _, n := range ns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.attempt(ctx, n)
		})
	}
	wg.Wait()
	return len(ns), nil
}

// attempt sends n once and records the outcome.
func (d *Deliverer) attempt(ctx context.Context, n storage.LogoutNotification) {
	log := d.log.With("notification_id", n.ID, "client_id", n.ClientID)
	err := d.send(ctx, n)
	if err == nil {
		log.InfoContext(ctx, "back-channel logout delivered", "attempts", n.Attempts+1)
		// Record it even when shutting down, so the relying party is not
		// told twice without need.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
		defer cancel()
		d.complete(rctx, log, n)
		return
	}
	if ctx.Err() != nil {
		// Shutting down mid-delivery: the lease brings it back.
		return
	}
	if errors.Is(err, errClientGone) {
		log.InfoContext(ctx, "dropping back-channel logout of a deleted client")
		d.complete(ctx, log, n)
		return
	}
	attempts := n.Attempts + 1
	now := d.cfg.Now()
	if attempts >= d.cfg.MaxAttempts || now.Sub(n.CreatedAt) >= d.cfg.GiveUpAfter {
		log.WarnContext(ctx, "giving up back-channel logout", "attempts", attempts, "url", n.URL, "error", err)
		d.complete(ctx, log, n)
		return
	}
	next := now.Add(d.backoff(attempts))
	log.InfoContext(ctx, "back-channel logout failed; will retry", "attempts", attempts, "next_attempt_at", next, "error", err)
	if err := d.cfg.Outbox.RetryLogout(ctx, n.ID, attempts, next, err.Error()); err != nil {
		log.ErrorContext(ctx, "rescheduling back-channel logout", "error", err)
	}
}

func (d *Deliverer) complete(ctx context.Context, log *slog.Logger, n storage.LogoutNotification) {
	if err := d.cfg.Outbox.CompleteLogout(ctx, n.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		log.ErrorContext(ctx, "completing back-channel logout", "error", err)
	}
}

// backoff is the delay after the attempts-th failure: FirstRetry doubling up
// to MaxBackoff, of which a random quarter is taken off so that the
// notifications of one failing relying party spread out.
func (d *Deliverer) backoff(attempts int) time.Duration {
	b := d.cfg.FirstRetry
	for i := 1; i < attempts && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	return b - rand.N(b/4+1)
}

var errClientGone = errors.New("client no longer exists")

// send signs n's logout token and POSTs it (Back-Channel Logout 1.0 §2.5):
// 200 is success, and 204, which some frameworks send instead (§2.8).
func (d *Deliverer) send(ctx context.Context, n storage.LogoutNotification) error {
	c, err := d.cfg.Clients.GetClient(ctx, n.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return errClientGone
	}
	if err != nil {
		return fmt.Errorf("reading client: %w", err)
	}
	token, err := d.sign(ctx, n.Payload, d.algorithm(c))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := d.client.Do(req)
	if err != nil {
		// The error names the URL and the cause; the token is only in the body.
		return fmt.Errorf("posting logout token: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	switch res.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	}
	return fmt.Errorf("relying party answered %s", res.Status)
}

// algorithm is the client's ID token signing algorithm when a key for it
// exists, else RS256, which every OP supports (OIDC Core §15.1).
func (d *Deliverer) algorithm(c storage.Client) string {
	if alg := c.IDTokenSignedResponseAlg; alg != "" && slices.Contains(d.cfg.Keys.Algorithms(), alg) {
		return alg
	}
	return "RS256"
}

// sign makes the logout token from the queued claims: iat is now and exp
// TokenTTL later, since the token may be sent long after the logout, and
// each attempt gets its own jti so that a relying party that saw an earlier
// attempt does not reject a retry as a replay (§2.6). nonce never appears
// (§2.4).
func (d *Deliverer) sign(ctx context.Context, payload []byte, alg string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return "", fmt.Errorf("decoding queued logout claims: %w", err)
	}
	jti, err := randomID()
	if err != nil {
		return "", err
	}
	now := d.cfg.Now()
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(d.cfg.TokenTTL).Unix()
	claims["jti"] = jti
	delete(claims, "nonce")
	b, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding logout claims: %w", err)
	}
	kid, key, err := d.cfg.Keys.SigningKey(ctx, alg)
	if err != nil {
		return "", fmt.Errorf("getting %s signing key: %w", alg, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg},
	}, (&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		return "", fmt.Errorf("creating %s signer: %w", alg, err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		return "", fmt.Errorf("signing logout token: %w", err)
	}
	return jws.CompactSerialize()
}
