package login

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/requestid"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Paths of the pages; routes.go mounts the handlers on them.
const (
	LoginPath   = "/login"
	ConsentPath = "/consent"
	LogoutPath  = "/oauth2/logout" // OpenID Connect RP-Initiated Logout 1.0 end_session_endpoint
)

// DefaultConsentLifetime is how long a remembered consent lasts by default.
const DefaultConsentLifetime = 180 * 24 * time.Hour

// Flow is the authorization endpoint's side of the seam; *oauth.Provider
// implements it.
type Flow interface {
	PendingAuthorize(ctx context.Context, handle string) (oauth.AuthorizeRequest, error)
	ResumeAuthorize(w http.ResponseWriter, r *http.Request, handle string, d oauth.Decision)
	AbortAuthorize(w http.ResponseWriter, r *http.Request, handle string, err error)
	// VerifyIDTokenHint verifies an ID token Gatehouse issued, accepting an
	// expired one (RP-Initiated Logout 1.0 §2 id_token_hint).
	VerifyIDTokenHint(ctx context.Context, hint string) (subject, clientID, sid string, err error)
}

// LogoutService propagates the end of a session to its clients;
// *logout.Service implements it.
type LogoutService interface {
	// FrontChannelURLs lists the front-channel logout URLs of the session's
	// clients (OpenID Connect Front-Channel Logout 1.0 §3).
	FrontChannelURLs(ctx context.Context, sess storage.Session) ([]string, error)
	// EndSession deletes the session and queues the back-channel logout
	// notifications (OpenID Connect Back-Channel Logout 1.0 §2.5).
	EndSession(ctx context.Context, sess storage.Session) error
}

// Config holds the Handler's dependencies and settings.
type Config struct {
	Users    storage.UserStore
	Clients  storage.ClientStore
	Consents storage.ConsentStore
	// Throttle counts failed sign-ins (storage.Ephemeral in the server).
	Throttle  storage.Throttle
	Sessions  *session.Manager
	Passwords *password.Hasher
	// UI renders the pages in the site layout; Web is the web.Config UI was
	// built with (it says where template overrides come from).
	UI  *web.UI
	Web web.Config
	// Flow is the authorization endpoint (*oauth.Provider). It may be left
	// nil here and given with SetFlow, since the Provider itself needs the
	// Handler as its Interaction.
	Flow Flow
	// Logout, when set, ends sessions at RP-initiated logout with logout
	// propagation (a *logout.Service): back-channel notifications are
	// queued and the logged-out page loads the front-channel logout URLs.
	// When nil, logout only ends the session.
	Logout LogoutService
	// VerifyIDTokenHint, when set, replaces Flow's VerifyIDTokenHint for
	// logout requests.
	VerifyIDTokenHint func(ctx context.Context, hint string) (subject, clientID, sid string, err error)
	// ConsentLifetime is how long a granted consent is remembered. Default
	// DefaultConsentLifetime.
	ConsentLifetime time.Duration
	Throttling      ThrottleConfig
	// ACRFreshFor is how long after typing the password a session has acr
	// "1"; a "remember me" session older than that has acr "0" (see
	// interaction.go). Default session.DefaultSessionFor.
	ACRFreshFor time.Duration
	// ClientIP returns the address failures are counted for. Default: the
	// connection's peer address (behind a proxy, read its header instead).
	ClientIP func(r *http.Request) string
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Handler serves the login, consent and logout pages and implements
// oauth.Interaction.
type Handler struct {
	users           storage.UserStore
	clients         storage.ClientStore
	consents        storage.ConsentStore
	sessions        *session.Manager
	hasher          *password.Hasher
	ui              *web.UI
	pages           *web.PageSet
	flow            Flow
	logout          LogoutService
	verifyHint      func(ctx context.Context, hint string) (subject, clientID, sid string, err error)
	consentLifetime time.Duration
	throttle        throttle
	acrFreshFor     time.Duration
	clientIP        func(r *http.Request) string
	log             *slog.Logger
	now             func() time.Time
}

var (
	_ oauth.Interaction = (*Handler)(nil)
	_ Flow              = (*oauth.Provider)(nil)
)

// New checks cfg and parses the page templates.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Users == nil || cfg.Clients == nil || cfg.Consents == nil || cfg.Throttle == nil:
		return nil, errors.New("login config: Users, Clients, Consents and Throttle are required")
	case cfg.Sessions == nil:
		return nil, errors.New("login config: Sessions is required")
	case cfg.Passwords == nil:
		return nil, errors.New("login config: Passwords is required")
	case cfg.UI == nil:
		return nil, errors.New("login config: UI is required")
	case cfg.Logger == nil:
		return nil, errors.New("login config: Logger is required")
	}
	pages, err := web.NewPageSet(cfg.UI, cfg.Web, samples)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		users:           cfg.Users,
		clients:         cfg.Clients,
		consents:        cfg.Consents,
		sessions:        cfg.Sessions,
		hasher:          cfg.Passwords,
		ui:              cfg.UI,
		pages:           pages,
		flow:            cfg.Flow,
		logout:          cfg.Logout,
		verifyHint:      cfg.VerifyIDTokenHint,
		consentLifetime: cfg.ConsentLifetime,
		throttle:        throttle{store: cfg.Throttle, cfg: cfg.Throttling.withDefaults()},
		clientIP:        cfg.ClientIP,
		acrFreshFor:     cfg.ACRFreshFor,
		log:             cfg.Logger,
		now:             cfg.Now,
	}
	if h.consentLifetime <= 0 {
		h.consentLifetime = DefaultConsentLifetime
	}
	if h.acrFreshFor <= 0 {
		h.acrFreshFor = session.DefaultSessionFor
	}
	if h.clientIP == nil {
		h.clientIP = remoteIP
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// SetFlow gives the Handler the authorization endpoint once it exists. Call
// it before serving.
func (h *Handler) SetFlow(f Flow) { h.flow = f }

// verifyIDTokenHint verifies a logout request's id_token_hint.
func (h *Handler) verifyIDTokenHint(ctx context.Context, hint string) (subject, clientID, sid string, err error) {
	switch {
	case h.verifyHint != nil:
		return h.verifyHint(ctx, hint)
	case h.flow != nil:
		return h.flow.VerifyIDTokenHint(ctx, hint)
	}
	return "", "", "", errors.New("no id_token_hint verifier configured")
}

// render writes a page; a template failure becomes the error page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, page any) {
	if err := h.pages.Render(w, status, name, requestid.FromContext(r.Context()), page); err != nil {
		h.fail(w, r, "rendering page", err)
	}
}

