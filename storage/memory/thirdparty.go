package memory

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// ---------------------------------------------------------------------------
// Registration tokens

func cloneRegToken(t storage.RegistrationToken) storage.RegistrationToken {
	t.ExpiresAt, t.CreatedAt = norm(t.ExpiresAt), norm(t.CreatedAt)
	return t
}

// checkRegToken refuses a token the SQL backend could not store either.
func checkRegToken(t storage.RegistrationToken) error {
	switch {
	case t.ID == "":
		return errors.New("registration token id is empty")
	case t.UsesLeft < storage.UnlimitedUses:
		return fmt.Errorf("registration token uses left is %d; want -1 (unlimited) or more", t.UsesLeft)
	case t.CreatedAt.IsZero():
		return errors.New("registration token has no creation time")
	}
	return nil
}

// CreateRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) CreateRegistrationToken(_ context.Context, t storage.RegistrationToken) error {
	if err := checkRegToken(t); err != nil {
		return fmt.Errorf("creating registration token: %w", err)
	}
	now := s.lock()
	defer s.mu.Unlock()
	if old, ok := s.regTokens[t.ID]; ok && live(old.ExpiresAt, now) {
		return fmt.Errorf("creating registration token: %w", storage.ErrConflict)
	}
	s.regTokens[t.ID] = cloneRegToken(t)
	return nil
}

// UseRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) UseRegistrationToken(_ context.Context, id string) (storage.RegistrationToken, error) {
	now := s.lock()
	defer s.mu.Unlock()
	t, ok := s.regTokens[id]
	if !ok || !live(t.ExpiresAt, now) || t.UsesLeft == 0 {
		return storage.RegistrationToken{}, fmt.Errorf("using registration token: %w", storage.ErrNotFound)
	}
	if t.UsesLeft > 0 {
		t.UsesLeft--
		s.regTokens[id] = t
	}
	return t, nil
}

// ListRegistrationTokens implements storage.RegistrationTokenStore.
func (s *Store) ListRegistrationTokens(context.Context) ([]storage.RegistrationToken, error) {
	now := s.lock()
	defer s.mu.Unlock()
	out := []storage.RegistrationToken{}
	for _, t := range s.regTokens {
		if live(t.ExpiresAt, now) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b storage.RegistrationToken) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) DeleteRegistrationToken(_ context.Context, id string) error {
	now := s.lock()
	defer s.mu.Unlock()
	t, ok := s.regTokens[id]
	if !ok || !live(t.ExpiresAt, now) {
		return fmt.Errorf("deleting registration token: %w", storage.ErrNotFound)
	}
	delete(s.regTokens, id)
	return nil
}

// ---------------------------------------------------------------------------
// Logout outbox

func cloneLogout(n storage.LogoutNotification) storage.LogoutNotification {
	n.Payload = bytes.Clone(n.Payload)
	n.NextAttemptAt, n.CreatedAt = norm(n.NextAttemptAt), norm(n.CreatedAt)
	return n
}

func checkLogout(n storage.LogoutNotification) error {
	switch {
	case n.ID == "":
		return errors.New("logout notification id is empty")
	case n.NextAttemptAt.IsZero():
		return errors.New("logout notification has no next attempt time")
	case n.CreatedAt.IsZero():
		return errors.New("logout notification has no creation time")
	}
	return nil
}

// logoutOrder is the order of claims and listings: due time, then ID.
func logoutOrder(a, b storage.LogoutNotification) int {
	if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func limitOrDefault(limit int) int { return cmp.Or(max(limit, 0), storage.DefaultPageLimit) }

// EnqueueLogouts implements storage.LogoutOutbox.
func (s *Store) EnqueueLogouts(_ context.Context, ns []storage.LogoutNotification) error {
	for _, n := range ns {
		if err := checkLogout(n); err != nil {
			return fmt.Errorf("enqueueing logout notifications: %w", err)
		}
	}
	s.lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(ns))
	for _, n := range ns {
		if _, ok := s.logouts[n.ID]; ok || seen[n.ID] {
			return fmt.Errorf("enqueueing logout notification %q: %w", n.ID, storage.ErrConflict)
		}
		seen[n.ID] = true
	}
	for _, n := range ns {
		s.logouts[n.ID] = cloneLogout(n)
	}
	return nil
}

// ClaimLogouts implements storage.LogoutOutbox.
func (s *Store) ClaimLogouts(_ context.Context, now, leaseUntil time.Time, limit int) ([]storage.LogoutNotification, error) {
	if leaseUntil.IsZero() {
		return nil, errors.New("claiming logout notifications: no lease end")
	}
	now, leaseUntil = norm(now), norm(leaseUntil)
	s.lock()
	defer s.mu.Unlock()
	var due []storage.LogoutNotification
	for _, n := range s.logouts {
		if !n.NextAttemptAt.After(now) {
			due = append(due, n)
		}
	}
	slices.SortFunc(due, logoutOrder)
	due = due[:min(len(due), limitOrDefault(limit))]
	out := make([]storage.LogoutNotification, len(due))
	for i, n := range due {
		n.NextAttemptAt = leaseUntil
		s.logouts[n.ID] = n
		out[i] = cloneLogout(n)
	}
	return out, nil
}

// CompleteLogout implements storage.LogoutOutbox.
func (s *Store) CompleteLogout(_ context.Context, id string) error {
	s.lock()
	defer s.mu.Unlock()
	if _, ok := s.logouts[id]; !ok {
		return fmt.Errorf("completing logout notification %q: %w", id, storage.ErrNotFound)
	}
	delete(s.logouts, id)
	return nil
}

// RetryLogout implements storage.LogoutOutbox.
func (s *Store) RetryLogout(_ context.Context, id string, attempts int, next time.Time, lastErr string) error {
	if next.IsZero() {
		return fmt.Errorf("rescheduling logout notification %q: no next attempt time", id)
	}
	s.lock()
	defer s.mu.Unlock()
	n, ok := s.logouts[id]
	if !ok {
		return fmt.Errorf("rescheduling logout notification %q: %w", id, storage.ErrNotFound)
	}
	n.Attempts, n.NextAttemptAt, n.LastError = attempts, norm(next), lastErr
	s.logouts[id] = n
	return nil
}

// ListLogouts implements storage.LogoutOutbox.
func (s *Store) ListLogouts(_ context.Context, limit int) ([]storage.LogoutNotification, error) {
	s.lock()
	defer s.mu.Unlock()
	out := make([]storage.LogoutNotification, 0, len(s.logouts))
	for _, n := range s.logouts {
		out = append(out, n)
	}
	slices.SortFunc(out, logoutOrder)
	out = out[:min(len(out), limitOrDefault(limit))]
	for i := range out {
		out[i] = cloneLogout(out[i])
	}
	return out, nil
}
