// Package demo is dev mode's built-in relying party: a page at /demo that
// signs in against Gatehouse itself with a real authorization code flow
// (PKCE S256, state, nonce, RFC 9207 iss check), verifies the ID token,
// calls userinfo and shows what came back, so that a newcomer has something
// to click. Bootstrap creates its user and client.
//
// It talks to the server over HTTP at the issuer URL exactly as an external
// client would; nothing is shortcut in-process.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
)

// Paths of the demo's handlers, under the issuer.
const (
	HomePath     = "/demo"
	LoginPath    = "/demo/login"
	CallbackPath = "/demo/callback"
	RefreshPath  = "/demo/refresh"
	LogoutPath   = "/demo/logout"
)

// Renderer renders a page template in the site layout; *web.PageSet made
// by NewPages is one.
type Renderer interface {
	Render(w http.ResponseWriter, status int, name, requestID string, page any) error
}

// Config configures New.
type Config struct {
	// Issuer is the server's issuer URL: discovery, the redirect URI and the
	// iss checks all derive from it. Required.
	Issuer       string
	ClientID     string // default ClientID
	ClientSecret string // Info.ClientSecret from Bootstrap. Required.
	// HTTPClient makes the back-channel calls (discovery, JWKS, token,
	// userinfo) to the issuer. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	Renderer   Renderer // required
	// Keyring seals the demo's cookies (a *secrets.Keyring). Required.
	Keyring Sealer
	Logger  *slog.Logger     // default: discard
	Now     func() time.Time // default time.Now
}

// Handler serves the demo pages.
type Handler struct {
	cfg    Config
	issuer string
	http   *http.Client
	pages  Renderer
	jar    cookieJar
	log    *slog.Logger

	mu       sync.Mutex
	provider *provider // nil until the first successful discovery
}

// provider is what discovery yielded.
type provider struct {
	oidc       *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
}

// New returns the demo handler. It does not contact the issuer: discovery
// happens on first use, so start-up does not depend on the listener being
// up. It panics when a required field is missing, a wiring mistake.
func New(cfg Config) *Handler {
	if cfg.Issuer == "" || cfg.ClientSecret == "" || cfg.Renderer == nil || cfg.Keyring == nil {
		panic("demo.New: Issuer, ClientSecret, Renderer and Keyring are required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = ClientID
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	path := HomePath
	if u, err := url.Parse(cfg.Issuer); err == nil {
		// Behind an issuer with a path, the browser sees the demo under it.
		path = strings.TrimSuffix(u.Path, "/") + HomePath
	}
	return &Handler{
		cfg:    cfg,
		issuer: cfg.Issuer,
		http:   cfg.HTTPClient,
		pages:  cfg.Renderer,
		jar:    cookieJar{ring: cfg.Keyring, secure: strings.HasPrefix(cfg.Issuer, "https:"), path: path, now: cfg.Now},
		log:    cfg.Logger,
	}
}

// Routes mounts the handlers on their paths: GET /demo, GET|POST
// /demo/login, GET /demo/callback, POST /demo/refresh, POST /demo/logout.
// Methods are checked by the handlers too, for routers that do not.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+HomePath, h.Home)
	mux.HandleFunc(LoginPath, h.Start)
	mux.HandleFunc("GET "+CallbackPath, h.Callback)
	mux.HandleFunc("POST "+RefreshPath, h.Refresh)
	mux.HandleFunc("POST "+LogoutPath, h.Logout)
}

func (h *Handler) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, h.http)
}

// discover returns the issuer's metadata, fetching it on first use and
// retrying on the next request after a failure.
func (h *Handler) discover(ctx context.Context) (*provider, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.provider != nil {
		return h.provider, nil
	}
	// OIDC Discovery §4.3: go-oidc checks the document's issuer is ours.
	op, err := oidc.NewProvider(h.ctx(ctx), h.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", h.issuer, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := op.Claims(&extra); err != nil {
		return nil, fmt.Errorf("reading discovery document: %w", err)
	}
	ep := op.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic, as registered
	h.provider = &provider{
		oidc:     op,
		verifier: op.Verifier(&oidc.Config{ClientID: h.cfg.ClientID, Now: h.cfg.Now}),
		oauth: oauth2.Config{
			ClientID:     h.cfg.ClientID,
			ClientSecret: h.cfg.ClientSecret,
			Endpoint:     ep,
			RedirectURL:  RedirectURI(h.issuer),
			Scopes:       strings.Fields(Scope),
		},
		endSession: extra.EndSession,
	}
	return h.provider, nil
}

// Home is GET /demo: the "Sign in with Gatehouse" page.
func (h *Handler) Home(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	_, err := h.jar.tokens(r)
	h.render(w, r, http.StatusOK, homeTemplate, HomePage{
		LoginAction: h.jar.path + "/login",
		Issuer:      h.issuer,
		ClientID:    h.cfg.ClientID,
		Username:    Username,
		SignedIn:    err == nil,
	})
}

