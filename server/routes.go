package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/demo"
	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/web"
)

// Paths of the protocol endpoints. Discovery advertises them under the
// issuer; the pages' paths are their packages' (login, registration, demo).
const (
	AuthorizePath     = "/oauth2/authorize"
	TokenPath         = "/oauth2/token"
	RevokePath        = "/oauth2/revoke"
	IntrospectPath    = "/oauth2/introspect"
	PARPath           = "/oauth2/par"
	UserInfoPath      = "/userinfo"
	JWKSPath          = "/.well-known/jwks.json"
	OpenIDConfigPath  = "/.well-known/openid-configuration"
	OAuthMetadataPath = "/.well-known/oauth-authorization-server"
)

// This file is the one place that lists every route. Each route names its
// methods, so that anything else gets a 405 with an Allow header.

func (s *Server) publicRoutes() *mux.Router {
	r := s.newRouter()
	const (
		get  = http.MethodGet
		head = http.MethodHead
		post = http.MethodPost
		put  = http.MethodPut
		del  = http.MethodDelete
	)
	handle := func(path string, h http.HandlerFunc, methods ...string) {
		r.Handle(path, h).Methods(methods...)
	}

	handle("/health/alive", s.alive, get, head)
	handle("/health/ready", s.ready, get, head)

	// Discovery: OpenID Connect Discovery 1.0 §4 and RFC 8414 §3.
	handle(OpenIDConfigPath, s.provider.Discovery, get, head)
	handle(OAuthMetadataPath, s.provider.Discovery, get, head)
	// RFC 7517 §5 JWK Set; OpenID Connect Discovery §3 jwks_uri.
	r.Handle(JWKSPath, s.cfg.Keys.JWKSHandler()).Methods(get, head)

	// RFC 6749 §3.1 authorization endpoint (OIDC Core §3.1.2.1: GET and POST).
	handle(AuthorizePath, s.provider.Authorize, get, post)
	// RFC 6749 §3.2 token endpoint.
	handle(TokenPath, s.provider.Token, post)
	// RFC 7009 revocation, RFC 7662 introspection, RFC 9126 PAR.
	handle(RevokePath, s.provider.Revoke, post)
	handle(IntrospectPath, s.provider.Introspect, post)
	handle(PARPath, s.provider.PAR, post)
	// OIDC Core §5.3 UserInfo (§5.3.1: GET and POST).
	handle(UserInfoPath, s.provider.UserInfo, get, post)

	// Sign-in pages and the end_session_endpoint (OpenID Connect
	// RP-Initiated Logout 1.0 §2: GET and POST).
	handle(login.LoginPath, s.login.LoginPage, get)
	handle(login.LoginPath, s.login.LoginSubmit, post)
	handle(login.ConsentPath, s.login.ConsentPage, get)
	handle(login.ConsentPath, s.login.ConsentSubmit, post)
	handle(login.LogoutPath, s.login.Logout, get, post)

	// RFC 7591 §3 registration and RFC 7592 §2 client configuration endpoints.
	if s.reg != nil {
		handle(registration.Path, s.reg.Register, post)
		handle(registration.ClientPath, s.reg.Read, get)
		handle(registration.ClientPath, s.reg.Update, put)
		handle(registration.ClientPath, s.reg.Delete, del)
	}

	// Dev mode's demo relying party.
	if s.demo != nil {
		handle(demo.HomePath, s.demo.Home, get, head)
		handle(demo.LoginPath, s.demo.Start, get, post)
		handle(demo.CallbackPath, s.demo.Callback, get)
		handle(demo.RefreshPath, s.demo.Refresh, post)
		handle(demo.LogoutPath, s.demo.Logout, post)
	}

	r.PathPrefix(web.StaticPrefix).Handler(s.ui.StaticHandler(http.HandlerFunc(s.notFound))).Methods(get, head)

	return r
}

func (s *Server) adminRoutes() *mux.Router {
	r := s.newRouter()

	r.Handle("/health/alive", http.HandlerFunc(s.alive)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/health/ready", http.HandlerFunc(s.ready)).Methods(http.MethodGet, http.MethodHead)

	// The admin API (/admin/...), behind its bearer token; server/admin
	// lists its routes and their methods.
	s.adminAPI.Routes(r)

	if s.cfg.Admin.PProf {
		// Profiling a running server (docs/performance.md); off by default
		// and behind the admin token: profiles and the command line show
		// what the process holds.
		g := s.adminAPI.Guard
		r.Handle("/debug/pprof/cmdline", g(http.HandlerFunc(pprof.Cmdline))).Methods(http.MethodGet)
		r.Handle("/debug/pprof/profile", g(http.HandlerFunc(pprof.Profile))).Methods(http.MethodGet)
		r.Handle("/debug/pprof/symbol", g(http.HandlerFunc(pprof.Symbol))).Methods(http.MethodGet, http.MethodPost)
		r.Handle("/debug/pprof/trace", g(http.HandlerFunc(pprof.Trace))).Methods(http.MethodGet)
		r.PathPrefix("/debug/pprof/").Handler(g(http.HandlerFunc(pprof.Index))).Methods(http.MethodGet)
	}

	return r
}
