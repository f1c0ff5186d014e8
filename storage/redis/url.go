package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// endpoint is a parsed Config.URL: exactly one of the option sets is set.
type endpoint struct {
	simple   *goredis.Options
	failover *goredis.FailoverOptions
	cluster  *goredis.ClusterOptions
}

// parseURL reads the URL forms documented on Config.URL.
func parseURL(raw string) (endpoint, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return endpoint{}, errors.New("parsing redis url: missing scheme (want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)")
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		o, err := goredis.ParseURL(raw)
		if err != nil {
			return endpoint{}, fmt.Errorf("parsing redis url: %w", unwrapURLError(err))
		}
		return endpoint{simple: o}, nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := parseSentinel(strings.TrimSuffix(strings.ToLower(scheme), "+sentinel"), rest)
		if err != nil {
			return endpoint{}, fmt.Errorf("parsing redis sentinel url: %w", err)
		}
		return endpoint{failover: o}, nil
	case "redis+cluster", "rediss+cluster":
		o, err := parseCluster(strings.TrimSuffix(strings.ToLower(scheme), "+cluster"), rest)
		if err != nil {
			return endpoint{}, fmt.Errorf("parsing redis cluster url: %w", err)
		}
		return endpoint{cluster: o}, nil
	default:
		return endpoint{}, fmt.Errorf("parsing redis url: unsupported scheme %q", scheme)
	}
}

// multiHost splits "[userinfo@]host[:port][,host[:port]...][/path][?query]",
// which net/url cannot parse because of the host list.
type multiHost struct {
	user  *url.Userinfo
	hosts []string // host:port, default port applied
	path  string
	query url.Values
}

func parseMultiHost(rest string, defaultPort string) (multiHost, error) {
	var m multiHost
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		// Let net/url decode the percent-encoded user info.
		u, err := url.Parse("x://" + authority[:i] + "@h")
		if err != nil {
			return m, fmt.Errorf("user info: %w", unwrapURLError(err))
		}
		m.user, authority = u.User, authority[i+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return m, errors.New("empty host in host list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: the default one.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
		}
		if host == "" {
			return m, fmt.Errorf("host %q: empty host name", h)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return m, fmt.Errorf("host %q: invalid port", h)
		}
		m.hosts = append(m.hosts, net.JoinHostPort(host, port))
	}
	u, err := url.Parse(tail)
	if err != nil {
		return m, unwrapURLError(err)
	}
	m.path, m.query = u.Path, u.Query()
	return m, nil
}

func parseSentinel(scheme, rest string) (*goredis.FailoverOptions, error) {
	m, err := parseMultiHost(rest, "26379")
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(m.path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, errors.New("path must be /<master name>[/<db>]")
	}
	db := "0"
	if len(parts) == 2 {
		db = parts[1]
	}
	if _, err := strconv.Atoi(db); err != nil {
		return nil, fmt.Errorf("invalid database number %q", db)
	}
	// Reuse go-redis's option parser: it knows every tuning parameter.
	q := m.query
	su := url.UserPassword(q.Get("sentinel_username"), q.Get("sentinel_password"))
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	q.Set("master_name", parts[0])
	q.Del("addr")
	for _, h := range m.hosts[1:] {
		q.Add("addr", h)
	}
	if m.user != nil {
		q.Set("username", m.user.Username())
		if p, ok := m.user.Password(); ok {
			q.Set("password", p)
		}
	}
	u := url.URL{Scheme: scheme, Host: m.hosts[0], Path: "/" + db, RawQuery: q.Encode()}
	if su.String() != ":" {
		u.User = su
	}
	o, err := goredis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, unwrapURLError(err)
	}
	return o, nil
}

func parseCluster(scheme, rest string) (*goredis.ClusterOptions, error) {
	m, err := parseMultiHost(rest, "6379")
	if err != nil {
		return nil, err
	}
	if strings.Trim(m.path, "/") != "" {
		return nil, errors.New("a cluster url has no path: Redis Cluster has only database 0")
	}
	q := m.query
	q.Del("addr")
	for _, h := range m.hosts[1:] {
		q.Add("addr", h)
	}
	u := url.URL{Scheme: scheme, User: m.user, Host: m.hosts[0], RawQuery: q.Encode()}
	o, err := goredis.ParseClusterURL(u.String())
	if err != nil {
		return nil, unwrapURLError(err)
	}
	return o, nil
}

// unwrapURLError drops the URL that *url.Error quotes: it may hold a password.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newClient builds the client for e; all three satisfy UniversalClient.
func (e endpoint) newClient() goredis.UniversalClient {
	switch {
	case e.failover != nil:
		return goredis.NewFailoverClient(e.failover)
	case e.cluster != nil:
		return goredis.NewClusterClient(e.cluster)
	default:
		return goredis.NewClient(e.simple)
	}
}

// String describes e for logs and errors, without credentials.
func (e endpoint) String() string {
	switch {
	case e.failover != nil:
		return fmt.Sprintf("sentinel master %q via %s db %d", e.failover.MasterName, strings.Join(e.failover.SentinelAddrs, ","), e.failover.DB)
	case e.cluster != nil:
		return "cluster " + strings.Join(e.cluster.Addrs, ",")
	default:
		return fmt.Sprintf("%s %s db %d", e.simple.Network, e.simple.Addr, e.simple.DB)
	}
}
