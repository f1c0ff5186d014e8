package login

import (
	"errors"
	"net/http"

	"github.com/gatehouse-idp/gatehouse/server/oauth"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Messages of the login page. Every failed sign-in gets the same one.
const (
	msgInvalid   = "Invalid username or password."
	msgThrottled = "Too many failed sign-in attempts. Wait a while, then try again."
)

// LoginPage shows the sign-in form for a pending authorization request
// (GET /login?handle=...).
func (h *Handler) LoginPage(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, ok := h.pending(w, r, r.URL.Query().Get("handle"))
	if !ok {
		return
	}
	h.showLogin(w, r, http.StatusOK, req, LoginView{Username: req.LoginHint})
}

// currentAccount returns the session to offer under prompt=select_account
// (OIDC Core §3.1.2.1): Gatehouse keeps one account per browser, so the
// "chooser" is the login page naming that account, with a button to keep
// it, next to the form for another. Only a session that would otherwise do
// (max_age, id_token_hint, acr, no prompt=login) is offered.
func (h *Handler) currentAccount(r *http.Request, req oauth.AuthorizeRequest) (storage.Session, string, bool) {
	if !req.HasPrompt("select_account") || req.HasPrompt("login") {
		return storage.Session{}, "", false
	}
	sess, ok, err := h.currentSession(r)
	if err != nil || !ok || !h.sessionUsable(req, sess) {
		return storage.Session{}, "", false
	}
	u, err := h.users.GetUser(r.Context(), sess.Subject)
	if err != nil {
		return storage.Session{}, "", false
	}
	name := u.Username
	if name == "" {
		name = u.Claims.Email
	}
	return sess, name, true
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, status int, req oauth.AuthorizeRequest, p LoginView) {
	token, err := h.sessions.CSRFToken(w, r)
	if err != nil {
		h.fail(w, r, "issuing csrf token", err)
		return
	}
	p.Action = LoginPath
	p.CSRFToken = token
	p.Handle = req.Handle
	p.ClientName = clientName(req)
	p.UILocales = req.UILocales
	if _, name, ok := h.currentAccount(r, req); ok {
		p.CurrentAccount = name
	}
	allowFormTo(w, req.RedirectURI)
	h.render(w, r, status, loginTemplate, p)
}

// LoginSubmit checks the credentials (POST /login). On success it starts a
// new session, under a new ID, and continues to consent or to the client.
func (h *Handler) LoginSubmit(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if err := h.sessions.CheckCSRF(r); err != nil {
		h.forbidden(w, r)
		return
	}
	handle := r.PostFormValue("handle")
	req, ok := h.pending(w, r, handle)
	if !ok {
		return
	}
	if r.PostFormValue("account") == "current" {
		// prompt=select_account: the user kept the signed-in account.
		sess, _, ok := h.currentAccount(r, req)
		if !ok {
			h.showLogin(w, r, http.StatusOK, req, LoginView{Username: req.LoginHint})
			return
		}
		d, err := h.afterLogin(w, r, req, sess)
		h.finish(w, r, handle, d, err)
		return
	}
	username := r.PostFormValue("username")
	remember := r.PostFormValue("remember") == "on"
	form := LoginView{Username: username, Remember: remember}

	u, err := h.authenticate(r.Context(), r, username, r.PostFormValue("password"))
	var te throttledError
	switch {
	case errors.Is(err, errInvalidCredentials):
		form.Error = msgInvalid
		h.showLogin(w, r, http.StatusOK, req, form)
		return
	case errors.As(err, &te):
		h.log.InfoContext(r.Context(), "sign-in throttled", "client_id", req.ClientID, "retry_after_seconds", retryAfter(te.wait))
		w.Header().Set("Retry-After", retryAfter(te.wait)) // RFC 6585 §4
		form.Error = msgThrottled
		h.showLogin(w, r, http.StatusTooManyRequests, req, form)
		return
	case err != nil:
		h.fail(w, r, "checking credentials", err)
		return
	}

	sess, err := h.sessions.Start(w, r, u.ID, []string{"pwd"}, acrPassword, remember) // RFC 8176 §2 "pwd"; acr: interaction.go
	if err != nil {
		h.fail(w, r, "starting session", err)
		return
	}
	h.log.InfoContext(r.Context(), "signed in", "subject", u.ID, "client_id", req.ClientID, "remember", remember)
	d, err := h.afterLogin(w, r, req, sess)
	h.finish(w, r, handle, d, err)
}

// clientName is the name shown for the client: its registered name, or its
// ID when it has none.
func clientName(req oauth.AuthorizeRequest) string {
	if req.ClientName != "" {
		return req.ClientName
	}
	return req.ClientID
}
