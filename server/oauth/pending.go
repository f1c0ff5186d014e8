package oauth

import (
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// A browser sign-in reads its pending authorization four or five times:
// the login page, the login form, the consent page, the consent form and
// the resumption that claims it. The record never changes once stored,
// only its claim does, so this process keeps the records it stored or read
// for a few minutes and reads the store again only on a miss (another
// replica stored it, or it was evicted).
//
// The claim stays in the store, atomic, so a cached record can never be
// used twice: a record claimed by another replica still shows a page here
// for at most pendingCacheTTL, and submitting that page fails at the claim
// with the same "expired or already completed" page as before. A claim
// through this process forgets the entry first.
const (
	pendingCacheSize = 4096
	pendingCacheTTL  = 5 * time.Minute
)

// cachePending keeps an active pending record until it expires, or for
// pendingCacheTTL at most.
func (p *Provider) cachePending(rec storage.Request, gen uint64) {
	if !rec.Active {
		return
	}
	now := p.now()
	until := now.Add(pendingCacheTTL)
	if rec.ExpiresAt.Before(until) {
		until = rec.ExpiresAt
	}
	p.pending.Put(rec.Signature, rec, gen, until, now)
}
