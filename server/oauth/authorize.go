package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// The authorization endpoint is split in two around the login and consent
// pages:
//
//  1. Authorize parses and validates the request with fosite and asks
//     Interaction.Authorize what to do, giving it an AuthorizeRequest view
//     with a fresh handle.
//  2. The interaction either decides at once (a Decision: Authorize finishes
//     the flow and redirects to the client), returns an *AuthorizeError for
//     the client (login_required...), or writes its own response (typically a
//     redirect to the login page carrying the handle) and returns nil, nil.
//     Only in that last case is the request stored as a pending
//     authorization (a short-lived request record of kind storage.KindPAR
//     whose signature is "interaction." + SHA-256(handle)), before the
//     response is released.
//  3. After its own POSTs the login/consent page calls ResumeAuthorize with
//     the handle and a Decision, or AbortAuthorize with an error. Either
//     consumes the pending record exactly once (DeactivateRequest), so a
//     replayed consent POST cannot mint a second code. PendingAuthorize reads
//     the view again (e.g. to render the consent page) without consuming it.
//
// Keeping the validated request rather than re-submitting the original query
// means a pushed request (PAR, whose request_uri is single use) resumes like
// any other, and nothing is validated twice.

// Interaction is the login/consent seam (server/login implements it).
type Interaction interface {
	Authorize(w http.ResponseWriter, r *http.Request, req AuthorizeRequest) (*Decision, error)
}

// InteractionFunc adapts a function to Interaction.
type InteractionFunc func(w http.ResponseWriter, r *http.Request, req AuthorizeRequest) (*Decision, error)

// Authorize calls f.
func (f InteractionFunc) Authorize(w http.ResponseWriter, r *http.Request, req AuthorizeRequest) (*Decision, error) {
	return f(w, r, req)
}

// AuthorizeRequest is a fosite-free view of a validated authorization request.
type AuthorizeRequest struct {
	// Handle resumes this request through ResumeAuthorize/AbortAuthorize. It
	// is a bearer value: keep it out of logs.
	Handle string

	ClientID    string
	ClientName  string
	ClientURI   string
	LogoURI     string
	PolicyURI   string
	TOSURI      string
	FirstParty  bool
	RedirectURI string

	Scopes   []string // requested scopes
	Audience []string // requested audience (resource servers)
	// Prompt values (OIDC Core §3.1.2.1): none, login, consent, select_account.
	Prompt []string
	// MaxAge is the max_age in seconds, or -1 when the request had none
	// (then the client's default_max_age applies, if registered).
	MaxAge int64
	// IDTokenHintSubject is the sub of a valid id_token_hint, "" when none.
	IDTokenHintSubject string
	LoginHint          string
	UILocales          []string
	// ACRValues are the requested authentication context classes: the acr
	// claim's value or values when the claims parameter asks for it (OIDC
	// Core §5.5.1.1), else acr_values (§3.1.2.1), else the client's
	// default_acr_values. ACREssential is set when the acr claim was
	// requested as essential: the values must then be met.
	ACRValues    []string
	ACREssential bool
	HasNonce     bool
	RequestedAt  time.Time
	ExpiresAt    time.Time // when the pending request (and Handle) expires
}

// HasPrompt reports whether prompt contains v.
func (a AuthorizeRequest) HasPrompt(v string) bool { return slices.Contains(a.Prompt, v) }

// Decision is the outcome of the login and consent steps.
type Decision struct {
	Subject  string
	AuthTime time.Time // when the user last authenticated (OIDC Core §2 auth_time)
	ACR      string
	AMR      []string
	// SessionID is the browser session, returned as the ID token's sid.
	SessionID string
	// GrantedScopes and GrantedAudience are what the user allowed; only
	// values that were requested are granted.
	GrantedScopes   []string
	GrantedAudience []string
}

// AuthorizeError is an error the interaction sends back to the client.
type AuthorizeError struct {
	Code        string // e.g. login_required (OIDC Core §3.1.2.6) or access_denied (RFC 6749 §4.1.2.1)
	Description string
}

