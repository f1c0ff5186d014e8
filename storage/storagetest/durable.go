package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

type durableCase = testCase[storage.Durable]

func durableCases() []durableCase {
	return []durableCase{
		{"Ping", testPing},
		{"Users/CRUD", testUsersCRUD},
		{"Users/NotFound", testUsersNotFound},
		{"Users/Conflict", testUsersConflict},
		{"Users/EmailCaseInsensitive", testUsersEmailCase},
		{"Users/EmptyEmailNotUnique", testUsersEmptyEmail},
		{"Users/UsernameExact", testUsersUsernameExact},
		{"Users/AllClaimsRoundTrip", testUsersAllClaims},
		{"Users/Update", testUsersUpdate},
		{"Users/UpdateConflict", testUsersUpdateConflict},
		{"Users/UpdaterError", testUsersUpdaterError},
		{"Users/List", testUsersList},
		{"Users/ListDefaultLimit", testUsersListDefaultLimit},
		{"Clients/CRUD", testClientsCRUD},
		{"Clients/AllFieldsRoundTrip", testClientsAllFields},
		{"Clients/NotFound", testClientsNotFound},
		{"Clients/Conflict", testClientsConflict},
		{"Clients/UpdaterError", testClientsUpdaterError},
		{"Clients/List", testClientsList},
		{"Clients/Isolation", testClientsIsolation},
		{"Clients/ConcurrentUpdate", testClientsConcurrentUpdate},
		{"Consents/PutGetReplace", testConsentsPutGet},
		{"Consents/ListDelete", testConsentsListDelete},
		{"Consents/Expired", testConsentsExpired},
		{"Consents/DeleteByClient", testConsentsDeleteByClient},
		{"Keys/Empty", testKeysEmpty},
		{"Keys/ReplaceCAS", testKeysReplaceCAS},
		{"Keys/AllFieldsRoundTrip", testKeysAllFields},
		{"Keys/Isolation", testKeysIsolation},
		{"Keys/ConcurrentReplace", testKeysConcurrentReplace},
		{"RegistrationTokens/CRUD", testRegTokensCRUD},
		{"RegistrationTokens/UsedUp", testRegTokensUsedUp},
		{"RegistrationTokens/Expired", testRegTokensExpired},
		{"RegistrationTokens/ConcurrentUse", testRegTokensConcurrentUse},
		{"Logouts/EnqueueList", testLogoutsEnqueueList},
		{"Logouts/EnqueueAllOrNothing", testLogoutsAllOrNothing},
		{"Logouts/ClaimLeaseRetryComplete", testLogoutsClaim},
		{"Logouts/ConcurrentClaims", testLogoutsConcurrentClaims},
	}
}

func testPing(t *testing.T, ctx context.Context, s storage.Durable) {
	must(t, s.Ping(ctx), "Ping")
}

// ---------------------------------------------------------------------------
// Users

func newUser(id string) storage.User {
	return storage.User{
		ID:           id,
		Username:     "name-" + id,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		Claims: storage.Claims{
			Name:  "User " + id,
			Email: fmt.Sprintf("mail-%x@example.com", id), // hex: IDs differing only in case are distinct
		},
		CreatedAt: base,
		UpdatedAt: base.Add(time.Second),
	}
}

func fullUser(id string) storage.User {
	return storage.User{
		ID:           id,
		Username:     "alice-" + id,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		Disabled:     true,
		Claims: storage.Claims{
			Name:                "Alice Pleasance Liddell",
			GivenName:           "Alice",
			FamilyName:          "Liddell",
			MiddleName:          "Pleasance",
			Nickname:            "Ali",
			PreferredUsername:   "alice",
			Profile:             "https://example.com/alice",
			Picture:             "https://example.com/alice.png",
			Website:             "https://alice.example.com",
			Email:               "Alice." + id + "@Example.COM",
			EmailVerified:       true,
			Gender:              "female",
			Birthdate:           "1852-05-04",
			Zoneinfo:            "Europe/London",
			Locale:              "en-GB",
			PhoneNumber:         "+44 1865 000000",
			PhoneNumberVerified: true,
			Address: storage.Address{
				Formatted:     "Christ Church\nOxford OX1 1DP\nUnited Kingdom",
				StreetAddress: "St Aldate's",
				Locality:      "Oxford",
				Region:        "Oxfordshire",
				PostalCode:    "OX1 1DP",
				Country:       "GB",
			},
		},
		CreatedAt: base,
		UpdatedAt: base.Add(time.Hour + 987654321),
	}
}

func createUser(t *testing.T, ctx context.Context, s storage.UserStore, u storage.User) {
	t.Helper()
	must(t, s.CreateUser(ctx, u), "CreateUser "+u.ID)
}

