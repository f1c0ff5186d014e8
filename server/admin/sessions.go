package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/storage"
)

type sessionView struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	AuthTime  time.Time `json:"auth_time"`
	ACR       string    `json:"acr,omitempty"`
	AMR       []string  `json:"amr,omitempty"`
	Remember  bool      `json:"remember"`
	ClientIDs []string  `json:"client_ids"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func viewSession(s storage.Session) sessionView {
	ids := s.ClientIDs
	if ids == nil {
		ids = []string{}
	}
	return sessionView{s.ID, s.Subject, s.AuthTime, s.ACR, s.AMR, s.Remember, ids, s.CreatedAt, s.ExpiresAt}
}

func sessionID(s storage.Session) string { return s.ID }

// user resolves the path's user, so that every /admin/users/{id}/... route
// answers 404 for an unknown user rather than an empty list.
func (a *API) user(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if _, err := a.cfg.Users.Get(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

// listOfUser answers a page of the path's user's records, which the stores
// list whole (sessions, consents): pageOf pages them in memory.
func listOfUser[S, T any](a *API, w http.ResponseWriter, r *http.Request, what string,
	list func(ctx context.Context, subject string) ([]S, error), id func(S) string, view func(S) T) {
	p, err := pageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	uid, err := a.user(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	all, err := list(r.Context(), uid)
	if err != nil {
		a.fail(w, r, fmt.Errorf("listing %s: %w", what, err))
		return
	}
	respond.JSON(w, http.StatusOK, pageOf(all, p, id, view))
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	listOfUser(a, w, r, "sessions", a.cfg.Sessions.ListSessions, sessionID, viewSession)
}

// endSession ends one session through the SessionEnder, which notifies the
// session's clients (OpenID Connect Back-Channel Logout 1.0 §2.5).
func (a *API) endSession(w http.ResponseWriter, r *http.Request) {
	id, err := a.user(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sid := mux.Vars(r)["sid"]
	s, err := a.cfg.Sessions.GetSession(r.Context(), sid)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && s.Subject != id) {
		// Another user's session is as absent as a missing one here.
		a.fail(w, r, notFound("session %q of user %q", sid, id))
		return
	}
	if err != nil {
		a.fail(w, r, fmt.Errorf("reading session: %w", err))
		return
	}
	if err := a.cfg.Ender.EndSession(r.Context(), s); err != nil {
		a.fail(w, r, fmt.Errorf("ending session: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "admin API: session ended", "user_id", id, "session_id", sid)
	w.WriteHeader(http.StatusNoContent)
}

type ended struct {
	Ended int `json:"ended"`
}

func (a *API) endAllSessions(w http.ResponseWriter, r *http.Request) {
	id, err := a.user(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.endSessions(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, ended{Ended: n})
}

// endSessions ends every session of the user, each with logout propagation.
func (a *API) endSessions(ctx context.Context, subject string) (int, error) {
	ss, err := a.cfg.Sessions.ListSessions(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("listing sessions: %w", err)
	}
	n := 0
	for _, s := range ss {
		if err := a.cfg.Ender.EndSession(ctx, s); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue // it ended or expired meanwhile
			}
			return n, fmt.Errorf("ending session: %w", err)
		}
		n++
	}
	a.log.InfoContext(ctx, "admin API: sessions ended", "user_id", subject, "sessions_ended", n)
	return n, nil
}

type consentView struct {
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func viewConsent(c storage.Consent) consentView {
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return consentView{c.ClientID, scopes, c.GrantedAt, c.ExpiresAt}
}

func consentClient(c storage.Consent) string { return c.ClientID }

func (a *API) listConsents(w http.ResponseWriter, r *http.Request) {
	listOfUser(a, w, r, "consents", a.cfg.Consents.ListConsents, consentClient, viewConsent)
}

// deleteConsent forgets a consent: the user is asked again next time. The
// tokens already issued stay valid; DELETE .../grants revokes them.
func (a *API) deleteConsent(w http.ResponseWriter, r *http.Request) {
	id, err := a.user(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cid := mux.Vars(r)["client_id"]
	if err := a.cfg.Consents.DeleteConsent(r.Context(), id, cid); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			err = notFound("consent of user %q for client %q", id, cid)
		}
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin API: consent deleted", "user_id", id, "client_id", cid)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) revokeUserGrants(w http.ResponseWriter, r *http.Request) {
	id, err := a.user(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.cfg.Grants.RevokeGrantsBySubject(r.Context(), id)
	if err != nil {
		a.fail(w, r, fmt.Errorf("revoking grants: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "admin API: user grants revoked", "user_id", id, "grants_revoked", n)
	respond.JSON(w, http.StatusOK, revoked{Revoked: n})
}