func (e *AuthorizeError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Errors an interaction returns (OIDC Core §3.1.2.6, RFC 6749 §4.1.2.1).
var (
	ErrLoginRequired            = &AuthorizeError{Code: "login_required", Description: "The user must sign in."}
	ErrConsentRequired          = &AuthorizeError{Code: "consent_required", Description: "The user must consent."}
	ErrInteractionRequired      = &AuthorizeError{Code: "interaction_required", Description: "The user must interact."}
	ErrAccountSelectionRequired = &AuthorizeError{Code: "account_selection_required", Description: "The user must select an account."}
	ErrAccessDenied             = &AuthorizeError{Code: "access_denied", Description: "The user denied the request."}
)

// ErrPendingNotFound is returned by PendingAuthorize for an unknown, expired
// or already completed handle.
var ErrPendingNotFound = errors.New("no such pending authorization request")

const pendingPrefix = "interaction."

func pendingSignature(handle string) string { return pendingPrefix + hashKey(handle) }

// Authorize is the authorization endpoint (RFC 6749 §3.1, OIDC Core
// §3.1.2.1), GET or POST.
func (p *Provider) Authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.cfg.RenderError(w, r, http.StatusMethodNotAllowed, "Method not allowed", "The authorization endpoint accepts GET and POST.")
		return
	}
	ar, err := p.f.NewAuthorizeRequest(ctx, r)
	if dup := duplicateParam(r); dup != "" {
		if dup == "client_id" || dup == "redirect_uri" {
			// Which client or redirect URI would be a guess: never redirect.
			p.cfg.RenderError(w, r, http.StatusBadRequest, "Invalid request", fmt.Sprintf("The %q parameter was sent more than once.", dup))
			return
		}
		err = fosite.ErrInvalidRequest.WithHintf("The %q parameter was sent more than once (RFC 6749 §3.1).", dup)
	}
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}

	view, err := p.view(ctx, ar)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}
	// The pending record is stored only when the interaction needs a page
	// (the handle leaves in its response): a browser whose session and
	// consent already answer (single sign-on) costs no record and no claim.
	handle, err := newHandle()
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		return
	}
	view.Handle = handle
	view.ExpiresAt = p.now().Add(p.cfg.InteractionLifetime)

	held := &heldResponse{ResponseWriter: w}
	d, err := p.cfg.Interaction.Authorize(held, r, view)
	switch {
	case err != nil:
		p.writeAuthorizeError(w, r, ar, interactionError(err))
	case d == nil:
		// The interaction answered (a redirect to the login page): the
		// handle it carries must resolve before the answer leaves.
		if err := p.storePending(ctx, ar, handle, view.ExpiresAt); err != nil {
			w.Header().Del("Location")
			p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
			return
		}
		held.release()
	default:
		p.finish(w, r, ar, *d, nil)
	}
}

// heldResponse keeps an interaction's status and body until release, so
// nothing it wrote reaches the browser before the pending record exists.
// Headers (cookies, Location) go straight to the real writer's map.
type heldResponse struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	h.body = append(h.body, b...)
	return len(b), nil
}

func (h *heldResponse) release() {
	if h.status == 0 {
		return
	}
	h.ResponseWriter.WriteHeader(h.status)
	if len(h.body) > 0 {
		h.ResponseWriter.Write(h.body) //nolint:errcheck // the client went away
	}
}

// PendingAuthorize returns the view of a pending request without consuming it.
func (p *Provider) PendingAuthorize(ctx context.Context, handle string) (AuthorizeRequest, error) {
	ar, rec, err := p.loadPending(ctx, handle)
	if err != nil {
		return AuthorizeRequest{}, err
	}
	view, err := p.view(ctx, ar)
	if err != nil {
		return AuthorizeRequest{}, err
	}
	view.Handle = handle
	view.ExpiresAt = rec.ExpiresAt
	return view, nil
}

// ResumeAuthorize finishes a pending request with the user's decision and
// redirects to the client. An unknown, expired or already used handle gets
// an error page.
func (p *Provider) ResumeAuthorize(w http.ResponseWriter, r *http.Request, handle string, d Decision) {
	ar, rec, err := p.loadPending(r.Context(), handle)
	if err != nil {
		p.pendingGone(w, r, err)
		return
	}
	// The pending request is claimed in the same batch as the code's
	// records: two submissions of one request cannot both get a code, and
	// a failed write leaves the request to be completed again.
	p.finish(w, r, ar, d, &storage.RequestRef{Kind: storage.KindPAR, Signature: pendingSignature(handle), RequestID: rec.RequestID})
}

// AbortAuthorize ends a pending request with an error for the client, e.g.
// ErrAccessDenied when the user pressed Deny.
func (p *Provider) AbortAuthorize(w http.ResponseWriter, r *http.Request, handle string, err error) {
	ar, ok := p.takePending(w, r, handle)
	if ok {
		p.writeAuthorizeError(w, r, ar, interactionError(err))
	}
}

