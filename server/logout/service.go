// Package logout propagates the end of a sign-in session to the relying
// parties that took part in it: OpenID Connect Back-Channel Logout 1.0 (a
// signed logout token POSTed server to server, through a durable outbox so
// that a restart loses no delivery) and Front-Channel Logout 1.0 (iframes the
// logged-out page renders in the user's browser).
//
// Service ends sessions and enqueues the back-channel notifications; it is
// what RP-initiated logout (server/login) and the admin API call. Deliverer
// drains the outbox; run one in every replica (they share the queue through
// leases).
//
// Wiring (cmd/gatehouse serve):
//
//	d, err := logout.NewDeliverer(logout.DelivererConfig{
//		Outbox: stores.Durable, Clients: stores.Durable, Keys: keyManager, Logger: log,
//		AllowPrivate: cfg.Clients.AllowPrivateJWKSURI,
//	})
//	svc, err := logout.New(logout.Config{
//		Issuer: issuer, Clients: stores.Durable, Sessions: stores.Ephemeral,
//		Outbox: stores.Durable, Notify: d.Notify, Logger: log,
//	})
//	go d.Run(ctx)
//
// and give svc to login.Config.Logout and to the admin API.
package logout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// BackchannelLogoutEvent is the member of a logout token's events claim
// (Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Config holds a Service's dependencies.
type Config struct {
	// Issuer is the OP's issuer identifier: the iss of logout tokens and of
	// front-channel logout URLs.
	Issuer   string
	Clients  storage.ClientStore
	Sessions storage.SessionStore // storage.Ephemeral in the server
	Outbox   storage.LogoutOutbox // storage.Durable in the server
	// Notify, when set, is called after notifications were enqueued so that
	// an in-process Deliverer sends them at once (Deliverer.Notify).
	Notify func()
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service ends sessions and tells the session's clients. It is safe for
// concurrent use.
type Service struct {
	issuer   string
	clients  storage.ClientStore
	sessions storage.SessionStore
	outbox   storage.LogoutOutbox
	notify   func()
	log      *slog.Logger
	now      func() time.Time
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("logout config: Issuer is required")
	case cfg.Clients == nil || cfg.Sessions == nil || cfg.Outbox == nil:
		return nil, errors.New("logout config: Clients, Sessions and Outbox are required")
	case cfg.Logger == nil:
		return nil, errors.New("logout config: Logger is required")
	}
	s := &Service{issuer: cfg.Issuer, clients: cfg.Clients, sessions: cfg.Sessions, outbox: cfg.Outbox,
		notify: cfg.Notify, log: cfg.Logger, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Issuer returns the issuer the Service puts in logout tokens and URLs.
func (s *Service) Issuer() string { return s.issuer }

// EndSession ends sess: it enqueues one back-channel logout notification for
// every client of the session with a backchannel_logout_uri, all in one
// EnqueueLogouts call, and then deletes the session record (already gone is
// fine). The queue comes first: when deleting fails the caller may retry,
// and a relying party told twice ignores the second token for an unknown
// sid, while a relying party never told would keep the user signed in.
// Clients that no longer exist are skipped.
func (s *Service) EndSession(ctx context.Context, sess storage.Session) error {
	clients, err := s.sessionClients(ctx, sess)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var ns []storage.LogoutNotification
	for _, c := range clients {
		if c.BackchannelLogoutURI == "" {
			continue
		}
		id, err := randomID()
		if err != nil {
			return err
		}
		jti, err := randomID()
		if err != nil {
			return err
		}
		payload, err := json.Marshal(s.claims(c.ID, sess, now, jti))
		if err != nil {
			return fmt.Errorf("encoding logout token claims: %w", err)
		}
		ns = append(ns, storage.LogoutNotification{
			ID: id, ClientID: c.ID, URL: c.BackchannelLogoutURI, Payload: payload,
			NextAttemptAt: now, CreatedAt: now,
		})
	}
	if len(ns) > 0 {
		if err := s.outbox.EnqueueLogouts(ctx, ns); err != nil {
			return fmt.Errorf("enqueueing back-channel logouts: %w", err)
		}
	}
	if err := s.sessions.DeleteSession(ctx, sess.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("deleting session: %w", err)
	}
	s.log.InfoContext(ctx, "session ended", "subject", sess.Subject, "clients", len(clients), "backchannel_notifications", len(ns))
	if len(ns) > 0 && s.notify != nil {
		s.notify()
	}
	return nil
}

// claims are a logout token's claims as queued (Back-Channel Logout 1.0
// §2.4): sid is always sent, so backchannel_logout_session_required is met
// for every client; nonce is never present (§2.4 forbids it, so that a
// logout token cannot pass for an ID token). iat, exp and jti are set again
// when the token is signed, at each delivery attempt.
func (s *Service) claims(clientID string, sess storage.Session, now time.Time, jti string) map[string]any {
	c := map[string]any{
		"iss":    s.issuer,
		"aud":    clientID,
		"iat":    now.Unix(),
		"jti":    jti,
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
		"sid":    sess.ID,
	}
	if sess.Subject != "" {
		c["sub"] = sess.Subject
	}
	return c
}

// FrontChannelURLs returns, for every client of sess with a
// frontchannel_logout_uri, the URL the logged-out page loads in an iframe
// (Front-Channel Logout 1.0 §2 and §3). It always adds iss and sid, which §2
// allows for clients that did not ask for them. Clients that no longer
// exist are skipped.
func (s *Service) FrontChannelURLs(ctx context.Context, sess storage.Session) ([]string, error) {
	clients, err := s.sessionClients(ctx, sess)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range clients {
		if c.FrontchannelLogoutURI == "" {
			continue
		}
		u, err := url.Parse(c.FrontchannelLogoutURI)
		if err != nil {
			s.log.WarnContext(ctx, "skipping unparsable frontchannel_logout_uri", "client_id", c.ID, "error", err)
			continue
		}
		q := u.Query()
		q.Set("iss", s.issuer)
		q.Set("sid", sess.ID)
		u.RawQuery = q.Encode()
		out = append(out, u.String())
	}
	return out, nil
}

// sessionClients reads the session's clients, skipping deleted ones.
func (s *Service) sessionClients(ctx context.Context, sess storage.Session) ([]storage.Client, error) {
	out := make([]storage.Client, 0, len(sess.ClientIDs))
	for _, id := range sess.ClientIDs {
		c, err := s.clients.GetClient(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading client %q of session: %w", id, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}
