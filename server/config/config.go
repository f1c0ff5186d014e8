// Package config is Gatehouse's configuration: one typed struct, its defaults,
// loading from a YAML file plus GATEHOUSE_* environment overrides, and a
// validation that reports every problem at once.
package config

import (
	"log/slog"
	"time"
)

// Config is the whole configuration. The yaml tags are the file's keys; the
// environment variable for a key is GATEHOUSE_ followed by its path in upper
// case joined with "_" (tokens.access_token_lifetime ->
// GATEHOUSE_TOKENS_ACCESS_TOKEN_LIFETIME).
type Config struct {
	// Issuer is the OpenID Provider's issuer identifier (OIDC Discovery §2).
	Issuer string `yaml:"issuer"`
	// Dev relaxes the https requirement and fills in local defaults.
	Dev bool `yaml:"dev"`

	Listen       Listen       `yaml:"listen"`
	DatabaseURL  string       `yaml:"database_url"`
	Redis        Redis        `yaml:"redis"`
	Secrets      Secrets      `yaml:"secrets"`
	Tokens       Tokens       `yaml:"tokens"`
	Keys         Keys         `yaml:"keys"`
	PasswordHash PasswordHash `yaml:"password_hash"`
	Log          Log          `yaml:"log"`
	HTTP         HTTP         `yaml:"http"`
	UI           UI           `yaml:"ui"`
	Registration Registration `yaml:"registration"`
	OAuth        OAuth        `yaml:"oauth"`
	Clients      Clients      `yaml:"clients"`
	Users        Users        `yaml:"users"`
	Admin        Admin        `yaml:"admin"`
}

// Listen holds the listen addresses.
type Listen struct {
	// Public serves the OAuth/OIDC endpoints and the login pages.
	Public string `yaml:"public"`
	// Admin serves the admin API, health and metrics; empty disables it.
	Admin string `yaml:"admin"`
}

// Redis configures the optional Redis backend for short-lived records.
type Redis struct {
	// URL is empty to keep short-lived records in the SQL database.
	URL    string `yaml:"url"`
	Prefix string `yaml:"prefix"`
	// AllowEvictionPolicy accepts a Redis whose maxmemory-policy may evict
	// keys (sessions and tokens could then vanish early).
	AllowEvictionPolicy bool `yaml:"allow_eviction_policy"`
}

// Secrets holds the system secrets.
type Secrets struct {
	// System: the first secret is used for new MACs and encryption; the
	// others are still accepted, which lets a secret be rotated.
	System []Secret `yaml:"system"`
}

// Tokens holds token lifetimes.
type Tokens struct {
	AccessTokenLifetime   time.Duration `yaml:"access_token_lifetime"`
	RefreshTokenLifetime  time.Duration `yaml:"refresh_token_lifetime"`
	IDTokenLifetime       time.Duration `yaml:"id_token_lifetime"`
	AuthorizeCodeLifetime time.Duration `yaml:"authorize_code_lifetime"`
	// RefreshTokenGracePeriod lets a rotated refresh token be reused for a
	// short while (a client retrying after a lost response); 0 disables it.
	RefreshTokenGracePeriod time.Duration `yaml:"refresh_token_grace_period"`
}

// Keys configures the signing key set.
type Keys struct {
	Algorithms     []string      `yaml:"algorithms"`
	RotationPeriod time.Duration `yaml:"rotation_period"`
	// PublishAhead is how long a new key is in the JWKS before it signs.
	PublishAhead time.Duration `yaml:"publish_ahead"`
	RSABits      int           `yaml:"rsa_bits"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS document.
	JWKSMaxAge time.Duration `yaml:"jwks_max_age"`
}

// PasswordHash holds the argon2id parameters for new password hashes.
type PasswordHash struct {
	MemoryKiB   int `yaml:"memory_kib"`
	Iterations  int `yaml:"iterations"`
	Parallelism int `yaml:"parallelism"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
	// FlushInterval batches log lines: they are written at most this long
	// after they are logged (warnings and errors at once). 0 writes every
	// line as it comes, one write system call each.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// HTTP holds the HTTP server limits.
type HTTP struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
}

// UI configures the login and consent pages.
type UI struct {
	ProductName  string `yaml:"product_name"`
	LogoURL      string `yaml:"logo_url"`
	AccentColor  string `yaml:"accent_color"`
	TemplatesDir string `yaml:"templates_dir"`
}

// Registration policies (RFC 7591 §3: the server chooses who may register).
const (
	// RegistrationOpen lets anyone register a client.
	RegistrationOpen = "open"
	// RegistrationInitialAccessToken asks for an initial access token issued
	// with `gatehouse clients registration-token create` (RFC 7591 §3).
	RegistrationInitialAccessToken = "initial_access_token"
	// RegistrationDisabled turns the registration endpoints off.
	RegistrationDisabled = "disabled"
)

