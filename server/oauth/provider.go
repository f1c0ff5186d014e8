// Package oauth is Gatehouse's OAuth 2.0 / OpenID Connect protocol core, built
// on fosite. It is the only package that imports fosite.
//
// It exports HTTP handlers as methods of Provider (no routing here) and a seam
// for the login and consent pages: Interaction (see authorize.go).
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/hmac"
	"github.com/ory/fosite/token/jwt"

	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/ttlcache"
)

// Endpoints are the paths the router mounts the handlers on; discovery
// advertises them under the issuer.
type Endpoints struct {
	Authorize  string // default /oauth2/authorize
	Token      string // default /oauth2/token
	Revoke     string // default /oauth2/revoke
	Introspect string // default /oauth2/introspect
	UserInfo   string // default /userinfo
	PAR        string // default /oauth2/par
	JWKS       string // default /.well-known/jwks.json
	EndSession string // default /oauth2/logout
}

func (e Endpoints) withDefaults() Endpoints {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return Endpoints{
		Authorize:  def(e.Authorize, "/oauth2/authorize"),
		Token:      def(e.Token, "/oauth2/token"),
		Revoke:     def(e.Revoke, "/oauth2/revoke"),
		Introspect: def(e.Introspect, "/oauth2/introspect"),
		UserInfo:   def(e.UserInfo, "/userinfo"),
		PAR:        def(e.PAR, "/oauth2/par"),
		JWKS:       def(e.JWKS, "/.well-known/jwks.json"),
		EndSession: def(e.EndSession, "/oauth2/logout"),
	}
}

// RenderErrorFunc writes an HTML error page. The authorization endpoint uses it
// when it cannot trust the redirect URI (unknown client, unregistered
// redirect_uri): it must never redirect then (RFC 6749 §4.1.2.1).
type RenderErrorFunc func(w http.ResponseWriter, r *http.Request, status int, title, msg string)

// Config configures a Provider. Zero values take the documented defaults.
type Config struct {
	// Issuer is the https URL identifying Gatehouse (OIDC Core §2 iss).
	Issuer string
	Stores storage.Stores
	// Ring keys the HMAC of opaque tokens (ring.Derive("fosite-hmac", 32):
	// the current key signs, older ones still verify) and client-secret hashes.
	Ring *secrets.Keyring
	// SigningKey returns the active key of an algorithm (server/keys).
	SigningKey SigningKeyFunc
	// PublicKeys returns every published key, to verify tokens signed before
	// a rotation (id_token_hint). Optional: nil verifies with active keys only.
	PublicKeys PublicKeysFunc
	// Interaction is the login/consent seam; RenderError the HTML error page.
	Interaction Interaction
	RenderError RenderErrorFunc
	Endpoints   Endpoints

	AccessTokenLifetime   time.Duration // default 1h
	RefreshTokenLifetime  time.Duration // default 30 days
	IDTokenLifetime       time.Duration // default 1h
	AuthorizeCodeLifetime time.Duration // default 10m (RFC 6749 §4.1.2)
	PARLifetime           time.Duration // default 90s (RFC 9126 §2.2)
	InteractionLifetime   time.Duration // how long a pending authorization waits for login/consent; default 30m
	// RefreshGracePeriod, when positive, lets a client retry a refresh with
	// the token it just rotated, for this long, and get the same new pair
	// again instead of having the grant revoked (a lost response, two browser
	// tabs). 0 (the default) is strict rotation (RFC 9700 §4.14.2).
	RefreshGracePeriod time.Duration
	// ClientCacheTTL, when positive, caches clients read from storage for
	// this long: a change made on another replica (a deleted client, a
	// revoked secret) takes effect within it. 0 (the default) reads the
	// client on every request. ClientCacheSize bounds the entries (0: 10,000).
	ClientCacheTTL  time.Duration
	ClientCacheSize int

	// PKCEPublicClientsOnly requires PKCE only of public clients; by default
	// every authorization code request needs it (RFC 9700 §2.1.1).
	PKCEPublicClientsOnly bool
	// EnableImplicit and EnableHybrid turn on response types that return
	// tokens from the authorization endpoint; off by default (RFC 9700 §2.1.2).
	EnableImplicit bool
	EnableHybrid   bool
	// RefreshWithoutOfflineAccess lists clients that get refresh tokens
	// without offline_access (see refreshpolicy.go).
	RefreshWithoutOfflineAccess []string

	// AccessTokenAlg signs RFC 9068 JWT access tokens; default ES256.
	AccessTokenAlg string
	// IDTokenAlgs are advertised in discovery; default RS256 (OIDC Core §15.1).
	IDTokenAlgs []string
	// ScopesSupported adds scopes to the advertised standard ones.
	ScopesSupported []string

	// RequirePushedAuthorizationRequests makes every client push its
	// authorization requests (RFC 9126 §5); a client can also be made to
	// individually (storage.Client.RequirePushedAuthorizationRequests).
	RequirePushedAuthorizationRequests bool
	// RegistrationEndpoint is the dynamic client registration endpoint's
	// URL (server/registration's Endpoint), advertised as
	// registration_endpoint (RFC 8414 §2); empty when registration is off.
	RegistrationEndpoint string
	// JWKSFetcher fetches clients' jwks_uri and request_uri documents;
	// nil is a fetcher refusing internal addresses (see server/jwksfetch).
	JWKSFetcher *jwksfetch.Fetcher

	Logger *slog.Logger
	Now    func() time.Time
}

