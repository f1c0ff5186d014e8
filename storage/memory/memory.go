// Package memory is the in-memory storage backend: the reference
// implementation of every storage role, for tests and single-process
// development. Nothing survives a restart.
//
// One mutex guards all maps; every record is copied on the way in and out
// (slices and byte slices included) so that callers never share memory with
// the store. Times are kept like the other backends keep them: UTC, to the
// microsecond. Expired records are invisible at once and removed a few at a
// time by later calls, so memory stays bounded without a background goroutine.
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

var (
	_ storage.Durable   = (*Store)(nil)
	_ storage.Ephemeral = (*Store)(nil)
)

// Store holds every storage role in memory. The zero value is not usable:
// call New.
type Store struct {
	// mu guards everything below. Updaters given to Update* run without it,
	// optimistically (a changed record makes the update run again, as the
	// contract allows), so an updater that reads the store cannot deadlock.
	mu  sync.Mutex
	now func() time.Time

	users     map[string]storage.User
	usernames map[string]string // username -> user ID
	emails    map[string]string // lower-cased email -> user ID
	clients   map[string]storage.Client
	consents  map[string]map[string]storage.Consent // subject -> client ID -> consent
	keySet    storage.KeySet
	regTokens map[string]storage.RegistrationToken
	logouts   map[string]storage.LogoutNotification

	sessions   map[string]storage.Session
	bySubject  map[string]map[string]struct{} // subject -> session IDs
	requests   map[requestKey]storage.Request
	grants     map[string]map[requestKey]struct{} // grant ID -> its records
	replay     map[string]time.Time               // ID -> expiry
	throttle   map[string]counter
	expiries   expiryHeap
	pruneLimit int

	// revs holds the revision of each updatable record ("u:"/"c:"/"s:" + ID),
	// a value of seq that no other write of any record ever had.
	revs map[string]uint64
	seq  uint64
}

type requestKey struct {
	kind      storage.RequestKind
	signature string
}

type counter struct {
	n       int64
	resetAt time.Time
}

// defaultPruneLimit bounds the expired records one call removes, so that no
// call pays for a large backlog at once.
const defaultPruneLimit = 32

// New returns an empty store.
func New() *Store {
	return &Store{
		now:        time.Now,
		users:      make(map[string]storage.User),
		usernames:  make(map[string]string),
		emails:     make(map[string]string),
		clients:    make(map[string]storage.Client),
		consents:   make(map[string]map[string]storage.Consent),
		regTokens:  make(map[string]storage.RegistrationToken),
		logouts:    make(map[string]storage.LogoutNotification),
		sessions:   make(map[string]storage.Session),
		bySubject:  make(map[string]map[string]struct{}),
		requests:   make(map[requestKey]storage.Request),
		grants:     make(map[string]map[requestKey]struct{}),
		replay:     make(map[string]time.Time),
		throttle:   make(map[string]counter),
		pruneLimit: defaultPruneLimit,
		revs:       make(map[string]uint64),
	}
}

// Ping always succeeds: there is no server to reach.
func (s *Store) Ping(context.Context) error { return nil }

// Close releases nothing; the store stays usable.
func (s *Store) Close() error { return nil }

// lock takes the mutex, removes a bounded number of expired records and
// returns the current time. The caller unlocks.
func (s *Store) lock() time.Time {
	s.mu.Lock()
	now := s.now()
	s.pruneLocked(now)
	return now
}

func (s *Store) bumpLocked(key string) {
	s.seq++
	s.revs[key] = s.seq
}

// live reports whether a record expiring at exp is visible at now; a zero
// expiry never expires.
func live(exp, now time.Time) bool { return exp.IsZero() || now.Before(exp) }

// norm is how every backend keeps a time: UTC, to the microsecond, zero kept zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func pageBounds(p storage.Page) int {
	if p.Limit <= 0 {
		return storage.DefaultPageLimit
	}
	return p.Limit
}

