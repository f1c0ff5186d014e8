package oauth

import (
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// clientCache keeps recently read clients for a short time. Every token,
// introspection and revocation request reads its client, often twice (client
// authentication, then the stored request's client); without the cache each
// read is a database round trip.
//
// Entries live for ttl, so a change made by another replica (a deleted
// client, a revoked secret) is seen within ttl; changes through this process
// call Provider.ForgetClient. A failed client authentication never trusts a
// cached entry: it reads the client again before refusing (clientauth.go), so
// a new secret works at once. The size is bounded: when full, expired entries
// go first, then arbitrary ones.
type clientCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	c     storage.Client
	until time.Time
}

// defaultClientCacheSize bounds the cache; a deployment with more active
// clients than this just reads some of them from storage more often.
const defaultClientCacheSize = 10000

func newClientCache(ttl time.Duration, size int, now func() time.Time) *clientCache {
	if ttl <= 0 {
		return nil
	}
	if size <= 0 {
		size = defaultClientCacheSize
	}
	return &clientCache{ttl: ttl, max: size, now: now, m: make(map[string]cachedClient)}
}

func (cc *clientCache) get(id string) (storage.Client, bool) {
	if cc == nil {
		return storage.Client{}, false
	}
	cc.mu.RLock()
	e, ok := cc.m[id]
	cc.mu.RUnlock()
	if !ok || !cc.now().Before(e.until) {
		return storage.Client{}, false
	}
	return e.c, true
}

func (cc *clientCache) put(c storage.Client) {
	if cc == nil {
		return
	}
	now := cc.now()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.m[c.ID]; !ok && len(cc.m) >= cc.max {
		for id, e := range cc.m {
			if !now.Before(e.until) {
				delete(cc.m, id)
			}
		}
		// Map iteration order is random: this evicts an arbitrary entry.
		for id := range cc.m {
			if len(cc.m) < cc.max {
				break
			}
			delete(cc.m, id)
		}
	}
	cc.m[c.ID] = cachedClient{c: c, until: now.Add(cc.ttl)}
}

func (cc *clientCache) forget(id string) {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	delete(cc.m, id)
	cc.mu.Unlock()
}

func (cc *clientCache) len() int {
	if cc == nil {
		return 0
	}
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return len(cc.m)
}
