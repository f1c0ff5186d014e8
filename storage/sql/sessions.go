package sql

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/storage"
)

const sessionColumns = "id, subject, auth_time, acr, amr, remember, client_ids, created_at, expires_at"

var errNoExpiry = errors.New("expires_at is required: every short-lived record expires")

func scanSession(row interface{ Scan(...any) error }) (storage.Session, error) {
	var (
		se                      storage.Session
		amr, clients            string
		authTime, created, expi dbsql.NullInt64
	)
	if err := row.Scan(&se.ID, &se.Subject, &authTime, &se.ACR, &amr, &se.Remember, &clients, &created, &expi); err != nil {
		return storage.Session{}, err
	}
	if err := json.Unmarshal([]byte(amr), &se.AMR); err != nil {
		return storage.Session{}, fmt.Errorf("decoding amr: %w", err)
	}
	if err := json.Unmarshal([]byte(clients), &se.ClientIDs); err != nil {
		return storage.Session{}, fmt.Errorf("decoding client ids: %w", err)
	}
	se.AuthTime, se.CreatedAt, se.ExpiresAt = goTime(authTime), goTime(created), goTime(expi)
	return se, nil
}

func normSession(se storage.Session) storage.Session {
	se.AuthTime = normTime(se.AuthTime)
	se.CreatedAt = normTime(se.CreatedAt)
	se.ExpiresAt = normTime(se.ExpiresAt)
	return se
}

// sessionArgs returns auth_time ... expires_at, in column order.
func sessionArgs(se storage.Session) ([]any, error) {
	if se.ExpiresAt.IsZero() {
		return nil, errNoExpiry
	}
	amr, err := json.Marshal(se.AMR)
	if err != nil {
		return nil, fmt.Errorf("encoding amr: %w", err)
	}
	clients, err := json.Marshal(se.ClientIDs)
	if err != nil {
		return nil, fmt.Errorf("encoding client ids: %w", err)
	}
	return []any{dbTime(se.AuthTime), se.ACR, string(amr), se.Remember, string(clients), dbTime(se.CreatedAt),
		se.ExpiresAt.UnixMicro()}, nil
}

// CreateSession implements storage.SessionStore. An expired session of the
// same ID that GC has not removed yet is replaced, as it is already invisible.
func (s *Store) CreateSession(ctx context.Context, se storage.Session) error {
	doing := fmt.Sprintf("creating session for %q", se.Subject)
	args, err := sessionArgs(se)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	n, err := s.exec(ctx, s.w, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, auth_time = excluded.auth_time, acr = excluded.acr,
		amr = excluded.amr, remember = excluded.remember, client_ids = excluded.client_ids,
		created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE sessions.expires_at <= ?`,
		append(append([]any{se.ID, se.Subject}, args...), s.now().UnixMicro())...)
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: session ID exists: %w", doing, storage.ErrConflict)
	}
	return nil
}

func (s *Store) getSession(ctx context.Context, q querier, id, suffix string) (storage.Session, error) {
	se, err := scanSession(s.queryRow(ctx, q, "SELECT "+sessionColumns+" FROM sessions WHERE id = ? AND expires_at > ?"+suffix,
		id, s.now().UnixMicro()))
	if err != nil {
		// Session IDs are bearer secrets (the cookie): keep them out of errors.
		return storage.Session{}, mapErr("getting session", err)
	}
	return se, nil
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	return s.getSession(ctx, s.r, id, "")
}

// UpdateSession implements storage.SessionStore.
func (s *Store) UpdateSession(ctx context.Context, id string, update func(storage.Session) (storage.Session, error)) (storage.Session, error) {
	const doing = "updating session"
	var out storage.Session
	err := s.inTx(ctx, func(tx *dbsql.Tx) error {
		cur, err := s.getSession(ctx, tx, id, s.forUpdate)
		if err != nil {
			return err
		}
		next, err := update(cur)
		if err != nil {
			return err // as is, per the contract
		}
		next.ID, next.Subject = cur.ID, cur.Subject
		next = normSession(next)
		args, err := sessionArgs(next)
		if err != nil {
			return fmt.Errorf("%s: %w", doing, err)
		}
		if _, err := s.exec(ctx, tx, `UPDATE sessions SET auth_time = ?, acr = ?, amr = ?, remember = ?, client_ids = ?,
			created_at = ?, expires_at = ? WHERE id = ?`, append(args, id)...); err != nil {
			return mapErr(doing, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return storage.Session{}, err
	}
	return out, nil
}

// DeleteSession implements storage.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.deleteOne(ctx, "deleting session", "DELETE FROM sessions WHERE id = ? AND expires_at > ?", id, s.now().UnixMicro())
}

// ListSessions implements storage.SessionStore.
func (s *Store) ListSessions(ctx context.Context, subject string) ([]storage.Session, error) {
	doing := fmt.Sprintf("listing sessions of %q", subject)
	return queryAll(ctx, s, s.r, scanSession, doing, "SELECT "+sessionColumns+" FROM sessions WHERE subject = ? AND expires_at > ? ORDER BY id"+s.collate,
		subject, s.now().UnixMicro())
}
