package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits checked by Validate.
const (
	// MinSecretBytes is the shortest accepted system secret.
	MinSecretBytes = 32
	// MinAdminTokenBytes is the shortest accepted admin API token.
	MinAdminTokenBytes = 32
	// MinArgon2MemoryKiB is OWASP's argon2id minimum (19 MiB).
	MinArgon2MemoryKiB = 19 * 1024
	// MaxArgon2MemoryKiB bounds the memory one login may take (1 GiB).
	MaxArgon2MemoryKiB = 1 << 20
	// MaxArgon2Iterations bounds the time one login may take.
	MaxArgon2Iterations = 64
)

// SigningAlgorithms are the JWS algorithms Gatehouse can sign with.
var SigningAlgorithms = []string{"RS256", "ES256", "EdDSA", "PS256"}

var accentColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Validate reports every problem of the configuration at once, each naming
// the key and how to fix it.
func (c Config) Validate() error {
	v := &validator{}
	v.issuer(c.Issuer, c.Dev)
	v.listen("listen.public", c.Listen.Public, false)
	v.listen("listen.admin", c.Listen.Admin, true)
	v.database(c.DatabaseURL)
	v.redis(c.Redis)
	v.secrets(c.Secrets.System)
	v.tokens(c.Tokens)
	v.keys(c.Keys)
	v.passwordHash(c.PasswordHash)
	v.log(c.Log)
	v.http(c.HTTP)
	v.ui(c.UI)
	v.registration(c.Registration, c.HTTP.MaxBodyBytes)
	v.admin(c.Admin, c.Dev)
	v.oauth(c.OAuth)
	if c.Clients.CacheTTL < 0 || c.Clients.CacheTTL > 5*time.Minute {
		v.add("clients.cache_ttl", "%s is out of range: use 0s (no cache) up to 5m (5s is the default)", c.Clients.CacheTTL)
	}
	if c.Users.CacheTTL < 0 || c.Users.CacheTTL > 5*time.Minute {
		v.add("users.cache_ttl", "%s is out of range: use 0s (no cache) up to 5m (5s is the default)", c.Users.CacheTTL)
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// issuer follows OIDC Discovery §2 / RFC 8414 §2: an https URL with no query
// or fragment. Plain http is allowed for loopback hosts and in dev mode.
func (v *validator) issuer(s string, dev bool) {
	const key = "issuer"
	if s == "" {
		v.add(key, "required: set it to the public base URL, e.g. https://login.example.com (or run with --dev)")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		v.add(key, "%q is not a URL: set it to the public base URL, e.g. https://login.example.com", s)
		return
	}
	if !u.IsAbs() || u.Host == "" {
		v.add(key, "%q must be an absolute URL with a host, e.g. https://login.example.com", s)
		return
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		v.add(key, "%q must not have a query or fragment (OIDC Discovery §2): remove them", s)
	}
	if u.User != nil {
		v.add(key, "%q must not contain user information: remove the user@ part", s)
	}
	if strings.HasSuffix(u.Path, "/") {
		v.add(key, "%q must not end with a slash: write it without the trailing /", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !dev && !isLoopback(u.Hostname()) {
			v.add(key, "%q uses http on a public host: use https (http is only allowed for localhost or with dev: true)", s)
		}
	default:
		v.add(key, "%q has scheme %q: use https", s, u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (v *validator) listen(key, addr string, optional bool) {
	if addr == "" {
		if !optional {
			v.add(key, "required: set a listen address such as :8080")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q is not a host:port address: use a form such as :8080 or 127.0.0.1:8081", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "%q has an invalid port: use a number between 0 and 65535", addr)
	}
}

func (v *validator) database(s string) {
	const key = "database_url"
	if s == "" {
		v.add(key, "required: use sqlite://path/to/file.db or postgres://user@host/db")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		// The error text may contain the password; do not echo it.
		v.add(key, "not a URL: use sqlite://path/to/file.db or postgres://user@host/db")
		return
	}
	switch u.Scheme {
	case "sqlite":
		if strings.TrimPrefix(s, "sqlite://") == "" {
			v.add(key, "the sqlite URL names no file: use sqlite://path/to/file.db")
		}
	case "postgres", "postgresql":
	default:
		v.add(key, "scheme %q is not supported: use sqlite:// or postgres://", u.Scheme)
	}
}

func (v *validator) redis(r Redis) {
	if r.URL == "" {
		return
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		v.add("redis.url", "not a URL: use redis://host:6379/0, rediss:// for TLS, or unix:///path")
		return
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		v.add("redis.url", "scheme %q is not supported: use redis://, rediss:// or unix://", u.Scheme)
	}
	if r.Prefix == "" {
		v.add("redis.prefix", "must not be empty when redis.url is set: use e.g. \"gatehouse:\" so keys do not collide with other data")
	}
}

func (v *validator) secrets(system []Secret) {
	const key = "secrets.system"
	if len(system) == 0 {
		v.add(key, "at least one secret is required: generate one with: openssl rand -base64 48 (or set GATEHOUSE_SECRETS_SYSTEM_FILE)")
		return
	}
	for i, s := range system {
		if s.Len() < MinSecretBytes {
			// Never print the secret, only its position and length.
			v.add(fmt.Sprintf("%s[%d]", key, i), "is %d bytes, at least %d are required: generate one with: openssl rand -base64 48", s.Len(), MinSecretBytes)
		}
	}
}

func (v *validator) positive(key string, d time.Duration) bool {
	if d <= 0 {
		v.add(key, "must be positive: use a Go duration such as 15m or 1h")
		return false
	}
	return true
}

func (v *validator) tokens(t Tokens) {
	okAccess := v.positive("tokens.access_token_lifetime", t.AccessTokenLifetime)
	okRefresh := v.positive("tokens.refresh_token_lifetime", t.RefreshTokenLifetime)
	if v.positive("tokens.id_token_lifetime", t.IDTokenLifetime) && t.IDTokenLifetime > 24*time.Hour {
		v.add("tokens.id_token_lifetime", "%s is longer than 24h: ID tokens are read once at sign-in, use 1h", t.IDTokenLifetime)
	}
	if okAccess && t.AccessTokenLifetime > 24*time.Hour {
		v.add("tokens.access_token_lifetime", "%s is longer than 24h: bearer tokens cannot be recalled, use a short lifetime and refresh tokens", t.AccessTokenLifetime)
	}
	if okAccess && okRefresh && t.RefreshTokenLifetime < t.AccessTokenLifetime {
		v.add("tokens.refresh_token_lifetime", "%s is shorter than tokens.access_token_lifetime (%s): make it at least as long", t.RefreshTokenLifetime, t.AccessTokenLifetime)
	}
	// RFC 6749 §4.1.2: a maximum authorization code lifetime of 10 minutes is RECOMMENDED.
	if v.positive("tokens.authorize_code_lifetime", t.AuthorizeCodeLifetime) && t.AuthorizeCodeLifetime > 10*time.Minute {
		v.add("tokens.authorize_code_lifetime", "%s is longer than 10m (RFC 6749 §4.1.2): use 10m or less", t.AuthorizeCodeLifetime)
	}
	if t.RefreshTokenGracePeriod < 0 || t.RefreshTokenGracePeriod > 5*time.Minute {
		v.add("tokens.refresh_token_grace_period", "%s is out of range: use 0s (off) up to 5m, enough to cover a retried request", t.RefreshTokenGracePeriod)
	}
}

func (v *validator) keys(k Keys) {
	if len(k.Algorithms) == 0 {
		v.add("keys.algorithms", "empty: list at least RS256")
	}
	seen := map[string]bool{}
	for _, a := range k.Algorithms {
		if !slices.Contains(SigningAlgorithms, a) {
			v.add("keys.algorithms", "%q is not supported: use some of %s", a, strings.Join(SigningAlgorithms, ", "))
		}
		if seen[a] {
			v.add("keys.algorithms", "%q is listed twice: list each algorithm once", a)
		}
		seen[a] = true
	}
	// OIDC Core §15.1 / Discovery §3: RS256 must be among the ID token signing algorithms.
	if len(k.Algorithms) > 0 && !seen["RS256"] {
		v.add("keys.algorithms", "must include RS256 (OpenID Connect requires it): add RS256")
	}
	if k.RSABits < 2048 || k.RSABits > 8192 {
		v.add("keys.rsa_bits", "%d is out of range: use 2048, 3072 or 4096", k.RSABits)
	}
	okRotation := v.positive("keys.rotation_period", k.RotationPeriod)
	if k.PublishAhead < 0 {
		v.add("keys.publish_ahead", "must not be negative: use e.g. 24h")
	} else if okRotation && k.PublishAhead >= k.RotationPeriod {
		v.add("keys.publish_ahead", "%s must be shorter than keys.rotation_period (%s)", k.PublishAhead, k.RotationPeriod)
	}
	// A relying party holding a cached JWKS must see a new key before it signs.
	if v.positive("keys.jwks_max_age", k.JWKSMaxAge) && k.PublishAhead >= 0 && k.JWKSMaxAge > k.PublishAhead {
		v.add("keys.jwks_max_age", "%s is longer than keys.publish_ahead (%s): caches would miss new keys, make publish_ahead at least jwks_max_age", k.JWKSMaxAge, k.PublishAhead)
	}
}

func (v *validator) passwordHash(p PasswordHash) {
	if p.MemoryKiB < MinArgon2MemoryKiB || p.MemoryKiB > MaxArgon2MemoryKiB {
		v.add("password_hash.memory_kib", "%d is out of range: use %d (19 MiB) up to %d", p.MemoryKiB, MinArgon2MemoryKiB, MaxArgon2MemoryKiB)
	}
	if p.Iterations < 1 || p.Iterations > MaxArgon2Iterations {
		v.add("password_hash.iterations", "%d is out of range: use 1 to %d (2 is the usual choice)", p.Iterations, MaxArgon2Iterations)
	}
	if p.Parallelism < 1 || p.Parallelism > 255 {
		v.add("password_hash.parallelism", "%d is out of range: use 1 to 255", p.Parallelism)
	}
}

func (v *validator) log(l Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q is unknown: use debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		v.add("log.format", "%q is unknown: use text or json", l.Format)
	}
	if l.FlushInterval < 0 || l.FlushInterval > 10*time.Second {
		v.add("log.flush_interval", "%s is out of range: use 0s (write every line at once) up to 10s (100ms is the default)", l.FlushInterval)
	}
}

func (v *validator) http(h HTTP) {
	v.positive("http.read_header_timeout", h.ReadHeaderTimeout)
	v.positive("http.read_timeout", h.ReadTimeout)
	v.positive("http.write_timeout", h.WriteTimeout)
	v.positive("http.idle_timeout", h.IdleTimeout)
	if h.MaxBodyBytes <= 0 {
		v.add("http.max_body_bytes", "must be positive: use e.g. 1048576 (1 MiB)")
	}
}

func (v *validator) ui(u UI) {
	if strings.TrimSpace(u.ProductName) == "" {
		v.add("ui.product_name", "must not be empty: use e.g. Gatehouse")
	}
	// The pages' Content-Security-Policy allows images from 'self' and https:
	// only, so this is the rule server/web enforces at start: an https URL
	// with a host, or a path on this server.
	if u.LogoURL != "" {
		l, err := url.Parse(u.LogoURL)
		switch {
		case err != nil:
			v.add("ui.logo_url", "%q is not a URL: use an https URL or a path such as /static/logo.svg", u.LogoURL)
		case strings.HasPrefix(u.LogoURL, "//"):
			v.add("ui.logo_url", "%q has no scheme: write it as https:%s", u.LogoURL, u.LogoURL)
		case l.Scheme == "http":
			v.add("ui.logo_url", "%q uses http, which the pages' Content-Security-Policy blocks: serve the logo over https or from a path such as /static/logo.svg", u.LogoURL)
		case l.IsAbs() && l.Scheme != "https":
			v.add("ui.logo_url", "%q has scheme %q: use an https URL or a path such as /static/logo.svg", u.LogoURL, l.Scheme)
		case l.IsAbs() && l.Host == "":
			v.add("ui.logo_url", "%q has no host: use an https URL such as https://cdn.example.com/logo.svg", u.LogoURL)
		case !l.IsAbs() && !strings.HasPrefix(u.LogoURL, "/"):
			v.add("ui.logo_url", "%q is relative: use an https URL or a path starting with /", u.LogoURL)
		}
	}
	// The color goes into a style attribute; the pattern keeps CSS out.
	if !accentColor.MatchString(u.AccentColor) {
		v.add("ui.accent_color", "%q is not a color: use #rgb or #rrggbb, e.g. #2f6fed", u.AccentColor)
	}
	if u.TemplatesDir != "" {
		if st, err := os.Stat(u.TemplatesDir); err != nil || !st.IsDir() {
			v.add("ui.templates_dir", "%q is not a directory: fix the path or leave it empty for the built-in templates", u.TemplatesDir)
		}
	}
}

// MaxRegistrationBodyBytes bounds registration.max_body_bytes: client
// metadata, even with an inline jwks, is a few KiB.
const MaxRegistrationBodyBytes = 1 << 20

func (v *validator) registration(r Registration, httpMax int64) {
	switch r.Policy {
	case RegistrationOpen, RegistrationInitialAccessToken, RegistrationDisabled:
	default:
		v.add("registration.policy", "%q is unknown: use disabled, initial_access_token or open", r.Policy)
	}
	if r.AccessTokenLifetime < 0 {
		v.add("registration.access_token_lifetime", "must not be negative: use 0s (never expires) or a duration such as 720h")
	}
	if r.SecretRotationOverlap < 0 || r.SecretRotationOverlap > 720*time.Hour {
		v.add("registration.secret_rotation_overlap", "%s is out of range: use 0s (the old secret stops at once) up to 720h", r.SecretRotationOverlap)
	}
	switch {
	case r.MaxBodyBytes < 1024 || r.MaxBodyBytes > MaxRegistrationBodyBytes:
		v.add("registration.max_body_bytes", "%d is out of range: use 1024 up to %d (65536 is the usual choice)", r.MaxBodyBytes, MaxRegistrationBodyBytes)
	case httpMax > 0 && r.MaxBodyBytes > httpMax:
		v.add("registration.max_body_bytes", "%d is larger than http.max_body_bytes (%d): make it at most that", r.MaxBodyBytes, httpMax)
	}
}

// admin checks the admin API token: it guards every user and client, so it
// must be as hard to guess as a system secret.
func (v *validator) admin(a Admin, dev bool) {
	const key = "admin.token"
	if a.Token.IsZero() {
		// Dev mode makes a token at start (and logs it).
		if a.PProf && !dev {
			v.add("admin.pprof", "needs admin.token: the profiler is behind the admin token (set GATEHOUSE_ADMIN_TOKEN or GATEHOUSE_ADMIN_TOKEN_FILE, or turn admin.pprof off)")
		}
		return
	}
	if a.Token.Len() < MinAdminTokenBytes {
		v.add(key, "is %d bytes: use at least %d random bytes, e.g. the output of `openssl rand -base64 48`", a.Token.Len(), MinAdminTokenBytes)
	}
	if strings.TrimSpace(a.Token.Reveal()) != a.Token.Reveal() {
		v.add(key, "has leading or trailing white space: remove it (a bearer token cannot carry it)")
	}
}

func (v *validator) oauth(o OAuth) {
	if o.PKCE != PKCERequired && o.PKCE != PKCEPublicClients {
		v.add("oauth.pkce", "%q is not a PKCE policy: use %s (every client, the default) or %s", o.PKCE, PKCERequired, PKCEPublicClients)
	}
	seen := map[string]bool{}
	for _, id := range o.RefreshWithoutOfflineAccess {
		switch {
		case strings.TrimSpace(id) == "":
			v.add("oauth.refresh_without_offline_access", "an empty client ID: list client IDs")
		case seen[id]:
			v.add("oauth.refresh_without_offline_access", "client %q is listed twice", id)
		}
		seen[id] = true
	}
}