// Registration configures dynamic client registration (RFC 7591) and
// management (RFC 7592).
type Registration struct {
	// Policy is open, initial_access_token or disabled. The default is
	// disabled, except in dev mode where it is open unless set: an open
	// endpoint on a public server lets anyone create clients.
	Policy string `yaml:"policy"`
	// AccessTokenLifetime is how long a registration access token (RFC 7592
	// §3) lets its client read, update and delete its registration; 0 means
	// it does not expire.
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime"`
	// SecretRotationOverlap is how long the previous client secret keeps
	// working after a client asks for a new one on update; 0 stops it at once.
	SecretRotationOverlap time.Duration `yaml:"secret_rotation_overlap"`
	// MaxBodyBytes caps a registration request's body.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// OAuth holds server-wide protocol policy.
type OAuth struct {
	// RequirePushedAuthorizationRequests makes every client push its
	// authorization requests first (RFC 9126 §5); without it, only clients
	// registered with require_pushed_authorization_requests must.
	RequirePushedAuthorizationRequests bool `yaml:"require_pushed_authorization_requests"`
	// PKCE is required (the default: every authorization code request
	// needs PKCE, RFC 9700 §2.1.1) or public_clients (only public clients
	// must use it). Only S256 is accepted either way.
	PKCE string `yaml:"pkce"`
	// ImplicitEnabled and HybridEnabled turn on the response types that
	// return tokens from the authorization endpoint (response_type token,
	// id_token, "code id_token"...). Off by default (RFC 9700 §2.1.2).
	ImplicitEnabled bool `yaml:"implicit_enabled"`
	HybridEnabled   bool `yaml:"hybrid_enabled"`
	// RefreshWithoutOfflineAccess lists clients that get refresh tokens
	// without asking for offline_access (their grant_types must still
	// include refresh_token). Every other client gets one only when
	// offline_access was requested and granted (OIDC Core §11).
	RefreshWithoutOfflineAccess []string `yaml:"refresh_without_offline_access"`
}

// PKCE policies (oauth.pkce).
const (
	PKCERequired      = "required"
	PKCEPublicClients = "public_clients"
)

// Clients holds policy about registered clients.
type Clients struct {
	// AllowPrivateJWKSURI lets a client's jwks_uri and request_uri resolve to
	// loopback, private, link-local or CGNAT addresses. Off by default: a
	// client could otherwise make the server probe its internal network.
	AllowPrivateJWKSURI bool `yaml:"allow_private_jwks_uri"`
	// CacheTTL is how long each replica keeps a client it read: a change
	// made on another replica (a deleted client, a revoked secret) takes
	// effect within it. 0s reads the client on every request.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// Users holds policy about user accounts.
type Users struct {
	// CacheTTL is how long each replica keeps a user it read by ID, and a
	// user's consent to a client: a user disabled or deleted, or a consent
	// revoked, by another process (the CLI, another replica) keeps working
	// sessions, grants and consent-free sign-ins for up to this long;
	// through this process the change takes effect at once. 0s reads them
	// every time.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// Admin configures the admin API served on listen.admin.
type Admin struct {
	// Token is the bearer token the admin API requires (GATEHOUSE_ADMIN_TOKEN
	// or GATEHOUSE_ADMIN_TOKEN_FILE); at least MinAdminTokenBytes. Without
	// one the admin API answers 503, except in dev mode where a random token
	// is made at start and logged once.
	Token Secret `yaml:"token"`
	// PProf serves Go's profiler under /debug/pprof/ on the admin listener,
	// behind the admin token (so it needs one).
	PProf bool `yaml:"pprof"`
}

// Dev-mode defaults.
const (
	DevIssuer      = "http://localhost:8080"
	DevDatabaseURL = "sqlite://gatehouse-dev.db"
	// DevSecretFile is created next to the database in dev mode when no
	// system secret is configured.
	DevSecretFile = "gatehouse-dev.secret"
)

// Default returns the defaults. Issuer and system secrets have none outside
// dev mode: they must be configured.
func Default() Config {
	return Config{
		Listen:      Listen{Public: ":8080", Admin: "127.0.0.1:8081"},
		DatabaseURL: "sqlite://gatehouse.db",
		Redis:       Redis{Prefix: "gatehouse:"},
		Tokens: Tokens{
			AccessTokenLifetime:   time.Hour,
			RefreshTokenLifetime:  720 * time.Hour,
			IDTokenLifetime:       time.Hour,
			AuthorizeCodeLifetime: 10 * time.Minute,
		},
		Keys: Keys{
			Algorithms:     []string{"RS256", "ES256"},
			RotationPeriod: 720 * time.Hour,
			PublishAhead:   24 * time.Hour,
			RSABits:        2048,
			JWKSMaxAge:     15 * time.Minute,
		},
		// OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
		PasswordHash: PasswordHash{MemoryKiB: 19456, Iterations: 2, Parallelism: 1},
		Log:          Log{Level: "info", Format: "text", FlushInterval: 100 * time.Millisecond},
		HTTP: HTTP{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxBodyBytes:      1 << 20,
		},
		UI:           UI{ProductName: "Gatehouse", AccentColor: "#2f6fed"},
		Registration: Registration{Policy: RegistrationDisabled, MaxBodyBytes: 64 << 10},
		Clients:      Clients{CacheTTL: 5 * time.Second},
		Users:        Users{CacheTTL: 5 * time.Second},
		OAuth:        OAuth{PKCE: PKCERequired},
	}
}

// SystemSecrets returns the system secrets' values, current first.
func (c Config) SystemSecrets() [][]byte {
	out := make([][]byte, len(c.Secrets.System))
	for i, s := range c.Secrets.System {
		out[i] = s.Bytes()
	}
	return out
}

// SlogLevel is the configured level; info when it is not a known name
// (Validate reports that).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
