package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Client authentication (RFC 6749 §2.3, RFC 7521/7523, OIDC Core §9) is ours
// rather than fosite's: fosite 0.49 refuses client_secret_jwt, accepts a
// secret sent by a method other than the registered one in some cases, does
// not bound an assertion's lifetime and checks the jti before the signature.

// Token endpoint authentication methods (OIDC Core §9, RFC 7591 §2).
const (
	authSecretBasic = "client_secret_basic"
	authSecretPost  = "client_secret_post"
	authSecretJWT   = "client_secret_jwt"
	authPrivateKey  = "private_key_jwt"
	authNone        = "none"
)

// authMethodsSupported are advertised in discovery.
var authMethodsSupported = []string{authSecretBasic, authSecretPost, authSecretJWT, authPrivateKey, authNone}

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

var (
	// asymmetricAlgs may sign private_key_jwt assertions and request objects
	// unless the client registered another one.
	asymmetricAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}
	// allAsymmetricAlgs are the algorithms a client may register.
	allAsymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	// hmacAlgs may sign client_secret_jwt assertions.
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
)

const (
	// maxAssertionLifetime: an assertion valid for longer is refused, so a
	// leaked one is worth little and the replay cache stays small (RFC 7523
	// §3 item 4 lets the server reject exp "unreasonably far in the future").
	maxAssertionLifetime = 5 * time.Minute
	// clockSkew is tolerated on exp, nbf and iat (RFC 7523 §3 items 4-6).
	clockSkew = 30 * time.Second
)

// sealedSecretAAD binds a client_secret_jwt client's sealed secret to its
// client ID; it must equal server/clients.SealedSecretAAD, which seals it.
func sealedSecretAAD(clientID string) []byte { return []byte("client-secret-jwt:" + clientID) }

// clientAuth authenticates clients at the token, PAR, revocation and
// introspection endpoints.
type clientAuth struct {
	store  *Store
	ring   *secrets.Keyring
	keys   *clientKeys
	issuer string
	ep     Endpoints
	now    func() time.Time
}

func invalidClient(format string, args ...any) *fosite.RFC6749Error {
	return fosite.ErrInvalidClient.WithHintf(format, args...)
}

// authenticate is the fosite.ClientAuthenticationStrategy.
func (a *clientAuth) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	hasPost := form.Has("client_secret")
	hasAssertion := form.Has("client_assertion_type") || form.Has("client_assertion")
	used := 0
	for _, b := range []bool{hasBasic, hasPost, hasAssertion} {
		if b {
			used++
		}
	}
	if used > 1 {
		return nil, fosite.ErrInvalidRequest.WithHint("The client used more than one authentication method (RFC 6749 §2.3).")
	}
	if hasAssertion {
		return a.assertion(ctx, r, form)
	}

	method, clientID, secret := authNone, form.Get("client_id"), form.Get("client_secret")
	switch {
	case hasBasic:
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		id, err1 := url.QueryUnescape(basicID)
		s, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, invalidClient("The client credentials in the Authorization header are not form-encoded (RFC 6749 §2.3.1).")
		}
		if clientID != "" && clientID != id {
			return nil, fosite.ErrInvalidRequest.WithHint("The client_id parameter does not match the authenticated client.")
		}
		method, clientID, secret = authSecretBasic, id, s
	case hasPost:
		method = authSecretPost
	}
	if clientID == "" {
		return nil, invalidClient("Client authentication is required.")
	}
	if secret == "" {
		// Some libraries (x/oauth2 among them) send a public client's ID by
		// Basic with an empty password: that presents no secret at all.
		method = authNone
	}
	c, err := a.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	fc, err := a.checkSecret(ctx, c, method, secret)
	if err != nil && a.store.clients != nil {
		// The client may come from the cache: a refusal is only given on
		// what storage holds now (a new secret or method works at once).
		if c, err = a.freshClient(ctx, clientID); err != nil {
			return nil, err
		}
		fc, err = a.checkSecret(ctx, c, method, secret)
	}
	return fc, err
}

// checkSecret checks the registered method and, for the secret methods, the
// secret against the current and the rotated keyed hashes.
func (a *clientAuth) checkSecret(ctx context.Context, c *Client, method, secret string) (fosite.Client, error) {
	if registered := c.GetTokenEndpointAuthMethod(); registered != method {
		return nil, invalidClient("The client must authenticate with its registered method %q, not %q (OIDC Registration §2 token_endpoint_auth_method).", registered, method)
	}
	if method == authNone {
		return c, nil
	}
	hasher := secretHasher{ring: a.ring}
	if hasher.Compare(ctx, c.GetHashedSecret(), []byte(secret)) == nil {
		return c, nil
	}
	for _, h := range c.GetRotatedHashes() {
		if hasher.Compare(ctx, h, []byte(secret)) == nil {
			return c, nil
		}
	}
	return nil, invalidClient("The client secret is wrong or has expired.")
}

