package users

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/sql"
)

// fast keeps hashing quick in tests.
var fast = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func newService(t *testing.T) (*Service, storage.UserStore) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open(ctx, sql.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "users.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return New(db, &password.Hasher{Params: fast}, nil), db
}

func ptr[T any](v T) *T { return &v }

func TestCreateAndGet(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	u, err := s.Create(ctx, NewUser{
		Username: "alice",
		Password: "correct horse battery staple",
		Claims: storage.Claims{
			Name: "Alice Liddell", Email: "Alice@Example.com", EmailVerified: true,
			Birthdate: "0000-02-29", Zoneinfo: "Europe/London", Locale: "en-GB",
			PhoneNumber: "+441632960001", Website: "https://alice.example",
			Address: storage.Address{StreetAddress: "1 Rabbit Hole\nFlat 2", Country: "UK"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.ID) != 22 || strings.ContainsAny(u.ID, "+/=") {
		t.Errorf("ID %q is not 22 URL-safe characters", u.ID)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("password hash %q", u.PasswordHash)
	}
	for name, get := range map[string]func() (storage.User, error){
		"id":       func() (storage.User, error) { return s.Get(ctx, u.ID) },
		"username": func() (storage.User, error) { return s.GetByUsername(ctx, "alice") },
		"email":    func() (storage.User, error) { return s.GetByEmail(ctx, "alice@example.com") },
		"find id":  func() (storage.User, error) { return s.Find(ctx, u.ID) },
		"find un":  func() (storage.User, error) { return s.Find(ctx, "alice") },
		"find em":  func() (storage.User, error) { return s.Find(ctx, "ALICE@example.com") },
	} {
		got, err := get()
		if err != nil || got.ID != u.ID || got.Claims.Name != "Alice Liddell" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	_, err = s.Find(ctx, "nobody")
	if !errors.Is(err, storage.ErrNotFound) || err.Error() != `user "nobody" not found` {
		t.Errorf("Find(nobody) = %v", err)
	}
}

func TestCreateConflicts(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, NewUser{Username: "alice", Claims: storage.Claims{Email: "alice@example.com"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, NewUser{Username: "alice"})
	if !errors.Is(err, storage.ErrConflict) || err.Error() != `username "alice" is taken` {
		t.Errorf("duplicate username: %v", err)
	}
	_, err = s.Create(ctx, NewUser{Username: "alice2", Claims: storage.Claims{Email: "ALICE@example.com"}})
	if !errors.Is(err, storage.ErrConflict) || err.Error() != `email "ALICE@example.com" is taken` {
		t.Errorf("duplicate email: %v", err)
	}
	b, err := s.Create(ctx, NewUser{Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx, b.ID, Patch{Username: ptr("alice")})
	if err == nil || err.Error() != `username "alice" is taken` {
		t.Errorf("rename onto a taken username: %v", err)
	}
}

func TestCreateValidation(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		in    NewUser
		field string
	}{
		{NewUser{Username: ""}, "username"},
		{NewUser{Username: "-alice"}, "username"},
		{NewUser{Username: "al ice"}, "username"},
		{NewUser{Username: strings.Repeat("a", 65)}, "username"},
		{NewUser{Username: "a", Password: "short"}, "password"},
		{NewUser{Username: "a", Password: "         "}, "password"},
		{NewUser{Username: "a", Claims: storage.Claims{Email: "not-an-email"}}, "email"},
		{NewUser{Username: "a", Claims: storage.Claims{Email: "Alice <a@example.com>"}}, "email"},
		{NewUser{Username: "a", Claims: storage.Claims{EmailVerified: true}}, "email_verified"},
		{NewUser{Username: "a", Claims: storage.Claims{Birthdate: "1999-02-30"}}, "birthdate"},
		{NewUser{Username: "a", Claims: storage.Claims{Zoneinfo: "Paris"}}, "zoneinfo"},
		{NewUser{Username: "a", Claims: storage.Claims{Locale: "english"}}, "locale"},
		{NewUser{Username: "a", Claims: storage.Claims{PhoneNumber: "555-1234"}}, "phone_number"},
		{NewUser{Username: "a", Claims: storage.Claims{PhoneNumberVerified: true}}, "phone_number_verified"},
		{NewUser{Username: "a", Claims: storage.Claims{Picture: "javascript:alert(1)"}}, "picture"},
		{NewUser{Username: "a", Claims: storage.Claims{Name: "bad\x00name"}}, "name"},
		{NewUser{Username: "a", Claims: storage.Claims{Address: storage.Address{Country: "U\nK"}}}, "address.country"},
	} {
		_, err := s.Create(ctx, tc.in)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("Create(%+v) = %v, want a %s validation error", tc.in, err, tc.field)
		}
	}
	if us, _ := s.List(ctx, storage.Page{}); len(us) != 0 {
		t.Errorf("invalid users were stored: %d", len(us))
	}
}

func TestUpdateIsPartial(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	u, err := s.Create(ctx, NewUser{Username: "alice", Claims: storage.Claims{
		Name: "Alice", Email: "alice@example.com", EmailVerified: true, Locale: "en",
		PhoneNumber: "+14155550123", PhoneNumberVerified: true,
		Address: storage.Address{Locality: "Oxford", Country: "UK"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, u.ID, Patch{Claims: ClaimsPatch{
		Name: ptr("Alice Liddell"), Locale: ptr(""), Address: AddressPatch{Locality: ptr("London")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Claims
	if c.Name != "Alice Liddell" || c.Locale != "" || c.Address.Locality != "London" || c.Address.Country != "UK" ||
		c.Email != "alice@example.com" || !c.EmailVerified || !c.PhoneNumberVerified || got.Username != "alice" {
		t.Errorf("partial update: %+v", got)
	}
	if !got.UpdatedAt.After(u.UpdatedAt) && !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Errorf("UpdatedAt went back")
	}
	// A new email is not verified unless the patch says so.
	got, err = s.Update(ctx, u.ID, Patch{Claims: ClaimsPatch{Email: ptr("liddell@example.com"), PhoneNumber: ptr("+14155550124")}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Claims.EmailVerified || got.Claims.PhoneNumberVerified {
		t.Errorf("changed email/phone kept verified: %+v", got.Claims)
	}
	got, err = s.Update(ctx, u.ID, Patch{Claims: ClaimsPatch{Email: ptr("a@example.com"), EmailVerified: ptr(true)}})
	if err != nil || !got.Claims.EmailVerified {
		t.Errorf("email with verified: %+v %v", got.Claims, err)
	}
	// Invalid result: nothing is written.
	if _, err := s.Update(ctx, u.ID, Patch{Claims: ClaimsPatch{Email: ptr("bad")}}); err == nil {
		t.Error("invalid email accepted")
	}
	if now, _ := s.Get(ctx, u.ID); now.Claims.Email != "a@example.com" {
		t.Errorf("failed update changed the user: %+v", now.Claims)
	}
	if _, err := s.Update(ctx, "missing", Patch{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("update of missing user: %v", err)
	}
}

func TestPasswordDisableDeleteAndAuthenticate(t *testing.T) {
	s, store := newService(t)
	ctx := context.Background()
	u, err := s.Create(ctx, NewUser{Username: "alice", Password: "first password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", "first password"); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if err := s.SetPassword(ctx, u.ID, "second password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", "first password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice", "second password"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if err := s.SetPassword(ctx, u.ID, "short"); err == nil {
		t.Error("short password accepted")
	}
	if _, err := s.Authenticate(ctx, "nobody", "second password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	if d, err := s.Disable(ctx, u.ID); err != nil || !d.Disabled {
		t.Fatalf("Disable: %+v %v", d, err)
	}
	if _, err := s.Authenticate(ctx, "alice", "second password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("disabled user signed in: %v", err)
	}
	if e, err := s.Enable(ctx, u.ID); err != nil || e.Disabled {
		t.Fatalf("Enable: %+v %v", e, err)
	}

	// A hash with older parameters is replaced on a successful sign-in.
	stronger := New(store, &password.Hasher{Params: password.Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1}}, nil)
	if _, err := stronger.Authenticate(ctx, "alice", "second password"); err != nil {
		t.Fatal(err)
	}
	if now, _ := s.Get(ctx, u.ID); !strings.HasPrefix(now.PasswordHash, "$argon2id$v=19$m=128,") {
		t.Errorf("hash not upgraded: %s", now.PasswordHash)
	}

	if err := s.Delete(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestListPages(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if _, err := s.Create(ctx, NewUser{Username: n}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	p := storage.Page{Limit: 2}
	for {
		us, err := s.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			seen = append(seen, u.Username)
		}
		if len(us) < p.Limit {
			break
		}
		p.After = us[len(us)-1].ID
	}
	if len(seen) != 5 {
		t.Errorf("paged through %v", seen)
	}
}
