package sql

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// UseOnce implements storage.ReplayCache. One statement decides: the insert
// wins, or it replaces an entry that has expired, or it changes nothing and
// the id was already used.
func (s *Store) UseOnce(ctx context.Context, id string, expiresAt time.Time) error {
	const doing = "recording single-use id"
	if expiresAt.IsZero() {
		return fmt.Errorf("%s: %w", doing, errNoExpiry)
	}
	n, err := s.exec(ctx, s.w, `INSERT INTO replay_cache (id, expires_at) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?`,
		id, expiresAt.UnixMicro(), s.now().UnixMicro())
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: already used: %w", doing, storage.ErrConflict)
	}
	return nil
}

// Hit implements storage.Throttle: one upsert that starts a new window when
// the stored one is over, and returns the new count.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	const doing = "counting throttle hit"
	if window <= 0 {
		return 0, fmt.Errorf("%s: window must be positive, got %s", doing, window)
	}
	now := s.now()
	nowMicro, end := now.UnixMicro(), now.Add(window).UnixMicro()
	var hits int64
	err := s.queryRow(ctx, s.w, `INSERT INTO throttle (throttle_key, hits, expires_at) VALUES (?, 1, ?)
		ON CONFLICT (throttle_key) DO UPDATE SET
		hits = CASE WHEN throttle.expires_at <= ? THEN 1 ELSE throttle.hits + 1 END,
		expires_at = CASE WHEN throttle.expires_at <= ? THEN ? ELSE throttle.expires_at END
		RETURNING hits`, key, end, nowMicro, nowMicro, end).Scan(&hits)
	if err != nil {
		return 0, mapErr(doing, err)
	}
	return hits, nil
}

// Count implements storage.Throttle: one query for all keys.
func (s *Store) Count(ctx context.Context, keys ...string) ([]int64, error) {
	const doing = "reading throttle counts"
	out := make([]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(keys)+1)
	args = append(args, s.now().UnixMicro())
	for _, k := range keys {
		args = append(args, k)
	}
	rows, err := s.query(ctx, s.r, "SELECT throttle_key, hits FROM throttle WHERE expires_at > ? AND throttle_key IN (?"+
		strings.Repeat(", ?", len(keys)-1)+")", args...)
	if err != nil {
		return nil, mapErr(doing, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key  string
			hits int64
		)
		if err := rows.Scan(&key, &hits); err != nil {
			return nil, mapErr(doing, err)
		}
		for i, k := range keys {
			if k == key {
				out[i] = hits
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(doing, err)
	}
	return out, nil
}

// Reset implements storage.Throttle: one statement for all keys.
func (s *Store) Reset(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	if _, err := s.exec(ctx, s.w, "DELETE FROM throttle WHERE throttle_key IN (?"+strings.Repeat(", ?", len(keys)-1)+")", args...); err != nil {
		return mapErr("resetting throttle", err)
	}
	return nil
}
