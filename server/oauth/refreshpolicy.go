package oauth

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
)

// Refresh tokens are issued only when offline_access was granted (OIDC Core
// §11), except to the clients Config.RefreshWithoutOfflineAccess lists: an
// operator's choice per client, since storage.Client has no such flag. The
// client must still be registered with the refresh_token grant type.
//
// fosite reads the refresh-token scopes from its configuration with the
// request's context only, so the token endpoint marks the context of a
// listed client's request and policyConfig answers "no scope needed" then.

type refreshWithoutOfflineKey struct{}

// policyConfig is the fosite configuration the handlers see.
type policyConfig struct {
	*fosite.Config
}

// GetRefreshTokenScopes returns no scope (any grant gets a refresh token)
// for a request marked by withRefreshPolicy, else offline_access.
func (c policyConfig) GetRefreshTokenScopes(ctx context.Context) []string {
	if on, _ := ctx.Value(refreshWithoutOfflineKey{}).(bool); on {
		return nil
	}
	return c.Config.GetRefreshTokenScopes(ctx)
}

// composeHandlers is compose.Compose with the handlers built over cfg (the
// policy wrapper) while registering them in base.
func composeHandlers(base *fosite.Config, cfg fosite.Configurator, store, strategy any, factories ...compose.Factory) fosite.OAuth2Provider {
	f := fosite.NewOAuth2Provider(store.(fosite.Storage), base)
	for _, factory := range factories {
		res := factory(cfg, store, strategy)
		if h, ok := res.(fosite.AuthorizeEndpointHandler); ok {
			base.AuthorizeEndpointHandlers.Append(h)
		}
		if h, ok := res.(fosite.TokenEndpointHandler); ok {
			base.TokenEndpointHandlers.Append(h)
		}
		if h, ok := res.(fosite.TokenIntrospector); ok {
			base.TokenIntrospectionHandlers.Append(h)
		}
		if h, ok := res.(fosite.RevocationHandler); ok {
			base.RevocationHandlers.Append(h)
		}
		if h, ok := res.(fosite.PushedAuthorizeEndpointHandler); ok {
			base.PushedAuthorizeEndpointHandlers.Append(h)
		}
	}
	return f
}

// withRefreshPolicy marks ctx when the token request comes from a client
// allowed refresh tokens without offline_access. The client is the one the
// request claims to be; fosite then authenticates exactly that client, so
// a request failing authentication gets nothing from the mark.
func (p *Provider) withRefreshPolicy(ctx context.Context, r *http.Request) context.Context {
	if len(p.refreshAnyScope) == 0 {
		return ctx
	}
	id := r.PostForm.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded.
		if u, err := url.QueryUnescape(user); err == nil {
			id = u
		}
	}
	if p.refreshAnyScope[id] {
		return context.WithValue(ctx, refreshWithoutOfflineKey{}, true)
	}
	return ctx
}