func (p *Provider) takePending(w http.ResponseWriter, r *http.Request, handle string) (*fosite.AuthorizeRequest, bool) {
	ctx := r.Context()
	ar, rec, err := p.loadPending(ctx, handle)
	if err == nil {
		err = p.claimPending(ctx, handle, rec.RequestID)
	}
	if err != nil {
		p.pendingGone(w, r, err)
		return nil, false
	}
	return ar, true
}

// pendingGone answers a form whose pending request cannot be completed: it
// expired, was completed already (ErrPendingNotFound), or storage failed.
func (p *Provider) pendingGone(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrPendingNotFound) {
		p.log.LogAttrs(r.Context(), slog.LevelError, "resuming authorization", slog.String("error", err.Error()))
	}
	p.cfg.RenderError(w, r, http.StatusBadRequest, "Sign-in request expired",
		"This sign-in request has expired or was already completed. Go back to the application and start again.")
}

func newHandle() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating handle: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (p *Provider) storePending(ctx context.Context, ar fosite.AuthorizeRequester, handle string, expires time.Time) error {
	data, err := encodeRequest(ar, "")
	if err != nil {
		return err
	}
	rec := storage.Request{
		Kind:        storage.KindPAR,
		Signature:   pendingSignature(handle),
		RequestID:   ar.GetID(),
		ClientID:    ar.GetClient().GetID(),
		Active:      true,
		RequestedAt: ar.GetRequestedAt(),
		ExpiresAt:   expires,
		Payload:     data,
	}
	if err := p.ephemeral.CreateRequest(ctx, rec); err != nil {
		return fmt.Errorf("storing pending authorization: %w", err)
	}
	p.cachePending(rec, p.pending.Gen())
	return nil
}

func (p *Provider) loadPending(ctx context.Context, handle string) (*fosite.AuthorizeRequest, storage.Request, error) {
	if handle == "" {
		return nil, storage.Request{}, ErrPendingNotFound
	}
	sig := pendingSignature(handle)
	rec, ok, gen := p.pending.Get(sig, p.now())
	if !ok {
		var err error
		rec, err = p.ephemeral.GetRequest(ctx, storage.KindPAR, sig)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !rec.Active) {
			return nil, storage.Request{}, ErrPendingNotFound
		}
		if err != nil {
			return nil, storage.Request{}, fmt.Errorf("loading pending authorization: %w", err)
		}
		p.cachePending(rec, gen)
	}
	ar, err := decodeAuthorizeRequest(ctx, p.store, rec.Payload, nil, p.issuer)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, storage.Request{}, ErrPendingNotFound // the client was deleted meanwhile
	}
	if err != nil {
		return nil, storage.Request{}, err
	}
	return ar, rec, nil
}

// claimPending consumes the pending record: of concurrent claims exactly one
// succeeds. The inactive record expires on its own.
func (p *Provider) claimPending(ctx context.Context, handle string, grant string) error {
	sig := pendingSignature(handle)
	p.pending.ForgetKey(sig)
	err := p.ephemeral.DeactivateRequest(ctx, storage.RequestRef{Kind: storage.KindPAR, Signature: sig, RequestID: grant})
	if claimRefused(err) {
		return ErrPendingNotFound
	}
	if err != nil {
		return fmt.Errorf("claiming pending authorization: %w", err)
	}
	return nil
}

// claimRefused: the pending record was claimed already, or expired.
func claimRefused(err error) bool {
	return errors.Is(err, storage.ErrInactive) || errors.Is(err, storage.ErrNotFound)
}

