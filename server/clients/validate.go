package clients

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Error codes of RFC 7591 §3.2.2.
const (
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
	CodeInvalidClientMetadata = "invalid_client_metadata"
)

// Error is a rejected registration: Code is an RFC 7591 §3.2.2 error code and
// Description says what to fix.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func badRedirect(format string, args ...any) error {
	return &Error{Code: CodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

func badMetadata(format string, args ...any) error {
	return &Error{Code: CodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

// Supported values.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"

	ResponseTypeCode = "code"

	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthClientSecretJWT   = "client_secret_jwt"
	AuthPrivateKeyJWT     = "private_key_jwt"

	AppWeb    = "web"
	AppNative = "native"
)

var (
	grantTypes    = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials}
	responseTypes = []string{ResponseTypeCode}
	authMethods   = []string{AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT, AuthPrivateKeyJWT, AuthNone}
	// Algorithms Gatehouse signs with (ID tokens, userinfo).
	signingAlgs = []string{"RS256", "ES256", "EdDSA", "PS256"}
	// Asymmetric algorithms accepted on client assertions and request objects.
	clientAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	// HMAC algorithms of client_secret_jwt assertions (RFC 7523 §3, OIDC Core §9).
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	// JWK members that only private or symmetric keys have (RFC 7518 §6).
	privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
	// Schemes that run code or read local data in a browser.
	forbiddenSchemes = []string{"javascript", "data", "vbscript", "file", "blob", "about", "filesystem"}
)

const (
	maxURIs    = 32
	maxURILen  = 2048
	maxTextLen = 512
)

// applyDefaults fills what RFC 7591 §2 and OIDC Registration §2 default.
func applyDefaults(m *Metadata) {
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{GrantAuthorizationCode}
	}
	if len(m.ResponseTypes) == 0 {
		// RFC 7591 §2: default "code"; a client without the
		// authorization_code grant uses no response type at all.
		if slices.Contains(m.GrantTypes, GrantAuthorizationCode) {
			m.ResponseTypes = []string{ResponseTypeCode}
		}
	}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = AuthClientSecretBasic
	}
	if m.ApplicationType == "" {
		m.ApplicationType = AppWeb
	}
}

// Validate checks metadata as Create would after applying defaults. trusted
// allows the Gatehouse policy fields.
func Validate(m Metadata, trusted bool) error {
	applyDefaults(&m)
	return validate(m, trusted)
}

