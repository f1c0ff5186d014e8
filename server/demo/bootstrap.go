package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Names of what Bootstrap creates.
const (
	Username = "alice"
	ClientID = "gatehouse-demo"
	// Scope is what the demo client may ask for and asks for.
	Scope = "openid profile email offline_access"
)

// Deps are what Bootstrap needs.
type Deps struct {
	// Issuer is the server's issuer URL; the demo lives under <issuer>/demo.
	Issuer  string
	Users   *users.Service
	Clients *clients.Service
	// ResetPassword gives an existing alice a new random password (returned
	// in Info.Password) instead of leaving her password alone.
	ResetPassword bool
	Logger        *slog.Logger
}

// Info is what Bootstrap did. Password and ClientSecret are secrets: print
// Password once for the developer, hand ClientSecret to New, log neither
// anywhere else.
type Info struct {
	Username string
	// Password is alice's new password when she was created (or reset); ""
	// when she already existed and was left alone.
	Password    string
	UserCreated bool

	ClientID string
	// ClientSecret is the demo client's secret for this run: it is rotated
	// at every start, since only its keyed hash is stored.
	ClientSecret  string
	ClientCreated bool
}

// RedirectURI is the demo client's redirect URI for an issuer.
func RedirectURI(issuer string) string { return base(issuer) + CallbackPath }

// PostLogoutRedirectURI is where the end_session_endpoint sends the browser
// back to (OpenID Connect RP-Initiated Logout 1.0 §3).
func PostLogoutRedirectURI(issuer string) string { return base(issuer) + HomePath }

func base(issuer string) string { return strings.TrimSuffix(issuer, "/") }

// Bootstrap prepares dev mode's demo: the user alice and the first-party
// confidential client gatehouse-demo. It is idempotent; run it at every
// dev-mode start.
//
// An existing alice keeps her password (a developer may have changed it on
// purpose) unless d.ResetPassword is set. The client's secret is rotated at
// every start: only its keyed hash is stored, so this is the one way to know
// it without keeping a plaintext secret anywhere. A client whose settings no
// longer match (the issuer moved to another port, say) is replaced.
func Bootstrap(ctx context.Context, d Deps) (Info, error) {
	if d.Users == nil || d.Clients == nil || d.Issuer == "" {
		return Info{}, errors.New("demo bootstrap: Issuer, Users and Clients are required")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info := Info{Username: Username, ClientID: ClientID}
	if err := ensureUser(ctx, d, &info); err != nil {
		return Info{}, err
	}
	if err := ensureClient(ctx, d, &info); err != nil {
		return Info{}, err
	}
	log.InfoContext(ctx, "demo ready", "username", Username, "user_created", info.UserCreated,
		"client_id", ClientID, "client_created", info.ClientCreated, "demo_url", PostLogoutRedirectURI(d.Issuer))
	return info, nil
}

func ensureUser(ctx context.Context, d Deps, info *Info) error {
	u, err := d.Users.GetByUsername(ctx, Username)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		pw := randomString(18)
		_, err := d.Users.Create(ctx, users.NewUser{
			Username: Username,
			Password: pw,
			Claims: storage.Claims{
				Name:              "Alice Liddell",
				GivenName:         "Alice",
				FamilyName:        "Liddell",
				PreferredUsername: Username,
				Email:             "alice@example.com",
				EmailVerified:     true,
				Locale:            "en-GB",
			},
		})
		var conflict *users.ConflictError
		if errors.As(err, &conflict) && conflict.Field == "username" {
			// Another process created her between our read and write.
			return nil
		}
		if err != nil {
			return fmt.Errorf("creating demo user %s: %w", Username, err)
		}
		info.Password, info.UserCreated = pw, true
		return nil
	case err != nil:
		return fmt.Errorf("looking up demo user %s: %w", Username, err)
	}
	if d.ResetPassword {
		pw := randomString(18)
		if err := d.Users.SetPassword(ctx, u.ID, pw); err != nil {
			return fmt.Errorf("resetting the password of demo user %s: %w", Username, err)
		}
		info.Password = pw
	}
	return nil
}

// clientMetadata is the demo client as registered.
func clientMetadata(issuer string) clients.Metadata {
	return clients.Metadata{
		ClientName:              "Gatehouse demo",
		ClientURI:               PostLogoutRedirectURI(issuer),
		RedirectURIs:            []string{RedirectURI(issuer)},
		PostLogoutRedirectURIs:  []string{PostLogoutRedirectURI(issuer)},
		GrantTypes:              []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		ResponseTypes:           []string{clients.ResponseTypeCode},
		TokenEndpointAuthMethod: clients.AuthClientSecretBasic,
		ApplicationType:         clients.AppWeb,
		Scope:                   Scope,
		FirstParty:              true,
	}
}

// sameClient reports whether the stored client is registered as want.
func sameClient(have storage.Client, want clients.Metadata) bool {
	h := clients.FromClient(have)
	return h.ClientName == want.ClientName &&
		h.ClientURI == want.ClientURI &&
		slices.Equal(h.RedirectURIs, want.RedirectURIs) &&
		slices.Equal(h.PostLogoutRedirectURIs, want.PostLogoutRedirectURIs) &&
		slices.Equal(h.GrantTypes, want.GrantTypes) &&
		slices.Equal(h.ResponseTypes, want.ResponseTypes) &&
		h.TokenEndpointAuthMethod == want.TokenEndpointAuthMethod &&
		h.ApplicationType == want.ApplicationType &&
		h.Scope == want.Scope &&
		h.FirstParty == want.FirstParty &&
		len(have.SecretHash) > 0
}

func ensureClient(ctx context.Context, d Deps, info *Info) error {
	want := clientMetadata(d.Issuer)
	have, err := d.Clients.Get(ctx, ClientID)
	switch {
	case err == nil && sameClient(have, want):
		secret, err := d.Clients.RotateSecret(ctx, ClientID, 0)
		if err != nil {
			return fmt.Errorf("rotating the demo client secret: %w", err)
		}
		info.ClientSecret = secret
		return nil
	case err == nil:
		// The client service has no update: replace the outdated client.
		if err := d.Clients.Delete(ctx, ClientID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("replacing the outdated demo client: %w", err)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("looking up the demo client: %w", err)
	}
	md, err := d.Clients.Create(ctx, want, clients.CreateOptions{Trusted: true, ClientID: ClientID})
	if err != nil {
		return fmt.Errorf("creating the demo client: %w", err)
	}
	info.ClientSecret, info.ClientCreated = md.ClientSecret, true
	return nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
