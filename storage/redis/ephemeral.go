package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// UseOnce records id until expiresAt with SET NX PXAT; ErrConflict when it
// is recorded already.
func (s *Store) UseOnce(ctx context.Context, id string, expiresAt time.Time) error {
	ok, err := setNX(ctx, s.client, s.keys.once(id), 1, expiresAt)
	if err != nil {
		return fmt.Errorf("recording single-use id: %w", err)
	}
	if !ok {
		return fmt.Errorf("recording single-use id: %w", storage.ErrConflict)
	}
	return nil
}

// Hit adds one to key's counter; the first hit starts a window that expires
// the counter.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	ms := max((window+time.Millisecond-1)/time.Millisecond, 1) // rounded up
	n, err := hitScript.Run(ctx, s.client, []string{s.keys.throttle(key)}, int64(ms)).Int64()
	if err != nil {
		return 0, fmt.Errorf("counting throttle hit: %w", err)
	}
	return n, nil
}

// Count returns the keys' current counts, 0 when absent or expired. The
// GETs go in one pipeline rather than one MGET: a sign-in's account and
// address keys live on different Cluster slots.
func (s *Store) Count(ctx context.Context, keys ...string) ([]int64, error) {
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, key := range keys {
			cmds[i] = p.Get(ctx, s.keys.throttle(key))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("reading throttle counts: %w", err)
	}
	out := make([]int64, len(keys))
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading throttle count: %w", err)
		}
		out[i] = n
	}
	return out, nil
}

// Reset clears the keys' counters: one pipeline of DELs, for the same reason
// as Count.
func (s *Store) Reset(ctx context.Context, keys ...string) error {
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, key := range keys {
			p.Del(ctx, s.keys.throttle(key))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resetting throttle counts: %w", err)
	}
	return nil
}
