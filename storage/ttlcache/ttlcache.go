// Package ttlcache is a bounded in-process map whose entries expire, shared
// by the caches in front of storage (users, consents, clients, pending
// authorizations).
package ttlcache

import (
	"sync"
	"time"
)

// Cache holds at most max entries, each until its own deadline. When full,
// expired entries go first, then arbitrary ones.
//
// Reads and writes race safely with invalidation: Get returns a generation
// to pass to Put, and a Put is dropped when a Forget began since that Get,
// so a value read from storage before a write cannot be cached after it.
// One counter for all keys keeps the state bounded; invalidations are rare
// enough that the occasional uncached read they cause does not matter.
type Cache[K comparable, V any] struct {
	max   int
	clone func(V) V

	mu  sync.RWMutex
	m   map[K]entry[V]
	gen uint64
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a cache of at most size entries (at least one). clone copies a
// value on its way in and out so that callers share nothing with the cache;
// nil means values are copied by assignment.
func New[K comparable, V any](size int, clone func(V) V) *Cache[K, V] {
	if clone == nil {
		clone = func(v V) V { return v }
	}
	return &Cache[K, V]{max: max(size, 1), clone: clone, m: make(map[K]entry[V])}
}

// Get returns k's unexpired value, and the generation to pass to Put.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool, uint64) {
	c.mu.RLock()
	e, ok := c.m[k]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.until) {
		return c.clone(e.v), true, gen
	}
	var zero V
	return zero, false, gen
}

// Gen returns the current generation, for a Put of a value not read
// through Get (one the caller has just written, say).
func (c *Cache[K, V]) Gen() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Put stores v for k until the deadline, unless an invalidation happened
// since gen was taken.
func (c *Cache[K, V]) Put(k K, v V, gen uint64, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = entry[V]{v: c.clone(v), until: until}
}

// evictLocked drops expired entries, then arbitrary ones when none has
// expired. It frees a sixteenth of the cache at once, so a full cache is
// not scanned on every miss.
func (c *Cache[K, V]) evictLocked(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	keep := c.max - 1 - c.max/16
	// Map iteration order is random: these are arbitrary entries.
	for k := range c.m {
		if len(c.m) <= keep {
			break
		}
		delete(c.m, k)
	}
}

// Forget drops the entries matching drop and stops reads in flight from
// caching what they read.
func (c *Cache[K, V]) Forget(drop func(K) bool) {
	c.mu.Lock()
	c.gen++
	for k := range c.m {
		if drop(k) {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

// ForgetKey is Forget for one key, without a scan.
func (c *Cache[K, V]) ForgetKey(k K) {
	c.mu.Lock()
	c.gen++
	delete(c.m, k)
	c.mu.Unlock()
}

// Len returns the number of entries, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Cap returns the most entries the cache holds.
func (c *Cache[K, V]) Cap() int { return c.max }
