package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Defaults for the zero values of Config.
const (
	DefaultRememberFor = 30 * 24 * time.Hour
	DefaultSessionFor  = 12 * time.Hour
)

// ErrNoSession is returned by Get when the request carries no live session:
// no cookie, a malformed one, or one whose record is gone or expired.
var ErrNoSession = errors.New("no session")

// MACKeys is the part of server/secrets.Keyring that sessions use: CSRF form
// tokens are MACs of the CSRF cookie. VerifyMAC must compare in constant time.
type MACKeys interface {
	MAC(purpose string, msg []byte) []byte
	VerifyMAC(purpose string, msg, mac []byte) bool
}

// Config holds a Manager's dependencies and settings.
type Config struct {
	// Store keeps the session records (storage.Ephemeral in the server).
	Store storage.SessionStore
	// Keys signs the CSRF form tokens (a *secrets.Keyring).
	Keys MACKeys
	// Secure is true when the issuer is https: cookies then get the Secure
	// flag and the __Host- prefix (RFC 6265bis §4.1.3.2: Secure, Path=/, no
	// Domain, so no sibling subdomain can plant or shadow them).
	Secure bool
	// RememberFor is how long a "remember me" session lives, both the
	// persistent cookie's Max-Age and the record's expiry. Default 30 days.
	RememberFor time.Duration
	// SessionFor is the server-side lifetime of a session whose cookie lasts
	// only as long as the browser session. Default 12 hours.
	SessionFor time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Manager starts, reads and ends browser sessions and issues and checks CSRF
// tokens.
type Manager struct {
	store       storage.SessionStore
	keys        MACKeys
	secure      bool
	rememberFor time.Duration
	sessionFor  time.Duration
	now         func() time.Time
	sessionName string
	csrfName    string
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("session: Store is required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("session: Keys is required")
	}
	if cfg.RememberFor < 0 || cfg.SessionFor < 0 {
		return nil, errors.New("session: lifetimes must not be negative")
	}
	m := &Manager{
		store:       cfg.Store,
		keys:        cfg.Keys,
		secure:      cfg.Secure,
		rememberFor: cfg.RememberFor,
		sessionFor:  cfg.SessionFor,
		now:         cfg.Now,
		sessionName: "gh_session",
		csrfName:    "gh_csrf",
	}
	if m.rememberFor == 0 {
		m.rememberFor = DefaultRememberFor
	}
	if m.sessionFor == 0 {
		m.sessionFor = DefaultSessionFor
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.secure {
		m.sessionName = "__Host-gh_session"
		m.csrfName = "__Host-gh_csrf"
	}
	return m, nil
}

// SessionCookieName is the name of the session cookie.
func (m *Manager) SessionCookieName() string { return m.sessionName }

// CSRFCookieName is the name of the CSRF cookie.
func (m *Manager) CSRFCookieName() string { return m.csrfName }

// Get returns the live session of the request, or ErrNoSession.
func (m *Manager) Get(r *http.Request) (storage.Session, error) {
	id, ok := m.recordID(r)
	if !ok {
		return storage.Session{}, ErrNoSession
	}
	s, err := m.store.GetSession(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Session{}, ErrNoSession
	}
	if err != nil {
		return storage.Session{}, fmt.Errorf("reading session: %w", err)
	}
	if !s.ExpiresAt.IsZero() && !m.now().Before(s.ExpiresAt) {
		return storage.Session{}, ErrNoSession
	}
	return s, nil
}

// Start signs subject in: it deletes the request's current session, if any,
// creates a new record under a fresh random ID and sets the cookie. The ID
// always changes at sign-in so that a session ID planted before it is worth
// nothing afterwards (no session fixation).
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, subject string, amr []string, acr string, remember bool) (storage.Session, error) {
	if subject == "" {
		return storage.Session{}, errors.New("starting session: empty subject")
	}
	ctx := r.Context()
	if old, ok := m.recordID(r); ok {
		if err := m.store.DeleteSession(ctx, old); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storage.Session{}, fmt.Errorf("deleting previous session: %w", err)
		}
	}
	raw, err := randomValue()
	if err != nil {
		return storage.Session{}, err
	}
	now := m.now()
	life := m.sessionFor
	if remember {
		life = m.rememberFor
	}
	s := storage.Session{
		ID:        recordID(raw),
		Subject:   subject,
		AuthTime:  now,
		ACR:       acr,
		AMR:       slices.Clone(amr),
		Remember:  remember,
		CreatedAt: now,
		ExpiresAt: now.Add(life),
	}
	if err := m.store.CreateSession(ctx, s); err != nil {
		return storage.Session{}, fmt.Errorf("creating session: %w", err)
	}
	c := m.cookie(m.sessionName, raw, http.SameSiteLaxMode)
	if remember {
		c.MaxAge = int(life / time.Second)
	}
	http.SetCookie(w, c)
	return s, nil
}

// AddClient records that clientID received tokens in session sid (the record
// ID), so that logout can later notify it.
func (m *Manager) AddClient(ctx context.Context, sid, clientID string) error {
	_, err := m.store.UpdateSession(ctx, sid, func(s storage.Session) (storage.Session, error) {
		if !slices.Contains(s.ClientIDs, clientID) {
			s.ClientIDs = append(slices.Clone(s.ClientIDs), clientID)
		}
		return s, nil
	})
	if err != nil {
		return fmt.Errorf("adding client to session: %w", err)
	}
	return nil
}

// End deletes the request's session record, if any, and clears the cookie.
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	c := m.cookie(m.sessionName, "", http.SameSiteLaxMode)
	c.MaxAge = -1
	http.SetCookie(w, c)
	id, ok := m.recordID(r)
	if !ok {
		return nil
	}
	if err := m.store.DeleteSession(r.Context(), id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// recordID returns the store ID of the request's session cookie.
func (m *Manager) recordID(r *http.Request) (string, bool) {
	raw, ok := cookieValue(r, m.sessionName)
	if !ok {
		return "", false
	}
	return recordID(raw), true
}

func (m *Manager) cookie(name, value string, sameSite http.SameSite) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   m.secure,
		HttpOnly: true,
		SameSite: sameSite,
	}
}

// valueLen is the length of a cookie value: 32 random bytes, base64url
// without padding.
const valueLen = 43

func randomValue() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// cookieValue returns the named cookie when it is well formed; anything else
// is treated as absent so that junk never reaches the store.
func cookieValue(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) != valueLen {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(c.Value); err != nil {
		return "", false
	}
	return c.Value, true
}

// recordID is the store ID of a session cookie value: its SHA-256, so that
// the store and the sid claim never hold a usable cookie.
func recordID(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
