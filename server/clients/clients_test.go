package clients

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/sql"
)

func newService(t *testing.T) (*Service, *secrets.Keyring) {
	t.Helper()
	db := newStore(t)
	ring := newRing(t)
	return New(db, ring, nil), ring
}

func newStore(t *testing.T) *sql.Store {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open(ctx, sql.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "clients.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func newRing(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring([]byte(strings.Repeat("k", 40)))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// The Ed25519 key of RFC 8037 Appendix A.1/A.2.
const (
	ed25519PublicJWK  = `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	ed25519PrivateJWK = `{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
)

func TestCreateConfidentialClient(t *testing.T) {
	s, ring := newService(t)
	ctx := context.Background()
	md, err := s.Create(ctx, Metadata{
		ClientName:   "shop",
		RedirectURIs: []string{"https://shop.example/cb", "https://shop.example/cb2"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		Scope:        "openid profile offline_access",
	}, CreateOptions{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(md.ClientSecret)
	if err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not 32 base64url bytes", md.ClientSecret)
	}
	// RFC 7591 §2 defaults.
	if md.TokenEndpointAuthMethod != "client_secret_basic" || !reflect.DeepEqual(md.ResponseTypes, []string{"code"}) || md.ApplicationType != "web" {
		t.Errorf("defaults: %+v", md)
	}
	// RFC 7591 §3.2.1: client_secret_expires_at is required with a secret.
	if md.ClientSecretExpiresAt == nil || *md.ClientSecretExpiresAt != 0 || md.ClientIDIssuedAt == 0 {
		t.Errorf("issued fields: %+v", md)
	}
	stored, err := s.Get(ctx, md.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if !ring.VerifyMAC(SecretPurpose, []byte(md.ClientSecret), stored.SecretHash) {
		t.Error("stored hash is not the secret's MAC")
	}
	if strings.Contains(string(stored.SecretHash), md.ClientSecret) {
		t.Error("secret stored in clear")
	}
	if !s.VerifySecret(stored, md.ClientSecret) || s.VerifySecret(stored, md.ClientSecret+"x") {
		t.Error("VerifySecret")
	}
	if !reflect.DeepEqual(stored.Scopes, []string{"openid", "profile", "offline_access"}) {
		t.Errorf("scopes %v", stored.Scopes)
	}
	// The stored client's metadata is the creation response less the secret.
	again := FromClient(stored)
	md.ClientSecret = ""
	if !reflect.DeepEqual(again, md) {
		t.Errorf("FromClient(Get) differs:\n got %+v\nwant %+v", again, md)
	}
	b, _ := json.Marshal(again)
	if strings.Contains(string(b), "client_secret\"") || !strings.Contains(string(b), `"client_secret_expires_at":0`) {
		t.Errorf("JSON: %s", b)
	}
}

func TestCreatePublicNativeClient(t *testing.T) {
	s, _ := newService(t)
	md, err := s.Create(context.Background(), Metadata{
		ClientName:              "cli",
		ApplicationType:         "native",
		TokenEndpointAuthMethod: "none",
		RedirectURIs:            []string{"http://127.0.0.1/callback", "http://[::1]:8400/cb", "com.example.app:/oauth2redirect"},
	}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if md.ClientSecret != "" || md.ClientSecretExpiresAt != nil {
		t.Errorf("public client got a secret: %+v", md)
	}
	b, _ := json.Marshal(md)
	if strings.Contains(string(b), "client_secret") {
		t.Errorf("public client JSON mentions a secret: %s", b)
	}
}

func TestMetadataRoundTripsEveryField(t *testing.T) {
	in := Metadata{
		ClientID: "c1", RedirectURIs: []string{"https://a.example/cb"}, TokenEndpointAuthMethod: "private_key_jwt",
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, ClientName: "n",
		ClientURI: "https://a.example", LogoURI: "https://a.example/l.png", Scope: "openid email",
		Contacts: []string{"ops@a.example"}, TOSURI: "https://a.example/tos", PolicyURI: "https://a.example/p",
		JWKS: json.RawMessage(`{"keys":[` + ed25519PublicJWK + `]}`), SoftwareID: "sid", SoftwareVersion: "1", SoftwareStatement: "eyJ",
		ApplicationType: "web", SectorIdentifierURI: "https://a.example/s", SubjectType: "public",
		IDTokenSignedResponseAlg: "ES256", UserinfoSignedResponseAlg: "RS256", RequestObjectSigningAlg: "PS256",
		TokenEndpointAuthSigningAlg: "EdDSA", DefaultMaxAge: 3600, RequireAuthTime: true, DefaultACRValues: []string{"1"},
		InitiateLoginURI: "https://a.example/login", RequestURIs: []string{"https://a.example/r"},
		PostLogoutRedirectURIs: []string{"https://a.example/bye"}, BackchannelLogoutURI: "https://a.example/bc",
		BackchannelLogoutSessionRequired: true, FrontchannelLogoutURI: "https://a.example/fc",
		FrontchannelLogoutSessionRequired: true, RequirePushedAuthorizationRequests: true,
		Audience: []string{"api"}, AccessTokenFormat: "jwt", AccessTokenLifetime: 600, RefreshTokenLifetime: 86400,
		IDTokenLifetime: 300, FirstParty: true,
	}
	// Every field must be set above, so a field forgotten in a conversion shows.
	v := reflect.ValueOf(in)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if v.Field(i).IsZero() && name != "ClientSecret" && name != "ClientIDIssuedAt" && name != "ClientSecretExpiresAt" && name != "JWKSURI" {
			t.Fatalf("test metadata leaves %s unset", name)
		}
	}
	if err := Validate(in, true); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := FromClient(in.ToClient()); !reflect.DeepEqual(got, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, in)
	}
	in.JWKS, in.JWKSURI = nil, "https://a.example/jwks"
	if got := FromClient(in.ToClient()); got.JWKSURI != in.JWKSURI {
		t.Errorf("jwks_uri lost")
	}
}

func TestValidationErrors(t *testing.T) {
	base := func() Metadata {
		return Metadata{RedirectURIs: []string{"https://a.example/cb"}}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Metadata)
		code   string
		desc   string
	}{
		{"no redirect", func(m *Metadata) { m.RedirectURIs = nil }, CodeInvalidRedirectURI, "redirect_uris is required"},
		{"relative", func(m *Metadata) { m.RedirectURIs = []string{"/cb"} }, CodeInvalidRedirectURI, "not an absolute URI"},
		{"fragment", func(m *Metadata) { m.RedirectURIs = []string{"https://a.example/cb#x"} }, CodeInvalidRedirectURI, "fragment"},
		{"wildcard", func(m *Metadata) { m.RedirectURIs = []string{"https://*.a.example/cb"} }, CodeInvalidRedirectURI, "wildcard"},
		{"javascript", func(m *Metadata) { m.RedirectURIs = []string{"javascript:alert(1)"} }, CodeInvalidRedirectURI, "javascript"},
		{"data", func(m *Metadata) { m.RedirectURIs = []string{"data:text/html,x"} }, CodeInvalidRedirectURI, "data"},
		{"http public", func(m *Metadata) { m.RedirectURIs = []string{"http://a.example/cb"} }, CodeInvalidRedirectURI, "use https"},
		// RFC 3986 §3.2.2 sub-delims in a host would end a CSP directive.
		{"semicolon in host", func(m *Metadata) { m.RedirectURIs = []string{"https://a.example;frame-ancestors/cb"} }, CodeInvalidRedirectURI, "neither a DNS name"},
		{"comma in native host", func(m *Metadata) {
			m.ApplicationType, m.RedirectURIs = "native", []string{"com.example.app://a,b/cb"}
		}, CodeInvalidRedirectURI, "neither a DNS name"},
		{"quote in logout host", func(m *Metadata) { m.PostLogoutRedirectURIs = []string{"https://a'b.example/"} }, CodeInvalidClientMetadata, "post_logout_redirect_uris[0]"},
		{"semicolon in frontchannel host", func(m *Metadata) { m.FrontchannelLogoutURI = "https://a.example;x/logout" }, CodeInvalidClientMetadata, "frontchannel_logout_uri"},
		{"private scheme for web", func(m *Metadata) { m.RedirectURIs = []string{"com.example.app:/cb"} }, CodeInvalidRedirectURI, "application_type native"},
		{"unknown grant", func(m *Metadata) { m.GrantTypes = []string{"password"} }, CodeInvalidClientMetadata, "grant_types \"password\""},
		{"implicit", func(m *Metadata) { m.GrantTypes = []string{"implicit"} }, CodeInvalidClientMetadata, "grant_types \"implicit\""},
		{"token response", func(m *Metadata) { m.ResponseTypes = []string{"token"} }, CodeInvalidClientMetadata, "response_types"},
		{"inconsistent", func(m *Metadata) {
			m.GrantTypes, m.ResponseTypes = []string{"client_credentials"}, []string{"code"}
		}, CodeInvalidClientMetadata, "disagree"},
		{"refresh alone", func(m *Metadata) {
			m.GrantTypes, m.ResponseTypes = []string{"refresh_token"}, []string{}
		}, CodeInvalidClientMetadata, "refresh_token needs authorization_code"},
		{"public client_credentials", func(m *Metadata) {
			m.GrantTypes, m.TokenEndpointAuthMethod = []string{"client_credentials"}, "none"
		}, CodeInvalidClientMetadata, "needs an authenticated client"},
		{"unknown auth", func(m *Metadata) { m.TokenEndpointAuthMethod = "tls_client_auth" }, CodeInvalidClientMetadata, "token_endpoint_auth_method"},
		{"client_secret_jwt with RS256", func(m *Metadata) {
			m.TokenEndpointAuthMethod, m.TokenEndpointAuthSigningAlg = "client_secret_jwt", "RS256"
		}, CodeInvalidClientMetadata, "use one of HS256, HS384, HS512"},
		{"private_key_jwt with HS256", func(m *Metadata) {
			m.TokenEndpointAuthMethod, m.TokenEndpointAuthSigningAlg, m.JWKSURI = "private_key_jwt", "HS256", "https://a.example/j"
		}, CodeInvalidClientMetadata, "token_endpoint_auth_signing_alg"},
		{"private jwk", func(m *Metadata) { m.JWKS = json.RawMessage(`{"keys":[` + ed25519PrivateJWK + `]}`) }, CodeInvalidClientMetadata, `private or symmetric member "d"`},
		{"symmetric jwk", func(m *Metadata) { m.JWKS = json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) }, CodeInvalidClientMetadata, `member "k"`},
		{"unparsable jwk", func(m *Metadata) { m.JWKS = json.RawMessage(`{"keys":[{"kty":"OKP"}]}`) }, CodeInvalidClientMetadata, "not a valid JSON Web Key Set"},
		{"pkjwt without keys", func(m *Metadata) { m.TokenEndpointAuthMethod = "private_key_jwt" }, CodeInvalidClientMetadata, "jwks_uri or jwks"},
		{"jwks and uri", func(m *Metadata) {
			m.JWKS, m.JWKSURI = json.RawMessage(`{"keys":[`+ed25519PublicJWK+`]}`), "https://a.example/j"
		}, CodeInvalidClientMetadata, "must not both"},
		{"bad jwks", func(m *Metadata) { m.JWKS = json.RawMessage(`[1]`) }, CodeInvalidClientMetadata, "JSON Web Key Set"},
		{"bad scope", func(m *Metadata) { m.Scope = `openid "quoted"` }, CodeInvalidClientMetadata, "scope"},
		{"logo javascript", func(m *Metadata) { m.LogoURI = "javascript:x" }, CodeInvalidClientMetadata, "logo_uri"},
		{"bad alg", func(m *Metadata) { m.IDTokenSignedResponseAlg = "none" }, CodeInvalidClientMetadata, "id_token_signed_response_alg"},
		{"bad logout redirect", func(m *Metadata) { m.PostLogoutRedirectURIs = []string{"http://evil.example"} }, CodeInvalidClientMetadata, "post_logout_redirect_uris[0]"},
		{"bad app type", func(m *Metadata) { m.ApplicationType = "desktop" }, CodeInvalidClientMetadata, "application_type"},
		{"untrusted first party", func(m *Metadata) { m.FirstParty = true }, CodeInvalidClientMetadata, "administrator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.mutate(&m)
			err := Validate(m, false)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Description, tc.desc) {
				t.Errorf("got %v, want %s mentioning %q", err, tc.code, tc.desc)
			}
		})
	}
}

func TestGetListDeleteRotate(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	var ids []string
	for range 3 {
		md, err := s.Create(ctx, Metadata{ClientName: "c", GrantTypes: []string{"client_credentials"}}, CreateOptions{Trusted: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, md.ClientID)
	}
	if _, err := s.Create(ctx, Metadata{GrantTypes: []string{"client_credentials"}}, CreateOptions{ClientID: ids[0]}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate client_id: %v", err)
	}
	cs, err := s.List(ctx, storage.Page{})
	if err != nil || len(cs) != 3 {
		t.Fatalf("List: %d %v", len(cs), err)
	}

	c0, _ := s.Get(ctx, ids[0])
	secret, err := s.RotateSecret(ctx, ids[0], time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := s.Get(ctx, ids[0])
	if !s.VerifySecret(c1, secret) {
		t.Error("new secret rejected")
	}
	if !reflect.DeepEqual(c1.RotatedSecretHash, c0.SecretHash) || c1.RotatedSecretExpiresAt.IsZero() {
		t.Error("previous secret not kept for the overlap")
	}

	if err := s.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, ids[1])
	if !errors.Is(err, storage.ErrNotFound) || err.Error() != `client "`+ids[1]+`" not found` {
		t.Errorf("Get deleted: %v", err)
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete missing: %v", err)
	}
	if _, err := s.RotateSecret(ctx, "nope", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RotateSecret missing: %v", err)
	}
}

func TestVerifySecretHonoursExpiry(t *testing.T) {
	s, ring := newService(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	mac := func(v string) []byte { return ring.MAC(SecretPurpose, []byte(v)) }
	c := storage.Client{
		SecretHash: mac("current"), RotatedSecretHash: mac("previous"), RotatedSecretExpiresAt: now.Add(time.Minute),
	}
	if !s.VerifySecret(c, "current") || !s.VerifySecret(c, "previous") || s.VerifySecret(c, "other") {
		t.Error("within overlap")
	}
	c.RotatedSecretExpiresAt = now.Add(-time.Second)
	if s.VerifySecret(c, "previous") {
		t.Error("previous secret accepted after its overlap")
	}
	c.SecretExpiresAt = now.Add(-time.Second)
	if s.VerifySecret(c, "current") {
		t.Error("expired secret accepted")
	}
	if s.VerifySecret(storage.Client{}, "") {
		t.Error("public client matched an empty secret")
	}
}

// client_secret_jwt: the server must know the secret to check HMAC
// assertions (RFC 7523 §3), so it is kept sealed, bound to the client.
func TestClientSecretJWTKeepsTheSecretSealed(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	md, err := s.Create(ctx, Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_jwt",
		TokenEndpointAuthSigningAlg: "HS256"}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Get(ctx, md.ClientID)
	got, err := s.SharedSecret(c)
	if err != nil || string(got) != md.ClientSecret || md.ClientSecret == "" || !s.VerifySecret(c, md.ClientSecret) {
		t.Fatalf("SharedSecret = %q, %v; issued %q", got, err, md.ClientSecret)
	}
	if strings.Contains(string(c.SecretSealed), md.ClientSecret) {
		t.Error("sealed secret holds the plaintext")
	}
	moved := c
	moved.ID = "other"
	if _, err := s.SharedSecret(moved); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("box moved to another client opened: %v", err)
	}

	if _, err := s.RotateSecret(ctx, md.ClientID, time.Hour); err == nil || !strings.Contains(err.Error(), "cannot overlap") {
		t.Errorf("overlap on client_secret_jwt: %v", err)
	}
	secret, err := s.RotateSecret(ctx, md.ClientID, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = s.Get(ctx, md.ClientID)
	if got, err := s.SharedSecret(c); err != nil || string(got) != secret || s.VerifySecret(c, md.ClientSecret) {
		t.Errorf("after rotation: %q %v", got, err)
	}

	// Other methods keep no sealed secret.
	basic, err := s.Create(ctx, Metadata{GrantTypes: []string{"client_credentials"}}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = s.Get(ctx, basic.ClientID)
	if len(c.SecretSealed) != 0 {
		t.Error("client_secret_basic client has a sealed secret")
	}
	if _, err := s.SharedSecret(c); err == nil {
		t.Error("SharedSecret of a client_secret_basic client")
	}
}

// RFC 7592 §2.2: an update replaces the metadata; the secret follows the
// authentication method.
func TestUpdate(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	created, err := s.Create(ctx, Metadata{ClientName: "a", RedirectURIs: []string{"https://a.example/cb"}, Scope: "openid"},
		CreateOptions{Trusted: true, RegistrationAccessTokenHash: []byte("rat-hash")})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ClientID
	if _, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://a.example/cb"}, FirstParty: true}, UpdateOptions{}); err == nil {
		t.Error("untrusted update set first_party")
	}
	if _, err := s.Update(ctx, id, Metadata{FirstParty: true, AccessTokenLifetime: 60, RedirectURIs: []string{"https://a.example/cb"}}, UpdateOptions{Trusted: true}); err != nil {
		t.Fatal(err)
	}

	// A full replacement: the name and scope go; policy, hash and secret stay.
	md, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}}, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Get(ctx, id)
	if md.ClientName != "" || md.Scope != "" || md.RedirectURIs[0] != "https://b.example/cb" || md.ClientSecret != "" ||
		!c.FirstParty || c.AccessTokenLifetime != time.Minute || string(c.RegistrationAccessTokenHash) != "rat-hash" ||
		!s.VerifySecret(c, created.ClientSecret) || md.ClientIDIssuedAt != created.ClientIDIssuedAt {
		t.Errorf("after replacement: %+v", md)
	}

	// Asked for, a new secret; the old one overlaps.
	md, err = s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}}, UpdateOptions{RotateSecret: true, Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = s.Get(ctx, id)
	if md.ClientSecret == "" || md.ClientSecret == created.ClientSecret || !s.VerifySecret(c, md.ClientSecret) || !s.VerifySecret(c, created.ClientSecret) {
		t.Errorf("rotation on update: %+v", md)
	}

	// Public: the secret goes. Confidential again: a new one.
	if _, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}, TokenEndpointAuthMethod: "none"}, UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Get(ctx, id)
	if len(c.SecretHash) != 0 || len(c.RotatedSecretHash) != 0 || s.VerifySecret(c, md.ClientSecret) {
		t.Error("public client kept a secret")
	}
	if _, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}, TokenEndpointAuthMethod: "none"}, UpdateOptions{RotateSecret: true}); err == nil {
		t.Error("rotated the secret of a public client")
	}
	md, err = s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}, TokenEndpointAuthMethod: "client_secret_jwt"}, UpdateOptions{})
	if err != nil || md.ClientSecret == "" {
		t.Fatalf("to client_secret_jwt: %+v %v", md, err)
	}
	c, _ = s.Get(ctx, id)
	if got, err := s.SharedSecret(c); err != nil || string(got) != md.ClientSecret {
		t.Errorf("sealed secret after switching to client_secret_jwt: %v", err)
	}
	// Back to basic: same secret, no longer sealed.
	md2, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://b.example/cb"}}, UpdateOptions{})
	c, _ = s.Get(ctx, id)
	if err != nil || md2.ClientSecret != "" || len(c.SecretSealed) != 0 || !s.VerifySecret(c, md.ClientSecret) {
		t.Errorf("back to client_secret_basic: %v", err)
	}

	checkErr := errors.New("no")
	if _, err := s.Update(ctx, id, Metadata{RedirectURIs: []string{"https://c.example/cb"}}, UpdateOptions{Check: func(storage.Client) error { return checkErr }}); !errors.Is(err, checkErr) {
		t.Errorf("Check error: %v", err)
	}
	if c2, _ := s.Get(ctx, id); c2.RedirectURIs[0] != "https://b.example/cb" {
		t.Error("a failed Check still wrote")
	}
	if _, err := s.Update(ctx, "nope", Metadata{RedirectURIs: []string{"https://c.example/cb"}}, UpdateOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update missing: %v", err)
	}
}
