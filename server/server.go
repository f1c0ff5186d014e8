// Package server assembles Gatehouse's HTTP handlers: the public handler
// (protocol endpoints, login and consent pages, dynamic registration, the dev
// demo, static assets) and the admin handler (health), wrapped in the
// middleware every request goes through. New builds every feature from its
// dependencies; routes.go is the one list of routes.
package server

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/admin"
	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/demo"
	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/logout"
	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/requestid"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxBodyBytes = 1 << 20 // 1 MiB: far above any legitimate form or JSON body
	DefaultReadyTimeout = 2 * time.Second
)

// Config is everything the server needs: its dependencies and settings.
type Config struct {
	// Issuer is the OpenID Provider's issuer URL (https, or http in dev). It
	// decides whether Strict-Transport-Security is sent. Required.
	Issuer string
	// Logger receives the access log and errors. Required. New wraps its
	// handler so that request-scoped lines carry request_id.
	Logger *slog.Logger
	// Stores are the durable and the ephemeral storage backends. Both required.
	Stores storage.Stores
	// Ring is the system secret keyring: token HMACs, client secret hashes,
	// CSRF tokens, sealed cookies. Required.
	Ring *secrets.Keyring
	// Keys is the signing key set (a *keys.Manager). Required.
	Keys Keys
	// Passwords hashes and verifies user passwords. Default: argon2id with
	// password.DefaultParams.
	Passwords *password.Hasher
	// OAuth is the protocol policy.
	OAuth OAuthConfig
	// Registration configures dynamic client registration (RFC 7591/7592).
	Registration RegistrationConfig
	// Demo, when set (dev mode), mounts the demo relying party at /demo.
	Demo *DemoConfig
	// Admin configures the admin API on the admin listener.
	Admin AdminConfig
	// AllowPrivateLogoutURIs lets back-channel logout deliveries reach
	// loopback and private addresses (config clients.allow_private_jwks_uri).
	AllowPrivateLogoutURIs bool
	// MaxBodyBytes bounds every request body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadyTimeout bounds each storage ping of /health/ready. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// TemplatesDir, when set, holds templates that replace the embedded ones, file by file.
	TemplatesDir string
	// Brand is the pages' product name, logo and accent colour.
	Brand web.Brand
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// OAuthConfig is the protocol policy of the OAuth 2.0 / OpenID Connect
// endpoints. Zero values take server/oauth's defaults.
type OAuthConfig struct {
	AccessTokenLifetime   time.Duration
	RefreshTokenLifetime  time.Duration
	IDTokenLifetime       time.Duration
	AuthorizeCodeLifetime time.Duration
	// RefreshGracePeriod lets a client retry a refresh with the token it
	// just rotated; 0 is strict rotation (RFC 9700 §4.14.2).
	RefreshGracePeriod time.Duration
	// PKCEPublicClientsOnly requires PKCE of public clients only; by default
	// every authorization code request needs it (RFC 9700 §2.1.1).
	PKCEPublicClientsOnly bool
	// EnableImplicit and EnableHybrid turn on the response types that return
	// tokens from the authorization endpoint (off: RFC 9700 §2.1.2).
	EnableImplicit bool
	EnableHybrid   bool
	// RefreshWithoutOfflineAccess lists clients that get refresh tokens
	// without offline_access (OIDC Core §11 otherwise requires it).
	RefreshWithoutOfflineAccess []string
	// RequirePushedAuthorizationRequests makes every client use PAR (RFC 9126 §5).
	RequirePushedAuthorizationRequests bool
	// AllowPrivateJWKSURI lets clients' jwks_uri and request_uri resolve to
	// internal addresses (tests, private deployments).
	AllowPrivateJWKSURI bool
	// SigningAlgs are the algorithms there are signing keys for: ID tokens
	// may be signed with any of them. Default RS256.
	SigningAlgs []string
	// ClientCacheTTL caches clients read from storage this long (0: off);
	// see oauth.Config.
	ClientCacheTTL time.Duration
}

// RegistrationConfig configures dynamic client registration.
type RegistrationConfig struct {
	// Policy is open, initial_access_token or disabled (the zero value).
	Policy registration.Policy
	// AccessTokenLifetime is how long a registration access token works (0: forever).
	AccessTokenLifetime time.Duration
	// SecretRotationOverlap keeps a rotated client secret working this long.
	SecretRotationOverlap time.Duration
	// MaxBodyBytes caps a registration request; 0: registration's default.
	MaxBodyBytes int64
}

// DemoConfig turns on dev mode's demo relying party. The demo's user and
// client must exist already (demo.Bootstrap).
type DemoConfig struct {
	// ClientSecret is demo.Info.ClientSecret from Bootstrap.
	ClientSecret string
	// HTTPClient makes the demo's back-channel calls to the issuer. Default:
	// demo's own (10 s timeout).
	HTTPClient *http.Client
}

// Keys is what the server needs of the signing key manager
// (*keys.Manager): signing, the published key set, and the admin API's view.
type Keys interface {
	SigningKey(ctx context.Context, alg string) (kid string, key crypto.Signer, err error)
	PublicKeys() jose.JSONWebKeySet
	JWKSHandler() http.Handler
	Algorithms() []string
	List() []keys.KeyInfo
	Rotate(ctx context.Context, force bool) error
}

// AdminConfig configures the admin API.
type AdminConfig struct {
	// Token is the bearer token of the admin API; empty answers 503,
	// unless Dev, where a random one is made and logged once.
	Token string
	Dev   bool
	// PProf mounts net/http/pprof under /debug/pprof/ on the admin listener.
	PProf bool
}

// Server holds the assembled handlers.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ui     *web.UI
	hsts   bool
	public http.Handler
	admin  http.Handler

	provider *oauth.Provider
	login    *login.Handler
	reg      *registration.Handler // nil when registration is disabled
	demo     *demo.Handler         // nil outside dev mode
	adminAPI *admin.API
	outbox   *logout.Deliverer
}

