package sql

import (
	"cmp"
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// ---------------------------------------------------------------------------
// Registration tokens (RFC 7591 §3 initial access tokens). The ID is already a
// keyed hash of the token, so it may appear in errors and logs.

const regTokenColumns = "hash, description, uses_left, expires_at, created_at"

// regTokenLive is the condition of a token that exists: not expired.
const regTokenLive = "(expires_at IS NULL OR expires_at > ?)"

func scanRegToken(row interface{ Scan(...any) error }) (storage.RegistrationToken, error) {
	var (
		t                storage.RegistrationToken
		uses             dbsql.NullInt64
		expires, created dbsql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Description, &uses, &expires, &created); err != nil {
		return storage.RegistrationToken{}, err
	}
	t.UsesLeft = storage.UnlimitedUses
	if uses.Valid {
		t.UsesLeft = int(uses.Int64)
	}
	t.ExpiresAt, t.CreatedAt = goTime(expires), goTime(created)
	return t, nil
}

// CreateRegistrationToken implements storage.RegistrationTokenStore. An
// expired token of the same ID that GC has not removed yet is replaced.
func (s *Store) CreateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error {
	doing := fmt.Sprintf("creating registration token %q", t.ID)
	switch {
	case t.ID == "":
		return errors.New("creating registration token: empty id")
	case t.UsesLeft < storage.UnlimitedUses:
		return fmt.Errorf("%s: uses left is %d; want -1 (unlimited) or more", doing, t.UsesLeft)
	case t.CreatedAt.IsZero():
		return fmt.Errorf("%s: no creation time", doing)
	}
	n, err := s.exec(ctx, s.w, `INSERT INTO registration_tokens (`+regTokenColumns+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET description = excluded.description, uses_left = excluded.uses_left,
		expires_at = excluded.expires_at, created_at = excluded.created_at
		WHERE registration_tokens.expires_at IS NOT NULL AND registration_tokens.expires_at <= ?`,
		t.ID, t.Description, t.UsesLeft, dbTime(t.ExpiresAt), t.CreatedAt.UnixMicro(), s.now().UnixMicro())
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", doing, storage.ErrConflict)
	}
	return nil
}

// UseRegistrationToken implements storage.RegistrationTokenStore with one
// conditional UPDATE: concurrent callers queue on the row (PostgreSQL) or the
// single writer (SQLite), and each re-checks uses_left, so a token with N
// uses left admits exactly N of them.
func (s *Store) UseRegistrationToken(ctx context.Context, id string) (storage.RegistrationToken, error) {
	doing := fmt.Sprintf("using registration token %q", id)
	t, err := scanRegToken(s.queryRow(ctx, s.w, `UPDATE registration_tokens
		SET uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END
		WHERE hash = ? AND (uses_left IS NULL OR uses_left <> 0) AND `+regTokenLive+`
		RETURNING `+regTokenColumns, id, s.now().UnixMicro()))
	if err != nil {
		return storage.RegistrationToken{}, mapErr(doing, err)
	}
	return t, nil
}

// ListRegistrationTokens implements storage.RegistrationTokenStore.
func (s *Store) ListRegistrationTokens(ctx context.Context) ([]storage.RegistrationToken, error) {
	const doing = "listing registration tokens"
	return queryAll(ctx, s, s.r, scanRegToken, doing, "SELECT "+regTokenColumns+" FROM registration_tokens WHERE "+regTokenLive+
		" ORDER BY hash"+s.collate, s.now().UnixMicro())
}

// DeleteRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) DeleteRegistrationToken(ctx context.Context, id string) error {
	return s.deleteOne(ctx, fmt.Sprintf("deleting registration token %q", id),
		"DELETE FROM registration_tokens WHERE hash = ? AND "+regTokenLive, id, s.now().UnixMicro())
}

// ---------------------------------------------------------------------------
// Logout outbox (OpenID Connect Back-Channel Logout 1.0 §2.5)

const logoutColumns = "id, client_id, url, payload, attempts, next_attempt_at, created_at, last_error"

// logoutOrder is the order of claims and listings; the index
// logout_notifications_due serves it.
const logoutOrder = " ORDER BY next_attempt_at, id"

func scanLogout(row interface{ Scan(...any) error }) (storage.LogoutNotification, error) {
	var (
		n             storage.LogoutNotification
		payload       string
		next, created dbsql.NullInt64
	)
	if err := row.Scan(&n.ID, &n.ClientID, &n.URL, &payload, &n.Attempts, &next, &created, &n.LastError); err != nil {
		return storage.LogoutNotification{}, err
	}
	n.Payload = []byte(payload)
	n.NextAttemptAt, n.CreatedAt = goTime(next), goTime(created)
	return n, nil
}

func limitOrDefault(limit int) int { return cmp.Or(max(limit, 0), storage.DefaultPageLimit) }

// EnqueueLogouts implements storage.LogoutOutbox in one transaction.
func (s *Store) EnqueueLogouts(ctx context.Context, ns []storage.LogoutNotification) error {
	for _, n := range ns {
		switch {
		case n.ID == "":
			return errors.New("enqueueing logout notification: empty id")
		case n.NextAttemptAt.IsZero() || n.CreatedAt.IsZero():
			return fmt.Errorf("enqueueing logout notification %q: next attempt and creation times are required", n.ID)
		}
	}
	if len(ns) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *dbsql.Tx) error {
		for _, n := range ns {
			// The payload is claims JSON, kept as TEXT (0001's column type).
			_, err := s.exec(ctx, tx, "INSERT INTO logout_notifications ("+logoutColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				n.ID, n.ClientID, n.URL, string(n.Payload), n.Attempts, n.NextAttemptAt.UnixMicro(), n.CreatedAt.UnixMicro(), n.LastError)
			if err != nil {
				return mapErr(fmt.Sprintf("enqueueing logout notification %q", n.ID), err)
			}
		}
		return nil
	})
}

// ClaimLogouts implements storage.LogoutOutbox: it selects the due rows and
// moves them to leaseUntil in one transaction. On PostgreSQL the select locks
// its rows and skips rows another claimer has locked (FOR UPDATE SKIP
// LOCKED), so concurrent claimers take disjoint sets without waiting; a row
// another claimer has just leased no longer matches once re-checked. On
// SQLite the IMMEDIATE transaction serialises claimers.
func (s *Store) ClaimLogouts(ctx context.Context, now, leaseUntil time.Time, limit int) ([]storage.LogoutNotification, error) {
	const doing = "claiming logout notifications"
	if leaseUntil.IsZero() {
		return nil, fmt.Errorf("%s: no lease end", doing)
	}
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	lease := leaseUntil.UnixMicro()
	var out []storage.LogoutNotification
	err := s.inTx(ctx, func(tx *dbsql.Tx) error {
		var err error
		out, err = queryAll(ctx, s, tx, scanLogout, doing, "SELECT "+logoutColumns+" FROM logout_notifications WHERE next_attempt_at <= ?"+
			logoutOrder+" LIMIT ?"+lock, now.UnixMicro(), limitOrDefault(limit))
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		args := make([]any, 0, 1+len(out))
		args = append(args, lease)
		for i := range out {
			args = append(args, out[i].ID)
			out[i].NextAttemptAt = goTime(dbsql.NullInt64{Int64: lease, Valid: true})
		}
		_, err = s.exec(ctx, tx, "UPDATE logout_notifications SET next_attempt_at = ? WHERE id IN (?"+
			strings.Repeat(", ?", len(out)-1)+")", args...)
		return mapErr(doing, err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteLogout implements storage.LogoutOutbox.
func (s *Store) CompleteLogout(ctx context.Context, id string) error {
	return s.deleteOne(ctx, fmt.Sprintf("completing logout notification %q", id),
		"DELETE FROM logout_notifications WHERE id = ?", id)
}

// RetryLogout implements storage.LogoutOutbox.
func (s *Store) RetryLogout(ctx context.Context, id string, attempts int, next time.Time, lastErr string) error {
	doing := fmt.Sprintf("rescheduling logout notification %q", id)
	if next.IsZero() {
		return fmt.Errorf("%s: no next attempt time", doing)
	}
	n, err := s.exec(ctx, s.w, "UPDATE logout_notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
		attempts, next.UnixMicro(), lastErr, id)
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", doing, storage.ErrNotFound)
	}
	return nil
}

// ListLogouts implements storage.LogoutOutbox.
func (s *Store) ListLogouts(ctx context.Context, limit int) ([]storage.LogoutNotification, error) {
	const doing = "listing logout notifications"
	return queryAll(ctx, s, s.r, scanLogout, doing, "SELECT "+logoutColumns+" FROM logout_notifications"+logoutOrder+" LIMIT ?", limitOrDefault(limit))
}

// ---------------------------------------------------------------------------
// Revocation by subject or client

// revokeGrantsWhere deletes every record of every grant that has a live
// record whose column equals value, in one statement, and counts the grants
// from the deleted rows.
func (s *Store) revokeGrantsWhere(ctx context.Context, column, value string) (int, error) {
	doing := "revoking grants by " + column
	if value == "" {
		return 0, fmt.Errorf("%s: empty %s", doing, column)
	}
	rows, err := s.query(ctx, s.w, "DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests WHERE "+
		column+" = ? AND expires_at > ?) RETURNING request_id", value, s.now().UnixMicro())
	if err != nil {
		return 0, mapErr(doing, err)
	}
	defer rows.Close()
	grants := make(map[string]struct{})
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, fmt.Errorf("%s: %w", doing, err)
		}
		grants[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	return len(grants), nil
}

// RevokeGrantsBySubject implements storage.RequestStore.
func (s *Store) RevokeGrantsBySubject(ctx context.Context, subject string) (int, error) {
	return s.revokeGrantsWhere(ctx, "subject", subject)
}

// RevokeGrantsByClient implements storage.RequestStore.
func (s *Store) RevokeGrantsByClient(ctx context.Context, clientID string) (int, error) {
	return s.revokeGrantsWhere(ctx, "client_id", clientID)
}
