package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Client is the fosite view of a registered storage.Client.
type Client struct {
	C   storage.Client
	now func() time.Time
}

var (
	_ fosite.Client                         = (*Client)(nil)
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ResponseModeClient             = (*Client)(nil)
	_ fosite.ClientWithSecretRotation       = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
)

// NewClient wraps c; now decides whether secrets have expired.
func NewClient(c storage.Client, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{C: c, now: now}
}

// GetID returns the client_id.
func (c *Client) GetID() string { return c.C.ID }

// GetHashedSecret returns the keyed hash of the current secret, or nothing
// once it has expired (RFC 7591 §3.2.1 client_secret_expires_at).
func (c *Client) GetHashedSecret() []byte {
	if !c.C.SecretExpiresAt.IsZero() && !c.now().Before(c.C.SecretExpiresAt) {
		return nil
	}
	return c.C.SecretHash
}

// GetRotatedHashes returns the previous secret's hash while it overlaps.
func (c *Client) GetRotatedHashes() [][]byte {
	if len(c.C.RotatedSecretHash) == 0 {
		return nil
	}
	if !c.C.RotatedSecretExpiresAt.IsZero() && !c.now().Before(c.C.RotatedSecretExpiresAt) {
		return nil
	}
	return [][]byte{c.C.RotatedSecretHash}
}

// GetRedirectURIs returns the registered redirect URIs.
func (c *Client) GetRedirectURIs() []string { return c.C.RedirectURIs }

// GetGrantTypes defaults to authorization_code (RFC 7591 §2).
func (c *Client) GetGrantTypes() fosite.Arguments {
	if len(c.C.GrantTypes) == 0 {
		return fosite.Arguments{"authorization_code"}
	}
	return c.C.GrantTypes
}

// GetResponseTypes defaults to code (RFC 7591 §2).
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.C.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return c.C.ResponseTypes
}

// GetScopes returns the scopes the client may ask for.
func (c *Client) GetScopes() fosite.Arguments { return c.C.Scopes }

// IsPublic reports a client that cannot keep a secret (auth method none).
func (c *Client) IsPublic() bool { return c.C.TokenEndpointAuthMethod == "none" }

// GetAudience returns the audiences the client may ask tokens for.
func (c *Client) GetAudience() fosite.Arguments { return c.C.Audience }

// GetRequestURIs returns the registered request_uris.
func (c *Client) GetRequestURIs() []string { return c.C.RequestURIs }

// GetJSONWebKeysURI returns the client's jwks_uri.
func (c *Client) GetJSONWebKeysURI() string { return c.C.JWKSURI }

// GetRequestObjectSigningAlgorithm returns request_object_signing_alg.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return c.C.RequestObjectSigningAlg }

// GetTokenEndpointAuthMethod defaults to client_secret_basic (RFC 7591 §2).
func (c *Client) GetTokenEndpointAuthMethod() string {
	if c.C.TokenEndpointAuthMethod == "" {
		return "client_secret_basic"
	}
	return c.C.TokenEndpointAuthMethod
}

// GetTokenEndpointAuthSigningAlgorithm defaults to RS256.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.C.TokenEndpointAuthSigningAlg == "" {
		return "RS256"
	}
	return c.C.TokenEndpointAuthSigningAlg
}

// GetResponseModes allows the default, query, fragment and form_post modes
// (OAuth 2.0 Form Post Response Mode).
func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFragment, fosite.ResponseModeFormPost}
}

// GetEffectiveLifespan applies the client's own token lifetimes.
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	var d time.Duration
	switch tt {
	case fosite.AccessToken:
		d = c.C.AccessTokenLifetime
	case fosite.RefreshToken:
		d = c.C.RefreshTokenLifetime
	case fosite.IDToken:
		d = c.C.IDTokenLifetime
	}
	if d > 0 {
		return d
	}
	return fallback
}

// IDTokenAlg is the client's id_token_signed_response_alg, RS256 when unset
// (OpenID Connect Dynamic Client Registration §2).
func (c *Client) IDTokenAlg() string {
	if c.C.IDTokenSignedResponseAlg == "" {
		return "RS256"
	}
	return c.C.IDTokenSignedResponseAlg
}

// JWTAccessTokens reports whether the client gets RFC 9068 JWT access tokens.
func (c *Client) JWTAccessTokens() bool { return c.C.AccessTokenFormat == "jwt" }

// secretPurpose is the keyring purpose of client-secret hashes.
const secretPurpose = "client-secret"

// secretHasher checks client secrets against their HMAC-SHA-256 keyed hashes.
// A client secret is 256 random bits, so it needs no stretching: a keyed hash
// keeps the hot path cheap and a stolen database useless without the system
// secret.
type secretHasher struct{ ring *secrets.Keyring }

var errSecretMismatch = errors.New("client secret does not match")

// Compare checks data (the presented secret) against hash in constant time.
func (h secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || !h.ring.VerifyMAC(secretPurpose, data, hash) {
		return errSecretMismatch
	}
	return nil
}

// Hash returns the keyed hash of data.
func (h secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return h.ring.MAC(secretPurpose, data), nil
}

// HashClientSecret returns the keyed hash stored in storage.Client.SecretHash.
func HashClientSecret(ring *secrets.Keyring, secret string) []byte {
	return ring.MAC(secretPurpose, []byte(secret))
}
