// Package usercache keeps users read by ID, and their consents, for a short
// time in front of a storage.Durable.
//
// Every single sign-on reads its user by ID two or three times (is the
// session's user still enabled, the claims of the authorization response,
// the token endpoint's refusal of a disabled or deleted user's grant) and
// the user's consent to the client; the cache turns most of those into no
// database round trip.
//
// The wrapped store is the single invalidation point: user writes
// (CreateUser, UpdateUser, DeleteUser) and consent writes (PutConsent,
// DeleteConsent, DeleteConsentsByClient) through it drop the cached entries,
// so every component of the process that shares it sees a change at once. A
// change made by another process (the CLI, another replica) is seen within
// the TTL. Only GetUser and GetConsent are cached: the lookups by username
// and email (sign-in's password check), consent listings and everything else
// read the backend.
package usercache

import (
	"context"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/ttlcache"
)

// DefaultSize bounds the cache when Wrap is given no size; a deployment with
// more active users than this just reads some of them from storage more often.
const DefaultSize = 10000

// Wrap returns d with GetUser cached for ttl, keeping at most size users
// (DefaultSize when size <= 0). now is the clock (time.Now when nil). A ttl
// of zero or less returns d itself.
func Wrap(d storage.Durable, ttl time.Duration, size int, now func() time.Time) storage.Durable {
	if ttl <= 0 {
		return d
	}
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	return &store{Durable: d, ttl: ttl, now: now,
		users:    ttlcache.New[string](size, clone),
		consents: ttlcache.New[consentKey](size, cloneConsent)}
}

type store struct {
	storage.Durable
	ttl time.Duration
	now func() time.Time

	users    *ttlcache.Cache[string, storage.User]
	consents *ttlcache.Cache[consentKey, storage.Consent]
}

type consentKey struct{ subject, clientID string }

// clone returns a copy of u sharing nothing with it. storage.User holds
// only values (strings, bools, times), so the copy made by assignment is
// enough; TestUserHoldsNoReferences fails when a field that would need a
// deep copy is added.
func clone(u storage.User) storage.User { return u }

func cloneConsent(c storage.Consent) storage.Consent {
	c.Scopes = slices.Clone(c.Scopes)
	return c
}

// GetUser implements storage.UserStore, from the cache when it can.
func (s *store) GetUser(ctx context.Context, id string) (storage.User, error) {
	now := s.now()
	u, ok, gen := s.users.Get(id, now)
	if ok {
		return u, nil
	}
	u, err := s.Durable.GetUser(ctx, id)
	if err != nil {
		// Not found is not cached: a user created by another process can
		// sign in at once.
		return u, err
	}
	// The record is at least as new as the read's start, so counting the
	// TTL from there bounds how stale it can get.
	s.users.Put(id, u, gen, now.Add(s.ttl), now)
	return u, nil
}

// forget drops user id's entry and stops reads in flight from caching
// what they read.
func (s *store) forget(id string) { s.users.ForgetKey(id) }

// CreateUser implements storage.UserStore. Nothing is cached for an unknown
// ID, but a user deleted and created again by another process may be.
func (s *store) CreateUser(ctx context.Context, u storage.User) error {
	s.forget(u.ID)
	defer s.forget(u.ID)
	return s.Durable.CreateUser(ctx, u)
}

// UpdateUser implements storage.UserStore. The entry is dropped before the
// write and again after it, whatever its outcome: an error (a timeout, a
// lost connection) does not tell whether the write happened.
func (s *store) UpdateUser(ctx context.Context, id string, update func(storage.User) (storage.User, error)) (storage.User, error) {
	s.forget(id)
	defer s.forget(id)
	return s.Durable.UpdateUser(ctx, id, update)
}

// DeleteUser implements storage.UserStore, dropping the entry like
// UpdateUser, and the user's cached consents with it.
func (s *store) DeleteUser(ctx context.Context, id string) error {
	s.forgetUserConsents(id)
	defer s.forgetUserConsents(id)
	s.forget(id)
	defer s.forget(id)
	return s.Durable.DeleteUser(ctx, id)
}

func (s *store) forgetUserConsents(subject string) {
	s.consents.Forget(func(k consentKey) bool { return k.subject == subject })
}

// GetConsent implements storage.ConsentStore, from the cache when it can.
// An entry lives no longer than its consent, so an expired consent is
// always asked of the backend, which does not find it.
func (s *store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	now := s.now()
	k := consentKey{subject, clientID}
	c, ok, gen := s.consents.Get(k, now)
	if ok {
		return c, nil
	}
	c, err := s.Durable.GetConsent(ctx, subject, clientID)
	if err != nil {
		// Not found is not cached: a consent given on another replica
		// counts at once.
		return c, err
	}
	until := now.Add(s.ttl)
	if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(until) {
		until = c.ExpiresAt
	}
	s.consents.Put(k, c, gen, until, now)
	return c, nil
}

// PutConsent implements storage.ConsentStore, dropping the entry before and
// after the write like UpdateUser.
func (s *store) PutConsent(ctx context.Context, c storage.Consent) error {
	k := consentKey{c.Subject, c.ClientID}
	s.consents.ForgetKey(k)
	defer s.consents.ForgetKey(k)
	return s.Durable.PutConsent(ctx, c)
}

// DeleteConsent implements storage.ConsentStore (a user or an administrator
// revoking a consent: the next authorization asks again).
func (s *store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	k := consentKey{subject, clientID}
	s.consents.ForgetKey(k)
	defer s.consents.ForgetKey(k)
	return s.Durable.DeleteConsent(ctx, subject, clientID)
}

// DeleteConsentsByClient implements storage.ConsentStore.
func (s *store) DeleteConsentsByClient(ctx context.Context, clientID string) (int, error) {
	drop := func(k consentKey) bool { return k.clientID == clientID }
	s.consents.Forget(drop)
	defer s.consents.Forget(drop)
	return s.Durable.DeleteConsentsByClient(ctx, clientID)
}

// len is the number of cached users, expired ones included.
func (s *store) len() int { return s.users.Len() }
