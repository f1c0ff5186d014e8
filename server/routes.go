package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/web"
)

// This file is the one place that lists every route. Each route names its
// methods, so that anything else gets a 405 with an Allow header.

func (s *Server) publicRoutes() *mux.Router {
	r := s.newRouter()

	r.Handle("/health/alive", http.HandlerFunc(s.alive)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/health/ready", http.HandlerFunc(s.ready)).Methods(http.MethodGet, http.MethodHead)

	// RFC 7517 §5 JWK Set; OpenID Connect Discovery §3 jwks_uri.
	r.Handle("/.well-known/jwks.json", s.cfg.JWKS).Methods(http.MethodGet, http.MethodHead)

	r.PathPrefix(web.StaticPrefix).Handler(s.ui.StaticHandler(http.HandlerFunc(s.notFound))).Methods(http.MethodGet, http.MethodHead)

	return r
}

func (s *Server) adminRoutes() *mux.Router {
	r := s.newRouter()

	r.Handle("/health/alive", http.HandlerFunc(s.alive)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/health/ready", http.HandlerFunc(s.ready)).Methods(http.MethodGet, http.MethodHead)

	return r
}
