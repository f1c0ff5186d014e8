package memory

import (
	"container/heap"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// table names the map an expiry entry points into.
type table uint8

const (
	tableSession table = iota
	tableRequest
	tableReplay
	tableThrottle
	tableConsent
)

// expiry is a hint that a record may expire at at. Entries are not removed
// when their record is deleted or its expiry changes: pruning re-checks the
// record itself, so a stale entry costs one lookup and removes nothing live.
type expiry struct {
	at    time.Time
	table table
	kind  storage.RequestKind // tableRequest
	key   string              // session ID, request signature, replay ID, throttle key, consent subject
	key2  string              // consent client ID
}

// expiryHeap is a min-heap of expiries by time.
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (h *expiryHeap) add(e expiry) { heap.Push(h, e) }

// pruneLocked removes up to s.pruneLimit records whose expiry has passed,
// earliest first. Each write adds at most one entry and each call removes up
// to pruneLimit, so the backlog cannot grow while the store is in use.
func (s *Store) pruneLocked(now time.Time) {
	for range s.pruneLimit {
		if len(s.expiries) == 0 || now.Before(s.expiries[0].at) {
			return
		}
		e := heap.Pop(&s.expiries).(expiry)
		switch e.table {
		case tableSession:
			if x, ok := s.sessions[e.key]; ok && !now.Before(x.ExpiresAt) {
				s.dropSessionLocked(e.key)
			}
		case tableRequest:
			k := keyOf(e.kind, e.key)
			if r, ok := s.requests[k]; ok && !now.Before(r.ExpiresAt) {
				s.dropRequestLocked(k)
			}
		case tableReplay:
			if exp, ok := s.replay[e.key]; ok && !now.Before(exp) {
				delete(s.replay, e.key)
			}
		case tableThrottle:
			if c, ok := s.throttle[e.key]; ok && !now.Before(c.resetAt) {
				delete(s.throttle, e.key)
			}
		case tableConsent:
			if c, ok := s.consents[e.key][e.key2]; ok && !live(c.ExpiresAt, now) {
				s.dropConsentLocked(e.key, e.key2)
			}
		}
	}
}

// size reports how many records of short-lived kinds the store holds,
// expired or not (for tests of pruning).
func (s *Store) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions) + len(s.requests) + len(s.replay) + len(s.throttle)
}
