package oauth

import (
	"encoding/json"
	"maps"
	"slices"

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

// Clone deep-copies the session. fosite clones a session for every token it
// issues, and a JSON round trip here was 6 % of a refresh's CPU; the copy is
// field by field, and the claims' extra values are copied as the JSON types
// they are. A value of any other type (none is put there today) makes the
// clone go through JSON, as sessions are stored, so that nothing is shared.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	c.UserInfoClaims = slices.Clone(s.UserInfoClaims)
	ok := true
	if s.Claims != nil {
		cl := *s.Claims
		cl.Audience = slices.Clone(s.Claims.Audience)
		cl.AuthenticationMethodsReferences = slices.Clone(s.Claims.AuthenticationMethodsReferences)
		cl.Extra, ok = copyJSONMap(s.Claims.Extra)
		c.Claims = &cl
	}
	if s.Headers != nil && ok {
		h := *s.Headers
		h.Extra, ok = copyJSONMap(s.Headers.Extra)
		c.Headers = &h
	}
	if !ok {
		return s.cloneJSON()
	}
	return &c
}

// cloneJSON deep-copies through JSON, which is also how sessions are stored.
func (s *Session) cloneJSON() *Session {
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

// copyJSONMap deep-copies a map of JSON values; false when a value is of
// another type.
func copyJSONMap(m map[string]any) (map[string]any, bool) {
	if m == nil {
		return nil, true
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		c, ok := copyJSONValue(v)
		if !ok {
			return nil, false
		}
		out[k] = c
	}
	return out, true
}

func copyJSONValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil, string, bool, float64, float32, int, int32, int64, uint, uint32, uint64, json.Number:
		return v, true
	case []string:
		return slices.Clone(v), true
	case map[string]string:
		return maps.Clone(v), true
	case map[string]any:
		return copyJSONMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := copyJSONValue(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	}
	return nil, false
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