// page returns the sorted keys of m after p.After, at most p's limit of them.
func page[V any](m map[string]V, p storage.Page) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		if id > p.After {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if n := pageBounds(p); len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

// ---------------------------------------------------------------------------
// Users

func cloneUser(u storage.User) storage.User {
	u.CreatedAt, u.UpdatedAt = norm(u.CreatedAt), norm(u.UpdatedAt)
	return u // no reference fields
}

func emailKey(email string) string { return strings.ToLower(email) }

// CreateUser implements storage.UserStore.
func (s *Store) CreateUser(_ context.Context, u storage.User) error {
	s.lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; ok {
		return fmt.Errorf("creating user %q: id taken: %w", u.ID, storage.ErrConflict)
	}
	if err := s.checkUniqueLocked(u, ""); err != nil {
		return fmt.Errorf("creating user %q: %w", u.ID, err)
	}
	s.putUserLocked(cloneUser(u))
	return nil
}

// checkUniqueLocked reports ErrConflict when u's username or email belongs
// to a user other than self.
func (s *Store) checkUniqueLocked(u storage.User, self string) error {
	if id, ok := s.usernames[u.Username]; ok && id != self {
		return fmt.Errorf("username %q taken: %w", u.Username, storage.ErrConflict)
	}
	if u.Claims.Email != "" {
		if id, ok := s.emails[emailKey(u.Claims.Email)]; ok && id != self {
			return fmt.Errorf("email taken: %w", storage.ErrConflict)
		}
	}
	return nil
}

func (s *Store) putUserLocked(u storage.User) {
	s.bumpLocked("u:" + u.ID)
	s.users[u.ID] = u
	s.usernames[u.Username] = u.ID
	if u.Claims.Email != "" {
		s.emails[emailKey(u.Claims.Email)] = u.ID
	}
}

func (s *Store) dropUserLocked(u storage.User) {
	delete(s.revs, "u:"+u.ID)
	delete(s.users, u.ID)
	delete(s.usernames, u.Username)
	if u.Claims.Email != "" {
		delete(s.emails, emailKey(u.Claims.Email))
	}
}

// GetUser implements storage.UserStore.
func (s *Store) GetUser(_ context.Context, id string) (storage.User, error) {
	s.lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return storage.User{}, fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
	}
	return cloneUser(u), nil
}

// GetUserByUsername implements storage.UserStore.
func (s *Store) GetUserByUsername(_ context.Context, username string) (storage.User, error) {
	s.lock()
	defer s.mu.Unlock()
	id, ok := s.usernames[username]
	if !ok {
		return storage.User{}, fmt.Errorf("user with username %q: %w", username, storage.ErrNotFound)
	}
	return cloneUser(s.users[id]), nil
}

// GetUserByEmail implements storage.UserStore.
func (s *Store) GetUserByEmail(_ context.Context, email string) (storage.User, error) {
	s.lock()
	defer s.mu.Unlock()
	id, ok := s.emails[emailKey(email)]
	if email == "" || !ok {
		return storage.User{}, fmt.Errorf("user by email: %w", storage.ErrNotFound)
	}
	return cloneUser(s.users[id]), nil
}

// ListUsers implements storage.UserStore.
func (s *Store) ListUsers(_ context.Context, p storage.Page) ([]storage.User, error) {
	s.lock()
	defer s.mu.Unlock()
	ids := page(s.users, p)
	out := make([]storage.User, len(ids))
	for i, id := range ids {
		out[i] = cloneUser(s.users[id])
	}
	return out, nil
}

