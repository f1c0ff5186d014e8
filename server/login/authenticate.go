package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// errInvalidCredentials covers every failed sign-in: unknown user, wrong
// password, disabled account, no password set. The page shows one message for
// all of them so that it reveals nothing about which accounts exist.
var errInvalidCredentials = errors.New("invalid credentials")

// throttledError says the account or the client address is locked.
type throttledError struct{ wait time.Duration }

func (e throttledError) Error() string { return fmt.Sprintf("sign-in locked for %s", e.wait) }

// authenticate checks a username-or-email and password pair. It returns the
// user, errInvalidCredentials, a throttledError or an internal error.
func (h *Handler) authenticate(ctx context.Context, r *http.Request, identifier, password string) (storage.User, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" || password == "" {
		// Nothing was guessed: no failure is counted.
		return storage.User{}, errInvalidCredentials
	}
	u, found, err := h.lookup(ctx, identifier)
	if err != nil {
		return storage.User{}, err
	}
	// Count failures per account when the identifier names one, so that
	// alternating username and email does not double the guesses; otherwise
	// per identifier, so unknown names are throttled alike.
	acct := h.throttle.account("ident:" + strings.ToLower(identifier))
	if found {
		acct = h.throttle.account("user:" + u.ID)
	}
	ip := h.throttle.ip(h.clientIP(r))
	wait, dirty, err := h.throttle.check(ctx, acct, ip)
	if err != nil {
		return storage.User{}, err
	} else if wait > 0 {
		return storage.User{}, throttledError{wait: wait}
	}

	ok, reason := false, "unknown_user"
	switch {
	case !found || u.PasswordHash == "":
		// Burn the time of a real verification so timing does not tell
		// whether the account exists.
		h.hasher.VerifyDummy(password)
		if found {
			reason = "no_password"
		}
	default:
		var needsRehash bool
		ok, needsRehash, err = h.hasher.Verify(password, u.PasswordHash)
		switch {
		case err != nil:
			h.log.ErrorContext(ctx, "stored password hash unusable", "subject", u.ID, "error", err)
			ok, reason = false, "bad_hash"
		case !ok:
			reason = "bad_password"
		case u.Disabled:
			ok, reason = false, "disabled"
		case needsRehash:
			h.rehash(ctx, u.ID, password)
		}
	}
	if !ok {
		h.log.InfoContext(ctx, "sign-in failed", "reason", reason, "subject", u.ID)
		if err := h.throttle.fail(ctx, acct, ip); err != nil {
			return storage.User{}, err
		}
		return storage.User{}, errInvalidCredentials
	}
	// A failure counted after check, by a concurrent attempt, is left: it
	// could as well have come just after this success.
	if dirty {
		if err := h.throttle.succeed(ctx, acct); err != nil {
			return storage.User{}, err
		}
	}
	return u, nil
}

// lookup finds a user by username, then by email.
func (h *Handler) lookup(ctx context.Context, identifier string) (storage.User, bool, error) {
	u, err := h.users.GetUserByUsername(ctx, identifier)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, false, fmt.Errorf("looking up user by username: %w", err)
	}
	if !strings.Contains(identifier, "@") {
		return storage.User{}, false, nil
	}
	u, err = h.users.GetUserByEmail(ctx, identifier)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, false, fmt.Errorf("looking up user by email: %w", err)
	}
	return storage.User{}, false, nil
}

// rehash stores a hash with the current parameters while the password is at
// hand. A failure only postpones the upgrade to the next sign-in.
func (h *Handler) rehash(ctx context.Context, id, password string) {
	encoded, err := h.hasher.Hash(password)
	if err == nil {
		_, err = h.users.UpdateUser(ctx, id, func(u storage.User) (storage.User, error) {
			u.PasswordHash = encoded
			return u, nil
		})
	}
	if err != nil {
		h.log.WarnContext(ctx, "password rehash skipped", "subject", id, "error", err)
		return
	}
	h.log.InfoContext(ctx, "password rehashed", "subject", id)
}
