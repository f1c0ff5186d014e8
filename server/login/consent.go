package login

import (
	"errors"
	"net/http"
	"slices"

	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// ConsentPage asks the signed-in user to allow the client the requested
// scopes (GET /consent?handle=...).
func (h *Handler) ConsentPage(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, sess, ok := h.consentContext(w, r, r.URL.Query().Get("handle"))
	if !ok {
		return
	}
	token, err := h.sessions.CSRFToken(w, r)
	if err != nil {
		h.fail(w, r, "issuing csrf token", err)
		return
	}
	username := ""
	if u, err := h.users.GetUser(r.Context(), sess.Subject); err == nil {
		username = u.Username
	}
	allowFormTo(w, req.RedirectURI)
	h.render(w, r, http.StatusOK, consentTemplate, ConsentView{
		Action:     ConsentPath,
		CSRFToken:  token,
		Handle:     req.Handle,
		ClientName: clientName(req),
		LogoURL:    logoURL(req.LogoURI),
		ClientURI:  webURL(req.ClientURI),
		PolicyURI:  webURL(req.PolicyURI),
		TOSURI:     webURL(req.TOSURI),
		Username:   username,
		Scopes:     describeScopes(req.Scopes),
		UILocales:  req.UILocales,
	})
}

// ConsentSubmit records the user's answer (POST /consent): Allow remembers
// the consent and completes the authorization; Deny returns access_denied
// to the client (RFC 6749 §4.1.2.1).
func (h *Handler) ConsentSubmit(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if err := h.sessions.CheckCSRF(r); err != nil {
		h.forbidden(w, r)
		return
	}
	handle := r.PostFormValue("handle")
	req, sess, ok := h.consentContext(w, r, handle)
	if !ok {
		return
	}
	ctx := r.Context()
	switch r.PostFormValue("decision") {
	case "deny":
		h.log.InfoContext(ctx, "consent denied", "subject", sess.Subject, "client_id", req.ClientID)
		h.flow.AbortAuthorize(w, r, handle, oauth.ErrAccessDenied)
	case "allow":
		if err := h.remember(r, req, sess.Subject); err != nil {
			h.fail(w, r, "storing consent", err)
			return
		}
		h.log.InfoContext(ctx, "consent given", "subject", sess.Subject, "client_id", req.ClientID)
		d, err := h.grant(ctx, req, sess)
		h.finish(w, r, handle, d, err)
	default:
		h.errorPage(w, r, http.StatusBadRequest, "Invalid request", "Choose Allow or Deny.")
	}
}

// consentContext loads the pending request and the session that must have
// signed in for it; without one it sends the browser to the login page.
func (h *Handler) consentContext(w http.ResponseWriter, r *http.Request, handle string) (oauth.AuthorizeRequest, storage.Session, bool) {
	req, ok := h.pending(w, r, handle)
	if !ok {
		return oauth.AuthorizeRequest{}, storage.Session{}, false
	}
	sess, ok, err := h.currentSession(r)
	if err != nil {
		h.fail(w, r, "reading session", err)
		return oauth.AuthorizeRequest{}, storage.Session{}, false
	}
	if !ok || !h.loginSatisfied(req, sess) {
		redirect(w, r, pageURL(LoginPath, req.Handle))
		return oauth.AuthorizeRequest{}, storage.Session{}, false
	}
	return req, sess, true
}

// remember stores the consent, adding the requested scopes to those already
// allowed so that a later request for any of them is not asked again.
func (h *Handler) remember(r *http.Request, req oauth.AuthorizeRequest, subject string) error {
	ctx := r.Context()
	now := h.now()
	scopes := slices.Clone(req.Scopes)
	prev, err := h.consents.GetConsent(ctx, subject, req.ClientID)
	switch {
	case err == nil && (prev.ExpiresAt.IsZero() || now.Before(prev.ExpiresAt)):
		for _, s := range prev.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return err
	}
	return h.consents.PutConsent(ctx, storage.Consent{
		Subject:   subject,
		ClientID:  req.ClientID,
		Scopes:    scopes,
		GrantedAt: now,
		ExpiresAt: now.Add(h.consentLifetime),
	})
}
