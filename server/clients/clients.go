// Package clients is the OAuth client service: registering clients from
// RFC 7591 metadata, issuing and checking their secrets, listing and
// deleting them. The CLI, the admin API and dynamic client registration share
// it; it knows nothing of HTTP.
package clients

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// SecretPurpose is the keyring purpose of client secret MACs.
const SecretPurpose = "client-secret"

// MACer is the part of secrets.Keyring the service needs: client secrets are
// stored only as a keyed MAC.
type MACer interface {
	MAC(purpose string, msg []byte) []byte
	VerifyMAC(purpose string, msg, mac []byte) bool
}

// Sealer is the part of secrets.Keyring that encrypts: the secret of a
// client_secret_jwt client is kept sealed, because verifying its HMAC
// assertions needs the secret itself (RFC 7523 §3, OpenID Connect Core §9).
// A ring given to New that is not a Sealer cannot register such clients.
type Sealer interface {
	Seal(plaintext, additionalData []byte) ([]byte, error)
}

// Opener decrypts what a Sealer sealed.
type Opener interface {
	Open(ciphertext, additionalData []byte) ([]byte, error)
}

// SealedSecretAAD is the additional data a client_secret_jwt secret is sealed
// with: it binds the box to its client, so a box copied onto another client
// does not open.
func SealedSecretAAD(clientID string) []byte { return []byte("client-secret-jwt:" + clientID) }

// Store is what the service needs of storage; a storage.Durable is one.
// Consents are in it because they go with their client (Delete).
type Store interface {
	storage.ClientStore
	storage.ConsentStore
}

// Service manages clients.
type Service struct {
	store Store
	ring  MACer
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Service over store, hashing secrets with ring.
func New(store Store, ring MACer, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, ring: ring, log: log, now: time.Now}
}

// CreateOptions tune Create.
type CreateOptions struct {
	// Trusted callers (CLI, admin API) may set Gatehouse policy fields;
	// dynamic registration may not.
	Trusted bool
	// ClientID, when set, is used instead of a random one (e.g. a
	// well-known ID for a first-party app).
	ClientID string
	// RegistrationAccessTokenHash is stored with the client, in the same
	// write, by dynamic registration (RFC 7592 §3).
	RegistrationAccessTokenHash []byte
}

// Create validates md (after the RFC 7591 §2 defaults), stores the client
// with a fresh client_id and, for confidential clients, a fresh secret of 32
// random bytes of which only the MAC is kept. The returned metadata carries
// the secret: it is the only time it is known.
func (s *Service) Create(ctx context.Context, md Metadata, opts CreateOptions) (Metadata, error) {
	applyDefaults(&md)
	if err := validate(md, opts.Trusted); err != nil {
		return Metadata{}, err
	}
	c := md.ToClient()
	c.ID = opts.ClientID
	if c.ID == "" {
		c.ID = randomString(16)
	} else if err := text("client_id", c.ID); err != nil || len(c.ID) > 128 {
		return Metadata{}, badMetadata("client_id %q is not usable: use at most 128 printable characters", c.ID)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c.CreatedAt, c.UpdatedAt = now, now
	c.RegistrationAccessTokenHash = opts.RegistrationAccessTokenHash
	var secret string
	if issuesSecret(c.TokenEndpointAuthMethod) {
		secret = randomString(32)
		if err := s.setSecret(&c, secret); err != nil {
			return Metadata{}, err
		}
	}
	if opts.ClientID != "" {
		if err := s.dropStaleConsents(ctx, c.ID); err != nil {
			return Metadata{}, err
		}
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return Metadata{}, fmt.Errorf("client %q already exists: %w", c.ID, err)
		}
		return Metadata{}, fmt.Errorf("storing client: %w", err)
	}
	s.log.InfoContext(ctx, "client created", "client_id", c.ID, "client_name", c.Name, "confidential", secret != "")
	out := FromClient(c)
	out.ClientSecret = secret
	return out, nil
}

// dropStaleConsents deletes the consents stored under a client ID that no
// client has, before a client is created with that ID, so that it inherits
// none: consents of a client deleted before Delete took them along, or
// stored by a consent page still open when its client was deleted. Only
// chosen IDs need this; a random one is new.
func (s *Service) dropStaleConsents(ctx context.Context, id string) error {
	_, err := s.store.GetClient(ctx, id)
	if err == nil {
		return nil // taken: CreateClient reports the conflict, the consents are that client's
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("looking up client %q: %w", id, err)
	}
	n, err := s.store.DeleteConsentsByClient(ctx, id)
	if err != nil {
		return fmt.Errorf("deleting stale consents of client %q: %w", id, err)
	}
	if n > 0 {
		s.log.WarnContext(ctx, "stale consents of a former client deleted", "client_id", id, "consents_deleted", n)
	}
	return nil
}

