package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// newKey makes a key pair for alg and its storage record: the kid is the
// RFC 7638 JWK thumbprint, the private key is PKCS #8 sealed under the
// keyring with the kid as additional data (so a sealed key cannot be moved
// onto another record), the public JWK is stored as JSON.
func newKey(alg string, rsaBits int, ring *secrets.Keyring) (storage.SigningKey, crypto.Signer, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256, PS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return storage.SigningKey{}, nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, nil, fmt.Errorf("generating %s key: %w", alg, err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, nil, fmt.Errorf("computing thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return storage.SigningKey{}, nil, fmt.Errorf("encoding public jwk: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, nil, fmt.Errorf("encoding private key: %w", err)
	}
	sealed, err := ring.Seal(der, []byte(pub.KeyID))
	if err != nil {
		return storage.SigningKey{}, nil, fmt.Errorf("sealing private key: %w", err)
	}
	return storage.SigningKey{
		ID:         pub.KeyID,
		Algorithm:  alg,
		PrivateKey: sealed,
		PublicJWK:  pubJSON,
	}, priv, nil
}

// openKey decrypts a stored private key and checks it matches the record's
// algorithm and public key.
func openKey(k storage.SigningKey, ring *secrets.Keyring) (crypto.Signer, error) {
	der, err := ring.Open(k.PrivateKey, []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("decrypting private key %s: %w", k.ID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing private key %s: %w", k.ID, err)
	}
	var ok bool
	switch p := parsed.(type) {
	case *rsa.PrivateKey:
		ok = (k.Algorithm == RS256 || k.Algorithm == PS256) && p.N.BitLen() >= MinRSABits
	case *ecdsa.PrivateKey:
		ok = k.Algorithm == ES256 && p.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		ok = k.Algorithm == EdDSA
	}
	if !ok {
		return nil, fmt.Errorf("private key %s: %T does not fit algorithm %s", k.ID, parsed, k.Algorithm)
	}
	signer := parsed.(crypto.Signer)
	pub, err := publicJWK(k)
	if err != nil {
		return nil, err
	}
	if !samePublic(signer.Public(), pub.Key) {
		return nil, fmt.Errorf("private key %s does not match its public jwk", k.ID)
	}
	return signer, nil
}

type equaler interface{ Equal(crypto.PublicKey) bool }

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// publicJWK parses a stored public JWK and reduces it to its public part, so
// nothing private can reach the JWKS even if a record held it.
func publicJWK(k storage.SigningKey) (jose.JSONWebKey, error) {
	var j jose.JSONWebKey
	if err := json.Unmarshal(k.PublicJWK, &j); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("parsing public jwk %s: %w", k.ID, err)
	}
	pub := j.Public()
	if pub.Key == nil || !pub.Valid() {
		return jose.JSONWebKey{}, fmt.Errorf("public jwk %s is not a valid public key", k.ID)
	}
	// The record is authoritative for kid and alg.
	pub.KeyID, pub.Algorithm, pub.Use = k.ID, k.Algorithm, "sig"
	return pub, nil
}

// etagOf is a strong validator of a pre-encoded document (RFC 9110 §8.8.3).
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}