func testUsersCRUD(t *testing.T, ctx context.Context, s storage.Durable) {
	u := newUser("u1")
	createUser(t, ctx, s, u)

	got, err := s.GetUser(ctx, u.ID)
	must(t, err, "GetUser")
	checkEqual(t, "GetUser", u, got)
	got, err = s.GetUserByUsername(ctx, u.Username)
	must(t, err, "GetUserByUsername")
	checkEqual(t, "GetUserByUsername", u, got)
	got, err = s.GetUserByEmail(ctx, u.Claims.Email)
	must(t, err, "GetUserByEmail")
	checkEqual(t, "GetUserByEmail", u, got)

	list, err := s.ListUsers(ctx, storage.Page{})
	must(t, err, "ListUsers")
	if len(list) != 1 {
		t.Fatalf("ListUsers: got %d users, want 1", len(list))
	}
	checkEqual(t, "ListUsers[0]", u, list[0])

	u2 := u
	u2.Claims.Name = "Renamed"
	updated, err := s.UpdateUser(ctx, u.ID, func(x storage.User) (storage.User, error) {
		x.Claims.Name = "Renamed"
		return x, nil
	})
	must(t, err, "UpdateUser")
	if updated.Claims.Name != "Renamed" {
		t.Errorf("UpdateUser returned name %q, want %q", updated.Claims.Name, "Renamed")
	}
	got, err = s.GetUser(ctx, u.ID)
	must(t, err, "GetUser after update")
	u2.UpdatedAt = got.UpdatedAt // a backend may stamp UpdatedAt itself
	checkEqual(t, "GetUser after update", u2, got)

	must(t, s.DeleteUser(ctx, u.ID), "DeleteUser")
	_, err = s.GetUser(ctx, u.ID)
	wantErr(t, err, storage.ErrNotFound, "GetUser after DeleteUser")
	_, err = s.GetUserByUsername(ctx, u.Username)
	wantErr(t, err, storage.ErrNotFound, "GetUserByUsername after DeleteUser")
	_, err = s.GetUserByEmail(ctx, u.Claims.Email)
	wantErr(t, err, storage.ErrNotFound, "GetUserByEmail after DeleteUser")
	// The username and email of a deleted user are free again.
	u3 := u
	u3.ID = "u1-again"
	createUser(t, ctx, s, u3)
}