func issuesSecret(method string) bool {
	return method == AuthClientSecretBasic || method == AuthClientSecretPost || method == AuthClientSecretJWT
}

// setSecret makes secret c's current secret: its MAC, and for
// client_secret_jwt the sealed secret too. c.ID must be set.
func (s *Service) setSecret(c *storage.Client, secret string) error {
	c.SecretHash, c.SecretExpiresAt, c.SecretSealed = s.ring.MAC(SecretPurpose, []byte(secret)), time.Time{}, nil
	if c.TokenEndpointAuthMethod != AuthClientSecretJWT {
		return nil
	}
	sealer, ok := s.ring.(Sealer)
	if !ok {
		return errors.New("sealing a client_secret_jwt secret: the service's keyring cannot seal")
	}
	box, err := sealer.Seal([]byte(secret), SealedSecretAAD(c.ID))
	if err != nil {
		return fmt.Errorf("sealing a client_secret_jwt secret: %w", err)
	}
	c.SecretSealed = box
	return nil
}

// SharedSecret returns the secret of a client_secret_jwt client, the key of
// its HMAC assertions (RFC 7523 §3).
func (s *Service) SharedSecret(c storage.Client) ([]byte, error) {
	opener, ok := s.ring.(Opener)
	if !ok {
		return nil, errors.New("opening a client secret: the service's keyring cannot open")
	}
	if len(c.SecretSealed) == 0 {
		return nil, fmt.Errorf("client %q has no sealed secret (token_endpoint_auth_method %s)", c.ID, c.TokenEndpointAuthMethod)
	}
	secret, err := opener.Open(c.SecretSealed, SealedSecretAAD(c.ID))
	if err != nil {
		return nil, fmt.Errorf("opening the secret of client %q: %w", c.ID, err)
	}
	return secret, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// NotFoundError says no client matches Ref. It matches storage.ErrNotFound
// with errors.Is.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("client %q not found", e.Ref) }

// Unwrap makes errors.Is(err, storage.ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return storage.ErrNotFound }

func notFound(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return &NotFoundError{Ref: id}
	}
	return err
}

// Get returns the stored client.
func (s *Service) Get(ctx context.Context, id string) (storage.Client, error) {
	c, err := s.store.GetClient(ctx, id)
	return c, notFound(id, err)
}

// List returns one page of clients ordered by ID.
func (s *Service) List(ctx context.Context, p storage.Page) ([]storage.Client, error) {
	cs, err := s.store.ListClients(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("listing clients: %w", err)
	}
	return cs, nil
}

// Delete removes the client and every user's consent to it, so that a client
// registered later under the same ID (an admin re-creating it) inherits none
// and its users are asked again.
func (s *Service) Delete(ctx context.Context, id string) error {
	// Consents go first. Should deleting the client then fail, the client
	// stays with no consents, which only asks its users again, and a retry
	// finishes the job; the other order could fail with the client gone and
	// its consents left for whoever re-creates the ID.
	n, err := s.store.DeleteConsentsByClient(ctx, id)
	if err != nil {
		return fmt.Errorf("deleting the consents of client %q: %w", id, err)
	}
	if err := s.store.DeleteClient(ctx, id); err != nil {
		return notFound(id, err)
	}
	s.log.InfoContext(ctx, "client deleted", "client_id", id, "consents_deleted", n)
	return nil
}

// VerifySecret reports whether secret is the client's current secret, or its
// previous one while that is still within its overlap window; expired
// secrets never match.
func (s *Service) VerifySecret(c storage.Client, secret string) bool {
	now := s.now()
	ok := false
	if len(c.SecretHash) > 0 && (c.SecretExpiresAt.IsZero() || now.Before(c.SecretExpiresAt)) {
		ok = s.ring.VerifyMAC(SecretPurpose, []byte(secret), c.SecretHash)
	}
	if len(c.RotatedSecretHash) > 0 && now.Before(c.RotatedSecretExpiresAt) {
		// Evaluated regardless of the first result so timing does not say which matched.
		if s.ring.VerifyMAC(SecretPurpose, []byte(secret), c.RotatedSecretHash) {
			ok = true
		}
	}
	return ok
}

// RotateSecret issues a new secret for a confidential client. The previous
// secret stays valid for overlap (0: it stops working at once). The new
// secret is returned once. A client_secret_jwt client cannot overlap: only
// its current secret is kept sealed.
func (s *Service) RotateSecret(ctx context.Context, id string, overlap time.Duration) (string, error) {
	secret := randomString(32)
	now := s.now().UTC().Truncate(time.Microsecond)
	_, err := s.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		if len(c.SecretHash) == 0 {
			return c, badMetadata("client %q is public (token_endpoint_auth_method %s) and has no secret", id, c.TokenEndpointAuthMethod)
		}
		if err := s.rotate(&c, secret, overlap, now); err != nil {
			return c, err
		}
		c.UpdatedAt = now
		return c, nil
	})
	if err != nil {
		return "", notFound(id, err)
	}
	s.log.InfoContext(ctx, "client secret rotated", "client_id", id, "overlap", overlap)
	return secret, nil
}

