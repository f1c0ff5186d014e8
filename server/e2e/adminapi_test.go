package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// adminClient calls the admin API on the admin listener with the token.
type adminClient struct {
	e    *env
	base string
}

// adminAPI serves the server's admin handler on its own loopback listener,
// as listen.admin does.
func (e *env) adminAPI() *adminClient {
	srv := httptest.NewServer(e.app.Server.AdminHandler())
	e.t.Cleanup(srv.Close)
	return &adminClient{e: e, base: srv.URL}
}

func (a *adminClient) call(method, path string, body, out any) int {
	a.e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(a.e.t, body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return a.e.doJSON(req, out)
}

// adminSession is the admin API's view of a session.
type adminSession struct {
	ID        string   `json:"id"`
	UserID    string   `json:"user_id"`
	ClientIDs []string `json:"client_ids"`
}

func (a *adminClient) sessions(userID string) []adminSession {
	a.e.t.Helper()
	var out struct {
		Items []adminSession `json:"items"`
	}
	if code := a.call(http.MethodGet, "/admin/users/"+userID+"/sessions", nil, &out); code != http.StatusOK {
		a.e.t.Fatalf("listing sessions: %d", code)
	}
	return out.Items
}

// publishedKIDs reads the public listener's JWKS.
func (e *env) publishedKIDs() []string {
	e.t.Helper()
	var set jose.JSONWebKeySet
	req, _ := http.NewRequest(http.MethodGet, e.metadata("/.well-known/openid-configuration")["jwks_uri"].(string), nil)
	if code := e.doJSON(req, &set); code != http.StatusOK {
		e.t.Fatalf("jwks: %d", code)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// testAdminRoundTrip drives every admin resource through the admin
// listener and checks the effect on the public one.
func testAdminRoundTrip(t *testing.T, e *env, _ storage.Stores) {
	admin := e.adminAPI()

	// Clients: create (the secret is shown once), read.
	var md clients.Metadata
	if code := admin.call(http.MethodPost, "/admin/clients", map[string]any{
		"client_name": "Admin-made RP", "redirect_uris": []string{rpRedirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "scope": fullScope,
	}, &md); code != http.StatusCreated || md.ClientID == "" || md.ClientSecret == "" {
		t.Fatalf("POST /admin/clients: %d %+v", code, md)
	}
	var read clients.Metadata
	if code := admin.call(http.MethodGet, "/admin/clients/"+md.ClientID, nil, &read); code != http.StatusOK || read.ClientName != "Admin-made RP" || read.ClientSecret != "" {
		t.Errorf("GET /admin/clients/{id}: %d %+v", code, read)
	}

	// Users: create, then sign in with the new client and user.
	var u struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	}
	const pw = "admin-made-user-correct-horse"
	if code := admin.call(http.MethodPost, "/admin/users", map[string]any{
		"username": "madebyadmin", "password": pw, "claims": map[string]any{"email": "made@example.com"},
	}, &u); code != http.StatusCreated || u.ID == "" {
		t.Fatalf("POST /admin/users: %d %+v", code, u)
	}
	conf := e.rp(md, strings.Fields(fullScope)...)
	tok, idt := e.codeFlow(e.browser(), conf, "madebyadmin", pw)
	if idt.Subject != u.ID {
		t.Fatalf("signed in as %s, want the admin-made user %s", idt.Subject, u.ID)
	}
	var sid struct {
		SID string `json:"sid"`
	}
	_ = idt.Claims(&sid)

	// Sessions and consents list what the sign-in made.
	ss := admin.sessions(u.ID)
	if len(ss) != 1 || ss[0].ID != sid.SID || !slices.Contains(ss[0].ClientIDs, md.ClientID) {
		t.Errorf("sessions %+v, want one with id %s (the ID token's sid) and client %s", ss, sid.SID, md.ClientID)
	}
	var consents struct {
		Items []struct {
			ClientID string   `json:"client_id"`
			Scopes   []string `json:"scopes"`
		} `json:"items"`
	}
	if code := admin.call(http.MethodGet, "/admin/users/"+u.ID+"/consents", nil, &consents); code != http.StatusOK || len(consents.Items) != 1 || consents.Items[0].ClientID != md.ClientID {
		t.Errorf("consents: %d %+v", code, consents)
	}

	// Grants: revoking the user's grants stops their tokens at once.
	obs := e.observer()
	if in := e.introspect(obs, tok.AccessToken); in["active"] != true {
		t.Fatalf("access token before revocation: %v", in)
	}
	var rev struct {
		Revoked int `json:"revoked"`
	}
	if code := admin.call(http.MethodDelete, "/admin/users/"+u.ID+"/grants", nil, &rev); code != http.StatusOK || rev.Revoked != 1 {
		t.Errorf("DELETE /admin/users/{id}/grants: %d %+v, want 1 revoked", code, rev)
	}
	if in := e.introspect(obs, tok.AccessToken); in["active"] != false {
		t.Errorf("access token after the admin revoked the grants: %v (RFC 7662 §2.2)", in)
	}
	if _, err := refresh(conf, tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh after revocation: %v, want invalid_grant", err)
	}
	// ...and the client's grants likewise.
	b := e.browser()
	tok, _ = e.codeFlow(b, conf, "madebyadmin", pw)
	if code := admin.call(http.MethodDelete, "/admin/clients/"+md.ClientID+"/grants", nil, &rev); code != http.StatusOK || rev.Revoked != 1 {
		t.Errorf("DELETE /admin/clients/{id}/grants: %d %+v, want 1 revoked", code, rev)
	}
	if in := e.introspect(obs, tok.AccessToken); in["active"] != false {
		t.Errorf("access token after the admin revoked the client's grants: %v", in)
	}

	// Keys: a forced rotation changes the published set, and tokens are
	// then signed with a key relying parties find in it (OIDC Core §10.1.1).
	before := e.publishedKIDs()
	type keyList struct {
		Items []struct {
			KID   string `json:"kid"`
			State string `json:"state"`
		} `json:"items"`
	}
	var keys keyList
	if code := admin.call(http.MethodPost, "/admin/keys/rotate?force=true", nil, &keys); code != http.StatusOK || len(keys.Items) == 0 {
		t.Fatalf("POST /admin/keys/rotate?force=true: %d %+v", code, keys)
	}
	after := e.publishedKIDs()
	if slices.Equal(before, after) {
		t.Errorf("JWKS unchanged by a forced rotation: %v", after)
	}
	var listed keyList
	if code := admin.call(http.MethodGet, "/admin/keys", nil, &listed); code != http.StatusOK || len(listed.Items) != len(keys.Items) {
		t.Errorf("GET /admin/keys: %d %+v, want the %d keys rotate returned", code, listed, len(keys.Items))
	}
	_, idt = e.codeFlow(b, conf, "madebyadmin", pw) // go-oidc fetches the new JWKS to verify
	if idt == nil {
		t.Fatal("no ID token after rotation")
	}

	// Ending the sessions signs the browser out.
	var ended struct {
		Ended int `json:"ended"`
	}
	if code := admin.call(http.MethodDelete, "/admin/users/"+u.ID+"/sessions", nil, &ended); code != http.StatusOK || ended.Ended != 2 {
		t.Errorf("DELETE /admin/users/{id}/sessions: %d %+v, want the two browsers' sessions ended", code, ended)
	}
	p := b.get(conf.AuthCodeURL("after-admin-logout", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if got := p.redirect(t).Get("error"); got != "login_required" {
		t.Errorf("prompt=none after the admin ended the sessions: error=%q, want login_required", got)
	}

	// Deleting the client and the user.
	if code := admin.call(http.MethodDelete, "/admin/clients/"+md.ClientID, nil, nil); code != http.StatusNoContent && code != http.StatusOK {
		t.Errorf("DELETE /admin/clients/{id}: %d", code)
	}
	if code := admin.call(http.MethodGet, "/admin/clients/"+md.ClientID, nil, &map[string]any{}); code != http.StatusNotFound {
		t.Errorf("GET of a deleted client: %d, want 404", code)
	}
	if code := admin.call(http.MethodDelete, "/admin/users/"+u.ID, nil, &map[string]any{}); code != http.StatusOK {
		t.Errorf("DELETE /admin/users/{id}: %d", code)
	}
	if code := admin.call(http.MethodGet, "/admin/users/"+u.ID, nil, &map[string]any{}); code != http.StatusNotFound {
		t.Errorf("GET of a deleted user: %d, want 404", code)
	}
}