func (a *clientAuth) client(ctx context.Context, id string) (*Client, error) {
	return asClient(a.store.GetClient(ctx, id))
}

// freshClient reads the client from storage, not from the cache.
func (a *clientAuth) freshClient(ctx context.Context, id string) (*Client, error) {
	return asClient(a.store.loadClient(ctx, id))
}

func asClient(fc fosite.Client, err error) (*Client, error) {
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, invalidClient("Unknown client.").WithWrap(err)
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	c, ok := fc.(*Client)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("unexpected client type")
	}
	return c, nil
}

// assertionClaims are the claims of a client assertion (RFC 7523 §3).
type assertionClaims struct {
	josejwt.Claims
}

// assertion authenticates private_key_jwt and client_secret_jwt (RFC 7523
// §2.2 and §3, OIDC Core §9).
func (a *clientAuth) assertion(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if t := form.Get("client_assertion_type"); t != clientAssertionType {
		return nil, invalidClient("client_assertion_type must be %q (RFC 7523 §2.2).", clientAssertionType)
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("client_assertion is missing (RFC 7521 §4.2).")
	}
	// The allow-list excludes "none"; which of these a client may use is
	// decided below from its registration, so an HMAC over a public key
	// (algorithm confusion) never meets a key of the wrong kind.
	tok, err := josejwt.ParseSigned(raw, sigAlgs(append(slices.Clone(allAsymmetricAlgs), hmacAlgs...)))
	if err != nil {
		return nil, invalidClient("client_assertion is not a JWS signed with a supported algorithm.").WithWrap(err).WithDebug(err.Error())
	}
	if len(tok.Headers) != 1 {
		return nil, invalidClient("client_assertion must have exactly one signature.")
	}
	var unverified assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, invalidClient("client_assertion claims are malformed.").WithWrap(err).WithDebug(err.Error())
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		clientID = unverified.Subject
	}
	if clientID == "" {
		return nil, invalidClient("client_assertion has no sub (RFC 7523 §3 item 2).")
	}
	c, err := a.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	alg := tok.Headers[0].Algorithm
	method := c.GetTokenEndpointAuthMethod()
	registeredAlg := c.C.TokenEndpointAuthSigningAlg
	var allowed []string
	switch method {
	case authPrivateKey:
		allowed = asymmetricAlgs
		if registeredAlg != "" {
			allowed = intersect([]string{registeredAlg}, allAsymmetricAlgs)
		}
	case authSecretJWT:
		allowed = hmacAlgs
		if registeredAlg != "" {
			allowed = intersect([]string{registeredAlg}, hmacAlgs)
		}
	default:
		return nil, invalidClient("The client must authenticate with its registered method %q, not with a client assertion.", method)
	}
	if !slices.Contains(allowed, alg) {
		return nil, invalidClient("client_assertion is signed with %q; this client may use %s (OIDC Registration §2 token_endpoint_auth_signing_alg).", alg, strings.Join(allowed, ", "))
	}

	var claims assertionClaims
	if method == authSecretJWT {
		secret, err := a.sharedSecret(c)
		if err != nil {
			return nil, err
		}
		if err := tok.Claims(secret, &claims); err != nil {
			return nil, invalidClient("client_assertion signature does not verify with the client secret.").WithWrap(err).WithDebug(err.Error())
		}
	} else if err := a.keys.verify(ctx, c.C, tok, &claims); err != nil {
		return nil, invalidClient("client_assertion signature does not verify with the client's registered keys.").WithWrap(err).WithDebug(err.Error())
	}

	if err := a.checkClaims(r, c.C.ID, claims); err != nil {
		return nil, err
	}
	// Only a verified assertion may use up its jti, or anyone could burn a
	// client's future jti values (RFC 7523 §3 item 7). The jti is remembered
	// until the assertion cannot be accepted any more.
	key := c.C.ID + ":" + claims.ID
	if err := a.store.SetClientAssertionJWT(ctx, key, claims.Expiry.Time().Add(clockSkew)); err != nil {
		if errors.Is(err, fosite.ErrJTIKnown) {
			return nil, invalidClient("client_assertion was already used: its jti must be unique (RFC 7523 §3 item 7).")
		}
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return c, nil
}

