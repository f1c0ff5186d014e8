// Package admin is Gatehouse's admin API: JSON over HTTP, on the admin
// listener only, behind one bearer token. It manages clients, users, their
// sessions, consents and grants, the signing keys and the registration
// tokens. Every change goes through the same services the CLI uses
// (server/clients, server/users, server/registration, server/keys); the
// handlers only translate HTTP to calls and errors to answers.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Limits.
const (
	// MinTokenBytes is the shortest accepted admin token (config.MinAdminTokenBytes).
	MinTokenBytes = 32
	// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is 0:
	// far above any client metadata or user document.
	DefaultMaxBodyBytes = 64 << 10
	// MaxPageLimit is the largest ?limit= a listing accepts.
	MaxPageLimit = 1000
)

// SessionEnder ends a browser session and propagates the logout to the
// session's clients (server/logout's Service).
type SessionEnder interface {
	EndSession(ctx context.Context, sess storage.Session) error
}

// KeyManager is the part of *keys.Manager the API needs.
type KeyManager interface {
	List() []keys.KeyInfo
	Rotate(ctx context.Context, force bool) error
}

// GrantRevoker revokes every grant of a user or of a client.
type GrantRevoker interface {
	RevokeGrantsBySubject(ctx context.Context, subject string) (int, error)
	RevokeGrantsByClient(ctx context.Context, clientID string) (int, error)
}

// Config is what the API needs. Every service and store is required.
type Config struct {
	// Token is the bearer token every request must present. Empty disables
	// the API (every route answers 503), unless Dev is set: then New makes a
	// random token and logs it once.
	Token string
	Dev   bool

	Clients  *clients.Service
	Users    *users.Service
	Tokens   *registration.TokenService
	Keys     KeyManager
	Sessions storage.SessionStore
	Consents storage.ConsentStore
	Grants   GrantRevoker
	Ender    SessionEnder

	// MaxBodyBytes bounds request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// API serves the admin routes.
type API struct {
	cfg       Config
	log       *slog.Logger
	tokenHash [sha256.Size]byte
	enabled   bool
}

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Clients": cfg.Clients != nil, "Users": cfg.Users != nil, "Tokens": cfg.Tokens != nil,
		"Keys": cfg.Keys != nil, "Sessions": cfg.Sessions != nil, "Consents": cfg.Consents != nil,
		"Grants": cfg.Grants != nil, "Ender": cfg.Ender != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("admin config: %s required", strings.Join(sortedCopy(missing), ", "))
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, log: cfg.Logger}
	switch {
	case cfg.Token != "" && len(cfg.Token) < MinTokenBytes:
		return nil, fmt.Errorf("admin config: the token is %d bytes, at least %d are required", len(cfg.Token), MinTokenBytes)
	case cfg.Token == "" && cfg.Dev:
		cfg.Token = randomToken()
		// Dev mode only, and the one place the token is ever shown: the
		// developer needs it to call the API and configured none.
		a.log.Warn("admin API token generated for dev mode; set admin.token (GATEHOUSE_ADMIN_TOKEN) to choose one",
			"admin_token", cfg.Token)
	case cfg.Token == "":
		a.log.Warn("admin API disabled: no admin.token configured (GATEHOUSE_ADMIN_TOKEN or GATEHOUSE_ADMIN_TOKEN_FILE)")
	}
	if cfg.Token != "" {
		a.tokenHash = sha256.Sum256([]byte(cfg.Token))
		a.enabled = true
	}
	return a, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Handler serves the admin routes on their own, with JSON 404 and 405
// answers, for a listener that serves nothing else.
func (a *API) Handler() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, http.StatusNotFound, codeNotFound, "there is no admin resource at this path")
	})
	r.MethodNotAllowedHandler = methodNotAllowed(r)
	a.Routes(r)
	return r
}

// Routes adds every admin route to r, each with its methods and behind the
// bearer token.
func (a *API) Routes(r *mux.Router) {
	for _, rt := range a.routes() {
		r.Handle(rt.path, a.guard(rt.handler)).Methods(rt.method)
	}
}

// Guard puts next behind the admin token, as every admin route is (the
// profiler on the admin listener uses it).
func (a *API) Guard(next http.Handler) http.Handler { return a.guard(next) }

type route struct {
	method, path string
	handler      http.HandlerFunc
}

func (a *API) routes() []route {
	const (
		get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	)
	return []route{
		{get, "/admin/openapi.json", a.openAPI},

		{get, "/admin/clients", a.listClients},
		{post, "/admin/clients", a.createClient},
		{get, "/admin/clients/{id}", a.getClient},
		{put, "/admin/clients/{id}", a.updateClient},
		{del, "/admin/clients/{id}", a.deleteClient},
		{post, "/admin/clients/{id}/secret", a.rotateClientSecret},
		{del, "/admin/clients/{id}/grants", a.revokeClientGrants},

		{get, "/admin/users", a.listUsers},
		{post, "/admin/users", a.createUser},
		{get, "/admin/users/{id}", a.getUser},
		{patch, "/admin/users/{id}", a.patchUser},
		{del, "/admin/users/{id}", a.deleteUser},
		{post, "/admin/users/{id}/password", a.setPassword},
		{post, "/admin/users/{id}/disable", a.disableUser},
		{post, "/admin/users/{id}/enable", a.enableUser},

		{get, "/admin/users/{id}/sessions", a.listSessions},
		{del, "/admin/users/{id}/sessions", a.endAllSessions},
		{del, "/admin/users/{id}/sessions/{sid}", a.endSession},
		{get, "/admin/users/{id}/consents", a.listConsents},
		{del, "/admin/users/{id}/consents/{client_id}", a.deleteConsent},
		{del, "/admin/users/{id}/grants", a.revokeUserGrants},

		{get, "/admin/keys", a.listKeys},
		{post, "/admin/keys/rotate", a.rotateKeys},

		{get, "/admin/registration-tokens", a.listRegistrationTokens},
		{post, "/admin/registration-tokens", a.createRegistrationToken},
		{del, "/admin/registration-tokens/{id}", a.deleteRegistrationToken},
	}
}

// guard lets a request through only with the admin token (RFC 6750 §2.1),
// bounds its body and keeps answers out of caches.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !a.enabled {
			respond.Error(w, r, http.StatusServiceUnavailable, "admin_api_disabled",
				"the admin API is disabled: configure admin.token (GATEHOUSE_ADMIN_TOKEN or GATEHOUSE_ADMIN_TOKEN_FILE) with at least 32 random bytes")
			return
		}
		token, present := bearer(r)
		if !present {
			// RFC 6750 §3.1: no credentials, a bare challenge.
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			respond.Error(w, r, http.StatusUnauthorized, "invalid_token", "send the admin token as Authorization: Bearer <token>")
			return
		}
		// Comparing digests keeps the time independent of the token's
		// length as well as of its content.
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) != 1 {
			a.log.WarnContext(r.Context(), "admin API: wrong token", "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin", error="invalid_token"`)
			respond.Error(w, r, http.StatusUnauthorized, "invalid_token", "the admin token is not valid")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the request's bearer token and whether an Authorization
// header with the Bearer scheme was sent.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

func asNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