func validate(m Metadata, trusted bool) error {
	if !trusted && m.hasPolicy() {
		return badMetadata("first_party, audience, access_token_format and the lifetimes can only be set by an administrator")
	}
	if err := oneOf("application_type", m.ApplicationType, []string{AppWeb, AppNative}); err != nil {
		return err
	}
	if err := listOf("grant_types", m.GrantTypes, grantTypes, "use authorization_code (with PKCE), refresh_token or client_credentials"); err != nil {
		return err
	}
	if err := listOf("response_types", m.ResponseTypes, responseTypes, "only code is supported (the authorization code flow)"); err != nil {
		return err
	}
	if err := oneOf("token_endpoint_auth_method", m.TokenEndpointAuthMethod, authMethods); err != nil {
		return err
	}
	// RFC 7591 §2.1: grant types and response types must agree.
	hasCode := slices.Contains(m.GrantTypes, GrantAuthorizationCode)
	if hasCode != slices.Contains(m.ResponseTypes, ResponseTypeCode) {
		return badMetadata("grant_types and response_types disagree: the authorization_code grant goes with the code response type (RFC 7591 §2.1)")
	}
	if slices.Contains(m.GrantTypes, GrantRefreshToken) && !hasCode {
		return badMetadata("grant_types: refresh_token needs authorization_code, which issues refresh tokens")
	}
	if slices.Contains(m.GrantTypes, GrantClientCredentials) && m.TokenEndpointAuthMethod == AuthNone {
		return badMetadata("grant_types: client_credentials needs an authenticated client: set token_endpoint_auth_method to client_secret_basic or private_key_jwt")
	}
	if m.TokenEndpointAuthMethod == AuthPrivateKeyJWT && m.JWKSURI == "" && len(m.JWKS) == 0 {
		return badMetadata("token_endpoint_auth_method private_key_jwt needs the client's keys: set jwks_uri or jwks")
	}
	// RFC 7591 §2: jwks_uri and jwks MUST NOT both be present.
	if m.JWKSURI != "" && len(m.JWKS) > 0 {
		return badMetadata("jwks_uri and jwks must not both be set (RFC 7591 §2): keep one")
	}
	if len(m.JWKS) > 0 {
		if err := publicJWKS(m.JWKS); err != nil {
			return err
		}
	}

	if hasCode && len(m.RedirectURIs) == 0 {
		return badRedirect("redirect_uris is required for the authorization_code grant")
	}
	if len(m.RedirectURIs) > maxURIs {
		return badRedirect("redirect_uris has more than %d entries", maxURIs)
	}
	for i, u := range m.RedirectURIs {
		if err := redirectURI(u, m.ApplicationType); err != nil {
			return badRedirect("redirect_uris[%d] %q %s", i, u, err)
		}
	}
	if len(m.PostLogoutRedirectURIs) > maxURIs {
		return badMetadata("post_logout_redirect_uris has more than %d entries", maxURIs)
	}
	for i, u := range m.PostLogoutRedirectURIs {
		if err := redirectURI(u, m.ApplicationType); err != nil {
			return badMetadata("post_logout_redirect_uris[%d] %q %s", i, u, err)
		}
	}

	for _, f := range []struct{ key, v string }{
		{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}, {"tos_uri", m.TOSURI},
		{"policy_uri", m.PolicyURI}, {"jwks_uri", m.JWKSURI}, {"sector_identifier_uri", m.SectorIdentifierURI},
		{"initiate_login_uri", m.InitiateLoginURI}, {"backchannel_logout_uri", m.BackchannelLogoutURI},
		{"frontchannel_logout_uri", m.FrontchannelLogoutURI},
	} {
		if err := webURI(f.v); err != nil {
			return badMetadata("%s %q %s", f.key, f.v, err)
		}
	}
	if len(m.RequestURIs) > maxURIs {
		return badMetadata("request_uris has more than %d entries", maxURIs)
	}
	for i, u := range m.RequestURIs {
		if err := webURI(u); err != nil {
			return badMetadata("request_uris[%d] %q %s", i, u, err)
		}
	}

	if err := scope(m.Scope); err != nil {
		return err
	}
	for _, f := range []struct{ key, v string }{
		{"client_name", m.ClientName}, {"software_id", m.SoftwareID}, {"software_version", m.SoftwareVersion},
	} {
		if err := text(f.key, f.v); err != nil {
			return err
		}
	}
	for i, c := range m.Contacts {
		if err := text(fmt.Sprintf("contacts[%d]", i), c); err != nil {
			return err
		}
	}
	if m.SubjectType != "" && m.SubjectType != "public" {
		return badMetadata("subject_type %q is not supported: use public", m.SubjectType)
	}
	assertionAlgs := clientAlgs
	if m.TokenEndpointAuthMethod == AuthClientSecretJWT {
		assertionAlgs = hmacAlgs
	}
	for _, f := range []struct {
		key, v string
		algs   []string
	}{
		{"id_token_signed_response_alg", m.IDTokenSignedResponseAlg, signingAlgs},
		{"userinfo_signed_response_alg", m.UserinfoSignedResponseAlg, signingAlgs},
		{"request_object_signing_alg", m.RequestObjectSigningAlg, clientAlgs},
		{"token_endpoint_auth_signing_alg", m.TokenEndpointAuthSigningAlg, assertionAlgs},
	} {
		if f.v != "" && !slices.Contains(f.algs, f.v) {
			return badMetadata("%s %q is not supported: use one of %s", f.key, f.v, strings.Join(f.algs, ", "))
		}
	}
	if m.DefaultMaxAge < 0 {
		return badMetadata("default_max_age must not be negative")
	}
	if (m.BackchannelLogoutSessionRequired && m.BackchannelLogoutURI == "") ||
		(m.FrontchannelLogoutSessionRequired && m.FrontchannelLogoutURI == "") {
		return badMetadata("a *_logout_session_required flag is set without its logout URI")
	}
	if err := oneOf("access_token_format", m.AccessTokenFormat, []string{"", "opaque", "jwt"}); err != nil {
		return err
	}
	if m.AccessTokenLifetime < 0 || m.RefreshTokenLifetime < 0 || m.IDTokenLifetime < 0 {
		return badMetadata("lifetimes must not be negative (0 uses the server default)")
	}
	return nil
}

