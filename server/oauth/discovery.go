package oauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// standardScopes are the scopes OIDC Core §5.4 and §11 define.
var standardScopes = []string{"openid", "profile", "email", "address", "phone", "offline_access"}

// metadata builds the discovery document: OpenID Connect Discovery 1.0 §3,
// which is also a valid RFC 8414 §2 authorization server metadata document.
// It advertises exactly what New enabled.
func (p *Provider) metadata() map[string]any {
	responseTypes := []string{"code"}
	grantTypes := []string{"authorization_code", "refresh_token", "client_credentials"}
	responseModes := []string{"query", "form_post"}
	if p.cfg.EnableImplicit {
		responseTypes = append(responseTypes, "id_token", "id_token token", "token")
		grantTypes = append(grantTypes, "implicit")
	}
	if p.cfg.EnableHybrid {
		responseTypes = append(responseTypes, "code id_token", "code token", "code id_token token")
	}
	if p.cfg.EnableImplicit || p.cfg.EnableHybrid {
		responseModes = append(responseModes, "fragment")
	}
	scopes := append(slices.Clone(standardScopes), p.cfg.ScopesSupported...)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	authMethods := authMethodsSupported // clientauth.go
	md := map[string]any{
		"issuer":                                           p.issuer,
		"authorization_endpoint":                           p.issuer + p.ep.Authorize,
		"token_endpoint":                                   p.issuer + p.ep.Token,
		"userinfo_endpoint":                                p.issuer + p.ep.UserInfo,
		"jwks_uri":                                         p.issuer + p.ep.JWKS,
		"revocation_endpoint":                              p.issuer + p.ep.Revoke,
		"introspection_endpoint":                           p.issuer + p.ep.Introspect,
		"pushed_authorization_request_endpoint":            p.issuer + p.ep.PAR,
		"end_session_endpoint":                             p.issuer + p.ep.EndSession,
		"scopes_supported":                                 scopes,
		"response_types_supported":                         responseTypes,
		"response_modes_supported":                         responseModes,
		"grant_types_supported":                            grantTypes,
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            p.cfg.IDTokenAlgs,
		"token_endpoint_auth_methods_supported":            authMethods,
		"token_endpoint_auth_signing_alg_values_supported": append(slices.Clone(allAsymmetricAlgs), hmacAlgs...),
		"revocation_endpoint_auth_methods_supported":       authMethods,
		// Introspect moves client_secret_post credentials to Basic for fosite.
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":              []string{"S256"},
		"claims_supported": []string{
			"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", "at_hash", "c_hash",
			"name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
			"picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
			"email", "email_verified", "address", "phone_number", "phone_number_verified",
		},
		"claims_parameter_supported": true, // OIDC Core §5.5
		// OIDC Core §2 acr: "1" a password sign-in, "0" a session kept
		// only by a long-lived "remember me" cookie (server/login).
		"acr_values_supported":                           []string{"0", "1"},
		"request_parameter_supported":                    true,
		"request_uri_parameter_supported":                true,
		"require_request_uri_registration":               true,
		"require_pushed_authorization_requests":          p.cfg.RequirePushedAuthorizationRequests, // RFC 9126 §5
		"request_object_signing_alg_values_supported":    allAsymmetricAlgs,                        // never "none"
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"authorization_response_iss_parameter_supported": true, // RFC 9207 §3
		// server/logout: OpenID Connect Back-Channel Logout 1.0 §2.1 and
		// Front-Channel Logout 1.0 §3; sid is always sent.
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	}
	if p.cfg.RegistrationEndpoint != "" {
		md["registration_endpoint"] = p.cfg.RegistrationEndpoint // RFC 7591 §3, RFC 8414 §2
	}
	return md
}

var (
	discoveryContentType  = []string{"application/json"}
	discoveryCacheControl = []string{"public, max-age=3600"}
)

func (p *Provider) encodeDiscovery() error {
	b, err := json.Marshal(p.metadata())
	if err != nil {
		return fmt.Errorf("encoding discovery document: %w", err)
	}
	p.openIDConfig = b
	p.openIDConfigLen = []string{strconv.Itoa(len(b))}
	return nil
}

// Discovery serves /.well-known/openid-configuration (OpenID Connect
// Discovery 1.0 §4) and /.well-known/oauth-authorization-server (RFC 8414 §3)
// from a document encoded once at start.
func (p *Provider) Discovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Shared, pre-built values under canonical keys (as server.securityHeaders).
	h := w.Header()
	h["Content-Type"] = discoveryContentType
	h["Cache-Control"] = discoveryCacheControl
	// Without a length, a document over 2 KB would go out chunked.
	h["Content-Length"] = p.openIDConfigLen
	_, _ = w.Write(p.openIDConfig)
}
