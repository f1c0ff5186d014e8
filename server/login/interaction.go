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
	fresh := !sess.AuthTime.Before(req.RequestedAt)
	if fresh {
		return true
	}
	// OIDC Core §3.1.2.1: prompt=login (and select_account, as Gatehouse
	// keeps one account per browser) forces a new sign-in.
	if req.HasPrompt("login") || req.HasPrompt("select_account") {
		return false
	}
	// OIDC Core §3.1.2.1 max_age: re-authenticate when the last sign-in is
	// older (max_age=0 always re-authenticates).
	if req.MaxAge >= 0 && h.now().Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second {
		return false
	}
	// OIDC Core §3.1.2.1 id_token_hint: the session must be that user's.
	if req.IDTokenHintSubject != "" && req.IDTokenHintSubject != sess.Subject {
		return false
	}
	return true
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

// grant records the client in the session, for logout propagation, and
// returns the decision granting what was requested.
func (h *Handler) grant(ctx context.Context, req oauth.AuthorizeRequest, sess storage.Session) (*oauth.Decision, error) {
	if err := h.sessions.AddClient(ctx, sess.ID, req.ClientID); err != nil {
		return nil, err
	}
	h.log.InfoContext(ctx, "authorization granted", "subject", sess.Subject, "client_id", req.ClientID)
	return &oauth.Decision{
		Subject:         sess.Subject,
		AuthTime:        sess.AuthTime,
		ACR:             sess.ACR,
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
