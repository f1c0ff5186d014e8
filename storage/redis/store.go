// Package redis keeps Gatehouse's short-lived records (sessions, grant and
// token request records, the replay cache and throttle counters) in Redis:
// a single server, a Sentinel-managed primary or a Redis Cluster.
//
// Every key it writes expires with its record (PEXPIREAT at ExpiresAt), and
// reads treat a record whose ExpiresAt has passed as absent even in the
// instant before Redis drops it. Changes that must happen exactly once run as
// Lua scripts over the keys of one grant, which share a Redis Cluster hash
// tag; see keys.go for the layout.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/ttlcache"
)

// DefaultPrefix starts every key when Config.Prefix is empty.
const DefaultPrefix = "gatehouse:"

// ErrUnreachable is wrapped by Open's error when the server does not answer.
var ErrUnreachable = errors.New("redis unreachable")

// Config configures Open.
type Config struct {
	// URL names the server, in one of these forms:
	//
	//	redis://[[user]:password@]host[:port][/db][?option=value...]
	//	rediss://...                  the same over TLS
	//	unix://[[user]:password@]/path/to/socket[?db=n]
	//	redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db][?option=value...]
	//	redis+cluster://[[user]:password@]host[:port][,host[:port]...][?option=value...]
	//	rediss+sentinel://..., rediss+cluster://...   over TLS
	//
	// For Sentinel the hosts are the sentinels (default port 26379) and the
	// user info authenticates to the primary; sentinel_username and
	// sentinel_password options authenticate to the sentinels. For Cluster
	// the hosts are seed nodes (default port 6379). The options are go-redis's
	// URL options (dial_timeout, read_timeout, pool_size, skip_verify, ...).
	URL string
	// Prefix starts every key (default DefaultPrefix), so that several
	// deployments can share a server. It must not contain { or }.
	Prefix string
	// AllowEvictionPolicy lets Open accept a maxmemory-policy other than
	// noeviction, under which Redis may drop live grants and sessions.
	AllowEvictionPolicy bool
	// Logger receives warnings about the server's configuration; nil discards them.
	Logger *slog.Logger
}

// Store is the Redis backend of storage.Ephemeral.
type Store struct {
	client goredis.UniversalClient
	keys   keys
	log    *slog.Logger
	// tokenGrants caches the grant that an access token's signature points
	// to (see GetRequest).
	tokenGrants *ttlcache.Cache[string, string]
}

// tokenGrantsSize bounds tokenGrants: about 200 bytes an entry.
const tokenGrantsSize = 8192

var _ storage.Ephemeral = (*Store)(nil)

// Open connects, checks the server answers and that its configuration cannot
// silently lose records (see Config.AllowEvictionPolicy).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	ep, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	client := ep.newClient()
	s := &Store{client: client, keys: keys{prefix: prefix}, log: log,
		tokenGrants: ttlcache.New[string, string](tokenGrantsSize, nil)}
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("pinging %s: %w: %w", ep, ErrUnreachable, err)
	}
	if err := s.checkServers(ctx, cfg.AllowEvictionPolicy); err != nil {
		client.Close()
		return nil, fmt.Errorf("checking %s: %w", ep, err)
	}
	log.Info("redis storage ready", "server", ep.String(), "prefix", prefix)
	return s, nil
}

// checkServers checks the configuration of every primary that holds data.
func (s *Store) checkServers(ctx context.Context, allowEviction bool) error {
	if cc, ok := s.client.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			return s.checkServer(ctx, c, allowEviction)
		})
	}
	return s.checkServer(ctx, s.client, allowEviction)
}

func (s *Store) checkServer(ctx context.Context, c goredis.Cmdable, allowEviction bool) error {
	policy, err := configGet(ctx, c, "maxmemory-policy")
	if err != nil {
		var rerr goredis.Error
		if errors.As(err, &rerr) {
			// Managed services often disable or rename CONFIG.
			s.log.Warn("cannot read redis configuration; make sure maxmemory-policy is noeviction and persistence is on",
				"error", err.Error())
			return nil
		}
		return fmt.Errorf("reading maxmemory-policy: %w", err)
	}
	switch {
	case policy == "noeviction":
	case allowEviction:
		s.log.Warn("redis may evict keys: grants and sessions can disappear before they expire",
			"maxmemory_policy", policy)
	default:
		return fmt.Errorf("redis maxmemory-policy is %q, under which Redis may drop live grants and sessions: "+
			"set maxmemory-policy noeviction, or set redis.allow_eviction_policy: true to accept losing grants", policy)
	}
	aof, errA := configGet(ctx, c, "appendonly")
	save, errS := configGet(ctx, c, "save")
	if errA == nil && errS == nil && aof != "yes" && save == "" {
		s.log.Warn("redis persistence is off (neither AOF nor RDB snapshots): a restart loses every session and grant")
	}
	return nil
}

func configGet(ctx context.Context, c goredis.Cmdable, name string) (string, error) {
	m, err := c.ConfigGet(ctx, name).Result()
	if err != nil {
		return "", err
	}
	v, ok := m[name]
	if !ok {
		return "", fmt.Errorf("config parameter %s not reported", name)
	}
	return v, nil
}

// Ping checks the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.client.Close() }

// pxat is the PXAT/PEXPIREAT argument for an expiry: rounded up to the
// millisecond so that a key never disappears before its record expires,
// and at least 1 since Redis refuses 0.
func pxat(t time.Time) int64 {
	ms := (t.UnixMicro() + 999) / 1000
	return max(ms, 1)
}

// setNX sets key to val until exp unless key exists, and reports whether it did.
func setNX(ctx context.Context, c goredis.UniversalClient, key string, val any, exp time.Time) (bool, error) {
	err := c.Do(ctx, "set", key, val, "pxat", pxat(exp), "nx").Err()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// expired reports whether a record expiring at exp is gone at now.
func expired(exp, now time.Time) bool { return !exp.After(now) }
