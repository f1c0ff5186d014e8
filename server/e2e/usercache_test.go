package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// countingUsers counts the reads of users by ID that reach the backend.
type countingUsers struct {
	storage.Durable
	reads atomic.Int64
}

func (c *countingUsers) GetUser(ctx context.Context, id string) (storage.User, error) {
	c.reads.Add(1)
	return c.Durable.GetUser(ctx, id)
}

// TestUserCacheOneInvalidationPoint: with users.cache_ttl at its longest,
// single sign-on reads its user and consent from the cache, yet a consent
// revoked through the admin API is asked for again at once, and a user disabled through
// the admin API, or deleted through the users service, of the same process
// is refused at once everywhere: the server shares one cached store, and its
// user writes are where the cache is invalidated.
func TestUserCacheOneInvalidationPoint(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			st := be.open(t)
			backend := &countingUsers{Durable: st.Durable}
			st.Durable = backend
			e := start(t, st, func(c *config.Config) {
				c.Admin.Token = config.NewSecret(adminToken)
				c.Users.CacheTTL = 5 * time.Minute
			})
			ctx := context.Background()
			md := e.client(webClient())
			conf := e.rp(md, strings.Fields(fullScope)...)

			// Disabled through the admin API.
			sub, pw := e.user("cached")
			b := e.browser()
			e.codeFlow(b, conf, "cached", pw) // signs in and consents
			before := backend.reads.Load()
			tok, _ := e.codeFlow(b, conf, "cached", pw)
			if n := backend.reads.Load() - before; n != 0 {
				t.Errorf("a single sign-on read its user from storage %d times, want 0 (cached)", n)
			}
			if _, err := refresh(conf, tok.RefreshToken); err != nil {
				t.Fatalf("refresh before disabling: %v", err)
			}
			// A consent revoked through the admin API: the next sign-on
			// asks again at once, though the consent was cached.
			if code := e.adminAPI().call(http.MethodDelete, "/admin/users/"+sub+"/consents/"+md.ClientID, nil, nil); code != http.StatusNoContent {
				t.Fatalf("revoking the consent through the admin API: %d", code)
			}
			if p := b.get(conf.AuthCodeURL("sso-after-revocation", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); p.url.Path != "/consent" {
				t.Errorf("single sign-on after the consent's revocation: %d at %s (Location %s), want the consent page", p.status, p.url, p.header.Get("Location"))
			}
			e.codeFlow(b, conf, "cached", pw) // consents again
			verifier := oauth2.GenerateVerifier()
			pending := b.signIn(conf.AuthCodeURL("pending-code-state", oauth2.S256ChallengeOption(verifier)), "cached", pw).Get("code")

			if code := e.adminAPI().call(http.MethodPost, "/admin/users/"+sub+"/disable", nil, nil); code != http.StatusOK {
				t.Fatalf("disabling through the admin API: %d", code)
			}
			if _, err := conf.Exchange(ctx, pending, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
				t.Errorf("a code of the disabled user: %v, want invalid_grant", err)
			}
			if _, err := refresh(conf, tok.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
				t.Errorf("a refresh token of the disabled user: %v, want invalid_grant", err)
			}
			if in := e.introspect(md, tok.AccessToken); in["active"] != false {
				t.Errorf("an access token of the disabled user: %v, want inactive", in)
			}
			if p := b.get(conf.AuthCodeURL("sso-after-the-change", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); p.url.Path != "/login" {
				t.Errorf("single sign-on of the disabled user: %d at %s (Location %s), want the login page", p.status, p.url, p.header.Get("Location"))
			}

			// Deleted through the users service.
			sub2, pw2 := e.user("cached2")
			b2 := e.browser()
			e.codeFlow(b2, conf, "cached2", pw2)
			tok2, _ := e.codeFlow(b2, conf, "cached2", pw2)
			if err := e.app.Users.Delete(ctx, sub2); err != nil {
				t.Fatal(err)
			}
			if _, err := refresh(conf, tok2.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
				t.Errorf("a refresh token of the deleted user: %v, want invalid_grant", err)
			}
			if p := b2.get(conf.AuthCodeURL("sso-after-the-change", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); p.url.Path != "/login" {
				t.Errorf("single sign-on of the deleted user: %d at %s (Location %s), want the login page", p.status, p.url, p.header.Get("Location"))
			}
		})
	}
}