// view builds the interaction's view of a validated request.
func (p *Provider) view(ctx context.Context, ar fosite.AuthorizeRequester) (AuthorizeRequest, error) {
	form := ar.GetRequestForm()
	v := AuthorizeRequest{
		ClientID:    ar.GetClient().GetID(),
		Scopes:      slices.Clone([]string(ar.GetRequestedScopes())),
		Audience:    slices.Clone([]string(ar.GetRequestedAudience())),
		Prompt:      strings.Fields(form.Get("prompt")),
		MaxAge:      -1,
		LoginHint:   form.Get("login_hint"),
		UILocales:   strings.Fields(form.Get("ui_locales")),
		ACRValues:   strings.Fields(form.Get("acr_values")),
		HasNonce:    form.Get("nonce") != "",
		RequestedAt: ar.GetRequestedAt(),
	}
	if u := ar.GetRedirectURI(); u != nil {
		v.RedirectURI = u.String()
	}
	if c, ok := ar.GetClient().(*Client); ok {
		v.ClientName = c.C.Name
		v.ClientURI = c.C.ClientURI
		v.LogoURI = c.C.LogoURI
		v.PolicyURI = c.C.PolicyURI
		v.TOSURI = c.C.TOSURI
		v.FirstParty = c.C.FirstParty
		if c.C.DefaultMaxAge > 0 {
			v.MaxAge = c.C.DefaultMaxAge
		}
		if len(v.ACRValues) == 0 {
			v.ACRValues = slices.Clone(c.C.DefaultACRValues)
		}
	}
	if v.HasPrompt("none") && len(v.Prompt) > 1 {
		// OIDC Core §3.1.2.1: none must not be combined with another value.
		return v, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other prompt values (OIDC Core §3.1.2.1).")
	}
	if ma := form.Get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 {
			return v, fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer (OIDC Core §3.1.2.1).")
		}
		v.MaxAge = n
	}
	cr, err := parseClaimsRequest(form.Get("claims"))
	if err != nil {
		return v, err
	}
	if values, essential, ok := cr.acrRequest(); ok && (len(values) > 0 || essential) {
		v.ACRValues, v.ACREssential = values, essential
	}
	if hint := form.Get("id_token_hint"); hint != "" {
		sub, _, _, err := p.VerifyIDTokenHint(ctx, hint)
		if err != nil {
			return v, fosite.ErrInvalidRequest.WithHint("The id_token_hint is not a valid ID token issued here.").WithWrap(err).WithDebug(err.Error())
		}
		v.IDTokenHintSubject = sub
	}
	if sub := cr.subValue(); sub != "" && v.IDTokenHintSubject == "" {
		// OIDC Core §5.5.1: a positive answer only for that user; the
		// interaction treats it as it treats id_token_hint.
		v.IDTokenHintSubject = sub
	}
	return v, nil
}

// interactionError maps an interaction's error to the client-facing error.
func interactionError(err error) error {
	var ae *AuthorizeError
	if !errors.As(err, &ae) {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	known := map[string]*fosite.RFC6749Error{
		"login_required":             fosite.ErrLoginRequired,
		"consent_required":           fosite.ErrConsentRequired,
		"interaction_required":       fosite.ErrInteractionRequired,
		"access_denied":              fosite.ErrAccessDenied,
		"invalid_request":            fosite.ErrInvalidRequest,
		"invalid_scope":              fosite.ErrInvalidScope,
		"temporarily_unavailable":    fosite.ErrTemporarilyUnavailable,
		"account_selection_required": {ErrorField: "account_selection_required", CodeField: http.StatusBadRequest},
	}
	base, ok := known[ae.Code]
	if !ok {
		base = &fosite.RFC6749Error{ErrorField: ae.Code, CodeField: http.StatusBadRequest}
	}
	out := *base
	out.DescriptionField = ae.Description
	return &out
}

// finish issues the authorization response for a decision.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, d Decision, claim *storage.RequestRef) {
	ctx := r.Context()
	if d.Subject == "" {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithDebug("the interaction decided without a subject"))
		return
	}
	for _, s := range d.GrantedScopes {
		if ar.GetRequestedScopes().Has(s) {
			ar.GrantScope(s)
		}
	}
	for _, a := range d.GrantedAudience {
		if ar.GetRequestedAudience().Has(a) {
			ar.GrantAudience(a)
		}
	}

	sess := NewSession(p.issuer)
	sess.Subject = d.Subject
	sess.ClientID = ar.GetClient().GetID()
	sess.BrowserSessionID = d.SessionID
	claims := sess.IDTokenClaims()
	claims.Subject = d.Subject
	claims.RequestedAt = ar.GetRequestedAt()
	claims.AuthTime = d.AuthTime.UTC().Truncate(time.Second)
	claims.AuthenticationContextClassReference = d.ACR
	claims.AuthenticationMethodsReferences = slices.Clone(d.AMR)
	if d.SessionID != "" {
		claims.Add("sid", d.SessionID)
	}
	if err := p.requestedClaims(ctx, ar, sess); err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		return
	}
	// The ID token is signed with the client's registered algorithm (OIDC
	// Dynamic Client Registration §2 id_token_signed_response_alg).
	alg := "RS256"
	if c, ok := ar.GetClient().(*Client); ok {
		alg = c.IDTokenAlg()
	}
	sess.IDTokenHeaders().Add("alg", alg)

	// The code, PKCE and OIDC request records go to storage together, as
	// one batch (one SQLite transaction, one Redis script for the grant),
	// rather than one write each, with the claim of the pending request.
	txCtx, err := p.store.BeginTX(ctx)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		return
	}
	if claim != nil {
		p.pending.ForgetKey(claim.Signature)
		if err := p.store.deactivate(txCtx, *claim); err != nil {
			_ = p.store.Rollback(txCtx)
			p.pendingGone(w, r, err)
			return
		}
	}
	resp, err := p.f.NewAuthorizeResponse(txCtx, ar, sess)
	if err == nil {
		if err = p.store.Commit(txCtx); err != nil {
			if claim != nil && claimRefused(err) {
				// Only the claim is a condition of this batch: another
				// submission completed the request, or it expired.
				p.pendingGone(w, r, ErrPendingNotFound)
				return
			}
			err = fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
	} else {
		_ = p.store.Rollback(txCtx)
	}
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}
	// RFC 9207 §2: the iss parameter lets the client detect mix-up attacks.
	resp.AddParameter("iss", p.issuer)
	if ar.GetResponseMode() == fosite.ResponseModeFormPost {
		setFormPostCSP(w, ar.GetRedirectURI())
	}
	p.f.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// writeAuthorizeError sends an error to the client's redirect URI when it can
