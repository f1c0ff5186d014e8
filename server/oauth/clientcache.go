package oauth

import (
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/ttlcache"
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
// go first, then arbitrary ones (storage/ttlcache).
type clientCache struct {
	ttl time.Duration
	now func() time.Time
	c   *ttlcache.Cache[string, storage.Client]
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
	return &clientCache{ttl: ttl, now: now, c: ttlcache.New[string, storage.Client](size, nil)}
}

func (cc *clientCache) get(id string) (storage.Client, bool) {
	if cc == nil {
		return storage.Client{}, false
	}
	c, ok, _ := cc.c.Get(id, cc.now())
	return c, ok
}

func (cc *clientCache) put(c storage.Client) {
	if cc == nil {
		return
	}
	now := cc.now()
	cc.c.Put(c.ID, c, cc.c.Gen(), now.Add(cc.ttl), now)
}

func (cc *clientCache) forget(id string) {
	if cc != nil {
		cc.c.ForgetKey(id)
	}
}

func (cc *clientCache) len() int {
	if cc == nil {
		return 0
	}
	return cc.c.Len()
}