// Start is GET or POST /demo/login: it remembers a fresh state, nonce and
// PKCE verifier in the sealed flow cookie and redirects to the
// authorization endpoint.
func (h *Handler) Start(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	p, err := h.discover(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "discovery", err)
		return
	}
	f := flowState{
		State:    randomString(24),
		Nonce:    randomString(24),
		Verifier: oauth2.GenerateVerifier(), // RFC 7636 §4.1: 32 random octets
	}
	if err := h.jar.setFlow(w, f); err != nil {
		h.fail(w, r, http.StatusInternalServerError, "start", err)
		return
	}
	to := p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// Callback is GET /demo/callback, the redirect URI: it checks the response,
// redeems the code and shows the result.
func (h *Handler) Callback(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	f, err := h.jar.flow(r)
	// The flow is single-use whatever happens next.
	h.jar.clear(w, flowCookie)
	if err != nil {
		h.showError(w, r, http.StatusBadRequest, "demo_session_expired",
			"This sign-in attempt is unknown or too old (its cookie is missing or expired). Start again.")
		return
	}
	q := r.URL.Query()
	// RFC 6749 §10.12: the response must belong to the request this browser made.
	if q.Get("state") != f.State {
		h.showError(w, r, http.StatusBadRequest, "state_mismatch",
			"The state parameter does not match the one this sign-in started with: the response may be forged (RFC 6749 §10.12).")
		return
	}
	// RFC 9207 §2.4: the server advertises
	// authorization_response_iss_parameter_supported, so iss must be present
	// and be exactly the issuer, on success and error responses alike.
	if iss := q.Get("iss"); iss != h.issuer {
		h.showError(w, r, http.StatusBadRequest, "issuer_mismatch",
			fmt.Sprintf("The authorization response came from issuer %q, not %q (RFC 9207 §2.4): it was not accepted.", iss, h.issuer))
		return
	}
	if code := q.Get("error"); code != "" {
		// RFC 6749 §4.1.2.1: an error response from the authorization endpoint.
		h.showError(w, r, http.StatusBadRequest, code, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		h.showError(w, r, http.StatusBadRequest, "invalid_request", "The authorization response has neither a code nor an error.")
		return
	}
	p, err := h.discover(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "discovery", err)
		return
	}
	ctx := h.ctx(r.Context())
	// RFC 7636 §4.5: the verifier proves this client started the request.
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		h.tokenError(w, r, "code exchange", err)
		return
	}
	idt, rawID, ok := h.verifyIDToken(w, r, p, tok)
	if !ok {
		return
	}
	// OIDC Core §3.1.3.7 step 11: the nonce ties the ID token to this request.
	if idt.Nonce != f.Nonce {
		h.showError(w, r, http.StatusBadGateway, "nonce_mismatch", "The ID token's nonce is not the one this sign-in sent (OIDC Core §3.1.3.7).")
		return
	}
	h.finish(w, r, p, tok, idt, rawID, false)
}

// Refresh is POST /demo/refresh: it redeems the refresh token (rotated by
// the server, RFC 9700 §4.14.2) and shows the new result.
func (h *Handler) Refresh(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	ts, err := h.jar.tokens(r)
	if err != nil || ts.RefreshToken == "" {
		h.showError(w, r, http.StatusBadRequest, "demo_not_signed_in", "There is no refresh token to use: sign in first.")
		return
	}
	p, err := h.discover(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "discovery", err)
		return
	}
	ctx := h.ctx(r.Context())
	// An expired token makes the source refresh at once (RFC 6749 §6).
	old := &oauth2.Token{RefreshToken: ts.RefreshToken, Expiry: time.Unix(1, 0)}
	tok, err := p.oauth.TokenSource(ctx, old).Token()
	if err != nil {
		h.jar.clear(w, tokensCookie)
		h.tokenError(w, r, "refresh", err)
		return
	}
	rawID := ts.IDToken
	var idt *oidc.IDToken
	if _, ok := tok.Extra("id_token").(string); ok {
		// OIDC Core §12.2: a refreshed ID token is verified like the first one.
		if idt, rawID, ok = h.verifyIDToken(w, r, p, tok); !ok {
			return
		}
	} else if idt, err = p.verifier.Verify(ctx, rawID); err != nil {
		// The server sent no new ID token and the old one has expired: show
		// the claims anyway, but say so rather than pretend they are fresh.
		idt = nil
	}
	h.finish(w, r, p, tok, idt, rawID, true)
}

// Logout is POST /demo/logout: it forgets the demo's tokens and sends the
// browser to the end_session_endpoint (OpenID Connect RP-Initiated Logout
// 1.0 §2) with id_token_hint and post_logout_redirect_uri.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	p, err := h.discover(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "discovery", err)
		return
	}
	if p.endSession == "" {
		h.showError(w, r, http.StatusBadGateway, "no_end_session_endpoint", "The server's discovery document has no end_session_endpoint.")
		return
	}
	ts, _ := h.jar.tokens(r)
	h.jar.clear(w, tokensCookie)
	q := url.Values{}
	if ts.IDToken != "" {
		q.Set("id_token_hint", ts.IDToken)
	}
	q.Set("client_id", h.cfg.ClientID)
	q.Set("post_logout_redirect_uri", PostLogoutRedirectURI(h.issuer))
	sep := "?"
	if strings.Contains(p.endSession, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.endSession+sep+q.Encode(), http.StatusSeeOther)
}

