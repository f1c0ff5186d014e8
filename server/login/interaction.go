package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Authorize implements oauth.Interaction: it decides from the browser
// session whether the request can be answered at once, must fail for the
// client (prompt=none), or needs the login or consent page.
func (h *Handler) Authorize(w http.ResponseWriter, r *http.Request, req oauth.AuthorizeRequest) (*oauth.Decision, error) {
	noStore(w)
	sess, ok, err := h.currentSession(r)
	if err != nil {
		return nil, err
	}
	if !ok || !h.loginSatisfied(req, sess) {
		if req.HasPrompt("none") {
			// OIDC Core §3.1.2.6: no interaction allowed, and the session
			// is missing, too old, or of another user than id_token_hint.
			return nil, oauth.ErrLoginRequired
		}
		redirect(w, r, pageURL(LoginPath, req.Handle))
		return nil, nil
	}
	return h.afterLogin(w, r, req, sess)
}

// currentSession returns the request's session when its user still exists
// and is enabled.
func (h *Handler) currentSession(r *http.Request) (storage.Session, bool, error) {
	sess, err := h.sessions.Get(r)
	if errors.Is(err, session.ErrNoSession) {
		return storage.Session{}, false, nil
	}
	if err != nil {
		return storage.Session{}, false, err
	}
	u, err := h.users.GetUser(r.Context(), sess.Subject)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		// A deleted or disabled account keeps no session.
		return storage.Session{}, false, nil
	}
	if err != nil {
		return storage.Session{}, false, fmt.Errorf("reading session user: %w", err)
	}
	return sess, true, nil
}

// loginSatisfied reports whether sess is good enough for req without a new
// sign-in. A sign-in that happened after the request was made (the user came
// through the login page for it) satisfies prompt=login, max_age and an
// id_token_hint naming someone else: asking again would loop.
func (h *Handler) loginSatisfied(req oauth.AuthorizeRequest, sess storage.Session) bool {
	if !sess.AuthTime.Before(req.RequestedAt) {
		return true // fresh
	}
	// OIDC Core §3.1.2.1: prompt=login forces a new sign-in;
	// select_account shows the login page naming the current account,
	// which the user may keep (LoginSubmit's continue).
	if req.HasPrompt("login") || req.HasPrompt("select_account") {
		return false
	}
	return h.sessionUsable(req, sess)
}

// sessionUsable: the session meets max_age, id_token_hint and acr.
func (h *Handler) sessionUsable(req oauth.AuthorizeRequest, sess storage.Session) bool {
	// OIDC Core §3.1.2.1 max_age: re-authenticate when the last sign-in is
	// older (max_age=0 always re-authenticates).
	if req.MaxAge >= 0 && h.now().Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second {
		return false
	}
	// OIDC Core §3.1.2.1 id_token_hint: the session must be that user's.
	if req.IDTokenHintSubject != "" && req.IDTokenHintSubject != sess.Subject {
		return false
	}
	// OIDC Core §3.1.2.1 acr_values and §5.5.1.1 acr: a session below the
	// requested level signs in again, which reaches level 1. Voluntary
	// values do not fail prompt=none: the lower level is returned instead.
	if _, met, fixable := h.acrOutcome(req, sess); !met && fixable && (req.ACREssential || !req.HasPrompt("none")) {
		return false
	}
	return true
}

// Authentication context classes (OIDC Core §2 acr). Gatehouse has one
// authentication method, the password, and tells apart how recent it is:
//
//   - "1": the user typed the password within the last ACRFreshFor (by
//     default as long as a browser-session sign-in lasts, 12h);
//   - "0": the session is older and lives only because of the long-lived
//     "remember me" cookie, OIDC Core §2's very example of level 0.
//
// A request for "1" (acr_values or an acr claim request) on a level-0
// session asks for the password again.
const (
	acrRemembered = "0"
	acrPassword   = "1"
)

var acrLevels = map[string]int{acrRemembered: 0, acrPassword: 1}

// sessionACR is the session's current level.
func (h *Handler) sessionACR(sess storage.Session) string {
	if sess.Remember && h.now().Sub(sess.AuthTime) > h.acrFreshFor {
		return acrRemembered
	}
	return acrPassword
}

