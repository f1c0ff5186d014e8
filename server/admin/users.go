package admin

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// userView is a user as the API shows it: never the password hash.
type userView struct {
	ID          string         `json:"id"`
	Username    string         `json:"username"`
	Disabled    bool           `json:"disabled"`
	HasPassword bool           `json:"has_password"`
	Claims      storage.Claims `json:"claims"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

func viewUser(u storage.User) userView {
	return userView{u.ID, u.Username, u.Disabled, u.PasswordHash != "", u.Claims, u.CreatedAt, u.UpdatedAt}
}

func userID(u storage.User) string { return u.ID }

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	p, err := pageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	us, err := a.cfg.Users.List(r.Context(), storage.Page{After: p.After, Limit: p.Limit + 1})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, pageFrom(us, p, userID, viewUser))
}

type newUserRequest struct {
	Username string         `json:"username"`
	Password string         `json:"password"`
	Disabled bool           `json:"disabled"`
	Claims   storage.Claims `json:"claims"`
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var req newUserRequest
	if err := a.decode(r, &req, false); err != nil {
		a.fail(w, r, err)
		return
	}
	u, err := a.cfg.Users.Create(r.Context(), users.NewUser{
		Username: req.Username, Password: req.Password, Disabled: req.Disabled, Claims: req.Claims,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/users/"+url.PathEscape(u.ID))
	respond.JSON(w, http.StatusCreated, viewUser(u))
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := a.cfg.Users.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, viewUser(u))
}

// patchUser changes only the members the body sets; "" clears a claim.
func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	var p users.Patch
	if err := a.decode(r, &p, false); err != nil {
		a.fail(w, r, err)
		return
	}
	u, err := a.cfg.Users.Update(r.Context(), mux.Vars(r)["id"], p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, viewUser(u))
}

type deletedUser struct {
	SessionsEnded int `json:"sessions_ended"`
	GrantsRevoked int `json:"grants_revoked"`
}

// deleteUser signs the user out everywhere, then deletes them: sessions end
// with logout propagation and every grant is revoked, so nothing the user
// held keeps working.
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := a.cfg.Users.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	var out deletedUser
	var err error
	if out.SessionsEnded, err = a.endSessions(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	if out.GrantsRevoked, err = a.cfg.Grants.RevokeGrantsBySubject(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.cfg.Users.Delete(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, out)
}

type passwordRequest struct {
	Password string `json:"password"`
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) {
	var req passwordRequest
	if err := a.decode(r, &req, false); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.cfg.Users.SetPassword(r.Context(), mux.Vars(r)["id"], req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request) {
	a.setDisabled(w, r, a.cfg.Users.Disable)
}

func (a *API) enableUser(w http.ResponseWriter, r *http.Request) {
	a.setDisabled(w, r, a.cfg.Users.Enable)
}

func (a *API) setDisabled(w http.ResponseWriter, r *http.Request, set func(context.Context, string) (storage.User, error)) {
	u, err := set(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, viewUser(u))
}
