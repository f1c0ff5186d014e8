package sql

import (
	"context"
	"fmt"
	"time"
)

// defaultGCBatch is the batch size of RunGC and of GarbageCollect when given 0.
const defaultGCBatch = 1000

// expiring lists the tables of short-lived rows with their key columns. Rows
// whose expires_at is NULL never expire.
var expiring = []struct{ table, key string }{
	{"sessions", "id"},
	{"requests", "kind, signature"},
	{"replay_cache", "id"},
	{"throttle", "throttle_key"},
	{"consents", "subject, client_id"},
	{"registration_tokens", "hash"},
}

// GarbageCollect deletes rows that expired at or before now, at most batch
// rows per statement so that no single delete holds locks (or SQLite's one
// writer) for long. It returns how many rows it deleted. Reads already ignore
// expired rows; this only reclaims space.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = defaultGCBatch
	}
	cutoff := now.UnixMicro()
	var total int64
	for _, t := range expiring {
		// Row values "(a, b) IN (SELECT a, b ...)" work on both databases.
		q := fmt.Sprintf("DELETE FROM %[1]s WHERE (%[2]s) IN (SELECT %[2]s FROM %[1]s WHERE expires_at <= ? LIMIT ?)", t.table, t.key)
		for {
			n, err := s.exec(ctx, s.w, q, cutoff, batch)
			if err != nil {
				return total, fmt.Errorf("collecting expired %s: %w", t.table, err)
			}
			total += n
			if n < int64(batch) {
				break
			}
			if err := ctx.Err(); err != nil {
				return total, fmt.Errorf("collecting expired %s: %w", t.table, err)
			}
		}
	}
	return total, nil
}

// RunGC runs GarbageCollect every interval until ctx is done. Errors are
// logged, not fatal: the next round tries again.
func (s *Store) RunGC(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.GarbageCollect(ctx, s.now(), defaultGCBatch)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			s.log.WarnContext(ctx, "storage garbage collection failed", "dialect", s.dialect, "deleted", n, "error", err)
		case n > 0:
			s.log.InfoContext(ctx, "storage garbage collection", "dialect", s.dialect, "deleted", n)
		default:
			s.log.DebugContext(ctx, "storage garbage collection", "dialect", s.dialect, "deleted", n)
		}
	}
}
