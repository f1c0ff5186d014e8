package oauth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	josev4 "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"
)

// TestSignerCompactJWS: Generate writes a compact JWS (RFC 7515 §7.1) that
// verifies with the published key of its "kid", with "typ": "JWT" unless the
// header names another type (RFC 9068 §2.1: "at+jwt"), claims encoded once
// and unchanged, and the signature part as the second result. The header
// cannot name another key than the one that signed.
func TestSignerCompactJWS(t *testing.T) {
	keys := benchKeys()
	s := &keySigner{signingKey: keys.SigningKey, publicKeys: keys.PublicKeys, defaultAlg: "RS256"}
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		alg, typ, wantKid string
		header            map[string]any
	}{
		{alg: "ES256", wantKid: "ec-1", typ: "JWT", header: map[string]any{"alg": "ES256"}},
		{alg: "RS256", wantKid: "rsa-1", typ: "JWT", header: map[string]any{}},
		{alg: "ES256", wantKid: "ec-1", typ: "at+jwt", header: map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "someone-else"}},
	} {
		claims := (&jwt.IDTokenClaims{
			Issuer: benchIssuer, Subject: "alice", Audience: []string{"web"}, Nonce: "n<&>",
			IssuedAt: now, ExpiresAt: now.Add(time.Hour), AuthTime: now,
			Extra: map[string]any{"sid": "s-1", "email_verified": true},
		}).ToMapClaims()
		raw, sig, err := s.Generate(context.Background(), claims, &jwt.Headers{Extra: tc.header})
		if err != nil {
			t.Fatalf("%s: %v", tc.alg, err)
		}
		if strings.Count(raw, ".") != 2 || !strings.HasSuffix(raw, "."+sig) || sig == "" {
			t.Fatalf("%s: not a compact JWS with signature %q: %s", tc.alg, sig, raw)
		}
		obj, err := josev4.ParseSigned(raw, []josev4.SignatureAlgorithm{josev4.RS256, josev4.ES256})
		if err != nil {
			t.Fatal(err)
		}
		h := obj.Signatures[0].Header
		if h.KeyID != tc.wantKid || h.Algorithm != tc.alg || h.ExtraHeaders[josev4.HeaderType] != tc.typ {
			t.Fatalf("%s: header kid %q alg %q typ %v", tc.alg, h.KeyID, h.Algorithm, h.ExtraHeaders[josev4.HeaderType])
		}
		var pub any
		for _, k := range keys.PublicKeys().Keys {
			if k.KeyID == h.KeyID {
				pub = k.Key
			}
		}
		payload, err := obj.Verify(pub)
		if err != nil {
			t.Fatalf("%s: signature does not verify with key %s: %v", tc.alg, h.KeyID, err)
		}
		// fosite's own parser reads it back with the same claims.
		tok, err := s.Decode(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: Decode: %v (%s)", tc.alg, err, payload)
		}
		got := tok.Claims
		if got["sub"] != "alice" || got["nonce"] != "n<&>" || got["sid"] != "s-1" || got["email_verified"] != true ||
			fmt.Sprint(got["exp"]) != fmt.Sprint(now.Add(time.Hour).Unix()) {
			t.Fatalf("%s: claims %v", tc.alg, got)
		}
	}
}
