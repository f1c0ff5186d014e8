// Package jwksfetch fetches clients' JSON Web Key Sets (RFC 7591 §2
// jwks_uri) and request objects by reference (RFC 9101 §5.2) without letting
// a registered URL reach the server's own network: https only, every dialed
// address checked (so DNS rebinding cannot slip past a check done at
// registration), no redirects, a short timeout and a size cap. Key sets are
// cached per URI in a small LRU.
package jwksfetch

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Config configures a Fetcher. Zero values take the documented defaults.
type Config struct {
	// AllowPrivate lets URLs resolve to loopback, private, link-local and
	// other internal addresses (config clients.allow_private_jwks_uri). Off
	// in production: a client could otherwise make the server probe its own
	// network.
	AllowPrivate bool
	Timeout      time.Duration // per fetch; default 5s
	MaxBytes     int64         // response body cap; default 64 KiB
	TTL          time.Duration // how long a fetched key set is used; default 5m
	// MinRefresh bounds forced refetches (an unknown kid) to one per URI in
	// this period, so a stream of bad assertions cannot hammer the client's
	// server; default 1m.
	MinRefresh time.Duration
	CacheSize  int // URIs kept; default 256
	// RootCAs overrides the system roots (tests with httptest TLS servers).
	RootCAs *x509.CertPool
	Logger  *slog.Logger
	Now     func() time.Time
}

// Fetcher fetches documents and key sets; it is safe for concurrent use.
type Fetcher struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	lru   *list.List // of *entry, most recent first
	byURI map[string]*list.Element
}

type entry struct {
	uri       string
	keys      *jose.JSONWebKeySet
	fetchedAt time.Time
}

// Errors callers may test for.
var (
	ErrForbiddenAddress = errors.New("address not allowed")
	ErrTooLarge         = errors.New("response too large")
	ErrPrivateKey       = errors.New("key set contains private key material")
	ErrNoKeys           = errors.New("key set has no usable key")
)

// New returns a Fetcher.
func New(cfg Config) *Fetcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 10
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = time.Minute
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Fetcher{cfg: cfg, log: cfg.Logger, lru: list.New(), byURI: map[string]*list.Element{}}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: f.checkDial}
	transport := &http.Transport{
		// No proxy: the proxy's address would be dialed instead of the
		// target's, defeating the address check.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	f.client = &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect could lead anywhere; registered URLs must be final.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}
	return f
}

// checkDial runs for every address the dialer tries, after DNS resolution.
func (f *Fetcher) checkDial(_, address string, _ syscall.RawConn) error {
	if f.cfg.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("parsing dialed address %q: %w", address, err)
	}
	if !PublicAddr(ap.Addr()) {
		return fmt.Errorf("dialing %s: %w", ap.Addr(), ErrForbiddenAddress)
	}
	return nil
}

// nonPublic are the special-purpose ranges (RFC 6890 and successors) that
// net/netip's predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may map to an internal IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

// PublicAddr reports whether a is a globally routable unicast address: not
// loopback, private, link-local, unspecified, multicast, CGNAT or another
// special-purpose range.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Fetch GETs an https URL and returns its body, refusing internal addresses
// (unless allowed), redirects, non-200 answers and bodies over the cap.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, accept string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("fetching %q: only absolute https URLs without credentials are allowed", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", u.Redacted(), err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, f.cfg.MaxBytes))
		return nil, fmt.Errorf("fetching %s: status %d", u.Redacted(), resp.StatusCode)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, fmt.Errorf("fetching %s: %d bytes: %w", u.Redacted(), resp.ContentLength, ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.Redacted(), err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, fmt.Errorf("fetching %s: over %d bytes: %w", u.Redacted(), f.cfg.MaxBytes, ErrTooLarge)
	}
	return body, nil
}

// KeySet returns the key set at uri, from the cache while it is fresh.
func (f *Fetcher) KeySet(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if e, ok := f.cached(uri); ok && f.cfg.Now().Sub(e.fetchedAt) < f.cfg.TTL {
		return e.keys, nil
	}
	return f.fetchKeySet(ctx, uri)
}

// Refresh refetches the key set at uri because a key was not found in it
// (the client rotated keys), unless it was fetched less than MinRefresh ago;
// then it returns the cached set.
func (f *Fetcher) Refresh(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if e, ok := f.cached(uri); ok && f.cfg.Now().Sub(e.fetchedAt) < f.cfg.MinRefresh {
		return e.keys, nil
	}
	return f.fetchKeySet(ctx, uri)
}

func (f *Fetcher) fetchKeySet(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	body, err := f.Fetch(ctx, uri, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, err
	}
	keys, err := ParseKeySet(body)
	if err != nil {
		return nil, fmt.Errorf("parsing key set from %s: %w", uri, err)
	}
	f.store(uri, keys)
	f.log.LogAttrs(ctx, slog.LevelDebug, "fetched client key set", slog.String("jwks_uri", uri), slog.Int("keys", len(keys.Keys)))
	return keys, nil
}

func (f *Fetcher) cached(uri string) (entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.byURI[uri]
	if !ok {
		return entry{}, false
	}
	f.lru.MoveToFront(el)
	return *el.Value.(*entry), true
}

func (f *Fetcher) store(uri string, keys *jose.JSONWebKeySet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Now()
	if el, ok := f.byURI[uri]; ok {
		e := el.Value.(*entry)
		e.keys, e.fetchedAt = keys, now
		f.lru.MoveToFront(el)
		return
	}
	f.byURI[uri] = f.lru.PushFront(&entry{uri: uri, keys: keys, fetchedAt: now})
	for f.lru.Len() > f.cfg.CacheSize {
		last := f.lru.Back()
		f.lru.Remove(last)
		delete(f.byURI, last.Value.(*entry).uri)
	}
}

// privateMembers are the JWK members that hold secret material (RFC 7518
// §6.2.2, §6.3.2, §6.4 and RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// ParseKeySet parses a JWK Set (RFC 7517 §5) of public keys. A set holding
// any private or symmetric key is refused as a whole: such a client has
// leaked its key, and trusting the rest would hide that. Keys of an unknown
// type are skipped (RFC 7517 §5: "ignore JWKs ... that it does not
// understand"); a set left with none is an error.
func ParseKeySet(b []byte) (*jose.JSONWebKeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decoding key set: %w", err)
	}
	out := &jose.JSONWebKeySet{}
	for _, rk := range raw.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(rk, &members); err != nil {
			return nil, fmt.Errorf("decoding key: %w", err)
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, fmt.Errorf("key has member %q: %w", m, ErrPrivateKey)
			}
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(rk); err != nil {
			continue
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, ErrPrivateKey
		}
		out.Keys = append(out.Keys, k)
	}
	if len(out.Keys) == 0 {
		return nil, ErrNoKeys
	}
	return out, nil
}
