package admin

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/storage"
)

func clientID(c storage.Client) string { return c.ID }

func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	p, err := pageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cs, err := a.cfg.Clients.List(r.Context(), storage.Page{After: p.After, Limit: p.Limit + 1})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, pageFrom(cs, p, clientID, clients.FromClient))
}

// createClient registers a client from RFC 7591 §2 metadata as a trusted
// caller (policy fields allowed). A client_id in the body is used as the
// new client's ID. The answer is the RFC 7591 §3.2.1 client information,
// with the secret: the only time it is shown.
func (a *API) createClient(w http.ResponseWriter, r *http.Request) {
	var md clients.Metadata
	if err := a.decode(r, &md, false); err != nil {
		a.fail(w, r, err)
		return
	}
	out, err := a.cfg.Clients.Create(r.Context(), md, clients.CreateOptions{Trusted: true, ClientID: md.ClientID})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/clients/"+url.PathEscape(out.ClientID))
	respond.JSON(w, http.StatusCreated, out)
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) {
	c, err := a.cfg.Clients.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, clients.FromClient(c))
}

// updateClient replaces the client's metadata as RFC 7592 §2.2 does: what
// the body leaves out is defaulted, not kept.
func (a *API) updateClient(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	var md clients.Metadata
	if err := a.decode(r, &md, false); err != nil {
		a.fail(w, r, err)
		return
	}
	if md.ClientID != "" && md.ClientID != id {
		a.fail(w, r, badRequest("client_id %q in the body does not match the path's %q: a client's ID cannot change", md.ClientID, id))
		return
	}
	out, err := a.cfg.Clients.Update(r.Context(), id, md, clients.UpdateOptions{Trusted: true})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, out)
}

// deleteClient deletes the client and revokes its grants, so that its
// tokens stop working at once (RFC 7592 §2.3).
func (a *API) deleteClient(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if err := a.cfg.Clients.Delete(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.revokeGrantsOf(w, r, id, "admin API: client deleted")
}

type rotateRequest struct {
	// OverlapSeconds keeps the previous secret valid this long; 0 ends it at once.
	OverlapSeconds int64 `json:"overlap_seconds"`
}

type secretResponse struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// ClientSecretExpiresAt is 0: the secret does not expire (RFC 7591 §3.2.1).
	ClientSecretExpiresAt int64 `json:"client_secret_expires_at"`
	// PreviousSecretExpiresAt is when the previous secret stops working.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// maxOverlap bounds a rotation's overlap, as registration.secret_rotation_overlap is.
const maxOverlap = 30 * 24 * time.Hour

func (a *API) rotateClientSecret(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	var req rotateRequest
	if err := a.decode(r, &req, true); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.OverlapSeconds < 0 || req.OverlapSeconds > int64(maxOverlap/time.Second) {
		a.fail(w, r, badRequest("overlap_seconds must be from 0 to %d (30 days), not %d", int64(maxOverlap/time.Second), req.OverlapSeconds))
		return
	}
	overlap := time.Duration(req.OverlapSeconds) * time.Second
	secret, err := a.cfg.Clients.RotateSecret(r.Context(), id, overlap)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := secretResponse{ClientID: id, ClientSecret: secret}
	if overlap > 0 {
		// Read back rather than compute: the service's clock decided it.
		if c, err := a.cfg.Clients.Get(r.Context(), id); err == nil && !c.RotatedSecretExpiresAt.IsZero() {
			out.PreviousSecretExpiresAt = &c.RotatedSecretExpiresAt
		}
	}
	respond.JSON(w, http.StatusOK, out)
}

type revoked struct {
	Revoked int `json:"revoked"`
}

func (a *API) revokeClientGrants(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := a.cfg.Clients.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.revokeGrantsOf(w, r, id, "admin API: client grants revoked")
}

// revokeGrantsOf revokes every grant of the client, so that its tokens stop
// working at once, and answers how many it revoked.
func (a *API) revokeGrantsOf(w http.ResponseWriter, r *http.Request, id, event string) {
	n, err := a.cfg.Grants.RevokeGrantsByClient(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), event, "client_id", id, "grants_revoked", n)
	respond.JSON(w, http.StatusOK, revoked{Revoked: n})
}