// Provider is the OAuth 2.0 / OpenID Connect server.
type Provider struct {
	cfg       Config
	ep        Endpoints
	issuer    string
	f         fosite.OAuth2Provider
	fcfg      *fosite.Config
	store     *Store
	durable   storage.Durable
	ephemeral storage.Ephemeral
	idSigner  *keySigner
	tokens    *tokenStrategy
	// refreshAnyScope are the clients of Config.RefreshWithoutOfflineAccess.
	refreshAnyScope map[string]bool
	// graceWait bounds a grace-period retry's wait for the first response.
	graceWait time.Duration
	log       *slog.Logger
	now       func() time.Time
	// pending keeps this process's recent pending authorizations by
	// signature (pending.go).
	pending *ttlcache.Cache[string, storage.Request]

	openIDConfig    []byte // the pre-encoded discovery document
	openIDConfigLen []string
}

// New builds a Provider.
func New(cfg Config) (*Provider, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	ep := cfg.Endpoints.withDefaults()
	hmacKeys := cfg.Ring.Derive("fosite-hmac", 32)

	store, err := NewStore(StoreConfig{
		Stores:                cfg.Stores,
		Issuer:                issuer,
		AuthorizeCodeLifetime: cfg.AuthorizeCodeLifetime,
		AccessTokenLifetime:   cfg.AccessTokenLifetime,
		RefreshTokenLifetime:  cfg.RefreshTokenLifetime,
		PARLifetime:           cfg.PARLifetime,
		Now:                   cfg.Now,
		RefreshGracePeriod:    cfg.RefreshGracePeriod,
		ClientCacheTTL:        cfg.ClientCacheTTL,
		ClientCacheSize:       cfg.ClientCacheSize,
	})
	if err != nil {
		return nil, err
	}

	fcfg := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenLifetime,
		RefreshTokenLifespan:  cfg.RefreshTokenLifetime,
		IDTokenLifespan:       cfg.IDTokenLifetime,
		AuthorizeCodeLifespan: cfg.AuthorizeCodeLifetime,
		IDTokenIssuer:         issuer,
		AccessTokenIssuer:     issuer,
		TokenURL:              issuer + ep.Token,
		// Exact matching: a registered "api" never lets a client ask "api.admin".
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCE:                    !cfg.PKCEPublicClientsOnly,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false, // RFC 9700 §2.1.1: S256 only
		SendDebugMessagesToClients:     false,
		// Refresh tokens only for offline_access (OIDC Core §11).
		RefreshTokenScopes:              []string{"offline_access"},
		JWTScopeClaimKey:                jwt.JWTScopeFieldString,
		ClientSecretsHasher:             secretHasher{ring: cfg.Ring},
		GlobalSecret:                    hmacKeys[0],
		RotatedGlobalSecrets:            hmacKeys[1:],
		PushedAuthorizeRequestURIPrefix: "urn:ietf:params:oauth:request_uri:",
		PushedAuthorizeContextLifespan:  cfg.PARLifetime,
		AllowedPromptValues:             []string{"login", "none", "consent", "select_account"},
		FormPostHTMLTemplate:            formPostTemplate,
	}

	idSigner := &keySigner{signingKey: cfg.SigningKey, publicKeys: cfg.PublicKeys, defaultAlg: "RS256"}
	atSigner := &keySigner{signingKey: cfg.SigningKey, publicKeys: cfg.PublicKeys, defaultAlg: cfg.AccessTokenAlg, fallbackAudience: issuer}
	hmacStrategy := oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: fcfg}, fcfg)
	tokens := &tokenStrategy{
		hmac: hmacStrategy,
		jwt:  &oauth2.DefaultJWTStrategy{Signer: atSigner, HMACSHAStrategy: hmacStrategy, Config: fcfg},
	}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               tokens,
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: idSigner, Config: fcfg},
		Signer:                     idSigner,
	}

	factories := []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.PushedAuthorizeHandlerFactory,
	}
	if cfg.EnableImplicit {
		factories = append(factories, compose.OAuth2AuthorizeImplicitFactory, compose.OpenIDConnectImplicitFactory)
	}
	if cfg.EnableHybrid {
		factories = append(factories, compose.OpenIDConnectHybridFactory)
	}

	p := &Provider{
		cfg:       cfg,
		ep:        ep,
		issuer:    issuer,
		f:         composeHandlers(fcfg, policyConfig{fcfg}, store, strategy, factories...),
		fcfg:      fcfg,
		store:     store,
		durable:   cfg.Stores.Durable,
		ephemeral: cfg.Stores.Ephemeral,
		idSigner:  idSigner,
		tokens:    tokens,
		graceWait: defaultGraceWait,
		log:       cfg.Logger,
		now:       cfg.Now,
		pending:   ttlcache.New[string, storage.Request](pendingCacheSize, nil),
	}
	p.refreshAnyScope = map[string]bool{}
	for _, id := range cfg.RefreshWithoutOfflineAccess {
		p.refreshAnyScope[id] = true
	}
	for i, h := range fcfg.TokenEndpointHandlers {
		fcfg.TokenEndpointHandlers[i] = gatedTokenHandler{h} // strategy.go
	}
	p.installClientPolicy() // clientauth.go, requestobject.go
	if err := p.encodeDiscovery(); err != nil {
		return nil, err
	}
	return p, nil
}