// New checks cfg, parses the templates and builds every feature's handlers.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		return nil, errors.New("server config: logger is required")
	}
	if cfg.Stores.Durable == nil || cfg.Stores.Ephemeral == nil {
		return nil, errors.New("server config: durable and ephemeral stores are required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("server config: signing keys are required")
	}
	if cfg.Ring == nil {
		return nil, errors.New("server config: system secret keyring is required")
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" {
		return nil, fmt.Errorf("server config: issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registration.Policy == "" {
		cfg.Registration.Policy = registration.PolicyDisabled
	}
	if cfg.Passwords == nil {
		if cfg.Passwords, err = password.New(password.DefaultParams); err != nil {
			return nil, err
		}
	}
	webCfg := web.Config{Brand: cfg.Brand, TemplatesDir: cfg.TemplatesDir}
	ui, err := web.New(webCfg)
	if err != nil {
		return nil, fmt.Errorf("loading templates: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		log:  slog.New(requestid.LogHandler(cfg.Logger.Handler())),
		ui:   ui,
		hsts: iss.Scheme == "https",
	}
	if err := s.buildFeatures(webCfg); err != nil {
		return nil, err
	}
	s.public = s.wrap(s.publicRoutes(), "public")
	s.admin = s.wrap(s.adminRoutes(), "admin")
	return s, nil
}

// buildFeatures wires the protocol core, the pages, registration and the
// demo. login and oauth need each other: login is the provider's
// Interaction, the provider is login's Flow, hence SetFlow.
func (s *Server) buildFeatures(webCfg web.Config) (err error) {
	cfg := s.cfg
	st := cfg.Stores
	log := s.log
	s.outbox, err = logout.NewDeliverer(logout.DelivererConfig{
		Outbox: st.Durable, Clients: st.Durable, Keys: cfg.Keys,
		AllowPrivate: cfg.AllowPrivateLogoutURIs,
		Logger:       log.With("component", "logout"),
		Now:          cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("building the logout deliverer: %w", err)
	}
	logoutSvc, err := logout.New(logout.Config{
		Issuer: cfg.Issuer, Clients: st.Durable, Sessions: st.Ephemeral, Outbox: st.Durable,
		Notify: s.outbox.Notify,
		Logger: log.With("component", "logout"),
		Now:    cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("building logout propagation: %w", err)
	}
	sessions, err := session.New(session.Config{Store: st.Ephemeral, Keys: cfg.Ring, Secure: s.hsts, Now: cfg.Now})
	if err != nil {
		return fmt.Errorf("building sessions: %w", err)
	}
	s.login, err = login.New(login.Config{
		Users: st.Durable, Clients: st.Durable, Consents: st.Durable, Throttle: st.Ephemeral,
		Sessions: sessions, Passwords: cfg.Passwords,
		UI: s.ui, Web: webCfg,
		Logout: logoutSvc,
		Logger: s.log.With("component", "login"),
		Now:    cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("building login pages: %w", err)
	}

	// Changes through the admin API or registration drop the provider's
	// cached copy of the client at once (other replicas: within its TTL).
	clientSvc := clients.New(forgettingClients{Store: st.Durable, s: s}, cfg.Ring, s.log.With("component", "clients"))
	if cfg.Registration.Policy != registration.PolicyDisabled {
		s.reg, err = registration.New(registration.Config{
			Issuer:                cfg.Issuer,
			Clients:               clientSvc,
			Store:                 st.Durable,
			Ring:                  cfg.Ring,
			Policy:                cfg.Registration.Policy,
			SigningAlgs:           cfg.OAuth.SigningAlgs,
			AccessTokenLifetime:   cfg.Registration.AccessTokenLifetime,
			SecretRotationOverlap: cfg.Registration.SecretRotationOverlap,
			MaxBodyBytes:          cfg.Registration.MaxBodyBytes,
			Grants:                st.Ephemeral,
			Logger:                s.log.With("component", "registration"),
			Now:                   cfg.Now,
		})
		if err != nil {
			return fmt.Errorf("building registration: %w", err)
		}
	}
	var regEndpoint string
	if s.reg != nil {
		regEndpoint = s.reg.Endpoint()
	}

	o := cfg.OAuth
	s.provider, err = oauth.New(oauth.Config{
		Issuer:      cfg.Issuer,
		Stores:      st,
		Ring:        cfg.Ring,
		SigningKey:  cfg.Keys.SigningKey,
		PublicKeys:  cfg.Keys.PublicKeys,
		Interaction: s.login,
		RenderError: s.renderAuthorizeError,
		Endpoints: oauth.Endpoints{
			Authorize: AuthorizePath, Token: TokenPath, Revoke: RevokePath, Introspect: IntrospectPath,
			UserInfo: UserInfoPath, PAR: PARPath, JWKS: JWKSPath, EndSession: login.LogoutPath,
		},
		AccessTokenLifetime:                o.AccessTokenLifetime,
		RefreshTokenLifetime:               o.RefreshTokenLifetime,
		IDTokenLifetime:                    o.IDTokenLifetime,
		AuthorizeCodeLifetime:              o.AuthorizeCodeLifetime,
		RefreshGracePeriod:                 o.RefreshGracePeriod,
		PKCEPublicClientsOnly:              o.PKCEPublicClientsOnly,
		EnableImplicit:                     o.EnableImplicit,
		EnableHybrid:                       o.EnableHybrid,
		RefreshWithoutOfflineAccess:        o.RefreshWithoutOfflineAccess,
		AccessTokenAlg:                     accessTokenAlg(o.SigningAlgs),
		IDTokenAlgs:                        o.SigningAlgs,
		RequirePushedAuthorizationRequests: o.RequirePushedAuthorizationRequests,
		RegistrationEndpoint:               regEndpoint,
		ClientCacheTTL:                     o.ClientCacheTTL,
		JWKSFetcher: jwksfetch.New(jwksfetch.Config{
			AllowPrivate: o.AllowPrivateJWKSURI,
			Logger:       s.log.With("component", "jwksfetch"),
			Now:          cfg.Now,
		}),
		Logger: s.log.With("component", "oauth"),
		Now:    cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("building the oauth provider: %w", err)
	}
	s.login.SetFlow(s.provider)

	tokens := registration.NewTokenService(st.Durable, cfg.Ring, log.With("component", "registration"), cfg.Now)
	if s.reg != nil {
		tokens = s.reg.Tokens()
	}
	s.adminAPI, err = admin.New(admin.Config{
		Token:    cfg.Admin.Token,
		Dev:      cfg.Admin.Dev,
		Clients:  clientSvc,
		Users:    users.New(st.Durable, cfg.Passwords, log.With("component", "users")),
		Tokens:   tokens,
		Keys:     cfg.Keys,
		Sessions: st.Ephemeral,
		Consents: st.Durable,
		Grants:   st.Ephemeral,
		Ender:    logoutSvc,
		Logger:   log.With("component", "admin"),
	})
	if err != nil {
		return fmt.Errorf("building the admin API: %w", err)
	}

	if cfg.Demo != nil {
		pages, err := demo.NewPages(s.ui, webCfg)
		if err != nil {
			return fmt.Errorf("loading demo pages: %w", err)
		}
		if cfg.Demo.ClientSecret == "" {
			return errors.New("server config: the demo needs its client secret (demo.Bootstrap)")
		}
		s.demo = demo.New(demo.Config{
			Issuer:       cfg.Issuer,
			ClientSecret: cfg.Demo.ClientSecret,
			HTTPClient:   cfg.Demo.HTTPClient,
			Renderer:     pages,
			Keyring:      cfg.Ring,
			Logger:       s.log.With("component", "demo"),
			Now:          cfg.Now,
		})
	}
	return nil
}

// Run delivers queued back-channel logout notifications until ctx ends
// (OpenID Connect Back-Channel Logout 1.0 §2.5). Run it in every replica:
// they share the outbox.
func (s *Server) Run(ctx context.Context) error { return s.outbox.Run(ctx) }

// accessTokenAlg picks the JWS algorithm of RFC 9068 JWT access tokens:
// ES256 (short signatures) when there is such a key, else the first one.
func accessTokenAlg(algs []string) string {
	if len(algs) == 0 || slices.Contains(algs, "ES256") {
		return "ES256"
	}
	return algs[0]
}

// renderAuthorizeError is the authorization endpoint's error page, for
// requests whose redirect URI cannot be trusted: never a redirect then
// (RFC 6749 §4.1.2.1).
func (s *Server) renderAuthorizeError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	err := s.ui.RenderError(w, status, web.ErrorPage{Title: title, Message: msg, RequestID: requestid.FromContext(r.Context())})
	if err != nil {
		s.log.ErrorContext(r.Context(), "rendering error page", "error", err)
		http.Error(w, title, status)
	}
}

// Handler is the public listener's handler.
func (s *Server) Handler() http.Handler { return s.public }

// AdminHandler is the admin listener's handler: bind it to a private address.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// newRouter returns a router whose 404 and 405 answers are Gatehouse's own.
func (s *Server) newRouter() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = methodNotAllowed(r, s)
	return r
}

// forgettingClients tells the provider's client cache about every change.
type forgettingClients struct {
	clients.Store
	s *Server
}

func (f forgettingClients) forget(id string) {
	if f.s.provider != nil {
		f.s.provider.ForgetClient(id)
	}
}

func (f forgettingClients) UpdateClient(ctx context.Context, id string, update func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	c, err := f.Store.UpdateClient(ctx, id, update)
	f.forget(id)
	return c, err
}

func (f forgettingClients) DeleteClient(ctx context.Context, id string) error {
	err := f.Store.DeleteClient(ctx, id)
	f.forget(id)
	return err
}
