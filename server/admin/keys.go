package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// keyView describes a signing key; key material never leaves server/keys.
type keyView struct {
	KID        string           `json:"kid"`
	Algorithm  string           `json:"alg"`
	State      storage.KeyState `json:"state"`
	CreatedAt  time.Time        `json:"created_at"`
	ActivateAt time.Time        `json:"activate_at,omitzero"`
	RetiredAt  time.Time        `json:"retired_at,omitzero"`
	DeleteAt   time.Time        `json:"delete_at,omitzero"`
}

func viewKeys(ks []keys.KeyInfo) list[keyView] {
	out := list[keyView]{Items: make([]keyView, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, keyView{k.KID, k.Algorithm, k.State, k.CreatedAt, k.ActivateAt, k.RetiredAt, k.DeleteAt})
	}
	return out
}

// listKeys lists the whole key set (a handful of keys: no paging).
func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	respond.JSON(w, http.StatusOK, viewKeys(a.cfg.Keys.List()))
}

// rotateKeys rotates the key set and answers with it. Without ?force=true a
// rotation is refused (409) while the next keys are too new to sign: relying
// parties may not have fetched them yet (OIDC Core §10.1.1).
func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request) {
	force := false
	if s := r.URL.Query().Get("force"); s != "" {
		var err error
		if force, err = strconv.ParseBool(s); err != nil {
			a.fail(w, r, badRequest("force must be true or false, not %q", s))
			return
		}
	}
	if err := a.cfg.Keys.Rotate(r.Context(), force); err != nil {
		if errors.Is(err, keys.ErrRotationNotReady) {
			respond.Error(w, r, http.StatusConflict, "rotation_not_ready", err.Error())
			return
		}
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin API: keys rotated", "force", force)
	respond.JSON(w, http.StatusOK, viewKeys(a.cfg.Keys.List()))
}
