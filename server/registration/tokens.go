package registration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Keyring purposes. Each token kind gets its own MAC key, so a value valid as
// one kind never matches a hash of the other.
const (
	// InitialTokenPurpose keys the IDs of initial access tokens (RFC 7591 §3).
	InitialTokenPurpose = "registration-initial-access-token"
	// AccessTokenPurpose keys the hashes of registration access tokens (RFC 7592 §3).
	AccessTokenPurpose = "registration-access-token"
)

// maxDescriptionLen bounds a token's description.
const maxDescriptionLen = 256

// Keyring is the part of secrets.Keyring registration needs: tokens are kept
// only as keyed MACs.
type Keyring interface {
	MAC(purpose string, msg []byte) []byte
	VerifyMAC(purpose string, msg, mac []byte) bool
}

// TokenService issues, lists and deletes initial access tokens. The CLI and
// the admin API use it; the registration endpoint consumes the tokens.
type TokenService struct {
	store storage.RegistrationTokenStore
	ring  Keyring
	log   *slog.Logger
	now   func() time.Time
}

// NewTokenService returns a TokenService over store. now may be nil (time.Now).
func NewTokenService(store storage.RegistrationTokenStore, ring Keyring, log *slog.Logger, now func() time.Time) *TokenService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &TokenService{store: store, ring: ring, log: log, now: now}
}

// TokenOptions describe a new initial access token.
type TokenOptions struct {
	// Uses is how many registrations the token allows: at least 1, or
	// storage.UnlimitedUses.
	Uses int
	// ExpiresIn is the token's lifetime; 0 means it does not expire.
	ExpiresIn   time.Duration
	Description string
}

// TokenError is a refused TokenOptions.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return e.Reason }

// CreateToken issues a token of 32 random bytes (base64url). Only its MAC is
// stored, as the record's ID; the returned token is the only copy.
func (s *TokenService) CreateToken(ctx context.Context, o TokenOptions) (string, storage.RegistrationToken, error) {
	if o.Uses < 1 && o.Uses != storage.UnlimitedUses {
		return "", storage.RegistrationToken{}, &TokenError{fmt.Sprintf("uses must be at least 1 (or unlimited), not %d", o.Uses)}
	}
	if o.ExpiresIn < 0 {
		return "", storage.RegistrationToken{}, &TokenError{"the lifetime must not be negative (0: it does not expire)"}
	}
	if len(o.Description) > maxDescriptionLen || strings.ContainsFunc(o.Description, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", storage.RegistrationToken{}, &TokenError{fmt.Sprintf("the description must be at most %d bytes without control characters", maxDescriptionLen)}
	}
	token := randomToken()
	now := s.now().UTC().Truncate(time.Microsecond)
	t := storage.RegistrationToken{ID: s.TokenID(token), Description: o.Description, UsesLeft: o.Uses, CreatedAt: now}
	if o.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(o.ExpiresIn)
	}
	if err := s.store.CreateRegistrationToken(ctx, t); err != nil {
		return "", storage.RegistrationToken{}, fmt.Errorf("storing registration token: %w", err)
	}
	s.log.InfoContext(ctx, "registration token created", "token_id", t.ID, "uses", t.UsesLeft, "expires_at", t.ExpiresAt)
	return token, t, nil
}

// ListTokens lists the unexpired tokens, used up ones included, by ID.
func (s *TokenService) ListTokens(ctx context.Context) ([]storage.RegistrationToken, error) {
	ts, err := s.store.ListRegistrationTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing registration tokens: %w", err)
	}
	return ts, nil
}

// DeleteToken deletes the token with this ID; it wraps storage.ErrNotFound
// when there is none.
func (s *TokenService) DeleteToken(ctx context.Context, id string) error {
	if err := s.store.DeleteRegistrationToken(ctx, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("registration token %q not found: %w", id, err)
		}
		return fmt.Errorf("deleting registration token: %w", err)
	}
	s.log.InfoContext(ctx, "registration token deleted", "token_id", id)
	return nil
}

// UseToken consumes one use of token. It wraps storage.ErrNotFound when the
// token is unknown, expired or used up.
func (s *TokenService) UseToken(ctx context.Context, token string) (storage.RegistrationToken, error) {
	t, err := s.store.UseRegistrationToken(ctx, s.TokenID(token))
	if err != nil {
		return storage.RegistrationToken{}, fmt.Errorf("using registration token: %w", err)
	}
	return t, nil
}

// TokenID is the stored ID of a token: the hex of its MAC.
func (s *TokenService) TokenID(token string) string {
	return hex.EncodeToString(s.ring.MAC(InitialTokenPurpose, []byte(token)))
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