// UpdateUser implements storage.UserStore.
func (s *Store) UpdateUser(_ context.Context, id string, update func(storage.User) (storage.User, error)) (storage.User, error) {
	for {
		s.lock()
		old, ok := s.users[id]
		rev := s.revs["u:"+id]
		s.mu.Unlock()
		if !ok {
			return storage.User{}, fmt.Errorf("updating user %q: %w", id, storage.ErrNotFound)
		}
		u, err := update(cloneUser(old))
		if err != nil {
			return storage.User{}, err
		}
		u.ID, u.CreatedAt = old.ID, old.CreatedAt
		u = cloneUser(u)

		s.lock()
		if s.revs["u:"+id] != rev {
			s.mu.Unlock()
			continue // changed or deleted meanwhile: update the new state
		}
		if err := s.checkUniqueLocked(u, id); err != nil {
			s.mu.Unlock()
			return storage.User{}, fmt.Errorf("updating user %q: %w", id, err)
		}
		s.dropUserLocked(old)
		s.putUserLocked(u)
		s.mu.Unlock()
		return cloneUser(u), nil
	}
}

// DeleteUser implements storage.UserStore.
func (s *Store) DeleteUser(_ context.Context, id string) error {
	s.lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return fmt.Errorf("deleting user %q: %w", id, storage.ErrNotFound)
	}
	s.dropUserLocked(u)
	return nil
}

// ---------------------------------------------------------------------------
// Clients

