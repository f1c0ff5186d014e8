package oauth

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// benchRequest is a refresh token's stored request as a sign-in leaves it:
// an OIDC session with ID token claims and expiries.
func benchRequest() (*fosite.Request, fosite.Client) {
	const issuer = "https://id.example"
	sess := NewSession(issuer)
	sess.Subject = "alice"
	sess.ClientID = "web"
	sess.Claims.Subject = "alice"
	sess.Claims.Issuer = issuer
	sess.Claims.Audience = []string{"web"}
	sess.Claims.Nonce = "nonce-0123456789abcdef"
	sess.Claims.AuthTime = time.Unix(1700000000, 0).UTC()
	sess.Claims.RequestedAt = time.Unix(1700000000, 0).UTC()
	sess.Claims.IssuedAt = time.Unix(1700000000, 0).UTC()
	sess.Claims.ExpiresAt = time.Unix(1700003600, 0).UTC()
	sess.Claims.Extra = map[string]any{"sid": "2f9c8e0b-6a1d-4c7e-9a55-0d3b7a61e2f4", "email": "alice@example.com", "email_verified": true}
	sess.SetExpiresAt(fosite.AccessToken, time.Unix(1700003600, 0).UTC())
	sess.SetExpiresAt(fosite.RefreshToken, time.Unix(1702592000, 0).UTC())
	client := &fosite.DefaultClient{ID: "web"}
	return &fosite.Request{
		ID: "2f9c8e0b-6a1d-4c7e-9a55-0d3b7a61e2f5", RequestedAt: time.Unix(1700000000, 0).UTC(), Client: client,
		RequestedScope: fosite.Arguments{"openid", "offline_access", "profile", "email"},
		GrantedScope:   fosite.Arguments{"openid", "offline_access", "profile", "email"},
		Form:           url.Values{"grant_type": {"refresh_token"}, "scope": {"openid offline_access profile email"}},
		Session:        sess,
	}, client
}

// ccRequest is a client_credentials token's stored request: no ID token claims.
func ccRequest() (*fosite.Request, fosite.Client) {
	sess := NewSession("https://id.example")
	sess.ClientID = "svc"
	sess.SetExpiresAt(fosite.AccessToken, time.Unix(1700003600, 0).UTC())
	client := &fosite.DefaultClient{ID: "svc"}
	return &fosite.Request{
		ID: "92b7654b-a22a-4dad-a3c1-8ae668ce652c", RequestedAt: time.Unix(1700000000, 0).UTC(), Client: client,
		Form: url.Values{"grant_type": {"client_credentials"}}, Session: sess,
	}, client
}

// BenchmarkCodec: a stored request is encoded at every token write and
// decoded at every read (about a fifth of a refresh's CPU in its profile).
// encode and decode are a refresh token's record, cc-* a client_credentials
// token's.
func BenchmarkCodec(b *testing.B) {
	r, client := benchRequest()
	benchCodec(b, "", r, client, "access-signature-0123456789")
	cc, ccClient := ccRequest()
	benchCodec(b, "cc-", cc, ccClient, "")
}

func benchCodec(b *testing.B, prefix string, r *fosite.Request, client fosite.Client, accessSignature string) {
	data, err := encodeRequest(r, accessSignature)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(prefix+"encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeRequest(r, accessSignature); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(prefix+"decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := decodeRequest(context.Background(), oneClient{client}, data, nil, "https://id.example"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
