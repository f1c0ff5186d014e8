package sql

import (
	"bytes"
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Signatures of tokens are secrets' fingerprints: errors name the kind only.

const requestColumns = "kind, signature, request_id, client_id, subject, active, requested_at, expires_at, payload"

func scanRequest(row interface{ Scan(...any) error }) (storage.Request, error) {
	var (
		req              storage.Request
		kind             string
		requested, expis dbsql.NullInt64
	)
	if err := row.Scan(&kind, &req.Signature, &req.RequestID, &req.ClientID, &req.Subject, &req.Active,
		&requested, &expis, &req.Payload); err != nil {
		return storage.Request{}, err
	}
	req.Kind = storage.RequestKind(kind)
	req.RequestedAt, req.ExpiresAt = goTime(requested), goTime(expis)
	return req, nil
}

// createRequest inserts r; an expired record with the same key that GC has not
// removed yet is replaced, as it is already invisible.
func (s *Store) createRequest(ctx context.Context, q querier, r storage.Request) error {
	doing := fmt.Sprintf("creating %s request", r.Kind)
	if r.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: %w", doing, errNoExpiry)
	}
	n, err := s.exec(ctx, q, `INSERT INTO requests (`+requestColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, signature) DO UPDATE SET request_id = excluded.request_id, client_id = excluded.client_id,
		subject = excluded.subject, active = excluded.active, requested_at = excluded.requested_at,
		expires_at = excluded.expires_at, payload = excluded.payload
		WHERE requests.expires_at <= ?`,
		string(r.Kind), r.Signature, r.RequestID, r.ClientID, r.Subject, r.Active,
		dbTime(r.RequestedAt), r.ExpiresAt.UnixMicro(), r.Payload, s.now().UnixMicro())
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: signature exists: %w", doing, storage.ErrConflict)
	}
	return nil
}

// CreateRequest implements storage.RequestStore.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	if s.group != nil {
		return s.group.write(ctx, func(ctx context.Context, tx *dbsql.Tx) error { return s.createRequest(ctx, tx, r) })
	}
	return s.createRequest(ctx, s.w, r)
}

// GetRequest implements storage.RequestStore.
func (s *Store) GetRequest(ctx context.Context, kind storage.RequestKind, signature string) (storage.Request, error) {
	r, err := scanRequest(s.queryRow(ctx, s.r, "SELECT "+requestColumns+" FROM requests WHERE kind = ? AND signature = ? AND expires_at > ?",
		string(kind), signature, s.now().UnixMicro()))
	if err != nil {
		return storage.Request{}, mapErr(fmt.Sprintf("getting %s request", kind), err)
	}
	return r, nil
}

const (
	// maxPreparedKeys bounds the key counts whose GetRequests statement goes
	// through the prepared-statement cache: each count is a statement of its
	// own, and larger, rare ones must not fill the cache (stmtcache.go).
	maxPreparedKeys = 8
	// maxKeysPerQuery keeps a statement well within the bound parameter
	// limits (SQLite 32766, PostgreSQL 65535).
	maxKeysPerQuery = 500
)

// GetRequests implements storage.RequestStore with one SELECT per
// maxKeysPerQuery keys. The OR'ed (kind, signature) pairs each use the
// primary key (SQLite "MULTI-INDEX OR", PostgreSQL "BitmapOr"); a repeated
// pair matches its row once.
func (s *Store) GetRequests(ctx context.Context, keys []storage.RequestKey) ([]storage.Request, []bool, error) {
	recs, found := make([]storage.Request, len(keys)), make([]bool, len(keys))
	now := s.now().UnixMicro()
	for off := 0; off < len(keys); off += maxKeysPerQuery {
		end := min(off+maxKeysPerQuery, len(keys))
		if err := s.getRequestsChunk(ctx, keys[off:end], now, recs[off:end], found[off:end]); err != nil {
			return nil, nil, err
		}
	}
	return recs, found, nil
}

func (s *Store) getRequestsChunk(ctx context.Context, keys []storage.RequestKey, now int64, recs []storage.Request, found []bool) error {
	const doing = "getting requests"
	query := "SELECT " + requestColumns + " FROM requests WHERE expires_at > ? AND (" +
		strings.Repeat("(kind = ? AND signature = ?) OR ", len(keys)-1) + "(kind = ? AND signature = ?))"
	args := make([]any, 0, 1+2*len(keys))
	args = append(args, now)
	for _, k := range keys {
		args = append(args, string(k.Kind), k.Signature)
	}
	var (
		rows *dbsql.Rows
		err  error
	)
	if len(keys) <= maxPreparedKeys {
		rows, err = s.query(ctx, s.r, query, args...)
	} else {
		rows, err = s.r.QueryContext(ctx, s.rebind(query), args...)
	}
	if err != nil {
		return mapErr(doing, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return mapErr(doing, err)
		}
		first := true
		for i, k := range keys {
			if k.Kind != r.Kind || k.Signature != r.Signature {
				continue
			}
			if !first {
				// A repeated key gets a payload of its own, as from GetRequest.
				r.Payload = bytes.Clone(r.Payload)
			}
			recs[i], found[i], first = r, true, false
		}
	}
	if err := rows.Err(); err != nil {
		return mapErr(doing, err)
	}
	return nil
}

// DeleteRequest implements storage.RequestStore.
func (s *Store) DeleteRequest(ctx context.Context, ref storage.RequestRef) error {
	return s.deleteOne(ctx, fmt.Sprintf("deleting %s request", ref.Kind),
		"DELETE FROM requests WHERE kind = ? AND signature = ? AND expires_at > ?", string(ref.Kind), ref.Signature, s.now().UnixMicro())
}

// deactivate flips one active, unexpired record to inactive: what makes an
// authorization code single-use (RFC 6749 §4.1.2) and a rotated refresh token
// unusable (RFC 9700 §4.14.2) under concurrent redemption. The condition
// is in the UPDATE itself, so of any number of concurrent callers exactly one
// changes the row: on PostgreSQL the others wait for its row lock and then
// re-check "active"; on SQLite writes are serialised.
func (s *Store) deactivate(ctx context.Context, q querier, ref storage.RequestRef) error {
	doing := fmt.Sprintf("deactivating %s request", ref.Kind)
	now := s.now().UnixMicro()
	n, err := s.exec(ctx, q, "UPDATE requests SET active = FALSE WHERE kind = ? AND signature = ? AND active AND expires_at > ?",
		string(ref.Kind), ref.Signature, now)
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 1 {
		return nil
	}
	// Nothing changed: tell an already inactive record from a missing one.
	var exists int
	err = s.queryRow(ctx, q, "SELECT 1 FROM requests WHERE kind = ? AND signature = ? AND expires_at > ?",
		string(ref.Kind), ref.Signature, now).Scan(&exists)
	switch {
	case errors.Is(err, dbsql.ErrNoRows):
		return fmt.Errorf("%s: %w", doing, storage.ErrNotFound)
	case err != nil:
		return mapErr(doing, err)
	default:
		return fmt.Errorf("%s: %w", doing, storage.ErrInactive)
	}
}

// DeactivateRequest implements storage.RequestStore.
func (s *Store) DeactivateRequest(ctx context.Context, ref storage.RequestRef) error {
	return s.deactivate(ctx, s.w, ref)
}

func (s *Store) revokeGrant(ctx context.Context, q querier, requestID string, kinds []storage.RequestKind) error {
	query := "DELETE FROM requests WHERE request_id = ?"
	args := []any{requestID}
	if len(kinds) > 0 {
		query += " AND kind IN (?" + strings.Repeat(", ?", len(kinds)-1) + ")"
		for _, k := range kinds {
			args = append(args, string(k))
		}
	}
	if _, err := s.exec(ctx, q, query, args...); err != nil {
		return mapErr("revoking grant", err)
	}
	return nil
}

// RevokeGrant implements storage.RequestStore.
func (s *Store) RevokeGrant(ctx context.Context, requestID string, kinds ...storage.RequestKind) error {
	return s.revokeGrant(ctx, s.w, requestID, kinds)
}

// ApplyRequests implements storage.RequestStore in one transaction, in the
// order Deactivate (the condition), Delete, RevokeGrants, Create, so that a
// batch may replace a record or re-create records of a grant it revokes.
// The first failing Deactivate rolls everything back.
func (s *Store) ApplyRequests(ctx context.Context, b storage.RequestBatch) error {
	return s.write(ctx, func(ctx context.Context, tx *dbsql.Tx) error {
		for _, ref := range b.Deactivate {
			if err := s.deactivate(ctx, tx, ref); err != nil {
				return fmt.Errorf("applying request batch: %w", err)
			}
		}
		for _, ref := range b.Delete {
			if _, err := s.exec(ctx, tx, "DELETE FROM requests WHERE kind = ? AND signature = ?",
				string(ref.Kind), ref.Signature); err != nil {
				return mapErr(fmt.Sprintf("applying request batch: deleting %s request", ref.Kind), err)
			}
		}
		for _, id := range b.RevokeGrants {
			if err := s.revokeGrant(ctx, tx, id, nil); err != nil {
				return fmt.Errorf("applying request batch: %w", err)
			}
		}
		for _, r := range b.Create {
			if err := s.createRequest(ctx, tx, r); err != nil {
				return fmt.Errorf("applying request batch: %w", err)
			}
		}
		return nil
	})
}
