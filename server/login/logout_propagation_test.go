package login_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/login"
	"github.com/gatehouse-idp/gatehouse/server/logout"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

const testIssuer = "https://idp.example"

// withLogoutService makes the env's Handler propagate logouts through a
// logout.Service on the env's store.
func withLogoutService(t *testing.T) envOption {
	return func(cfg *login.Config) {
		st := cfg.Clients.(*memory.Store)
		svc, err := logout.New(logout.Config{Issuer: testIssuer, Clients: st, Sessions: st, Outbox: st,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logout = svc
	}
}

func (e *env) updateClient(id string, update func(*storage.Client)) {
	e.t.Helper()
	_, err := e.store.UpdateClient(context.Background(), id, func(c storage.Client) (storage.Client, error) {
		update(&c)
		return c, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// aliceSession returns alice's only session, with shop added to its clients
// as if shop had received tokens in it too.
func (e *env) aliceSessionWithShop() storage.Session {
	e.t.Helper()
	ctx := context.Background()
	ss, err := e.store.ListSessions(ctx, e.aliceID)
	if err != nil || len(ss) != 1 {
		e.t.Fatalf("alice's sessions: %v %v", ss, err)
	}
	s, err := e.store.UpdateSession(ctx, ss[0].ID, func(s storage.Session) (storage.Session, error) {
		s.ClientIDs = append(s.ClientIDs, "shop")
		return s, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// cspDirective returns the sources of one directive of a CSP.
func cspDirective(csp, name string) []string {
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	return nil
}

var iframeRE = regexp.MustCompile(`<iframe src="([^"]+)" hidden`)

func TestRPInitiatedLogoutPropagates_FCL_3_BCL_2_5(t *testing.T) {
	hint := url.Values{"id_token_hint": {"idtoken:u-alice:shop"}, "post_logout_redirect_uri": {shopLogout}, "state": {"st 1"}}

	t.Run("front-channel iframes, then continue to post_logout_redirect_uri", func(t *testing.T) {
		e := newEnv(t, withLogoutService(t))
		e.updateClient("portal", func(c *storage.Client) {
			c.FrontchannelLogoutURI = "https://portal.example/fc"
			c.BackchannelLogoutURI = "https://portal.example/bc"
		})
		e.updateClient("shop", func(c *storage.Client) {
			c.FrontchannelLogoutURI = "https://shop.example:8443/fc?app=1"
			c.FrontchannelLogoutSessionRequired = true
		})
		e.signIn(false) // portal: recorded in the session by the grant
		sess := e.aliceSessionWithShop()
		if !slices.Equal(sess.ClientIDs, []string{"portal", "shop"}) {
			t.Fatalf("session clients %v, want portal (from the grant) and shop", sess.ClientIDs)
		}

		res := e.do(http.MethodGet, "/oauth2/logout?"+hint.Encode(), nil)
		if res.status != http.StatusOK {
			t.Fatalf("status %d location %q, want the logged-out page first\n%s", res.status, res.location(), res.body)
		}
		e.assertSignedOut(t)

		// Front-Channel Logout 1.0 §3: one iframe per client, with iss and sid (§2).
		var frames []*url.URL
		for _, m := range iframeRE.FindAllStringSubmatch(res.body, -1) {
			u, err := url.Parse(html.UnescapeString(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, u)
		}
		if len(frames) != 2 {
			t.Fatalf("%d iframes, want 2:\n%s", len(frames), res.body)
		}
		for i, want := range []string{"https://portal.example/fc", "https://shop.example:8443/fc"} {
			u := frames[i]
			if got := u.Scheme + "://" + u.Host + u.Path; got != want || u.Query().Get("iss") != testIssuer || u.Query().Get("sid") != sess.ID {
				t.Errorf("iframe %d: %s, want %s with iss and sid", i, u, want)
			}
		}
		if frames[1].Query().Get("app") != "1" {
			t.Errorf("iframe %s lost the registered query", frames[1])
		}

		// The CSP frames exactly those origins and stays strict otherwise.
		csp := res.header.Get("Content-Security-Policy")
		origins := []string{"https://portal.example", "https://shop.example:8443"}
		if got := cspDirective(csp, "frame-src"); !slices.Equal(got, origins) {
			t.Errorf("frame-src %v, want %v (CSP %q)", got, origins, csp)
		}
		if got := cspDirective(csp, "child-src"); !slices.Equal(got, origins) {
			t.Errorf("child-src %v, want %v", got, origins)
		}
		if got := cspDirective(csp, "default-src"); !slices.Equal(got, []string{"'none'"}) {
			t.Errorf("default-src %v, want 'none'", got)
		}
		if got := cspDirective(csp, "script-src"); got != nil || strings.Contains(res.body, "<script") {
			t.Errorf("the page runs script (script-src %v)", got)
		}

		// Then on to post_logout_redirect_uri without script.
		cont := shopLogout + "&state=st+1"
		if got := res.header.Get("Refresh"); got != "2; url="+cont {
			t.Errorf("Refresh %q, want a short delay then %s", got, cont)
		}
		if !strings.Contains(html.UnescapeString(res.body), `href="`+cont+`"`) {
			t.Errorf("no Continue link to %s:\n%s", cont, res.body)
		}

		// Back-Channel Logout 1.0 §2.5: portal's notification is queued.
		ns, err := e.store.ListLogouts(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 1 || ns[0].ClientID != "portal" || ns[0].URL != "https://portal.example/bc" {
			t.Fatalf("queued %+v, want one notification for portal", ns)
		}
		var claims map[string]any
		if err := json.Unmarshal(ns[0].Payload, &claims); err != nil {
			t.Fatal(err)
		}
		if claims["sid"] != sess.ID || claims["sub"] != e.aliceID || claims["aud"] != "portal" || claims["iss"] != testIssuer {
			t.Errorf("queued claims %v", claims)
		}
	})

	t.Run("back-channel only keeps the immediate redirect", func(t *testing.T) {
		e := newEnv(t, withLogoutService(t))
		e.updateClient("portal", func(c *storage.Client) { c.BackchannelLogoutURI = "https://portal.example/bc" })
		e.signIn(false)
		res := e.do(http.MethodGet, "/oauth2/logout?"+hint.Encode(), nil)
		if res.status != http.StatusSeeOther || res.location() != shopLogout+"&state=st+1" {
			t.Errorf("status %d location %q, want 303 to %s&state=st+1", res.status, res.location(), shopLogout)
		}
		e.assertSignedOut(t)
		if ns, _ := e.store.ListLogouts(context.Background(), 0); len(ns) != 1 {
			t.Errorf("queued %d notifications, want 1", len(ns))
		}
	})

	t.Run("confirmed logout without a redirect shows the iframes", func(t *testing.T) {
		e := newEnv(t, withLogoutService(t))
		e.updateClient("portal", func(c *storage.Client) { c.FrontchannelLogoutURI = "https://portal.example/fc" })
		e.signIn(false)
		res := e.do(http.MethodGet, "/oauth2/logout", nil)
		form := url.Values{"csrf_token": {csrfToken(t, res.body)}, "confirm": {"yes"}}
		res = e.do(http.MethodPost, "/oauth2/logout", form)
		if res.status != http.StatusOK || len(iframeRE.FindAllString(res.body, -1)) != 1 {
			t.Fatalf("status %d, want the logged-out page with one iframe:\n%s", res.status, res.body)
		}
		if res.header.Get("Refresh") != "" {
			t.Errorf("Refresh %q without a post_logout_redirect_uri", res.header.Get("Refresh"))
		}
		if got := cspDirective(res.header.Get("Content-Security-Policy"), "frame-src"); !slices.Equal(got, []string{"https://portal.example"}) {
			t.Errorf("frame-src %v", got)
		}
		e.assertSignedOut(t)
	})
}