func validate(cfg *Config) error {
	var errs []error
	u, err := url.Parse(cfg.Issuer)
	switch {
	case cfg.Issuer == "":
		errs = append(errs, errors.New("issuer is required"))
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("issuer %q must be an absolute http(s) URL without query or fragment (OIDC Discovery §3)", cfg.Issuer))
	}
	if cfg.Stores.Durable == nil || cfg.Stores.Ephemeral == nil {
		errs = append(errs, errors.New("durable and ephemeral stores are required"))
	}
	if cfg.Ring == nil {
		errs = append(errs, errors.New("a secrets keyring is required"))
	}
	if cfg.SigningKey == nil {
		errs = append(errs, errors.New("a signing key source is required"))
	}
	if cfg.Interaction == nil {
		errs = append(errs, errors.New("an interaction (login/consent) is required"))
	}
	if cfg.RefreshGracePeriod < 0 {
		errs = append(errs, fmt.Errorf("refresh grace period %s must not be negative (0 is off)", cfg.RefreshGracePeriod))
	}
	if len(errs) > 0 {
		return fmt.Errorf("oauth config: %w", errors.Join(errs...))
	}
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDuration(&cfg.AccessTokenLifetime, time.Hour)
	setDuration(&cfg.RefreshTokenLifetime, 30*24*time.Hour)
	setDuration(&cfg.IDTokenLifetime, time.Hour)
	setDuration(&cfg.AuthorizeCodeLifetime, 10*time.Minute)
	setDuration(&cfg.PARLifetime, 90*time.Second)
	setDuration(&cfg.InteractionLifetime, 30*time.Minute)
	if cfg.AccessTokenAlg == "" {
		cfg.AccessTokenAlg = "ES256"
	}
	if len(cfg.IDTokenAlgs) == 0 {
		cfg.IDTokenAlgs = []string{"RS256"}
	}
	if cfg.RenderError == nil {
		cfg.RenderError = plainErrorPage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// plainErrorPage is the fallback RenderError: text, never a redirect.
func plainErrorPage(w http.ResponseWriter, _ *http.Request, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s\n\n%s\n", title, msg)
}

// Issuer returns the issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// Store returns the fosite storage adapter (for tests and admin tools).
func (p *Provider) Store() *Store { return p.store }

// ForgetClient drops a client from the client cache; call it after
// changing or deleting the client in this process.
func (p *Provider) ForgetClient(id string) { p.store.ForgetClient(id) }

// VerifyIDTokenHint verifies an ID token Gatehouse issued, accepting an
// expired one (RP-Initiated Logout 1.0 §2 id_token_hint), and returns its
// subject, audience client and sid.
func (p *Provider) VerifyIDTokenHint(ctx context.Context, hint string) (subject, clientID, sid string, err error) {
	claims, err := p.idSigner.decodeHint(ctx, hint)
	if err != nil {
		return "", "", "", fmt.Errorf("verifying id_token_hint: %w", err)
	}
	if iss, _ := claims["iss"].(string); iss != p.issuer {
		return "", "", "", errors.New("verifying id_token_hint: issuer mismatch")
	}
	subject, _ = claims["sub"].(string)
	sid, _ = claims["sid"].(string)
	switch aud := claims["aud"].(type) {
	case string:
		clientID = aud
	case []any:
		if len(aud) > 0 {
			clientID, _ = aud[0].(string)
		}
	}
	if azp, _ := claims["azp"].(string); azp != "" {
		clientID = azp
	}
	return subject, clientID, sid, nil
}
