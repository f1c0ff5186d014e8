// Package users is the user service: creating, finding, changing and
// deleting users with validation and password hashing. The CLI and the admin
// API share it; it knows nothing of HTTP.
package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// ErrInvalidCredentials is returned by Authenticate for an unknown user, a
// wrong password, a user without a password or a disabled user alike, so
// that callers cannot tell them apart by mistake.
var ErrInvalidCredentials = errors.New("invalid username or password")

// ConflictError says a username or email is taken. It matches
// storage.ErrConflict with errors.Is.
type ConflictError struct {
	Field string // "username" or "email"
	Value string
}

func (e *ConflictError) Error() string { return fmt.Sprintf("%s %q is taken", e.Field, e.Value) }

// Unwrap makes errors.Is(err, storage.ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return storage.ErrConflict }

// Service manages users.
type Service struct {
	store  storage.UserStore
	hasher *password.Hasher
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Service over store, hashing passwords with hasher.
func New(store storage.UserStore, hasher *password.Hasher, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, hasher: hasher, log: log, now: time.Now}
}

// NewUser is the input of Create.
type NewUser struct {
	Username string
	// Password is optional: a user without one cannot sign in with a password.
	Password string
	Disabled bool
	Claims   storage.Claims
}

// NewID returns a random URL-safe identifier (128 bits).
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create validates and stores a new user with a fresh ID.
func (s *Service) Create(ctx context.Context, in NewUser) (storage.User, error) {
	if err := ValidateUsername(in.Username); err != nil {
		return storage.User{}, err
	}
	if err := ValidateClaims(in.Claims); err != nil {
		return storage.User{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u := storage.User{
		ID:        NewID(),
		Username:  in.Username,
		Disabled:  in.Disabled,
		Claims:    in.Claims,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if in.Password != "" {
		h, err := s.hashPassword(in.Password)
		if err != nil {
			return storage.User{}, err
		}
		u.PasswordHash = h
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return storage.User{}, s.explainConflict(ctx, err, u.ID, u.Username, u.Claims.Email)
	}
	s.log.InfoContext(ctx, "user created", "user_id", u.ID, "username", u.Username)
	return u, nil
}

func (s *Service) hashPassword(pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	h, err := s.hasher.Hash(pw)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return h, nil
}

// explainConflict turns a storage conflict into a ConflictError naming the
// taken value; selfID is the user being written (so it is not its own rival).
func (s *Service) explainConflict(ctx context.Context, err error, selfID, username, email string) error {
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	if other, gerr := s.store.GetUserByUsername(ctx, username); gerr == nil && other.ID != selfID {
		return &ConflictError{Field: "username", Value: username}
	}
	if email != "" {
		if other, gerr := s.store.GetUserByEmail(ctx, email); gerr == nil && other.ID != selfID {
			return &ConflictError{Field: "email", Value: email}
		}
	}
	return err
}

// NotFoundError says no user matches Ref. It matches storage.ErrNotFound
// with errors.Is.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("user %q not found", e.Ref) }

// Unwrap makes errors.Is(err, storage.ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return storage.ErrNotFound }

func notFound(ref string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return &NotFoundError{Ref: ref}
	}
	return err
}

// Get returns the user with this ID.
func (s *Service) Get(ctx context.Context, id string) (storage.User, error) {
	u, err := s.store.GetUser(ctx, id)
	return u, notFound(id, err)
}

// GetByUsername returns the user with this username.
func (s *Service) GetByUsername(ctx context.Context, username string) (storage.User, error) {
	u, err := s.store.GetUserByUsername(ctx, username)
	return u, notFound(username, err)
}

// GetByEmail returns the user with this email (compared case-insensitively).
func (s *Service) GetByEmail(ctx context.Context, email string) (storage.User, error) {
	u, err := s.store.GetUserByEmail(ctx, email)
	return u, notFound(email, err)
}

// Find resolves ref as an ID, then a username, then (when it has an @) an email.
func (s *Service) Find(ctx context.Context, ref string) (storage.User, error) {
	u, err := s.store.GetUser(ctx, ref)
	if !errors.Is(err, storage.ErrNotFound) {
		return u, err
	}
	u, err = s.store.GetUserByUsername(ctx, ref)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(ref, "@") {
		return u, notFound(ref, err)
	}
	u, err = s.store.GetUserByEmail(ctx, ref)
	return u, notFound(ref, err)
}

// List returns one page of users ordered by ID.
func (s *Service) List(ctx context.Context, p storage.Page) ([]storage.User, error) {
	us, err := s.store.ListUsers(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return us, nil
}

// Patch is a partial update: only non-nil fields change.
type Patch struct {
	Username *string     `json:"username,omitempty"`
	Disabled *bool       `json:"disabled,omitempty"`
	Claims   ClaimsPatch `json:"claims"`
}

// ClaimsPatch is a partial update of the standard claims. Setting a
// string to "" clears the claim.
type ClaimsPatch struct {
	Name                *string      `json:"name,omitempty"`
	GivenName           *string      `json:"given_name,omitempty"`
	FamilyName          *string      `json:"family_name,omitempty"`
	MiddleName          *string      `json:"middle_name,omitempty"`
	Nickname            *string      `json:"nickname,omitempty"`
	PreferredUsername   *string      `json:"preferred_username,omitempty"`
	Profile             *string      `json:"profile,omitempty"`
	Picture             *string      `json:"picture,omitempty"`
	Website             *string      `json:"website,omitempty"`
	Email               *string      `json:"email,omitempty"`
	EmailVerified       *bool        `json:"email_verified,omitempty"`
	Gender              *string      `json:"gender,omitempty"`
	Birthdate           *string      `json:"birthdate,omitempty"`
	Zoneinfo            *string      `json:"zoneinfo,omitempty"`
	Locale              *string      `json:"locale,omitempty"`
	PhoneNumber         *string      `json:"phone_number,omitempty"`
	PhoneNumberVerified *bool        `json:"phone_number_verified,omitempty"`
	Address             AddressPatch `json:"address"`
}

// AddressPatch is a partial update of the address claim.
type AddressPatch struct {
	Formatted     *string `json:"formatted,omitempty"`
	StreetAddress *string `json:"street_address,omitempty"`
	Locality      *string `json:"locality,omitempty"`
	Region        *string `json:"region,omitempty"`
	PostalCode    *string `json:"postal_code,omitempty"`
	Country       *string `json:"country,omitempty"`
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Apply returns c with the patch applied. A changed email or phone number
// loses its verified flag unless the patch sets it too: a new address has
// not been verified.
func (p ClaimsPatch) Apply(c storage.Claims) storage.Claims {
	oldEmail, oldPhone := c.Email, c.PhoneNumber
	set(&c.Name, p.Name)
	set(&c.GivenName, p.GivenName)
	set(&c.FamilyName, p.FamilyName)
	set(&c.MiddleName, p.MiddleName)
	set(&c.Nickname, p.Nickname)
	set(&c.PreferredUsername, p.PreferredUsername)
	set(&c.Profile, p.Profile)
	set(&c.Picture, p.Picture)
	set(&c.Website, p.Website)
	set(&c.Email, p.Email)
	set(&c.Gender, p.Gender)
	set(&c.Birthdate, p.Birthdate)
	set(&c.Zoneinfo, p.Zoneinfo)
	set(&c.Locale, p.Locale)
	set(&c.PhoneNumber, p.PhoneNumber)
	if !strings.EqualFold(c.Email, oldEmail) {
		c.EmailVerified = false
	}
	if c.PhoneNumber != oldPhone {
		c.PhoneNumberVerified = false
	}
	set(&c.EmailVerified, p.EmailVerified)
	set(&c.PhoneNumberVerified, p.PhoneNumberVerified)
	a := p.Address
	set(&c.Address.Formatted, a.Formatted)
	set(&c.Address.StreetAddress, a.StreetAddress)
	set(&c.Address.Locality, a.Locality)
	set(&c.Address.Region, a.Region)
	set(&c.Address.PostalCode, a.PostalCode)
	set(&c.Address.Country, a.Country)
	return c
}

// Update applies a partial update to the user with this ID.
func (s *Service) Update(ctx context.Context, id string, p Patch) (storage.User, error) {
	if p.Username != nil {
		if err := ValidateUsername(*p.Username); err != nil {
			return storage.User{}, err
		}
	}
	var username, email string
	u, err := s.update(ctx, id, func(u storage.User) (storage.User, error) {
		set(&u.Username, p.Username)
		set(&u.Disabled, p.Disabled)
		u.Claims = p.Claims.Apply(u.Claims)
		if err := ValidateClaims(u.Claims); err != nil {
			return u, err
		}
		username, email = u.Username, u.Claims.Email
		return u, nil
	})
	if err != nil {
		return u, s.explainConflict(ctx, err, id, username, email)
	}
	s.log.InfoContext(ctx, "user updated", "user_id", id)
	return u, nil
}

func (s *Service) update(ctx context.Context, id string, f func(storage.User) (storage.User, error)) (storage.User, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	u, err := s.store.UpdateUser(ctx, id, func(u storage.User) (storage.User, error) {
		u, err := f(u)
		u.UpdatedAt = now
		return u, err
	})
	return u, notFound(id, err)
}

// SetPassword replaces the user's password after checking the policy.
func (s *Service) SetPassword(ctx context.Context, id, pw string) error {
	h, err := s.hashPassword(pw) // outside the update: it may run more than once
	if err != nil {
		return err
	}
	if _, err := s.update(ctx, id, func(u storage.User) (storage.User, error) {
		u.PasswordHash = h
		return u, nil
	}); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "user password set", "user_id", id)
	return nil
}

// Disable stops the user from signing in.
func (s *Service) Disable(ctx context.Context, id string) (storage.User, error) {
	return s.setDisabled(ctx, id, true)
}

// Enable lets a disabled user sign in again.
func (s *Service) Enable(ctx context.Context, id string) (storage.User, error) {
	return s.setDisabled(ctx, id, false)
}

func (s *Service) setDisabled(ctx context.Context, id string, disabled bool) (storage.User, error) {
	u, err := s.update(ctx, id, func(u storage.User) (storage.User, error) {
		u.Disabled = disabled
		return u, nil
	})
	if err == nil {
		s.log.InfoContext(ctx, "user disabled changed", "user_id", id, "disabled", disabled)
	}
	return u, err
}

// Delete removes the user.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := s.store.DeleteUser(ctx, id); err != nil {
		return notFound(id, err)
	}
	s.log.InfoContext(ctx, "user deleted", "user_id", id)
	return nil
}

// Authenticate checks a username and password. Every failure is
// ErrInvalidCredentials, and an unknown username costs the same hashing time
// as a known one so that timing does not reveal which usernames exist. A
// match whose hash has outdated parameters is rehashed on the way.
func (s *Service) Authenticate(ctx context.Context, username, pw string) (storage.User, error) {
	u, err := s.store.GetUserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.PasswordHash == "") {
		s.hasher.VerifyDummy(pw)
		return storage.User{}, ErrInvalidCredentials
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("looking up user: %w", err)
	}
	ok, rehash, err := s.hasher.Verify(pw, u.PasswordHash)
	if err != nil {
		s.log.ErrorContext(ctx, "stored password hash unusable", "user_id", u.ID, "error", err)
		return storage.User{}, ErrInvalidCredentials
	}
	if !ok || u.Disabled {
		return storage.User{}, ErrInvalidCredentials
	}
	if rehash {
		if h, herr := s.hasher.Hash(pw); herr == nil {
			old := u.PasswordHash
			// Only replace the hash we verified: a concurrent password change wins.
			if _, uerr := s.store.UpdateUser(ctx, u.ID, func(cur storage.User) (storage.User, error) {
				if cur.PasswordHash == old {
					cur.PasswordHash = h
				}
				return cur, nil
			}); uerr != nil {
				s.log.WarnContext(ctx, "password rehash not stored", "user_id", u.ID, "error", uerr)
			}
		}
	}
	return u, nil
}
