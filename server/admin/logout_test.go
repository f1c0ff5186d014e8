package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/logout"
)

// TestEndSessionPropagatesLogout ends sessions through the real
// server/logout service: each ending queues an OpenID Connect Back-Channel
// Logout 1.0 §2.5 notification for the session's clients.
func TestEndSessionPropagatesLogout(t *testing.T) {
	eachBackend(t, func(t *testing.T, store backend) {
		ctx := context.Background()
		svc, err := logout.New(logout.Config{
			Issuer: "https://login.example.com", Clients: store, Sessions: store, Outbox: store,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, store, envOptions{token: testToken, ender: svc})
		r := e.do("POST", "/admin/clients", map[string]any{
			"client_id": "shop", "redirect_uris": []string{"https://shop.example.com/cb"},
			"backchannel_logout_uri": "https://shop.example.com/logout",
		})
		e.want(r, http.StatusCreated, "")
		alice := e.newUser("alice")
		putSession(t, store, "s1", alice, "shop")
		putSession(t, store, "s2", alice, "shop")

		e.want(e.do("DELETE", "/admin/users/"+alice+"/sessions/s1", nil), http.StatusNoContent, "")
		if _, err := store.GetSession(ctx, "s1"); !asNotFound(err) {
			t.Errorf("session s1 still there after ending it: %v", err)
		}
		queued, err := store.ListLogouts(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(queued) != 1 || queued[0].ClientID != "shop" || queued[0].URL != "https://shop.example.com/logout" {
			t.Fatalf("queued back-channel logouts: %+v", queued)
		}
		var claims map[string]any
		if err := json.Unmarshal(queued[0].Payload, &claims); err != nil {
			t.Fatal(err)
		}
		if claims["sid"] != "s1" || claims["sub"] != alice || claims["aud"] != "shop" {
			t.Errorf("logout token claims = %v", claims)
		}

		r = e.do("DELETE", "/admin/users/"+alice+"/sessions", nil)
		e.want(r, http.StatusOK, "")
		if n := r.json(t)["ended"]; n != float64(1) {
			t.Errorf("ended %v sessions, want 1", n)
		}
		if queued, _ := store.ListLogouts(ctx, 0); len(queued) != 2 {
			t.Errorf("%d back-channel logouts queued after ending every session, want 2", len(queued))
		}
	})
}
