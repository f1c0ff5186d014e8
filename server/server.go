// Package server assembles Gatehouse's HTTP handlers: the public handler
// (protocol endpoints, pages, static assets) and the admin handler (health,
// later the admin API), wrapped in the middleware every request goes through.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
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
	// JWKS serves the public key set at /.well-known/jwks.json (the key
	// manager's JWKSHandler). Required.
	JWKS http.Handler
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

// Server holds the assembled handlers.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ui     *web.UI
	hsts   bool
	public http.Handler
	admin  http.Handler
}

// New checks cfg, parses the templates and builds the handlers.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		return nil, errors.New("server config: logger is required")
	}
	if cfg.Stores.Durable == nil || cfg.Stores.Ephemeral == nil {
		return nil, errors.New("server config: durable and ephemeral stores are required")
	}
	if cfg.JWKS == nil {
		return nil, errors.New("server config: JWKS handler is required")
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
	ui, err := web.New(web.Config{Brand: cfg.Brand, TemplatesDir: cfg.TemplatesDir})
	if err != nil {
		return nil, fmt.Errorf("loading templates: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		log:  slog.New(requestid.LogHandler(cfg.Logger.Handler())),
		ui:   ui,
		hsts: iss.Scheme == "https",
	}
	s.public = s.wrap(s.publicRoutes(), "public")
	s.admin = s.wrap(s.adminRoutes(), "admin")
	return s, nil
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