// publicJWKS checks that raw is a JWK Set (RFC 7517 §5) of public keys only:
// a client publishes its verification keys, and a private or symmetric key
// sent here would be a leaked secret.
func publicJWKS(raw json.RawMessage) error {
	var members struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &members); err != nil || len(members.Keys) == 0 {
		return badMetadata("jwks must be a JSON Web Key Set: an object with a non-empty keys array")
	}
	for i, k := range members.Keys {
		for _, name := range privateJWKMembers {
			if _, ok := k[name]; ok {
				return badMetadata("jwks.keys[%d] has the private or symmetric member %q: publish only public keys", i, name)
			}
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return badMetadata("jwks is not a valid JSON Web Key Set: %v", err)
	}
	for i, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return badMetadata("jwks.keys[%d] is not a usable public key (RSA, EC or OKP)", i)
		}
	}
	return nil
}

func oneOf(key, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return badMetadata("%s %q is not supported: use one of %s", key, v, strings.Join(allowed, ", "))
	}
	return nil
}

func listOf(key string, vs, allowed []string, hint string) error {
	for i, v := range vs {
		if !slices.Contains(allowed, v) {
			return badMetadata("%s %q is not supported: %s", key, v, hint)
		}
		if slices.Contains(vs[:i], v) {
			return badMetadata("%s lists %q twice", key, v)
		}
	}
	return nil
}

func text(key, v string) error {
	if len(v) > maxTextLen {
		return badMetadata("%s is longer than %d bytes", key, maxTextLen)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return badMetadata("%s must not contain control characters", key)
	}
	return nil
}

// scope checks RFC 6749 §3.3 scope-tokens: %x21 / %x23-5B / %x5D-7E.
func scope(s string) error {
	for _, tok := range strings.Fields(s) {
		for _, r := range tok {
			if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
				return badMetadata("scope %q has a character not allowed in a scope (RFC 6749 §3.3)", tok)
			}
		}
	}
	if strings.ContainsAny(s, "\t\r\n") {
		return badMetadata("scope values are separated by single spaces")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// hostChars refuses a host with sub-delims or quotes. RFC 3986 §3.2.2 lets a
// reg-name carry them, Go's url.Parse accepts them, no DNS name or IP
// address has them, and the origin of a registered URI is written into
// Content-Security-Policy headers, where ';' and ',' would start another
// directive or policy.
func hostChars(host string) error {
	if strings.ContainsAny(host, "!$&'()*+,;=\"<>") {
		return fmt.Errorf("has a host %q that is neither a DNS name nor an IP address", host)
	}
	return nil
}

// redirectURI applies RFC 6749 §3.1.2 (absolute, no fragment) and RFC 8252
// (native apps: loopback http §7.3, private-use schemes §7.1), and refuses
// wildcards and script schemes. It returns the reason for the caller's error.
func redirectURI(raw, appType string) error {
	if len(raw) > maxURILen {
		return fmt.Errorf("is longer than %d bytes", maxURILen)
	}
	if strings.Contains(raw, "*") {
		return fmt.Errorf("contains a wildcard: register each exact URI")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("is not an absolute URI (RFC 6749 §3.1.2)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not have a fragment (RFC 6749 §3.1.2)")
	}
	if err := hostChars(u.Host); err != nil {
		return err
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case slices.Contains(forbiddenSchemes, scheme):
		return fmt.Errorf("uses the %s: scheme, which is never allowed", scheme)
	case scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("has no host")
		}
	case scheme == "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("uses http on a non-loopback host: use https (http is only for 127.0.0.1, [::1] or localhost, RFC 8252 §7.3)")
		}
	default:
		// RFC 8252 §7.1: private-use URI schemes, for native apps only.
		if appType != AppNative {
			return fmt.Errorf("uses the private-use scheme %s: which only native apps may use: set application_type native", scheme)
		}
	}
	return nil
}

// webURI checks a URI the server or a browser fetches: absolute https, or
// http on loopback (development).
func webURI(raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > maxURILen {
		return fmt.Errorf("is longer than %d bytes", maxURILen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("is not an absolute https URL")
	}
	if err := hostChars(u.Host); err != nil {
		return err
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("must use https")
		}
	default:
		return fmt.Errorf("must be an https URL")
	}
	return nil
}