func testUsersNotFound(t *testing.T, ctx context.Context, s storage.Durable) {
	createUser(t, ctx, s, newUser("present"))
	_, err := s.GetUser(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetUser of an unknown ID")
	_, err = s.GetUserByUsername(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetUserByUsername of an unknown username")
	_, err = s.GetUserByEmail(ctx, "absent@example.com")
	wantErr(t, err, storage.ErrNotFound, "GetUserByEmail of an unknown email")
	_, err = s.UpdateUser(ctx, "absent", func(u storage.User) (storage.User, error) {
		u.Claims.Name = "x"
		return u, nil
	})
	wantErr(t, err, storage.ErrNotFound, "UpdateUser of an unknown ID")
	wantErr(t, s.DeleteUser(ctx, "absent"), storage.ErrNotFound, "DeleteUser of an unknown ID")
	_, err = s.GetUser(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetUser after UpdateUser of an unknown ID (it must not create one)")
}

func testUsersConflict(t *testing.T, ctx context.Context, s storage.Durable) {
	u := newUser("u1")
	createUser(t, ctx, s, u)

	dupID := newUser("u1")
	dupID.Username, dupID.Claims.Email = "other-name", "other@example.com"
	wantErr(t, s.CreateUser(ctx, dupID), storage.ErrConflict, "CreateUser with a duplicate ID")

	dupName := newUser("u2")
	dupName.Username = u.Username
	wantErr(t, s.CreateUser(ctx, dupName), storage.ErrConflict, "CreateUser with a duplicate username")

	dupMail := newUser("u3")
	dupMail.Claims.Email = strings.ToUpper(u.Claims.Email)
	wantErr(t, s.CreateUser(ctx, dupMail), storage.ErrConflict, "CreateUser with a duplicate email in another case")

	// Nothing of the refused users was stored.
	got, err := s.GetUser(ctx, "u1")
	must(t, err, "GetUser")
	checkEqual(t, "GetUser after refused duplicates", u, got)
	for _, id := range []string{"u2", "u3"} {
		_, err := s.GetUser(ctx, id)
		wantErr(t, err, storage.ErrNotFound, "GetUser of refused user "+id)
	}
	list, err := s.ListUsers(ctx, storage.Page{})
	must(t, err, "ListUsers")
	if len(list) != 1 {
		t.Errorf("ListUsers after refused duplicates: got %d users, want 1", len(list))
	}
}

func testUsersEmailCase(t *testing.T, ctx context.Context, s storage.Durable) {
	u := newUser("u1")
	u.Claims.Email = "Mixed.Case@Example.COM"
	createUser(t, ctx, s, u)
	for _, q := range []string{"mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM", "Mixed.Case@Example.COM"} {
		got, err := s.GetUserByEmail(ctx, q)
		must(t, err, "GetUserByEmail "+q)
		// The stored spelling is kept.
		checkEqual(t, "GetUserByEmail "+q, u, got)
	}
}

// testUsersEmptyEmail: email is unique only when non-empty, and an empty email
// finds nobody.
func testUsersEmptyEmail(t *testing.T, ctx context.Context, s storage.Durable) {
	for _, id := range []string{"a", "b"} {
		u := newUser(id)
		u.Claims.Email = ""
		createUser(t, ctx, s, u)
	}
	_, err := s.GetUserByEmail(ctx, "")
	wantErr(t, err, storage.ErrNotFound, "GetUserByEmail of the empty email")
	// Clearing an email by update is allowed for several users too.
	c := newUser("c")
	createUser(t, ctx, s, c)
	_, err = s.UpdateUser(ctx, "c", func(u storage.User) (storage.User, error) {
		u.Claims.Email = ""
		return u, nil
	})
	must(t, err, "UpdateUser clearing the email")
}

func testUsersUsernameExact(t *testing.T, ctx context.Context, s storage.Durable) {
	a, b := newUser("a"), newUser("b")
	a.Username, b.Username = "alice", "Alice"
	createUser(t, ctx, s, a)
	createUser(t, ctx, s, b) // usernames compare exactly: not a duplicate
	got, err := s.GetUserByUsername(ctx, "Alice")
	must(t, err, "GetUserByUsername Alice")
	checkEqual(t, "GetUserByUsername Alice", b, got)
	_, err = s.GetUserByUsername(ctx, "ALICE")
	wantErr(t, err, storage.ErrNotFound, "GetUserByUsername ALICE")
}

func testUsersAllClaims(t *testing.T, ctx context.Context, s storage.Durable) {
	u := fullUser("full")
	checkAllSet(t, "fullUser", u)
	createUser(t, ctx, s, u)
	got, err := s.GetUser(ctx, u.ID)
	must(t, err, "GetUser")
	checkEqual(t, "GetUser", u, got)

	// Booleans false and zero address also round-trip (not "true by default").
	v := newUser("plain")
	createUser(t, ctx, s, v)
	got, err = s.GetUser(ctx, v.ID)
	must(t, err, "GetUser plain")
	checkEqual(t, "GetUser plain", v, got)
	if !got.Claims.Address.IsZero() {
		t.Errorf("Address of a user without one: got %+v, want zero", got.Claims.Address)
	}
}

func testUsersUpdate(t *testing.T, ctx context.Context, s storage.Durable) {
	u := fullUser("u1")
	createUser(t, ctx, s, u)
	want := u
	want.Username = "new-name"
	want.Disabled = false
	want.Claims.Email = "new@example.com"
	want.Claims.Address.Locality = "Cambridge"
	want.Claims.EmailVerified = false
	want.PasswordHash = ""
	got, err := s.UpdateUser(ctx, u.ID, func(x storage.User) (storage.User, error) {
		checkEqual(t, "the user given to the updater", u, x)
		x.ID = "hijacked"                  // must be ignored
		x.CreatedAt = base.Add(-time.Hour) // must be ignored
		x.Username = want.Username
		x.Disabled = false
		x.Claims.Email = want.Claims.Email
		x.Claims.Address.Locality = "Cambridge"
		x.Claims.EmailVerified = false
		x.PasswordHash = ""
		return x, nil
	})
	must(t, err, "UpdateUser")
	want.UpdatedAt = got.UpdatedAt
	checkEqual(t, "UpdateUser result", want, got)
	stored, err := s.GetUser(ctx, u.ID)
	must(t, err, "GetUser")
	checkEqual(t, "GetUser after UpdateUser", want, stored)
	_, err = s.GetUser(ctx, "hijacked")
	wantErr(t, err, storage.ErrNotFound, "GetUser of the ID the updater tried to set")
	// The indexes follow the update.
	_, err = s.GetUserByUsername(ctx, u.Username)
	wantErr(t, err, storage.ErrNotFound, "GetUserByUsername of the old username")
	_, err = s.GetUserByEmail(ctx, u.Claims.Email)
	wantErr(t, err, storage.ErrNotFound, "GetUserByEmail of the old email")
	got, err = s.GetUserByUsername(ctx, "new-name")
	must(t, err, "GetUserByUsername of the new username")
	checkEqual(t, "GetUserByUsername of the new username", want, got)
	got, err = s.GetUserByEmail(ctx, "NEW@example.com")
	must(t, err, "GetUserByEmail of the new email")
	checkEqual(t, "GetUserByEmail of the new email", want, got)
	// The old username is free again.
	other := newUser("u2")
	other.Username = u.Username
	createUser(t, ctx, s, other)
}

func testUsersUpdateConflict(t *testing.T, ctx context.Context, s storage.Durable) {
	a, b := newUser("a"), newUser("b")
	createUser(t, ctx, s, a)
	createUser(t, ctx, s, b)
	_, err := s.UpdateUser(ctx, "b", func(u storage.User) (storage.User, error) {
		u.Username = a.Username
		u.Claims.Name = "changed"
		return u, nil
	})
	wantErr(t, err, storage.ErrConflict, "UpdateUser to a taken username")
	_, err = s.UpdateUser(ctx, "b", func(u storage.User) (storage.User, error) {
		u.Claims.Email = strings.ToUpper(a.Claims.Email)
		u.Claims.Name = "changed"
		return u, nil
	})
	wantErr(t, err, storage.ErrConflict, "UpdateUser to a taken email in another case")
	got, err := s.GetUser(ctx, "b")
	must(t, err, "GetUser")
	checkEqual(t, "GetUser after refused updates", b, got)
	// Keeping one's own username and email is no conflict.
	_, err = s.UpdateUser(ctx, "b", func(u storage.User) (storage.User, error) {
		u.Claims.Email = strings.ToUpper(u.Claims.Email)
		return u, nil
	})
	must(t, err, "UpdateUser keeping its own username, email in another case")
}

var errUpdater = errors.New("storagetest: updater refuses")

func testUsersUpdaterError(t *testing.T, ctx context.Context, s storage.Durable) {
	u := newUser("u1")
	createUser(t, ctx, s, u)
	_, err := s.UpdateUser(ctx, u.ID, func(x storage.User) (storage.User, error) {
		x.Claims.Name = "changed"
		return x, errUpdater
	})
	wantErr(t, err, errUpdater, "UpdateUser with a failing updater")
	got, err := s.GetUser(ctx, u.ID)
	must(t, err, "GetUser")
	checkEqual(t, "GetUser after a failing updater", u, got)
}

// mixedIDs are IDs whose byte order differs from a case-insensitive or
// locale-aware order; listings are ordered by ID bytewise (Go string order).
var mixedIDs = []string{"b-2", "B_1", "a", "A", "_z", "0", "a-", "Z9", "zz", "a_", "9a"}

func testUsersList(t *testing.T, ctx context.Context, s storage.Durable) {
	for _, id := range mixedIDs {
		createUser(t, ctx, s, newUser(id))
	}
	want := slices.Sorted(slices.Values(mixedIDs))
	var got []string
	after := ""
	for range len(mixedIDs) + 2 {
		page, err := s.ListUsers(ctx, storage.Page{After: after, Limit: 3})
		must(t, err, "ListUsers")
		if len(page) > 3 {
			t.Fatalf("ListUsers with Limit 3 returned %d users", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			got = append(got, u.ID)
			checkEqual(t, "listed user "+u.ID, newUser(u.ID), u)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("paging through ListUsers by 3: got IDs %q, want %q (bytewise order)", got, want)
	}
	page, err := s.ListUsers(ctx, storage.Page{After: want[4], Limit: 2})
	must(t, err, "ListUsers after the 5th")
	if ids := userIDs(page); !slices.Equal(ids, want[5:7]) {
		t.Errorf("ListUsers After %q Limit 2: got %q, want %q", want[4], ids, want[5:7])
	}
	page, err = s.ListUsers(ctx, storage.Page{After: "zzzz"})
	must(t, err, "ListUsers after the last")
	if len(page) != 0 {
		t.Errorf("ListUsers after the last ID: got %q, want none", userIDs(page))
	}
}

func testUsersListDefaultLimit(t *testing.T, ctx context.Context, s storage.Durable) {
	n := storage.DefaultPageLimit + 3
	for i := range n {
		createUser(t, ctx, s, newUser(fmt.Sprintf("u%04d", i)))
	}
	page, err := s.ListUsers(ctx, storage.Page{})
	must(t, err, "ListUsers")
	if len(page) != storage.DefaultPageLimit {
		t.Fatalf("ListUsers with Limit 0: got %d users, want the default %d", len(page), storage.DefaultPageLimit)
	}
	if !sort.StringsAreSorted(userIDs(page)) || page[0].ID != "u0000" {
		t.Errorf("ListUsers: not the first page in ID order: %q", userIDs(page))
	}
	rest, err := s.ListUsers(ctx, storage.Page{After: page[len(page)-1].ID})
	must(t, err, "ListUsers second page")
	if ids := userIDs(rest); !slices.Equal(ids, []string{"u0100", "u0101", "u0102"}) {
		t.Errorf("ListUsers second page: got %q", ids)
	}
}

func userIDs(us []storage.User) []string {
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	return ids
}

// ---------------------------------------------------------------------------
// Clients

func newClient(id string) storage.Client {
	return storage.Client{
		ID:                      id,
		SecretHash:              []byte{0x00, 0xff, 0x80, 'h'},
		RedirectURIs:            []string{"https://" + id + ".example.com/cb"},
		TokenEndpointAuthMethod: "client_secret_basic",
		GrantTypes:              []string{"authorization_code"},
		ResponseTypes:           []string{"code"},
		Name:                    "Client " + id,
		CreatedAt:               base,
		UpdatedAt:               base,
	}
}

func fullClient(id string) storage.Client {
	return storage.Client{
		ID:                                 id,
		SecretHash:                         []byte{0x00, 0x01, 0xfe, 0xff, 0xc3, 0x28}, // not UTF-8
		SecretExpiresAt:                    base.Add(720 * time.Hour).In(time.Local),
		RotatedSecretHash:                  []byte{0xde, 0xad, 0xbe, 0xef, 0x00},
		RotatedSecretExpiresAt:             base.Add(24*time.Hour + 999),
		RedirectURIs:                       []string{"https://app.example.com/cb", "com.example.app:/oauth2redirect", "http://127.0.0.1/cb"},
		TokenEndpointAuthMethod:            "private_key_jwt",
		GrantTypes:                         []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes:                      []string{"code"},
		Name:                               "Ünïcode Client ✓",
		ClientURI:                          "https://app.example.com",
		LogoURI:                            "https://app.example.com/logo.png",
		Scopes:                             []string{"openid", "profile", "email", "offline_access"},
		Contacts:                           []string{"ops@example.com", "dev@example.com"},
		TOSURI:                             "https://app.example.com/tos",
		PolicyURI:                          "https://app.example.com/privacy",
		JWKSURI:                            "https://app.example.com/jwks.json",
		JWKS:                               []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
		SoftwareID:                         "4NRB1-0XZABZI9E6-5SM3R",
		SoftwareVersion:                    "2.1",
		SoftwareStatement:                  "eyJhbGciOiJSUzI1NiJ9.eyJzb2Z0d2FyZV9pZCI6IjQifQ.c2ln",
		ApplicationType:                    "native",
		SectorIdentifierURI:                "https://app.example.com/sector.json",
		SubjectType:                        "pairwise",
		IDTokenSignedResponseAlg:           "ES256",
		UserinfoSignedResponseAlg:          "RS256",
		RequestObjectSigningAlg:            "PS256",
		TokenEndpointAuthSigningAlg:        "EdDSA",
		DefaultMaxAge:                      3600,
		RequireAuthTime:                    true,
		DefaultACRValues:                   []string{"urn:mace:incommon:iap:silver"},
		InitiateLoginURI:                   "https://app.example.com/login",
		RequestURIs:                        []string{"https://app.example.com/request.jwt#frag"},
		PostLogoutRedirectURIs:             []string{"https://app.example.com/bye"},
		BackchannelLogoutURI:               "https://app.example.com/bc-logout",
		BackchannelLogoutSessionRequired:   true,
		FrontchannelLogoutURI:              "https://app.example.com/fc-logout",
		FrontchannelLogoutSessionRequired:  true,
		RequirePushedAuthorizationRequests: true,
		Audience:                           []string{"https://api.example.com", "urn:other"},
		AccessTokenFormat:                  "jwt",
		AccessTokenLifetime:                15*time.Minute + 123*time.Millisecond,
		RefreshTokenLifetime:               720*time.Hour + 1,
		IDTokenLifetime:                    time.Hour,
		FirstParty:                         true,
		RegistrationAccessTokenHash:        []byte{0x7f, 0x80, 0x00},
		SecretSealed:                       []byte{0x01, 0xa7, 0x00, 0xff, 0x9c},
		CreatedAt:                          base,
		UpdatedAt:                          base.Add(time.Minute + 1),
	}
}

func createClient(t *testing.T, ctx context.Context, s storage.ClientStore, c storage.Client) {
	t.Helper()
	must(t, s.CreateClient(ctx, c), "CreateClient "+c.ID)
}

func testClientsCRUD(t *testing.T, ctx context.Context, s storage.Durable) {
	c := newClient("c1")
	createClient(t, ctx, s, c)
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "GetClient")
	checkEqual(t, "GetClient", c, got)

	want := c
	want.Name = "renamed"
	want.RedirectURIs = append(want.RedirectURIs, "https://c1.example.com/cb2")
	updated, err := s.UpdateClient(ctx, c.ID, func(x storage.Client) (storage.Client, error) {
		checkEqual(t, "the client given to the updater", c, x)
		x.ID = "hijacked"
		x.CreatedAt = time.Time{}
		x.Name = "renamed"
		x.RedirectURIs = append(x.RedirectURIs, "https://c1.example.com/cb2")
		return x, nil
	})
	must(t, err, "UpdateClient")
	want.UpdatedAt = updated.UpdatedAt
	checkEqual(t, "UpdateClient result", want, updated)
	got, err = s.GetClient(ctx, c.ID)
	must(t, err, "GetClient after update")
	checkEqual(t, "GetClient after update", want, got)
	_, err = s.GetClient(ctx, "hijacked")
	wantErr(t, err, storage.ErrNotFound, "GetClient of the ID the updater tried to set")

	must(t, s.DeleteClient(ctx, c.ID), "DeleteClient")
	_, err = s.GetClient(ctx, c.ID)
	wantErr(t, err, storage.ErrNotFound, "GetClient after DeleteClient")
	list, err := s.ListClients(ctx, storage.Page{})
	must(t, err, "ListClients")
	if len(list) != 0 {
		t.Errorf("ListClients after DeleteClient: got %d clients, want 0", len(list))
	}
}

func testClientsAllFields(t *testing.T, ctx context.Context, s storage.Durable) {
	c := fullClient("full")
	checkAllSet(t, "fullClient", c)
	createClient(t, ctx, s, c)
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "GetClient")
	checkEqual(t, "GetClient", c, got)
	list, err := s.ListClients(ctx, storage.Page{})
	must(t, err, "ListClients")
	if len(list) != 1 {
		t.Fatalf("ListClients: got %d clients, want 1", len(list))
	}
	checkEqual(t, "ListClients[0]", c, list[0])

	// And a public client: every optional field empty comes back empty.
	p := storage.Client{ID: "public", RedirectURIs: []string{"http://localhost/cb"}, CreatedAt: base, UpdatedAt: base}
	createClient(t, ctx, s, p)
	got, err = s.GetClient(ctx, p.ID)
	must(t, err, "GetClient public")
	checkEqual(t, "GetClient public", p, got)
}

func testClientsNotFound(t *testing.T, ctx context.Context, s storage.Durable) {
	createClient(t, ctx, s, newClient("present"))
	_, err := s.GetClient(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetClient of an unknown ID")
	_, err = s.UpdateClient(ctx, "absent", func(c storage.Client) (storage.Client, error) { return c, nil })
	wantErr(t, err, storage.ErrNotFound, "UpdateClient of an unknown ID")
	wantErr(t, s.DeleteClient(ctx, "absent"), storage.ErrNotFound, "DeleteClient of an unknown ID")
	_, err = s.GetClient(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetClient after UpdateClient of an unknown ID (it must not create one)")
}

func testClientsConflict(t *testing.T, ctx context.Context, s storage.Durable) {
	c := newClient("c1")
	createClient(t, ctx, s, c)
	dup := fullClient("c1")
	wantErr(t, s.CreateClient(ctx, dup), storage.ErrConflict, "CreateClient with a duplicate ID")
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "GetClient")
	checkEqual(t, "GetClient after a refused duplicate", c, got)
}

func testClientsUpdaterError(t *testing.T, ctx context.Context, s storage.Durable) {
	c := newClient("c1")
	createClient(t, ctx, s, c)
	_, err := s.UpdateClient(ctx, c.ID, func(x storage.Client) (storage.Client, error) {
		x.Name = "changed"
		return x, errUpdater
	})
	wantErr(t, err, errUpdater, "UpdateClient with a failing updater")
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "GetClient")
	checkEqual(t, "GetClient after a failing updater", c, got)
}

func testClientsList(t *testing.T, ctx context.Context, s storage.Durable) {
	for _, id := range mixedIDs {
		createClient(t, ctx, s, newClient(id))
	}
	want := slices.Sorted(slices.Values(mixedIDs))
	var got []string
	after := ""
	for range len(mixedIDs) + 2 {
		page, err := s.ListClients(ctx, storage.Page{After: after, Limit: 4})
		must(t, err, "ListClients")
		if len(page) > 4 {
			t.Fatalf("ListClients with Limit 4 returned %d clients", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			got = append(got, c.ID)
			checkEqual(t, "listed client "+c.ID, newClient(c.ID), c)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("paging through ListClients by 4: got IDs %q, want %q (bytewise order)", got, want)
	}
	all, err := s.ListClients(ctx, storage.Page{})
	must(t, err, "ListClients Limit 0")
	if len(all) != len(mixedIDs) {
		t.Errorf("ListClients with Limit 0: got %d clients, want all %d", len(all), len(mixedIDs))
	}
}

// testClientsIsolation: a caller changing the slices it passed in or got
// back does not change the stored client.
func testClientsIsolation(t *testing.T, ctx context.Context, s storage.Durable) {
	c := fullClient("c1")
	createClient(t, ctx, s, c)
	scribble(reflect.ValueOf(&c))
	got, err := s.GetClient(ctx, "c1")
	must(t, err, "GetClient")
	checkEqual(t, "GetClient after the caller changed its input", fullClient("c1"), got)
	scribble(reflect.ValueOf(&got))
	got, err = s.GetClient(ctx, "c1")
	must(t, err, "GetClient")
	checkEqual(t, "GetClient after the caller changed a returned client", fullClient("c1"), got)
	_, err = s.UpdateClient(ctx, "c1", func(x storage.Client) (storage.Client, error) {
		scribble(reflect.ValueOf(&x)) // changes the given copy, then fails
		return x, errUpdater
	})
	wantErr(t, err, errUpdater, "UpdateClient with a failing updater")
	got, err = s.GetClient(ctx, "c1")
	must(t, err, "GetClient")
	checkEqual(t, "GetClient after a failing updater changed its argument", fullClient("c1"), got)
}

// testClientsConcurrentUpdate: read-modify-write updates do not lose one
// another.
func testClientsConcurrentUpdate(t *testing.T, ctx context.Context, s storage.Durable) {
	c := newClient("c1")
	c.Contacts = nil
	createClient(t, ctx, s, c)
	errs := race(concurrency, func(i int) error {
		_, err := s.UpdateClient(ctx, "c1", func(x storage.Client) (storage.Client, error) {
			x.Contacts = append(x.Contacts, fmt.Sprintf("c%02d@example.com", i))
			return x, nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent UpdateClient %d: %v", i, err)
		}
	}
	got, err := s.GetClient(ctx, "c1")
	must(t, err, "GetClient")
	contacts := slices.Sorted(slices.Values(got.Contacts))
	contacts = slices.Compact(contacts)
	if len(got.Contacts) != concurrency || len(contacts) != concurrency {
		t.Errorf("after %d concurrent UpdateClient appending a contact: %d contacts (%d distinct), want %d: lost updates",
			concurrency, len(got.Contacts), len(contacts), concurrency)
	}
}

// ---------------------------------------------------------------------------
// Consents

func testConsentsPutGet(t *testing.T, ctx context.Context, s storage.Durable) {
	c := storage.Consent{Subject: "alice", ClientID: "shop", Scopes: []string{"openid", "profile"}, GrantedAt: base}
	must(t, s.PutConsent(ctx, c), "PutConsent")
	got, err := s.GetConsent(ctx, "alice", "shop")
	must(t, err, "GetConsent")
	checkEqual(t, "GetConsent", c, got)

	// Replacing: one consent per (subject, client), the last one wins.
	c2 := storage.Consent{Subject: "alice", ClientID: "shop", Scopes: []string{"openid", "email", "offline_access"},
		GrantedAt: base.Add(time.Hour), ExpiresAt: time.Now().Add(24 * time.Hour).In(zone)}
	must(t, s.PutConsent(ctx, c2), "PutConsent replacing")
	got, err = s.GetConsent(ctx, "alice", "shop")
	must(t, err, "GetConsent after replace")
	checkEqual(t, "GetConsent after replace", c2, got)
	list, err := s.ListConsents(ctx, "alice")
	must(t, err, "ListConsents")
	if len(list) != 1 {
		t.Fatalf("ListConsents after replace: got %d consents, want 1", len(list))
	}
	checkEqual(t, "ListConsents[0]", c2, list[0])

	_, err = s.GetConsent(ctx, "alice", "other")
	wantErr(t, err, storage.ErrNotFound, "GetConsent of another client")
	_, err = s.GetConsent(ctx, "bob", "shop")
	wantErr(t, err, storage.ErrNotFound, "GetConsent of another subject")
}

func testConsentsListDelete(t *testing.T, ctx context.Context, s storage.Durable) {
	clients := []string{"zeta", "Alpha", "beta", "_x"}
	for _, id := range clients {
		must(t, s.PutConsent(ctx, storage.Consent{Subject: "alice", ClientID: id, Scopes: []string{"openid"}, GrantedAt: base}), "PutConsent")
	}
	must(t, s.PutConsent(ctx, storage.Consent{Subject: "bob", ClientID: "beta", Scopes: []string{"openid"}, GrantedAt: base}), "PutConsent bob")
	list, err := s.ListConsents(ctx, "alice")
	must(t, err, "ListConsents")
	if ids := consentClients(list); !slices.Equal(ids, slices.Sorted(slices.Values(clients))) {
		t.Errorf("ListConsents alice: got clients %q, want %q (only alice's, ordered by client ID)", ids, slices.Sorted(slices.Values(clients)))
	}
	list, err = s.ListConsents(ctx, "nobody")
	must(t, err, "ListConsents of a subject without consents")
	if len(list) != 0 {
		t.Errorf("ListConsents of a subject without consents: got %d", len(list))
	}

	must(t, s.DeleteConsent(ctx, "alice", "beta"), "DeleteConsent")
	_, err = s.GetConsent(ctx, "alice", "beta")
	wantErr(t, err, storage.ErrNotFound, "GetConsent after DeleteConsent")
	_, err = s.GetConsent(ctx, "bob", "beta")
	must(t, err, "GetConsent of bob after deleting alice's consent to the same client")
	list, err = s.ListConsents(ctx, "alice")
	must(t, err, "ListConsents after delete")
	if ids := consentClients(list); !slices.Equal(ids, []string{"Alpha", "_x", "zeta"}) {
		t.Errorf("ListConsents after delete: got %q", ids)
	}
	wantNotFoundOrNil(t, s.DeleteConsent(ctx, "alice", "beta"), "DeleteConsent of a deleted consent")
}

func testConsentsExpired(t *testing.T, ctx context.Context, s storage.Durable) {
	now := time.Now()
	expired := storage.Consent{Subject: "alice", ClientID: "old", Scopes: []string{"openid"}, GrantedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Second)}
	live := storage.Consent{Subject: "alice", ClientID: "new", Scopes: []string{"openid"}, GrantedAt: now, ExpiresAt: now.Add(time.Hour)}
	never := storage.Consent{Subject: "alice", ClientID: "forever", Scopes: []string{"openid"}, GrantedAt: now}
	for _, c := range []storage.Consent{expired, live, never} {
		must(t, s.PutConsent(ctx, c), "PutConsent "+c.ClientID)
	}
	_, err := s.GetConsent(ctx, "alice", "old")
	wantErr(t, err, storage.ErrNotFound, "GetConsent of an expired consent")
	list, err := s.ListConsents(ctx, "alice")
	must(t, err, "ListConsents")
	if ids := consentClients(list); !slices.Equal(ids, []string{"forever", "new"}) {
		t.Errorf("ListConsents with an expired consent: got %q, want [forever new]", ids)
	}
	got, err := s.GetConsent(ctx, "alice", "forever")
	must(t, err, "GetConsent of a consent without expiry")
	checkEqual(t, "GetConsent without expiry", never, got)
	// Renewing an expired consent makes it visible again.
	renewed := expired
	renewed.ExpiresAt = now.Add(time.Hour)
	must(t, s.PutConsent(ctx, renewed), "PutConsent renewing an expired consent")
	got, err = s.GetConsent(ctx, "alice", "old")
	must(t, err, "GetConsent of the renewed consent")
	checkEqual(t, "GetConsent of the renewed consent", renewed, got)
}

// A deleted client's consents go with it, for every subject, so that a
// client registered later under the same ID inherits none.
func testConsentsDeleteByClient(t *testing.T, ctx context.Context, s storage.Durable) {
	now := time.Now()
	put := func(subject, clientID string, expires time.Time) {
		t.Helper()
		must(t, s.PutConsent(ctx, storage.Consent{Subject: subject, ClientID: clientID, Scopes: []string{"openid"},
			GrantedAt: base, ExpiresAt: expires}), "PutConsent "+subject+"/"+clientID)
	}
	put("alice", "shop", time.Time{})
	put("bob", "shop", now.Add(time.Hour))
	put("carol", "shop", now.Add(-time.Second)) // expired: deleted, not counted
	// Other clients, some with IDs close to "shop", and other subjects keep theirs.
	put("alice", "Shop", time.Time{})
	put("alice", "other", time.Time{})
	put("bob", "shop2", time.Time{})
	put("dave", "sho", time.Time{})

	n, err := s.DeleteConsentsByClient(ctx, "shop")
	must(t, err, "DeleteConsentsByClient")
	if n != 2 {
		t.Errorf("DeleteConsentsByClient: got %d, want 2 (alice's and bob's; carol's had expired)", n)
	}
	for _, subject := range []string{"alice", "bob", "carol"} {
		_, err := s.GetConsent(ctx, subject, "shop")
		wantErr(t, err, storage.ErrNotFound, "GetConsent of "+subject+" for the client after DeleteConsentsByClient")
	}
	for subject, want := range map[string][]string{"alice": {"Shop", "other"}, "bob": {"shop2"}, "carol": {}, "dave": {"sho"}} {
		list, err := s.ListConsents(ctx, subject)
		must(t, err, "ListConsents "+subject)
		if ids := consentClients(list); !slices.Equal(ids, want) {
			t.Errorf("ListConsents %s after DeleteConsentsByClient: got %q, want %q", subject, ids, want)
		}
	}

	n, err = s.DeleteConsentsByClient(ctx, "shop")
	must(t, err, "DeleteConsentsByClient again")
	if n != 0 {
		t.Errorf("DeleteConsentsByClient again: got %d, want 0", n)
	}
	n, err = s.DeleteConsentsByClient(ctx, "absent")
	must(t, err, "DeleteConsentsByClient of a client without consents")
	if n != 0 {
		t.Errorf("DeleteConsentsByClient of a client without consents: got %d, want 0", n)
	}

	// A consent given after a deletion is the next one's to delete.
	put("carol", "shop", now.Add(time.Hour))
	n, err = s.DeleteConsentsByClient(ctx, "shop")
	must(t, err, "DeleteConsentsByClient after a new consent")
	if n != 1 {
		t.Errorf("DeleteConsentsByClient after one new consent: got %d, want 1", n)
	}
}

func consentClients(cs []storage.Consent) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ClientID
	}
	return ids
}

// ---------------------------------------------------------------------------
// Keys

func newKey(id string, state storage.KeyState) storage.SigningKey {
	return storage.SigningKey{
		ID:         id,
		Algorithm:  "ES256",
		State:      state,
		PrivateKey: []byte("sealed-" + id + "\x00\xff"),
		PublicJWK:  []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `"}`),
		CreatedAt:  base,
	}
}

func fullKey(id string) storage.SigningKey {
	return storage.SigningKey{
		ID:         id,
		Algorithm:  "RS256",
		State:      storage.KeyRetired,
		PrivateKey: []byte{0x01, 0x00, 0xff, 0xfe, 0x80, 0x7f, 0xc3, 0x28},
		PublicJWK:  []byte(`{"kty":"RSA","n":"0vx7","e":"AQAB","kid":"` + id + `"}`),
		CreatedAt:  base,
		ActivateAt: base.Add(24*time.Hour + 1),
		RetiredAt:  base.Add(720 * time.Hour).In(time.Local),
		DeleteAt:   base.Add(744*time.Hour + 999*time.Nanosecond),
	}
}

func checkKeySet(t testing.TB, what string, wantVersion int64, want []storage.SigningKey, got storage.KeySet) {
	t.Helper()
	if got.Version != wantVersion {
		t.Errorf("%s: version %d, want %d", what, got.Version, wantVersion)
	}
	// The contract does not promise an order of keys: compare by ID.
	byID := func(a, b storage.SigningKey) int { return strings.Compare(a.ID, b.ID) }
	w := slices.SortedFunc(slices.Values(want), byID)
	g := slices.SortedFunc(slices.Values(got.Keys), byID)
	checkEqual(t, what+" keys", w, g)
}

func testKeysEmpty(t *testing.T, ctx context.Context, s storage.Durable) {
	set, err := s.GetKeySet(ctx)
	must(t, err, "GetKeySet of a fresh store")
	if set.Version != 0 || len(set.Keys) != 0 {
		t.Errorf("GetKeySet of a fresh store: version %d with %d keys, want version 0 and no keys", set.Version, len(set.Keys))
	}
	v, err := s.KeySetVersion(ctx)
	must(t, err, "KeySetVersion of a fresh store")
	if v != 0 {
		t.Errorf("KeySetVersion of a fresh store: %d, want 0", v)
	}
}

func testKeysReplaceCAS(t *testing.T, ctx context.Context, s storage.Durable) {
	k1 := []storage.SigningKey{newKey("k1", storage.KeyActive), newKey("k2", storage.KeyNext)}
	v, err := s.ReplaceKeySet(ctx, 0, k1)
	must(t, err, "ReplaceKeySet from version 0")
	if v != 1 {
		t.Errorf("ReplaceKeySet from version 0 returned version %d, want 1", v)
	}
	set, err := s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after the first replace", 1, k1, set)

	other := []storage.SigningKey{newKey("x", storage.KeyActive)}
	for _, stale := range []int64{0, 2, 7, -1} {
		_, err := s.ReplaceKeySet(ctx, stale, other)
		wantErr(t, err, storage.ErrConflict, fmt.Sprintf("ReplaceKeySet expecting version %d when it is 1", stale))
	}
	set, err = s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after refused replaces", 1, k1, set)
	if v, err := s.KeySetVersion(ctx); err != nil || v != 1 {
		t.Errorf("KeySetVersion after refused replaces: %d, %v; want 1", v, err)
	}

	// Rotation: k2 becomes active, k1 retired, k3 next.
	k2 := []storage.SigningKey{newKey("k1", storage.KeyRetired), newKey("k2", storage.KeyActive), newKey("k3", storage.KeyNext)}
	k2[0].RetiredAt = base.Add(time.Hour)
	v, err = s.ReplaceKeySet(ctx, 1, k2)
	must(t, err, "ReplaceKeySet from version 1")
	if v != 2 {
		t.Errorf("ReplaceKeySet from version 1 returned version %d, want 2", v)
	}
	set, err = s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after the second replace", 2, k2, set)
	if v, err := s.KeySetVersion(ctx); err != nil || v != 2 {
		t.Errorf("KeySetVersion after the second replace: %d, %v; want 2", v, err)
	}

	// An empty set is a set too, with its own version.
	v, err = s.ReplaceKeySet(ctx, 2, nil)
	must(t, err, "ReplaceKeySet with no keys")
	if v != 3 {
		t.Errorf("ReplaceKeySet with no keys returned version %d, want 3", v)
	}
	set, err = s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after emptying", 3, nil, set)
}

func testKeysAllFields(t *testing.T, ctx context.Context, s storage.Durable) {
	k := fullKey("full")
	checkAllSet(t, "fullKey", k)
	plain := newKey("plain", storage.KeyNext) // zero times stay zero
	_, err := s.ReplaceKeySet(ctx, 0, []storage.SigningKey{k, plain})
	must(t, err, "ReplaceKeySet")
	set, err := s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet", 1, []storage.SigningKey{k, plain}, set)
}

func testKeysIsolation(t *testing.T, ctx context.Context, s storage.Durable) {
	keys := []storage.SigningKey{fullKey("k1")}
	_, err := s.ReplaceKeySet(ctx, 0, keys)
	must(t, err, "ReplaceKeySet")
	scribble(reflect.ValueOf(&keys[0]))
	set, err := s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after the caller changed its input", 1, []storage.SigningKey{fullKey("k1")}, set)
	scribble(reflect.ValueOf(&set.Keys[0]))
	set, err = s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after the caller changed a returned set", 1, []storage.SigningKey{fullKey("k1")}, set)
}

// testKeysConcurrentReplace: replicas racing to rotate from the same version;
// exactly one wins the compare-and-swap.
func testKeysConcurrentReplace(t *testing.T, ctx context.Context, s storage.Durable) {
	_, err := s.ReplaceKeySet(ctx, 0, []storage.SigningKey{newKey("k0", storage.KeyActive)})
	must(t, err, "ReplaceKeySet")
	versions := make([]int64, concurrency)
	errs := race(concurrency, func(i int) error {
		v, err := s.ReplaceKeySet(ctx, 1, []storage.SigningKey{newKey(fmt.Sprintf("k-%02d", i), storage.KeyActive)})
		versions[i] = v
		return err
	})
	w := exactlyOne(t, errs, storage.ErrConflict, "ReplaceKeySet from the same version")
	if versions[w] != 2 {
		t.Errorf("winning ReplaceKeySet returned version %d, want 2", versions[w])
	}
	set, err := s.GetKeySet(ctx)
	must(t, err, "GetKeySet")
	checkKeySet(t, "GetKeySet after the race", 2, []storage.SigningKey{newKey(fmt.Sprintf("k-%02d", w), storage.KeyActive)}, set)
}
