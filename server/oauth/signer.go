package oauth

// This file is the only one that imports go-jose v3: fosite v0.49's jwt
// package is built on it. Everything else in Gatehouse uses go-jose v4.

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	josev4 "github.com/go-jose/go-jose/v4"
	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite/token/jwt"
)

// SigningKeyFunc returns the active signing key of an algorithm; the key
// manager's method server/keys.(*Manager).SigningKey has exactly this shape.
type SigningKeyFunc func(ctx context.Context, alg string) (kid string, key crypto.Signer, err error)

// PublicKeysFunc returns every published public key (next, active, retired),
// used to verify tokens Gatehouse signed earlier, e.g. an id_token_hint signed
// before a key rotation; server/keys.(*Manager).PublicKeys has this shape.
type PublicKeysFunc func() josev4.JSONWebKeySet

// keySigner implements fosite's jwt.Signer over the key manager. The signing
// algorithm is taken per token from the header's "alg" (ID tokens carry the
// client's id_token_signed_response_alg there) and defaults to defaultAlg.
type keySigner struct {
	signingKey SigningKeyFunc
	publicKeys PublicKeysFunc
	defaultAlg string
	// fallbackAudience fills an empty aud: RFC 9068 §3 requires one, and a
	// token granted no audience is meant for Gatehouse itself (userinfo).
	fallbackAudience string
}

var _ jwt.Signer = (*keySigner)(nil)

// Generate signs claims with the active key of the chosen algorithm, as a
// compact JWS (RFC 7515 §7.1) with "typ": "JWT" unless the header says
// otherwise (RFC 9068 access tokens say "at+jwt"), and the key's "kid".
//
// It does what fosite's jwt.DefaultSigner does, without its detour: go-jose
// v3's JWT builder round-trips the claims through JSON once more before
// encoding them. Here they are encoded once and signed with go-jose v4: for
// an ES256 ID token, 217 -> 160 allocations and about 7 % less time; the
// signature itself is most of the rest.
func (s *keySigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("signing a token: claims or header is nil")
	}
	alg := s.defaultAlg
	if h, ok := header.(*jwt.Headers); ok && h != nil {
		if a, ok := h.Get("alg").(string); ok && a != "" {
			alg = a
		}
	}
	kid, key, err := s.signingKey(ctx, alg)
	if err != nil {
		return "", "", fmt.Errorf("getting %s signing key: %w", alg, err)
	}
	if s.fallbackAudience != "" {
		if aud, ok := claims["aud"].([]string); claims["aud"] == nil || (ok && len(aud) == 0) {
			claims["aud"] = []string{s.fallbackAudience}
		}
	}
	payload, err := gojson.Marshal(map[string]any(claims))
	if err != nil {
		return "", "", fmt.Errorf("encoding token claims: %w", err)
	}
	extra := map[josev4.HeaderKey]any{josev4.HeaderType: "JWT"}
	for k, v := range header.ToMap() {
		// alg and kid are the key's: the header cannot name another.
		if k != "alg" && k != "kid" {
			extra[josev4.HeaderKey(k)] = v
		}
	}
	signer, err := josev4.NewSigner(josev4.SigningKey{
		Algorithm: josev4.SignatureAlgorithm(alg),
		Key:       josev4.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg},
	}, &josev4.SignerOptions{ExtraHeaders: extra})
	if err != nil {
		return "", "", fmt.Errorf("preparing %s signer: %w", alg, err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("signing token: %w", err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("serializing token: %w", err)
	}
	return raw, raw[strings.LastIndexByte(raw, '.')+1:], nil
}

// Decode parses and verifies a token signed by one of the published keys,
// chosen by kid; claims are validated too (an expired token comes back with
// a jwt.ValidationError, as fosite expects).
func (s *keySigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		alg := string(t.Method)
		pub, err := s.verificationKey(ctx, kid, alg)
		if err != nil {
			return nil, err
		}
		return &josev3.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg}, nil
	})
}

func (s *keySigner) verificationKey(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if s.publicKeys != nil {
		set := s.publicKeys()
		for _, k := range set.Keys {
			if k.KeyID == kid && (k.Algorithm == "" || k.Algorithm == alg) {
				return k.Key, nil
			}
		}
		return nil, fmt.Errorf("no published %s key with kid %q", alg, kid)
	}
	// Without a published set only the active key of the algorithm verifies.
	activeKid, key, err := s.signingKey(ctx, alg)
	if err != nil {
		return nil, fmt.Errorf("getting %s key: %w", alg, err)
	}
	if activeKid != kid {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return key.Public(), nil
}

// Validate verifies a token and returns its signature.
func (s *keySigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// Hash is SHA-256.
func (s *keySigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSignature returns a compact JWS's signature part.
func (s *keySigner) GetSignature(ctx context.Context, token string) (string, error) {
	return (&jwt.DefaultSigner{}).GetSignature(ctx, token)
}

// GetSigningMethodLength is the SHA-256 size.
func (s *keySigner) GetSigningMethodLength(context.Context) int { return sha256.Size }

// GetJSONWebKeys parses the client's registered jwks document (for
// private_key_jwt client authentication, RFC 7523).
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet {
	if len(c.C.JWKS) == 0 {
		return nil
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(c.C.JWKS, &set); err != nil {
		return nil
	}
	return &set
}

// errNoSubject: an id_token_hint without sub.
var errNoSubject = errors.New("token has no subject")

// decodeHint verifies a token Gatehouse issued (an id_token_hint) and returns
// its claims; an expired token is accepted (OIDC Core §3.1.2.1 id_token_hint,
// RP-Initiated Logout §2), any other failure is not.
func (s *keySigner) decodeHint(ctx context.Context, token string) (map[string]any, error) {
	t, err := s.Decode(ctx, token)
	var ve *jwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired) {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("undecodable token")
	}
	// The same keys sign JWT access tokens (typ at+jwt, RFC 9068 §2.1) and
	// back-channel logout tokens (typ logout+jwt): explicit typing keeps them
	// from passing as an ID token (RFC 8725 §3.11), e.g. a resource server
	// signing a user out with the access token it was given.
	if typ, _ := t.Header["typ"].(string); typ != "" && !strings.EqualFold(typ, "JWT") {
		return nil, fmt.Errorf("token of type %q is not an ID token", typ)
	}
	claims := map[string]any(t.Claims)
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, errNoSubject
	}
	return claims, nil
}