// rotate makes secret c's current one, keeping the previous one for overlap.
func (s *Service) rotate(c *storage.Client, secret string, overlap time.Duration, now time.Time) error {
	if overlap > 0 && c.TokenEndpointAuthMethod == AuthClientSecretJWT {
		return badMetadata("client %q uses client_secret_jwt: its secret cannot overlap (only the current one is kept): rotate with no overlap", c.ID)
	}
	c.RotatedSecretHash, c.RotatedSecretExpiresAt = nil, time.Time{}
	if overlap > 0 && len(c.SecretHash) > 0 {
		c.RotatedSecretHash, c.RotatedSecretExpiresAt = c.SecretHash, now.Add(overlap)
	}
	return s.setSecret(c, secret)
}

// UpdateOptions tune Update.
type UpdateOptions struct {
	// Trusted callers may change the Gatehouse policy fields; for others
	// the stored ones are kept and setting any is an error.
	Trusted bool
	// RotateSecret asks for a new secret for a confidential client; the
	// previous one stays valid for Overlap.
	RotateSecret bool
	Overlap      time.Duration
	// Check, when set, sees the stored client before anything changes; an
	// error from it is returned as is and nothing is written.
	Check func(storage.Client) error
}

// Update replaces a client's metadata with md, as RFC 7592 §2.2 does: what
// md leaves out is not kept but defaulted (RFC 7591 §2). The client ID,
// creation time, registration access token hash and, for an untrusted
// caller, the policy fields are kept. The secret is kept unless the client
// becomes confidential, asks for a new one, or switches to client_secret_jwt
// (whose secret must be kept sealed, which an old secret is not): then a new
// one is issued and returned, the only time it is known. A client that
// becomes public loses its secret.
func (s *Service) Update(ctx context.Context, id string, md Metadata, opts UpdateOptions) (Metadata, error) {
	applyDefaults(&md)
	if err := validate(md, opts.Trusted); err != nil {
		return Metadata{}, err
	}
	secret := randomString(32)
	now := s.now().UTC().Truncate(time.Microsecond)
	issued := false
	c, err := s.store.UpdateClient(ctx, id, func(old storage.Client) (storage.Client, error) {
		issued = false
		if opts.Check != nil {
			if err := opts.Check(old); err != nil {
				return old, err
			}
		}
		c := md.ToClient()
		c.ID, c.CreatedAt, c.UpdatedAt = old.ID, old.CreatedAt, now
		c.RegistrationAccessTokenHash = old.RegistrationAccessTokenHash
		if !opts.Trusted {
			c.Audience, c.AccessTokenFormat, c.FirstParty = old.Audience, old.AccessTokenFormat, old.FirstParty
			c.AccessTokenLifetime, c.RefreshTokenLifetime, c.IDTokenLifetime = old.AccessTokenLifetime, old.RefreshTokenLifetime, old.IDTokenLifetime
		}
		c.SecretHash, c.SecretExpiresAt = old.SecretHash, old.SecretExpiresAt
		c.RotatedSecretHash, c.RotatedSecretExpiresAt = old.RotatedSecretHash, old.RotatedSecretExpiresAt
		switch {
		case !issuesSecret(c.TokenEndpointAuthMethod):
			if opts.RotateSecret {
				return old, badMetadata("client %q is public (token_endpoint_auth_method %s) and has no secret to rotate", id, c.TokenEndpointAuthMethod)
			}
			c.SecretHash, c.SecretExpiresAt, c.RotatedSecretHash, c.RotatedSecretExpiresAt = nil, time.Time{}, nil, time.Time{}
		case len(old.SecretHash) == 0:
			if err := s.setSecret(&c, secret); err != nil {
				return old, err
			}
			issued = true
		case opts.RotateSecret || (c.TokenEndpointAuthMethod == AuthClientSecretJWT && len(old.SecretSealed) == 0):
			overlap := opts.Overlap
			if c.TokenEndpointAuthMethod == AuthClientSecretJWT {
				overlap = 0 // only the current secret is kept sealed
			}
			if err := s.rotate(&c, secret, overlap, now); err != nil {
				return old, err
			}
			issued = true
		case c.TokenEndpointAuthMethod == AuthClientSecretJWT:
			c.SecretSealed = old.SecretSealed
		}
		return c, nil
	})
	if err != nil {
		return Metadata{}, notFound(id, err)
	}
	s.log.InfoContext(ctx, "client updated", "client_id", id, "secret_issued", issued)
	out := FromClient(c)
	if issued {
		out.ClientSecret = secret
	}
	return out, nil
}
