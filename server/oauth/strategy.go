package oauth

import (
	"context"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// tokenStrategy issues opaque HMAC access tokens, or RFC 9068 JWT access
// tokens to clients whose access_token_format is "jwt". Refresh tokens and
// authorization codes are always opaque. Both kinds of access token are
// recorded in storage, so revocation and introspection work alike.
type tokenStrategy struct {
	hmac *oauth2.HMACSHAStrategyUnPrefixed
	jwt  *oauth2.DefaultJWTStrategy
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

// A JWS compact serialization has two dots; an HMAC token has one.
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

func wantsJWT(r fosite.Requester) bool {
	c, ok := r.GetClient().(*Client)
	return ok && c.JWTAccessTokens()
}

func (s *tokenStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return s.jwt.AccessTokenSignature(ctx, token)
	}
	return s.hmac.AccessTokenSignature(ctx, token)
}

func (s *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	if wantsJWT(r) {
		return s.jwt.GenerateAccessToken(ctx, r)
	}
	return s.hmac.GenerateAccessToken(ctx, r)
}

func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if isJWT(token) {
		return s.jwt.ValidateAccessToken(ctx, r, token)
	}
	return s.hmac.ValidateAccessToken(ctx, r, token)
}

func (s *tokenStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return s.hmac.RefreshTokenSignature(ctx, token)
}

func (s *tokenStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return s.hmac.GenerateRefreshToken(ctx, r)
}

func (s *tokenStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return s.hmac.ValidateRefreshToken(ctx, r, token)
}

func (s *tokenStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return s.hmac.AuthorizeCodeSignature(ctx, token)
}

func (s *tokenStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return s.hmac.GenerateAuthorizeCode(ctx, r)
}

func (s *tokenStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return s.hmac.ValidateAuthorizeCode(ctx, r, token)
}

// gatedTokenHandler asks a token endpoint handler whether it handles the
// grant before calling PopulateTokenEndpointResponse. fosite calls every
// handler there and each one that does not handle the grant answers with
// an error carrying a stack trace, which cost about a tenth of a
// client_credentials request's CPU. Every fosite handler in use starts that
// method with the same CanHandleTokenEndpointRequest check (PKCE's does
// nothing there), so the answers are unchanged.
type gatedTokenHandler struct{ fosite.TokenEndpointHandler }

func (g gatedTokenHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return g.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}