// acrOutcome returns the acr to put in the ID token for req, whether it
// meets the request (OIDC Core §5.5.1.1: one of the requested values), and
// whether signing in again would meet it. Without requested values it is
// the session's level. A stronger level satisfies a request for a weaker
// one: the highest requested value not above the session's is returned.
func (h *Handler) acrOutcome(req oauth.AuthorizeRequest, sess storage.Session) (acr string, met, fixable bool) {
	level := h.sessionACR(sess)
	best := ""
	known := false
	for _, v := range req.ACRValues {
		l, ok := acrLevels[v]
		if !ok {
			continue
		}
		known = true
		if l <= acrLevels[level] && (best == "" || l > acrLevels[best]) {
			best = v
		}
	}
	switch {
	case len(req.ACRValues) == 0:
		return level, true, true
	case best != "":
		return best, true, true
	case !known:
		// Only classes Gatehouse does not have: a new sign-in cannot help.
		return level, !req.ACREssential, false
	}
	return level, false, true
}

// afterLogin is the consent step: it grants at once when consent is not
// needed, fails with consent_required under prompt=none, or sends the
// browser to the consent page. A nil Decision with a nil error means it
// wrote the response.
func (h *Handler) afterLogin(w http.ResponseWriter, r *http.Request, req oauth.AuthorizeRequest, sess storage.Session) (*oauth.Decision, error) {
	need, err := h.needsConsent(r.Context(), req, sess.Subject)
	if err != nil {
		return nil, err
	}
	if need {
		if req.HasPrompt("none") {
			return nil, oauth.ErrConsentRequired // OIDC Core §3.1.2.6
		}
		redirect(w, r, pageURL(ConsentPath, req.Handle))
		return nil, nil
	}
	return h.grant(r.Context(), req, sess)
}

// needsConsent: prompt=consent always asks (OIDC Core §3.1.2.1); first-party
// clients never otherwise; others when no unexpired remembered consent
// covers every requested scope.
func (h *Handler) needsConsent(ctx context.Context, req oauth.AuthorizeRequest, subject string) (bool, error) {
	if req.HasPrompt("consent") {
		return true, nil
	}
	if req.FirstParty {
		return false, nil
	}
	c, err := h.consents.GetConsent(ctx, subject, req.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading consent: %w", err)
	}
	if !c.ExpiresAt.IsZero() && !h.now().Before(c.ExpiresAt) {
		return true, nil
	}
	for _, s := range req.Scopes {
		if !slices.Contains(c.Scopes, s) {
			return true, nil
		}
	}
	return false, nil
}

// errUnmetACR is OpenID Connect Core Unmet Authentication Requirements 1.0's
// error code.
var errUnmetACR = &oauth.AuthorizeError{Code: "unmet_authentication_requirements",
	Description: "The requested authentication context class cannot be met."}

// grant records the client in the session, for logout propagation, and
// returns the decision granting what was requested.
func (h *Handler) grant(ctx context.Context, req oauth.AuthorizeRequest, sess storage.Session) (*oauth.Decision, error) {
	acr, met, _ := h.acrOutcome(req, sess)
	if !met && req.ACREssential {
		// OIDC Core §5.5.1.1: an essential acr that cannot be met is a
		// failed authentication.
		return nil, errUnmetACR
	}
	// The session lists its clients for logout (OIDC Back-Channel Logout
	// §2.7); a client it already lists needs no write.
	if !slices.Contains(sess.ClientIDs, req.ClientID) {
		if err := h.sessions.AddClient(ctx, sess.ID, req.ClientID); err != nil {
			return nil, err
		}
	}
	h.log.InfoContext(ctx, "authorization granted", "subject", sess.Subject, "client_id", req.ClientID, "acr", acr)
	return &oauth.Decision{
		Subject:         sess.Subject,
		AuthTime:        sess.AuthTime,
		ACR:             acr,
		AMR:             slices.Clone(sess.AMR),
		SessionID:       sess.ID,
		GrantedScopes:   slices.Clone(req.Scopes),
		GrantedAudience: slices.Clone(req.Audience),
	}, nil
}

// finish hands an afterLogin outcome to the authorization endpoint after a
// page's POST.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, handle string, d *oauth.Decision, err error) {
	switch {
	case err != nil:
		var ae *oauth.AuthorizeError
		if !errors.As(err, &ae) {
			h.fail(w, r, "completing authorization", err)
			return
		}
		h.flow.AbortAuthorize(w, r, handle, err)
	case d != nil:
		h.flow.ResumeAuthorize(w, r, handle, *d)
	}
}