func cloneClient(c storage.Client) storage.Client {
	c.SecretHash = bytes.Clone(c.SecretHash)
	c.SecretExpiresAt = norm(c.SecretExpiresAt)
	c.RotatedSecretHash = bytes.Clone(c.RotatedSecretHash)
	c.RotatedSecretExpiresAt = norm(c.RotatedSecretExpiresAt)
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.ResponseTypes = slices.Clone(c.ResponseTypes)
	c.Scopes = slices.Clone(c.Scopes)
	c.Contacts = slices.Clone(c.Contacts)
	c.JWKS = bytes.Clone(c.JWKS)
	c.DefaultACRValues = slices.Clone(c.DefaultACRValues)
	c.RequestURIs = slices.Clone(c.RequestURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.Audience = slices.Clone(c.Audience)
	c.RegistrationAccessTokenHash = bytes.Clone(c.RegistrationAccessTokenHash)
	c.SecretSealed = bytes.Clone(c.SecretSealed)
	c.CreatedAt, c.UpdatedAt = norm(c.CreatedAt), norm(c.UpdatedAt)
	return c
}

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(_ context.Context, c storage.Client) error {
	s.lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return fmt.Errorf("creating client %q: %w", c.ID, storage.ErrConflict)
	}
	s.clients[c.ID] = cloneClient(c)
	s.bumpLocked("c:" + c.ID)
	return nil
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(_ context.Context, id string) (storage.Client, error) {
	s.lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return storage.Client{}, fmt.Errorf("client %q: %w", id, storage.ErrNotFound)
	}
	return cloneClient(c), nil
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(_ context.Context, p storage.Page) ([]storage.Client, error) {
	s.lock()
	defer s.mu.Unlock()
	ids := page(s.clients, p)
	out := make([]storage.Client, len(ids))
	for i, id := range ids {
		out[i] = cloneClient(s.clients[id])
	}
	return out, nil
}

// UpdateClient implements storage.ClientStore.
func (s *Store) UpdateClient(_ context.Context, id string, update func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	for {
		s.lock()
		old, ok := s.clients[id]
		rev := s.revs["c:"+id]
		s.mu.Unlock()
		if !ok {
			return storage.Client{}, fmt.Errorf("updating client %q: %w", id, storage.ErrNotFound)
		}
		c, err := update(cloneClient(old))
		if err != nil {
			return storage.Client{}, err
		}
		c.ID, c.CreatedAt = old.ID, old.CreatedAt
		c = cloneClient(c)

		s.lock()
		if s.revs["c:"+id] != rev {
			s.mu.Unlock()
			continue // changed or deleted meanwhile: update the new state
		}
		s.clients[id] = c
		s.bumpLocked("c:" + id)
		s.mu.Unlock()
		return cloneClient(c), nil
	}
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(_ context.Context, id string) error {
	s.lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return fmt.Errorf("deleting client %q: %w", id, storage.ErrNotFound)
	}
	delete(s.clients, id)
	delete(s.revs, "c:"+id)
	return nil
}

// ---------------------------------------------------------------------------
// Consents

func cloneConsent(c storage.Consent) storage.Consent {
	c.Scopes = slices.Clone(c.Scopes)
	c.GrantedAt, c.ExpiresAt = norm(c.GrantedAt), norm(c.ExpiresAt)
	return c
}

// PutConsent implements storage.ConsentStore.
func (s *Store) PutConsent(_ context.Context, c storage.Consent) error {
	s.lock()
	defer s.mu.Unlock()
	c = cloneConsent(c)
	bySubject := s.consents[c.Subject]
	if bySubject == nil {
		bySubject = make(map[string]storage.Consent)
		s.consents[c.Subject] = bySubject
	}
	bySubject[c.ClientID] = c
	if !c.ExpiresAt.IsZero() {
		s.expiries.add(expiry{at: c.ExpiresAt, table: tableConsent, key: c.Subject, key2: c.ClientID})
	}
	return nil
}

// GetConsent implements storage.ConsentStore.
func (s *Store) GetConsent(_ context.Context, subject, clientID string) (storage.Consent, error) {
	now := s.lock()
	defer s.mu.Unlock()
	c, ok := s.consents[subject][clientID]
	if !ok || !live(c.ExpiresAt, now) {
		return storage.Consent{}, fmt.Errorf("consent of %q for client %q: %w", subject, clientID, storage.ErrNotFound)
	}
	return cloneConsent(c), nil
}

// ListConsents implements storage.ConsentStore.
func (s *Store) ListConsents(_ context.Context, subject string) ([]storage.Consent, error) {
	now := s.lock()
	defer s.mu.Unlock()
	out := []storage.Consent{}
	for _, c := range s.consents[subject] {
		if live(c.ExpiresAt, now) {
			out = append(out, cloneConsent(c))
		}
	}
	slices.SortFunc(out, func(a, b storage.Consent) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// DeleteConsent implements storage.ConsentStore.
func (s *Store) DeleteConsent(_ context.Context, subject, clientID string) error {
	now := s.lock()
	defer s.mu.Unlock()
	c, ok := s.consents[subject][clientID]
	if !ok || !live(c.ExpiresAt, now) {
		return fmt.Errorf("deleting consent of %q for client %q: %w", subject, clientID, storage.ErrNotFound)
	}
	s.dropConsentLocked(subject, clientID)
	return nil
}

// DeleteConsentsByClient implements storage.ConsentStore.
func (s *Store) DeleteConsentsByClient(_ context.Context, clientID string) (int, error) {
	now := s.lock()
	defer s.mu.Unlock()
	n := 0
	for subject, bySubject := range s.consents {
		c, ok := bySubject[clientID]
		if !ok {
			continue
		}
		if live(c.ExpiresAt, now) {
			n++
		}
		s.dropConsentLocked(subject, clientID)
	}
	return n, nil
}

func (s *Store) dropConsentLocked(subject, clientID string) {
	delete(s.consents[subject], clientID)
	if len(s.consents[subject]) == 0 {
		delete(s.consents, subject)
	}
}

// ---------------------------------------------------------------------------
// Keys

func cloneKeys(keys []storage.SigningKey) []storage.SigningKey {
	out := make([]storage.SigningKey, len(keys))
	for i, k := range keys {
		k.PrivateKey = bytes.Clone(k.PrivateKey)
		k.PublicJWK = bytes.Clone(k.PublicJWK)
		k.CreatedAt, k.ActivateAt = norm(k.CreatedAt), norm(k.ActivateAt)
		k.RetiredAt, k.DeleteAt = norm(k.RetiredAt), norm(k.DeleteAt)
		out[i] = k
	}
	return out
}

// GetKeySet implements storage.KeyStore.
func (s *Store) GetKeySet(context.Context) (storage.KeySet, error) {
	s.lock()
	defer s.mu.Unlock()
	return storage.KeySet{Version: s.keySet.Version, Keys: cloneKeys(s.keySet.Keys)}, nil
}

// KeySetVersion implements storage.KeyStore.
func (s *Store) KeySetVersion(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keySet.Version, nil
}

// ReplaceKeySet implements storage.KeyStore.
func (s *Store) ReplaceKeySet(_ context.Context, expectVersion int64, keys []storage.SigningKey) (int64, error) {
	s.lock()
	defer s.mu.Unlock()
	if s.keySet.Version != expectVersion {
		return 0, fmt.Errorf("replacing key set version %d: it is at version %d: %w", expectVersion, s.keySet.Version, storage.ErrConflict)
	}
	s.keySet = storage.KeySet{Version: expectVersion + 1, Keys: cloneKeys(keys)}
	return s.keySet.Version, nil
}

// ---------------------------------------------------------------------------
// Sessions

func cloneSession(x storage.Session) storage.Session {
	x.AMR = slices.Clone(x.AMR)
	x.ClientIDs = slices.Clone(x.ClientIDs)
	x.AuthTime, x.CreatedAt, x.ExpiresAt = norm(x.AuthTime), norm(x.CreatedAt), norm(x.ExpiresAt)
	return x
}

var errNoExpiry = errors.New("expires_at is required: every short-lived record expires")

// liveSessionLocked returns the session id unless it is absent or expired.
func (s *Store) liveSessionLocked(id string, now time.Time) (storage.Session, bool) {
	x, ok := s.sessions[id]
	if !ok || !now.Before(x.ExpiresAt) {
		return storage.Session{}, false
	}
	return x, true
}

// CreateSession implements storage.SessionStore.
func (s *Store) CreateSession(_ context.Context, x storage.Session) error {
	now := s.lock()
	defer s.mu.Unlock()
	if x.ExpiresAt.IsZero() {
		return fmt.Errorf("creating session: %w", errNoExpiry)
	}
	if _, ok := s.liveSessionLocked(x.ID, now); ok {
		return fmt.Errorf("creating session: %w", storage.ErrConflict)
	}
	s.dropSessionLocked(x.ID) // an expired one not yet pruned
	s.putSessionLocked(cloneSession(x))
	return nil
}

func (s *Store) putSessionLocked(x storage.Session) {
	s.sessions[x.ID] = x
	s.bumpLocked("s:" + x.ID)
	ids := s.bySubject[x.Subject]
	if ids == nil {
		ids = make(map[string]struct{})
		s.bySubject[x.Subject] = ids
	}
	ids[x.ID] = struct{}{}
	s.expiries.add(expiry{at: x.ExpiresAt, table: tableSession, key: x.ID})
}

func (s *Store) dropSessionLocked(id string) {
	x, ok := s.sessions[id]
	if !ok {
		return
	}
	delete(s.sessions, id)
	delete(s.revs, "s:"+id)
	delete(s.bySubject[x.Subject], id)
	if len(s.bySubject[x.Subject]) == 0 {
		delete(s.bySubject, x.Subject)
	}
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(_ context.Context, id string) (storage.Session, error) {
	now := s.lock()
	defer s.mu.Unlock()
	x, ok := s.liveSessionLocked(id, now)
	if !ok {
		return storage.Session{}, fmt.Errorf("session: %w", storage.ErrNotFound)
	}
	return cloneSession(x), nil
}

// UpdateSession implements storage.SessionStore.
func (s *Store) UpdateSession(_ context.Context, id string, update func(storage.Session) (storage.Session, error)) (storage.Session, error) {
	for {
		now := s.lock()
		old, ok := s.liveSessionLocked(id, now)
		rev := s.revs["s:"+id]
		s.mu.Unlock()
		if !ok {
			return storage.Session{}, fmt.Errorf("updating session: %w", storage.ErrNotFound)
		}
		x, err := update(cloneSession(old))
		if err != nil {
			return storage.Session{}, err
		}
		if x.ExpiresAt.IsZero() {
			return storage.Session{}, fmt.Errorf("updating session: %w", errNoExpiry)
		}
		x.ID, x.Subject = old.ID, old.Subject
		x = cloneSession(x)

		now = s.lock()
		if _, ok := s.liveSessionLocked(id, now); !ok || s.revs["s:"+id] != rev {
			s.mu.Unlock()
			continue // changed, deleted or expired meanwhile: update the new state
		}
		s.sessions[id] = x
		s.bumpLocked("s:" + id)
		if !x.ExpiresAt.Equal(old.ExpiresAt) {
			s.expiries.add(expiry{at: x.ExpiresAt, table: tableSession, key: x.ID})
		}
		s.mu.Unlock()
		return cloneSession(x), nil
	}
}

// DeleteSession implements storage.SessionStore.
func (s *Store) DeleteSession(_ context.Context, id string) error {
	now := s.lock()
	defer s.mu.Unlock()
	if _, ok := s.liveSessionLocked(id, now); !ok {
		return fmt.Errorf("deleting session: %w", storage.ErrNotFound)
	}
	s.dropSessionLocked(id)
	return nil
}

// ListSessions implements storage.SessionStore.
func (s *Store) ListSessions(_ context.Context, subject string) ([]storage.Session, error) {
	now := s.lock()
	defer s.mu.Unlock()
	out := []storage.Session{}
	for id := range s.bySubject[subject] {
		if x, ok := s.liveSessionLocked(id, now); ok {
			out = append(out, cloneSession(x))
		}
	}
	slices.SortFunc(out, func(a, b storage.Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ---------------------------------------------------------------------------
// Requests

func cloneRequest(r storage.Request) storage.Request {
	r.Payload = bytes.Clone(r.Payload)
	r.RequestedAt, r.ExpiresAt = norm(r.RequestedAt), norm(r.ExpiresAt)
	return r
}

func keyOf(kind storage.RequestKind, signature string) requestKey {
	return requestKey{kind: kind, signature: signature}
}

func (s *Store) liveRequestLocked(k requestKey, now time.Time) (storage.Request, bool) {
	r, ok := s.requests[k]
	if !ok || !now.Before(r.ExpiresAt) {
		return storage.Request{}, false
	}
	return r, true
}

func (s *Store) putRequestLocked(r storage.Request) {
	k := keyOf(r.Kind, r.Signature)
	s.dropRequestLocked(k) // an expired one not yet pruned
	s.requests[k] = r
	g := s.grants[r.RequestID]
	if g == nil {
		g = make(map[requestKey]struct{})
		s.grants[r.RequestID] = g
	}
	g[k] = struct{}{}
	s.expiries.add(expiry{at: r.ExpiresAt, table: tableRequest, key: r.Signature, kind: r.Kind})
}

func (s *Store) dropRequestLocked(k requestKey) {
	r, ok := s.requests[k]
	if !ok {
		return
	}
	delete(s.requests, k)
	delete(s.grants[r.RequestID], k)
	if len(s.grants[r.RequestID]) == 0 {
		delete(s.grants, r.RequestID)
	}
}

// checkCreateLocked reports why r cannot be created.
func (s *Store) checkCreateLocked(r storage.Request, now time.Time) error {
	if r.ExpiresAt.IsZero() {
		return fmt.Errorf("creating %s request: %w", r.Kind, errNoExpiry)
	}
	if _, ok := s.liveRequestLocked(keyOf(r.Kind, r.Signature), now); ok {
		return fmt.Errorf("creating %s request: %w", r.Kind, storage.ErrConflict)
	}
	return nil
}

// checkDeactivateLocked reports why ref cannot be deactivated.
func (s *Store) checkDeactivateLocked(ref storage.RequestRef, now time.Time) error {
	r, ok := s.liveRequestLocked(keyOf(ref.Kind, ref.Signature), now)
	if !ok {
		return fmt.Errorf("deactivating %s request: %w", ref.Kind, storage.ErrNotFound)
	}
	if !r.Active {
		return fmt.Errorf("deactivating %s request: %w", ref.Kind, storage.ErrInactive)
	}
	return nil
}

func (s *Store) deactivateLocked(ref storage.RequestRef) {
	k := keyOf(ref.Kind, ref.Signature)
	r := s.requests[k]
	r.Active = false
	s.requests[k] = r
}

func (s *Store) revokeLocked(requestID string, kinds []storage.RequestKind) {
	for k := range s.grants[requestID] {
		if len(kinds) == 0 || slices.Contains(kinds, k.kind) {
			s.dropRequestLocked(k)
		}
	}
}

// CreateRequest implements storage.RequestStore.
func (s *Store) CreateRequest(_ context.Context, r storage.Request) error {
	now := s.lock()
	defer s.mu.Unlock()
	if err := s.checkCreateLocked(r, now); err != nil {
		return err
	}
	s.putRequestLocked(cloneRequest(r))
	return nil
}

// GetRequest implements storage.RequestStore.
func (s *Store) GetRequest(_ context.Context, kind storage.RequestKind, signature string) (storage.Request, error) {
	now := s.lock()
	defer s.mu.Unlock()
	r, ok := s.liveRequestLocked(keyOf(kind, signature), now)
	if !ok {
		return storage.Request{}, fmt.Errorf("%s request: %w", kind, storage.ErrNotFound)
	}
	return cloneRequest(r), nil
}

// GetRequests implements storage.RequestStore, under one lock so that the
// records are read at one instant.
func (s *Store) GetRequests(_ context.Context, keys []storage.RequestKey) ([]storage.Request, []bool, error) {
	recs, found := make([]storage.Request, len(keys)), make([]bool, len(keys))
	if len(keys) == 0 {
		return recs, found, nil
	}
	now := s.lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if r, ok := s.liveRequestLocked(keyOf(k.Kind, k.Signature), now); ok {
			recs[i], found[i] = cloneRequest(r), true
		}
	}
	return recs, found, nil
}

// DeleteRequest implements storage.RequestStore. The grant ID of ref is not
// needed here: requests are found by kind and signature.
func (s *Store) DeleteRequest(_ context.Context, ref storage.RequestRef) error {
	now := s.lock()
	defer s.mu.Unlock()
	k := keyOf(ref.Kind, ref.Signature)
	if _, ok := s.liveRequestLocked(k, now); !ok {
		return fmt.Errorf("deleting %s request: %w", ref.Kind, storage.ErrNotFound)
	}
	s.dropRequestLocked(k)
	return nil
}

// DeactivateRequest implements storage.RequestStore.
func (s *Store) DeactivateRequest(_ context.Context, ref storage.RequestRef) error {
	now := s.lock()
	defer s.mu.Unlock()
	if err := s.checkDeactivateLocked(ref, now); err != nil {
		return err
	}
	s.deactivateLocked(ref)
	return nil
}

// RevokeGrant implements storage.RequestStore.
func (s *Store) RevokeGrant(_ context.Context, requestID string, kinds ...storage.RequestKind) error {
	s.lock()
	defer s.mu.Unlock()
	s.revokeLocked(requestID, kinds)
	return nil
}

// ApplyRequests implements storage.RequestStore: every condition is checked
// before anything changes, all under one lock.
func (s *Store) ApplyRequests(_ context.Context, b storage.RequestBatch) error {
	now := s.lock()
	defer s.mu.Unlock()
	for _, ref := range b.Deactivate {
		if err := s.checkDeactivateLocked(ref, now); err != nil {
			return fmt.Errorf("applying request batch: %w", err)
		}
	}
	created := make(map[requestKey]bool, len(b.Create))
	for _, r := range b.Create {
		if err := s.checkCreateLocked(r, now); err != nil {
			return fmt.Errorf("applying request batch: %w", err)
		}
		k := keyOf(r.Kind, r.Signature)
		if created[k] {
			return fmt.Errorf("applying request batch: %s request created twice: %w", r.Kind, storage.ErrConflict)
		}
		created[k] = true
	}
	for _, ref := range b.Deactivate {
		s.deactivateLocked(ref)
	}
	for _, r := range b.Create {
		s.putRequestLocked(cloneRequest(r))
	}
	for _, ref := range b.Delete {
		s.dropRequestLocked(keyOf(ref.Kind, ref.Signature))
	}
	for _, id := range b.RevokeGrants {
		s.revokeLocked(id, nil)
	}
	return nil
}

// revokeWhereLocked revokes every grant with a live record that match
// selects, and returns how many grants it revoked.
func (s *Store) revokeWhereLocked(now time.Time, match func(storage.Request) bool) int {
	grants := make(map[string]struct{})
	for _, r := range s.requests {
		if now.Before(r.ExpiresAt) && match(r) {
			grants[r.RequestID] = struct{}{}
		}
	}
	for id := range grants {
		s.revokeLocked(id, nil)
	}
	return len(grants)
}

// RevokeGrantsBySubject implements storage.RequestStore.
func (s *Store) RevokeGrantsBySubject(_ context.Context, subject string) (int, error) {
	if subject == "" {
		return 0, errors.New("revoking grants by subject: empty subject")
	}
	now := s.lock()
	defer s.mu.Unlock()
	return s.revokeWhereLocked(now, func(r storage.Request) bool { return r.Subject == subject }), nil
}

// RevokeGrantsByClient implements storage.RequestStore.
func (s *Store) RevokeGrantsByClient(_ context.Context, clientID string) (int, error) {
	if clientID == "" {
		return 0, errors.New("revoking grants by client: empty client id")
	}
	now := s.lock()
	defer s.mu.Unlock()
	return s.revokeWhereLocked(now, func(r storage.Request) bool { return r.ClientID == clientID }), nil
}

// ---------------------------------------------------------------------------
// Replay cache and throttle

// UseOnce implements storage.ReplayCache.
func (s *Store) UseOnce(_ context.Context, id string, expiresAt time.Time) error {
	now := s.lock()
	defer s.mu.Unlock()
	if expiresAt.IsZero() {
		return fmt.Errorf("recording a single-use value: %w", errNoExpiry)
	}
	if exp, ok := s.replay[id]; ok && now.Before(exp) {
		return fmt.Errorf("single-use value used before: %w", storage.ErrConflict)
	}
	expiresAt = norm(expiresAt)
	s.replay[id] = expiresAt
	s.expiries.add(expiry{at: expiresAt, table: tableReplay, key: id})
	return nil
}

// Hit implements storage.Throttle.
func (s *Store) Hit(_ context.Context, key string, window time.Duration) (int64, error) {
	now := s.lock()
	defer s.mu.Unlock()
	if window <= 0 {
		return 0, fmt.Errorf("counting a hit: window %s is not positive", window)
	}
	c, ok := s.throttle[key]
	if !ok || !now.Before(c.resetAt) {
		c = counter{resetAt: norm(now.Add(window))}
		s.expiries.add(expiry{at: c.resetAt, table: tableThrottle, key: key})
	}
	c.n++
	s.throttle[key] = c
	return c.n, nil
}

// Count implements storage.Throttle.
func (s *Store) Count(_ context.Context, keys ...string) ([]int64, error) {
	now := s.lock()
	defer s.mu.Unlock()
	out := make([]int64, len(keys))
	for i, key := range keys {
		if c, ok := s.throttle[key]; ok && now.Before(c.resetAt) {
			out[i] = c.n
		}
	}
	return out, nil
}

// Reset implements storage.Throttle.
func (s *Store) Reset(_ context.Context, keys ...string) error {
	s.lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		delete(s.throttle, key)
	}
	return nil
}