// be trusted, with state and iss (RFC 6749 §4.1.2.1, RFC 9207 §2); otherwise
// it renders an error page and never redirects.
func (p *Provider) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	ctx := r.Context()
	p.logServerError(ctx, "authorize", err)
	rfc := fosite.ErrorToRFC6749Error(err).WithExposeDebug(false)
	w.Header().Set("Cache-Control", "no-store")
	if ar == nil || !ar.IsRedirectURIValid() {
		msg := rfc.GetDescription()
		p.cfg.RenderError(w, r, http.StatusBadRequest, "The sign-in request is invalid", msg)
		return
	}
	redirect := *ar.GetRedirectURI()
	redirect.Fragment = ""
	params := rfc.ToValues()
	if st := ar.GetState(); st != "" {
		params.Set("state", st)
	}
	params.Set("iss", p.issuer)
	switch mode := ar.GetResponseMode(); {
	case mode == fosite.ResponseModeFormPost:
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		setFormPostCSP(w, &redirect)
		fosite.WriteAuthorizeFormPostResponse(redirect.String(), params, formPostTemplate, w)
		return
	case mode == fosite.ResponseModeFragment ||
		(mode == fosite.ResponseModeDefault && ar.GetDefaultResponseMode() == fosite.ResponseModeFragment):
		w.Header().Set("Location", redirect.String()+"#"+params.Encode())
	default:
		q := redirect.Query()
		for k, vs := range params {
			q[k] = vs
		}
		redirect.RawQuery = q.Encode()
		w.Header().Set("Location", redirect.String())
	}
	w.WriteHeader(http.StatusSeeOther)
}

// requestedClaims applies the claims request parameter (OIDC Core §5.5):
// userinfo members are kept in the session for the UserInfo endpoint,
// id_token members are added to the ID token now. When no access token is
// issued (response_type=id_token), the scopes' claims go in the ID token
// too (§5.4).
func (p *Provider) requestedClaims(ctx context.Context, ar fosite.AuthorizeRequester, sess *Session) error {
	cr, err := parseClaimsRequest(ar.GetRequestForm().Get("claims"))
	if err != nil {
		return err // validated when the request arrived
	}
	clientScopes := fosite.Arguments(ar.GetClient().GetScopes())
	sess.UserInfoClaims = requestedUserClaims(cr.UserInfo, clientScopes)
	names := requestedUserClaims(cr.IDToken, clientScopes)
	idTokenOnly := ar.GetResponseTypes().ExactOne("id_token")
	if len(names) == 0 && !idTokenOnly {
		return nil
	}
	u, err := p.durable.GetUser(ctx, sess.Subject)
	if err != nil {
		return fmt.Errorf("loading user for id token claims: %w", err)
	}
	var scopes fosite.Arguments
	if idTokenOnly {
		scopes = ar.GetGrantedScopes()
	}
	claims := sess.IDTokenClaims()
	for k, v := range userClaims(u, scopes, names) {
		if k != "sub" {
			claims.Add(k, v)
		}
	}
	return nil
}
