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

// Service manages clients.
type Service struct {
	store storage.ClientStore
	ring  MACer
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Service over store, hashing secrets with ring.
func New(store storage.ClientStore, ring MACer, log *slog.Logger) *Service {
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
	var secret string
	if issuesSecret(c.TokenEndpointAuthMethod) {
		secret = randomString(32)
		c.SecretHash = s.ring.MAC(SecretPurpose, []byte(secret))
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

func issuesSecret(method string) bool {
	return method == AuthClientSecretBasic || method == AuthClientSecretPost
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

// Delete removes the client.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := s.store.DeleteClient(ctx, id); err != nil {
		return notFound(id, err)
	}
	s.log.InfoContext(ctx, "client deleted", "client_id", id)
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
// secret is returned once.
func (s *Service) RotateSecret(ctx context.Context, id string, overlap time.Duration) (string, error) {
	secret := randomString(32)
	hash := s.ring.MAC(SecretPurpose, []byte(secret))
	now := s.now().UTC().Truncate(time.Microsecond)
	_, err := s.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		if len(c.SecretHash) == 0 {
			return c, badMetadata("client %q is public (token_endpoint_auth_method %s) and has no secret", id, c.TokenEndpointAuthMethod)
		}
		c.RotatedSecretHash, c.RotatedSecretExpiresAt = nil, time.Time{}
		if overlap > 0 {
			c.RotatedSecretHash, c.RotatedSecretExpiresAt = c.SecretHash, now.Add(overlap)
		}
		c.SecretHash, c.SecretExpiresAt = hash, time.Time{}
		c.UpdatedAt = now
		return c, nil
	})
	if err != nil {
		return "", notFound(id, err)
	}
	s.log.InfoContext(ctx, "client secret rotated", "client_id", id, "overlap", overlap)
	return secret, nil
}