// checkClaims applies RFC 7523 §3 items 1-7 and OIDC Core §9.
func (a *clientAuth) checkClaims(r *http.Request, clientID string, c assertionClaims) error {
	now := a.now()
	switch {
	case c.Issuer != clientID || c.Subject != clientID:
		return invalidClient("client_assertion iss and sub must both be the client_id (RFC 7523 §3 items 1-2).")
	case c.Expiry == nil:
		return invalidClient("client_assertion has no exp (RFC 7523 §3 item 4).")
	case now.After(c.Expiry.Time().Add(clockSkew)):
		return invalidClient("client_assertion has expired (RFC 7523 §3 item 4).")
	case c.Expiry.Time().After(now.Add(maxAssertionLifetime + clockSkew)):
		return invalidClient("client_assertion exp is more than %s ahead; use short-lived assertions.", maxAssertionLifetime)
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(clockSkew)):
		return invalidClient("client_assertion is not valid yet (nbf, RFC 7523 §3 item 5).")
	case c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(clockSkew)):
		return invalidClient("client_assertion iat is in the future (RFC 7523 §3 item 6).")
	case c.ID == "":
		return invalidClient("client_assertion has no jti (OIDC Core §9).")
	}
	accepted := a.audiences(r)
	for _, aud := range c.Audience {
		if slices.Contains(accepted, aud) {
			return nil
		}
	}
	return invalidClient("client_assertion aud must contain %s (RFC 7523 §3 item 3).", strings.Join(accepted, " or "))
}

// audiences are the accepted aud values: the issuer, the token endpoint and
// the endpoint being called (PAR, revocation, introspection).
func (a *clientAuth) audiences(r *http.Request) []string {
	out := []string{a.issuer, a.issuer + a.ep.Token}
	for _, p := range []string{a.ep.PAR, a.ep.Revoke, a.ep.Introspect} {
		if r != nil && strings.HasSuffix(r.URL.Path, p) {
			out = append(out, a.issuer+p)
		}
	}
	return out
}

// sharedSecret opens a client_secret_jwt client's sealed secret.
func (a *clientAuth) sharedSecret(c *Client) ([]byte, error) {
	if len(c.GetHashedSecret()) == 0 {
		return nil, invalidClient("The client secret has expired.")
	}
	if len(c.C.SecretSealed) == 0 {
		return nil, invalidClient("The client has no secret on file for client_secret_jwt; rotate its secret.")
	}
	secret, err := a.ring.Open(c.C.SecretSealed, sealedSecretAAD(c.C.ID))
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug("opening the client's sealed secret: " + err.Error())
	}
	return secret, nil
}

// clientKeys finds a client's public keys: its registered jwks, or its
// jwks_uri through the SSRF-safe fetcher.
type clientKeys struct {
	fetcher *jwksfetch.Fetcher
}

// verify checks tok's signature with a key of the client matching its kid
// and alg, and decodes the claims into dest. A jwks_uri is refetched once
// (rate-limited by the fetcher) when no key matches: the client may have
// rotated.
func (k *clientKeys) verify(ctx context.Context, c storage.Client, tok *josejwt.JSONWebToken, dest ...any) error {
	h := tok.Headers[0]
	var set *jose.JSONWebKeySet
	var err error
	switch {
	case len(c.JWKS) > 0:
		set, err = jwksfetch.ParseKeySet(c.JWKS)
	case c.JWKSURI != "":
		set, err = k.fetcher.KeySet(ctx, c.JWKSURI)
	default:
		return errors.New("the client has no registered keys (jwks or jwks_uri)")
	}
	if err != nil {
		return fmt.Errorf("loading the client's keys: %w", err)
	}
	cands := matchingKeys(set, h.KeyID, h.Algorithm)
	if len(cands) == 0 && len(c.JWKS) == 0 {
		if set, err = k.fetcher.Refresh(ctx, c.JWKSURI); err != nil {
			return fmt.Errorf("refreshing the client's keys: %w", err)
		}
		cands = matchingKeys(set, h.KeyID, h.Algorithm)
	}
	if len(cands) == 0 {
		return fmt.Errorf("no key of the client matches kid %q and alg %q", h.KeyID, h.Algorithm)
	}
	for _, key := range cands {
		if err = tok.Claims(key.Key, dest...); err == nil {
			return nil
		}
	}
	return fmt.Errorf("verifying signature: %w", err)
}

// matchingKeys returns the signing keys usable with alg, narrowed to kid
// when the JWS names one (RFC 7515 §4.1.4).
func matchingKeys(set *jose.JSONWebKeySet, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range set.Keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != alg {
			continue
		}
		if keyFitsAlg(key.Key, alg) {
			out = append(out, key)
		}
	}
	return out
}

func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func sigAlgs(names []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(names))
	for i, n := range names {
		out[i] = jose.SignatureAlgorithm(n)
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
