package login

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-idp/gatehouse/server/session"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Logout is the end_session_endpoint of OpenID Connect RP-Initiated Logout
// 1.0 (GET or POST, §2). It ends the session at once when an id_token_hint
// shows that the current session's user asked for it through one of their
// clients; otherwise it asks the user to confirm (a POST with a CSRF
// token), as §2 recommends, so that no other site can sign the user out.
// After logout it redirects to post_logout_redirect_uri, with state, only
// when that URI exactly matches one the client registered (§3); never
// elsewhere.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, "Invalid request", "The logout request could not be read.")
		return
	}
	ctx := r.Context()
	confirmed := r.Method == http.MethodPost && r.PostForm.Get("confirm") == "yes"
	if confirmed {
		if err := h.sessions.CheckCSRF(r); err != nil {
			h.forbidden(w, r)
			return
		}
	}
	hint := r.Form.Get("id_token_hint")
	clientID := r.Form.Get("client_id")
	target := r.Form.Get("post_logout_redirect_uri")
	state := r.Form.Get("state")

	var hintSubject string
	if hint != "" {
		sub, aud, _, err := h.verifyIDTokenHint(ctx, hint)
		switch {
		case err != nil:
			h.log.InfoContext(ctx, "logout id_token_hint rejected", "error", err)
		case clientID != "" && clientID != aud:
			// §2: client_id must match the hint's audience.
			h.errorPage(w, r, http.StatusBadRequest, "Invalid logout request",
				"The logout request names two different applications.")
			return
		default:
			hintSubject, clientID = sub, aud
		}
	}

	var client storage.Client
	if clientID != "" {
		c, err := h.clients.GetClient(ctx, clientID)
		switch {
		case err == nil:
			client = c
		case errors.Is(err, storage.ErrNotFound):
			clientID = ""
		default:
			h.fail(w, r, "reading client", err)
			return
		}
	}
	// §3: exact match against the client's registered URIs, no normalisation.
	redirectOK := target != "" && client.ID != "" && slices.Contains(client.PostLogoutRedirectURIs, target)

	sess, hasSession, err := h.currentSessionAny(r)
	if err != nil {
		h.fail(w, r, "reading session", err)
		return
	}
	// §3: without an id_token_hint the OP must not redirect unless it has
	// other means of confirming the target; here that is the user's
	// confirmation. So a request without a session asks too, rather than
	// redirect at once: any site could otherwise bounce browsers through
	// this endpoint to any URI some client registered.
	askFirst := !confirmed && ((hasSession && (hintSubject == "" || hintSubject != sess.Subject)) ||
		(!hasSession && hintSubject == "" && redirectOK))
	if askFirst {
		token, err := h.sessions.CSRFToken(w, r)
		if err != nil {
			h.fail(w, r, "issuing csrf token", err)
			return
		}
		page := LogoutView{Action: LogoutPath, CSRFToken: token, ClientID: clientID, ClientName: client.Name, State: state,
			UILocales: r.Form.Get("ui_locales")}
		if redirectOK {
			page.PostLogoutRedirectURI = target
			allowFormTo(w, target)
		}
		if page.ClientName == "" {
			page.ClientName = clientID
		}
		h.render(w, r, http.StatusOK, logoutTemplate, page)
		return
	}

	var frames []string
	if hasSession {
		if h.logout != nil {
			// Read before the session ends: its client list goes with it.
			urls, err := h.logout.FrontChannelURLs(ctx, sess)
			if err != nil {
				h.fail(w, r, "listing front-channel logout urls", err)
				return
			}
			frames = framable(urls)
			if err := h.logout.EndSession(ctx, sess); err != nil {
				h.fail(w, r, "ending session", err)
				return
			}
		}
		if err := h.sessions.End(w, r); err != nil {
			h.fail(w, r, "ending session", err)
			return
		}
		h.log.InfoContext(ctx, "signed out", "subject", sess.Subject, "client_id", clientID, "frontchannel_logouts", len(frames))
	}
	if redirectOK && len(frames) == 0 {
		redirect(w, r, withState(target, state))
		return
	}
	page := LoggedOutView{ClientName: client.Name, FrontChannelURLs: frames}
	switch {
	case redirectOK:
		// Front-Channel Logout 1.0 §3: the iframes must load before the
		// browser leaves for post_logout_redirect_uri, and no script runs
		// under the CSP: Refresh waits for the page, iframes included, to
		// load, and the Continue link works without it.
		page.ContinueURL = withState(target, state)
		w.Header().Set("Refresh", strconv.Itoa(continueDelay)+"; url="+page.ContinueURL)
	case target != "":
		page.Notice = "The application did not register the address it asked to return to, so you stay on this page."
	}
	if len(frames) > 0 {
		w.Header().Set("Content-Security-Policy", frameCSP(frames))
	}
	h.render(w, r, http.StatusOK, loggedOutTemplate, page)
}

// continueDelay is how many seconds the logged-out page waits, once loaded,
// before it continues to post_logout_redirect_uri.
const continueDelay = 2

// framable keeps the front-channel logout URLs the page can frame: absolute
// http(s) URLs whose origin can be written into the CSP.
func framable(urls []string) []string {
	var out []string
	for _, u := range urls {
		if frameSource(u) != "" {
			out = append(out, u)
		}
	}
	return out
}

// frameSource is the CSP source of a front-channel logout URL,
// scheme://host[:port], or "" when it has none that is safe to write.
func frameSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	src := u.Scheme + "://" + u.Host
	// A separator inside a source would start another source or directive.
	if strings.ContainsAny(src, "; ,\t\r\n'\"") {
		return ""
	}
	return src
}

// frameCSP is Gatehouse's strict policy letting the page frame exactly the
// origins of the front-channel logout URLs (frame-src, and child-src for
// browsers that only know CSP level 2's fallback).
func frameCSP(urls []string) string {
	var srcs []string
	for _, u := range urls {
		if src := frameSource(u); src != "" && !slices.Contains(srcs, src) {
			srcs = append(srcs, src)
		}
	}
	csp := web.ContentSecurityPolicy()
	if len(srcs) == 0 {
		return csp
	}
	list := strings.Join(srcs, " ")
	return csp + "; frame-src " + list + "; child-src " + list
}

// currentSessionAny returns the request's session whatever the state of its
// user: a disabled user's session is still ended by logout.
func (h *Handler) currentSessionAny(r *http.Request) (storage.Session, bool, error) {
	sess, err := h.sessions.Get(r)
	if err != nil {
		if errors.Is(err, session.ErrNoSession) {
			return storage.Session{}, false, nil
		}
		return storage.Session{}, false, err
	}
	return sess, true, nil
}

// withState appends state to the redirect URI's query (RP-Initiated Logout
// 1.0 §3), leaving the registered URI byte for byte as it is.
func withState(target, state string) string {
	if state == "" {
		return target
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	return target + sep + url.Values{"state": {state}}.Encode()
}