// verifyIDToken checks the token response's ID token (OIDC Core §3.1.3.7:
// signature, iss, aud, exp) and at_hash when present (§3.1.3.8).
func (h *Handler) verifyIDToken(w http.ResponseWriter, r *http.Request, p *provider, tok *oauth2.Token) (*oidc.IDToken, string, bool) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		h.showError(w, r, http.StatusBadGateway, "missing_id_token", "The token response has no ID token although the openid scope was requested (OIDC Core §3.1.3.3).")
		return nil, "", false
	}
	idt, err := p.verifier.Verify(h.ctx(r.Context()), raw)
	if err != nil {
		h.log.WarnContext(r.Context(), "demo id token rejected", "error", err)
		h.showError(w, r, http.StatusBadGateway, "invalid_id_token", "The ID token did not verify: "+err.Error())
		return nil, "", false
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			h.showError(w, r, http.StatusBadGateway, "invalid_at_hash", "The ID token's at_hash does not match the access token (OIDC Core §3.1.3.8).")
			return nil, "", false
		}
	}
	return idt, raw, true
}

// finish calls userinfo, keeps what refresh and logout need, and renders.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, p *provider, tok *oauth2.Token, idt *oidc.IDToken, rawID string, refreshed bool) {
	ctx := h.ctx(r.Context())
	ui, err := p.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "userinfo", err)
		return
	}
	page := ResultPage{
		Refreshed:     refreshed,
		Scope:         scopeOf(tok),
		TokenType:     tok.Type(),
		RefreshAction: h.jar.path + "/refresh",
		LogoutAction:  h.jar.path + "/logout",
		HomeURL:       h.jar.path,
	}
	if !tok.Expiry.IsZero() {
		page.AccessTokenExpires = tok.Expiry.UTC().Format(time.RFC3339)
	}
	if idt != nil {
		// OIDC Core §5.3.2: userinfo's sub must be the ID token's, or the
		// response is not about this user.
		if ui.Subject != idt.Subject {
			h.showError(w, r, http.StatusBadGateway, "subject_mismatch", "The userinfo response is about another subject than the ID token (OIDC Core §5.3.2).")
			return
		}
		var claims json.RawMessage
		if err := idt.Claims(&claims); err != nil {
			h.fail(w, r, http.StatusBadGateway, "reading id token claims", err)
			return
		}
		page.Subject = idt.Subject
		page.IDTokenVerified = true
		page.IDTokenClaims = indent(claims)
	} else {
		page.Subject = ui.Subject
	}
	var uiClaims json.RawMessage
	if err := ui.Claims(&uiClaims); err != nil {
		h.fail(w, r, http.StatusBadGateway, "reading userinfo", err)
		return
	}
	page.UserInfo = indent(uiClaims)

	refresh := tok.RefreshToken
	if refresh == "" && refreshed {
		// RFC 6749 §6: the server may keep the old refresh token valid.
		if old, err := h.jar.tokens(r); err == nil {
			refresh = old.RefreshToken
		}
	}
	page.HasRefreshToken = refresh != ""
	if err := h.jar.setTokens(w, tokenState{IDToken: rawID, RefreshToken: refresh}); err != nil {
		h.fail(w, r, http.StatusInternalServerError, "keeping tokens", err)
		return
	}
	h.log.InfoContext(r.Context(), "demo sign-in shown", "sub", page.Subject, "refreshed", refreshed)
	h.render(w, r, http.StatusOK, resultTemplate, page)
}

func scopeOf(tok *oauth2.Token) string {
	if s, ok := tok.Extra("scope").(string); ok {
		return s
	}
	return ""
}

func indent(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// tokenError shows an error response of the token endpoint (RFC 6749 §5.2)
// with its code and description.
func (h *Handler) tokenError(w http.ResponseWriter, r *http.Request, doing string, err error) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		h.log.InfoContext(r.Context(), "demo token request refused", "doing", doing, "error_code", re.ErrorCode)
		h.showError(w, r, http.StatusBadGateway, re.ErrorCode, re.ErrorDescription)
		return
	}
	h.fail(w, r, http.StatusBadGateway, doing, err)
}

// fail logs an unexpected error and shows it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, doing string, err error) {
	h.log.ErrorContext(r.Context(), "demo request failed", "doing", doing, "error", err)
	h.showError(w, r, status, "demo_error", fmt.Sprintf("%s: %v", doing, err))
}

func (h *Handler) showError(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	h.render(w, r, status, errorTemplate, ErrorPage{Code: code, Description: description, HomeURL: h.jar.path})
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, page any) {
	if err := h.pages.Render(w, status, name, requestid.FromContext(r.Context()), page); err != nil {
		h.log.ErrorContext(r.Context(), "rendering demo page", "template", name, "error", err)
		http.Error(w, "The demo page could not be rendered.", http.StatusInternalServerError)
	}
}

// allow answers 405 with an Allow header unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}
