package keys

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// JWS algorithms a Manager can hold keys for.
const (
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256; mandatory (OIDC Core §15.1)
	PS256 = "PS256" // RSASSA-PSS with SHA-256
	ES256 = "ES256" // ECDSA P-256 with SHA-256
	EdDSA = "EdDSA" // Ed25519 (RFC 8037)
)

// Supported lists every algorithm a Manager accepts in Config.Algorithms.
var Supported = []string{RS256, ES256, EdDSA, PS256}

// Defaults of Config.
const (
	DefaultRotationPeriod = 30 * 24 * time.Hour
	DefaultPublishAhead   = 24 * time.Hour
	DefaultRetireAfter    = 7 * 24 * time.Hour
	DefaultJWKSMaxAge     = 15 * time.Minute
	DefaultPollInterval   = 5 * time.Second
	MaxPollInterval       = 10 * time.Second
	DefaultRSABits        = 2048
	MinRSABits            = 2048
)

// DefaultAlgorithms is used when Config.Algorithms is empty: RS256 because
// OIDC Core §15.1 makes it mandatory, ES256 for JWT access tokens.
var DefaultAlgorithms = []string{RS256, ES256}

// Config configures a Manager. Zero fields take the defaults above.
type Config struct {
	// Algorithms to keep a signing key for. RS256 is always included
	// (OIDC Core §15.1); it is appended when missing.
	Algorithms []string
	// RotationPeriod is how long a key signs before Run rotates it.
	RotationPeriod time.Duration
	// PublishAhead is how long a new key is published before it may sign, so
	// that every relying party's cached JWKS knows it first (OIDC Core
	// §10.1.1). At least JWKSMaxAge.
	PublishAhead time.Duration
	// RetireAfter is how long a retired key stays published: at least the
	// longest lifetime of a token it signed.
	RetireAfter time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS document.
	JWKSMaxAge time.Duration
	// PollInterval is how often Run checks the stored set's version; at most
	// MaxPollInterval so every replica sees a rotation within 10 s.
	PollInterval time.Duration
	// RSABits is the modulus size of new RSA keys; at least 2048.
	RSABits int
	Logger  *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// withDefaults returns a copy with defaults filled in, validated.
func (c Config) withDefaults() (Config, error) {
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	c.Algorithms = nil
	for _, a := range algs {
		if !slices.Contains(Supported, a) {
			return c, fmt.Errorf("keys: unsupported algorithm %q (supported: %v)", a, Supported)
		}
		if !slices.Contains(c.Algorithms, a) {
			c.Algorithms = append(c.Algorithms, a)
		}
	}
	if !slices.Contains(c.Algorithms, RS256) {
		c.Algorithms = append(c.Algorithms, RS256)
	}
	if c.RotationPeriod == 0 {
		c.RotationPeriod = DefaultRotationPeriod
	}
	if c.PublishAhead == 0 {
		c.PublishAhead = DefaultPublishAhead
	}
	if c.RetireAfter == 0 {
		c.RetireAfter = DefaultRetireAfter
	}
	if c.JWKSMaxAge == 0 {
		c.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.RSABits == 0 {
		c.RSABits = DefaultRSABits
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	if c.RSABits < MinRSABits {
		errs = append(errs, fmt.Errorf("rsa_bits %d is below %d", c.RSABits, MinRSABits))
	}
	if c.RotationPeriod < 0 || c.PublishAhead < 0 || c.RetireAfter < 0 || c.JWKSMaxAge < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.JWKSMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("jwks_max_age %s is below 1s", c.JWKSMaxAge))
	}
	// A relying party may serve its cached JWKS for max-age: a key must be
	// published that long before it signs and after it stops.
	if c.PublishAhead < c.JWKSMaxAge {
		errs = append(errs, fmt.Errorf("publish_ahead %s is shorter than jwks_max_age %s", c.PublishAhead, c.JWKSMaxAge))
	}
	if c.RetireAfter < c.JWKSMaxAge {
		errs = append(errs, fmt.Errorf("retire_after %s is shorter than jwks_max_age %s", c.RetireAfter, c.JWKSMaxAge))
	}
	if c.RotationPeriod < c.PublishAhead {
		errs = append(errs, fmt.Errorf("rotation_period %s is shorter than publish_ahead %s", c.RotationPeriod, c.PublishAhead))
	}
	if c.PollInterval <= 0 || c.PollInterval > MaxPollInterval {
		errs = append(errs, fmt.Errorf("poll_interval %s is not in (0, %s]", c.PollInterval, MaxPollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("keys: invalid config: %w", err)
	}
	return c, nil
}
