package oauth

import (
	"encoding/json"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what Gatehouse keeps with every grant: the OpenID Connect ID
// token claims (sub, auth_time, acr, amr, sid, nonce) and what a JWT access
// token needs (RFC 9068). It serializes to JSON inside request records.
type Session struct {
	openid.DefaultSession
	// ClientID and Issuer feed the RFC 9068 client_id and iss claims.
	ClientID string `json:"client_id,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// BrowserSessionID is the sign-in session (also the ID token's sid claim).
	BrowserSessionID string `json:"browser_session_id,omitempty"`
	// UserInfoClaims are the standard claims the claims request parameter
	// asked the UserInfo endpoint for (OIDC Core §5.5), besides the scopes'.
	// Kept in the session so that refreshed access tokens keep them.
	UserInfoClaims []string `json:"userinfo_claims,omitempty"`
}

var (
	_ openid.Session                  = (*Session)(nil)
	_ oauth2.JWTSessionContainer      = (*Session)(nil)
	_ fosite.ExtraClaimsSession       = (*Session)(nil)
	_ interface{ SetSubject(string) } = (*Session)(nil)
)

// NewSession returns an empty session for the given issuer.
func NewSession(issuer string) *Session {
	return &Session{
		DefaultSession: openid.DefaultSession{
			Claims:  &jwt.IDTokenClaims{},
			Headers: &jwt.Headers{},
		},
		Issuer: issuer,
	}
}

// Clone deep-copies through JSON, which is also how sessions are stored, so a
// clone is exactly what a later load would produce.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		// A Session holds only JSON-safe values; failing here is a programming error.
		panic("oauth: cloning session: " + err.Error())
	}
	c := new(Session)
	if err := json.Unmarshal(b, c); err != nil {
		panic("oauth: cloning session: " + err.Error())
	}
	return c
}

// GetJWTClaims returns the RFC 9068 §2.2 claims of a JWT access token; fosite
// adds exp, scope, aud, iat and iss defaults.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	extra := map[string]any{"client_id": s.ClientID}
	claims := s.IDTokenClaims()
	if !claims.AuthTime.IsZero() {
		extra["auth_time"] = claims.AuthTime.Unix()
	}
	if claims.AuthenticationContextClassReference != "" {
		extra["acr"] = claims.AuthenticationContextClassReference
	}
	if len(claims.AuthenticationMethodsReferences) > 0 {
		extra["amr"] = claims.AuthenticationMethodsReferences
	}
	sub := s.Subject
	if sub == "" {
		// client_credentials: the client is the subject (RFC 9068 §2.2).
		sub = s.ClientID
	}
	return &jwt.JWTClaims{
		Subject:    sub,
		Issuer:     s.Issuer,
		Extra:      extra,
		ScopeField: jwt.JWTScopeFieldString,
	}
}

// GetJWTHeader sets typ at+jwt (RFC 9068 §2.1).
func (s *Session) GetJWTHeader() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}
}

// GetExtraClaims is what introspection reports besides the standard members
// (RFC 7662 §2.2 iss).
func (s *Session) GetExtraClaims() map[string]any {
	out := map[string]any{}
	if s.Issuer != "" {
		out["iss"] = s.Issuer
	}
	return out
}
