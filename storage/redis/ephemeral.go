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

// Count returns key's current count, 0 when absent or expired.
func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	n, err := s.client.Get(ctx, s.keys.throttle(key)).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading throttle count: %w", err)
	}
	return n, nil
}

// Reset clears key's counter.
func (s *Store) Reset(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, s.keys.throttle(key)).Err(); err != nil {
		return fmt.Errorf("resetting throttle count: %w", err)
	}
	return nil
}
