// Package usercache keeps users read by ID for a short time, in front of a
// storage.Durable.
//
// Every single sign-on reads its user by ID two or three times (is the
// session's user still enabled, the claims of the authorization response,
// the token endpoint's refusal of a disabled or deleted user's grant); the
// cache turns most of those into no database round trip.
//
// The wrapped store is the single invalidation point: CreateUser, UpdateUser
// and DeleteUser through it drop the cached user, so every component of the
// process that shares it sees a change at once. A change made by another
// process (the CLI, another replica) is seen within the TTL. Only GetUser is
// cached: the lookups by username and email (sign-in's password check) and
// everything else read the backend.
package usercache

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
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
	return &store{Durable: d, ttl: ttl, max: size, now: now, m: make(map[string]entry)}
}

type store struct {
	storage.Durable
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.RWMutex
	m  map[string]entry
	// gen counts user writes. A read that began before a write may return
	// the old record; it is cached only when no write began or ended since
	// the read began, so it cannot outlive the write. One counter for all
	// users keeps the state bounded; writes are rare enough that the
	// occasional uncached read they cause does not matter.
	gen uint64
}

type entry struct {
	u     storage.User
	until time.Time
}

// clone returns a copy of u sharing nothing with it. storage.User holds
// only values (strings, bools, times), so the copy made by assignment is
// enough; TestUserHoldsNoReferences fails when a field that would need a
// deep copy is added.
func clone(u storage.User) storage.User { return u }

// GetUser implements storage.UserStore, from the cache when it can.
func (s *store) GetUser(ctx context.Context, id string) (storage.User, error) {
	now := s.now()
	s.mu.RLock()
	e, ok := s.m[id]
	gen := s.gen
	s.mu.RUnlock()
	if ok && now.Before(e.until) {
		return clone(e.u), nil
	}
	u, err := s.Durable.GetUser(ctx, id)
	if err != nil {
		// Not found is not cached: a user created by another process
		// can sign in at once.
		return u, err
	}
	// The record is at least as new as the read's start, so counting the
	// TTL from there bounds how stale it can get.
	s.put(id, u, gen, now)
	return u, nil
}

func (s *store) put(id string, u storage.User, gen uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if _, ok := s.m[id]; !ok && len(s.m) >= s.max {
		s.evictLocked(now)
	}
	s.m[id] = entry{u: clone(u), until: now.Add(s.ttl)}
}

// evictLocked drops expired entries, then arbitrary ones when none has
// expired. It frees a sixteenth of the cache at once, so a full cache is
// not scanned on every miss.
func (s *store) evictLocked(now time.Time) {
	for id, e := range s.m {
		if !now.Before(e.until) {
			delete(s.m, id)
		}
	}
	keep := s.max - 1 - s.max/16
	// Map iteration order is random: these are arbitrary entries.
	for id := range s.m {
		if len(s.m) <= keep {
			break
		}
		delete(s.m, id)
	}
}

// forget drops id's entry and stops reads in flight from caching what they
// read.
func (s *store) forget(id string) {
	s.mu.Lock()
	s.gen++
	delete(s.m, id)
	s.mu.Unlock()
}

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

// DeleteUser implements storage.UserStore, dropping the entry like UpdateUser.
func (s *store) DeleteUser(ctx context.Context, id string) error {
	s.forget(id)
	defer s.forget(id)
	return s.Durable.DeleteUser(ctx, id)
}

// len is the number of entries, expired ones included.
func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