// errorPage writes the HTML error page.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	err := h.ui.RenderError(w, status, web.ErrorPage{Title: title, Message: msg, RequestID: requestid.FromContext(r.Context())})
	if err != nil {
		h.log.ErrorContext(r.Context(), "rendering error page", "error", err)
		http.Error(w, msg, status)
	}
}

// fail logs an internal error and shows a generic page: details stay in the log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, doing string, err error) {
	h.log.ErrorContext(r.Context(), doing, "error", err)
	h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"The server could not complete your request. Try again in a moment.")
}

func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request) {
	h.log.InfoContext(r.Context(), "csrf check failed", "path", r.URL.Path)
	h.errorPage(w, r, http.StatusForbidden, "Form expired",
		"This form has expired or did not come from this site. Go back, reload the page and try again.")
}

func (h *Handler) expired(w http.ResponseWriter, r *http.Request) {
	h.errorPage(w, r, http.StatusBadRequest, "Sign-in request expired",
		"This sign-in request has expired or was already completed. Go back to the application and start again.")
}

// pending loads the authorization request a page works on; it writes the
// error page and returns false when it cannot.
func (h *Handler) pending(w http.ResponseWriter, r *http.Request, handle string) (oauth.AuthorizeRequest, bool) {
	if h.flow == nil {
		h.fail(w, r, "loading pending authorization", errors.New("login: no Flow configured"))
		return oauth.AuthorizeRequest{}, false
	}
	req, err := h.flow.PendingAuthorize(r.Context(), handle)
	if errors.Is(err, oauth.ErrPendingNotFound) {
		h.expired(w, r)
		return oauth.AuthorizeRequest{}, false
	}
	if err != nil {
		h.fail(w, r, "loading pending authorization", err)
		return oauth.AuthorizeRequest{}, false
	}
	return req, true
}

// allowFormTo lets the page's forms end in a redirect to target: browsers
// check the Content-Security-Policy form-action against redirects after a
// form submission, and the login or consent POST may redirect to the client.
func allowFormTo(w http.ResponseWriter, target string) {
	if src := formActionSource(target); src != "" {
		w.Header().Set("Content-Security-Policy", web.ContentSecurityPolicy(src))
	}
}

// redirect sends a 303 so the browser follows with a GET.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func pageURL(path, handle string) string {
	return path + "?" + url.Values{"handle": {handle}}.Encode()
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
