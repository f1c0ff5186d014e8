package admin

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// tokenView is an initial access token (RFC 7591 §3) as listed: its ID is
// a keyed hash; the token itself is shown only when created.
type tokenView struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	UsesLeft    int       `json:"uses_left"` // -1: unlimited
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
}

func viewToken(t storage.RegistrationToken) tokenView {
	return tokenView{t.ID, t.Description, t.UsesLeft, t.ExpiresAt, t.CreatedAt}
}

func tokenID(t storage.RegistrationToken) string { return t.ID }

func (a *API) listRegistrationTokens(w http.ResponseWriter, r *http.Request) {
	p, err := pageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.cfg.Tokens.ListTokens(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, pageOf(ts, p, tokenID, viewToken))
}

type newTokenRequest struct {
	// Uses is how many registrations the token allows (default 1); -1 or
	// Unlimited for no limit.
	Uses        *int   `json:"uses"`
	Unlimited   bool   `json:"unlimited"`
	ExpiresIn   int64  `json:"expires_in"` // seconds; 0: never
	Description string `json:"description"`
}

type newTokenResponse struct {
	Token string `json:"token"`
	tokenView
}

// maxTokenLifetime keeps ExpiresIn from overflowing a time.Duration.
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

func (a *API) createRegistrationToken(w http.ResponseWriter, r *http.Request) {
	var req newTokenRequest
	if err := a.decode(r, &req, true); err != nil {
		a.fail(w, r, err)
		return
	}
	uses := 1
	switch {
	case req.Unlimited && req.Uses != nil && *req.Uses != storage.UnlimitedUses:
		a.fail(w, r, badRequest("uses and unlimited exclude each other: give one"))
		return
	case req.Unlimited:
		uses = storage.UnlimitedUses
	case req.Uses != nil:
		uses = *req.Uses
	}
	if req.ExpiresIn < 0 || req.ExpiresIn > int64(maxTokenLifetime/time.Second) {
		a.fail(w, r, badRequest("expires_in must be from 0 (never expires) to %d seconds, not %d", int64(maxTokenLifetime/time.Second), req.ExpiresIn))
		return
	}
	token, t, err := a.cfg.Tokens.CreateToken(r.Context(), registration.TokenOptions{
		Uses: uses, ExpiresIn: time.Duration(req.ExpiresIn) * time.Second, Description: req.Description,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/registration-tokens/"+url.PathEscape(t.ID))
	respond.JSON(w, http.StatusCreated, newTokenResponse{Token: token, tokenView: viewToken(t)})
}

func (a *API) deleteRegistrationToken(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if err := a.cfg.Tokens.DeleteToken(r.Context(), id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			err = notFound("registration token %q", id)
		}
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
