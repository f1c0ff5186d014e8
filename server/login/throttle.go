package login

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Throttling defaults (the zero values of ThrottleConfig).
const (
	DefaultMaxAccountFailures = 5
	DefaultMaxIPFailures      = 50
	DefaultFailureWindow      = time.Hour
	DefaultBaseBackoff        = 30 * time.Second
	DefaultMaxBackoff         = 15 * time.Minute
)

// ThrottleConfig sets how failed sign-ins slow down guessing. Each account
// and each client IP address counts its failures in a window; once a counter
// reaches its maximum, every further failure locks that account or address
// for a backoff that doubles with each failure (BaseBackoff, 2×, 4×, ... up to
// MaxBackoff). While locked, sign-ins answer 429 with Retry-After without
// checking the password. A successful sign-in resets the account's counter.
type ThrottleConfig struct {
	MaxAccountFailures int64
	MaxIPFailures      int64
	FailureWindow      time.Duration
	BaseBackoff        time.Duration
	MaxBackoff         time.Duration
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.MaxAccountFailures <= 0 {
		c.MaxAccountFailures = DefaultMaxAccountFailures
	}
	if c.MaxIPFailures <= 0 {
		c.MaxIPFailures = DefaultMaxIPFailures
	}
	if c.FailureWindow <= 0 {
		c.FailureWindow = DefaultFailureWindow
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = DefaultBaseBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	return c
}

// throttle applies ThrottleConfig over a storage.Throttle.
type throttle struct {
	store storage.Throttle
	cfg   ThrottleConfig
}

// subject is one thing failures are counted for: an account or an address.
type subject struct {
	key string // fail counter key; the lock key derives from it
	max int64
}

func (t *throttle) account(id string) subject {
	return subject{key: "login:fail:acct:" + digest(id), max: t.cfg.MaxAccountFailures}
}

func (t *throttle) ip(addr string) subject {
	return subject{key: "login:fail:ip:" + digest(addr), max: t.cfg.MaxIPFailures}
}

// digest keeps user-chosen text (usernames, emails) out of store keys and
// bounds their length.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func lockKey(s subject) string { return strings.Replace(s.key, ":fail:", ":lock:", 1) }

// backoff is the lock length after count failures of a subject whose
// maximum is max: BaseBackoff at the max-th failure, doubling after.
func (t *throttle) backoff(count, max int64) time.Duration {
	n := count - max
	if n < 0 {
		n = 0
	}
	if n > 30 {
		return t.cfg.MaxBackoff
	}
	d := time.Duration(math.Min(float64(t.cfg.BaseBackoff)*math.Pow(2, float64(n)), float64(t.cfg.MaxBackoff)))
	return d
}

// check reads the subjects' locks and the first subject's failure count in
// one round trip. It returns how long the caller should wait when any
// subject is locked (0 otherwise), and whether the first subject has a
// failure count or lock that a successful sign-in must reset: without one,
// the success writes nothing, and a sign-in costs a round trip less.
func (t *throttle) check(ctx context.Context, subjects ...subject) (wait time.Duration, dirty bool, err error) {
	keys := make([]string, len(subjects), len(subjects)+1)
	for i, s := range subjects {
		keys[i] = lockKey(s)
	}
	keys = append(keys, subjects[0].key)
	counts, err := t.store.Count(ctx, keys...)
	if err != nil {
		return 0, false, fmt.Errorf("reading login locks: %w", err)
	}
	first := counts[len(subjects)]
	dirty = first > 0 || counts[0] > 0
	for i, s := range subjects {
		if counts[i] == 0 {
			continue
		}
		// The lock was set for backoff(failures at that time), and failures
		// do not count while locked, so this is the lock's length: an upper
		// bound of the time left.
		fails := first
		if i > 0 {
			n, err := t.store.Count(ctx, s.key)
			if err != nil {
				return 0, false, fmt.Errorf("reading login failures: %w", err)
			}
			fails = n[0]
		}
		wait = max(wait, t.backoff(fails, s.max))
	}
	return wait, dirty, nil
}

// fail counts a failed sign-in for each subject and locks those that reached
// their maximum.
func (t *throttle) fail(ctx context.Context, subjects ...subject) error {
	for _, s := range subjects {
		n, err := t.store.Hit(ctx, s.key, t.cfg.FailureWindow)
		if err != nil {
			return fmt.Errorf("counting login failure: %w", err)
		}
		if n >= s.max {
			if _, err := t.store.Hit(ctx, lockKey(s), t.backoff(n, s.max)); err != nil {
				return fmt.Errorf("locking login: %w", err)
			}
		}
	}
	return nil
}

// succeed resets a subject's failures and lock, in one round trip.
func (t *throttle) succeed(ctx context.Context, s subject) error {
	if err := t.store.Reset(ctx, s.key, lockKey(s)); err != nil {
		return fmt.Errorf("resetting login failures: %w", err)
	}
	return nil
}

// remoteIP is the default ClientIP: the connection's peer address. Behind a
// reverse proxy, pass a ClientIP that reads the proxy's header instead.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter formats a wait as whole seconds, rounded up (RFC 9110 §10.2.3).
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return fmt.Sprint(s)
}
