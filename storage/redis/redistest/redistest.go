// Package redistest gives tests a Redis-backed storage.Ephemeral of their own
// on the server at storagetest.RedisURL().
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage/redis"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

// New opens a store under a fresh key prefix and deletes that prefix's keys
// when the test ends. When the server cannot be reached it calls
// storagetest.Unavailable (skip locally, fail with CI=true).
func New(t testing.TB) *redis.Store {
	t.Helper()
	prefix := NewPrefix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, redis.Config{
		URL:    storagetest.RedisURL(),
		Prefix: prefix,
		// Another package's test may flip the shared server's eviction policy
		// for an instant to test the refusal; that must not fail this one.
		AllowEvictionPolicy: true,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if errors.Is(err, redis.ErrUnreachable) {
		storagetest.Unavailable(t, "redis", err)
	}
	if err != nil {
		t.Fatalf("opening redis store: %v", err)
	}
	CleanupPrefix(t, prefix)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing redis store: %v", err)
		}
	})
	return s
}

// NewPrefix returns a fresh key prefix "gh-test-<random>:".
func NewPrefix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "gh-test-" + hex.EncodeToString(b) + ":"
}

// CleanupPrefix deletes the keys starting with prefix when the test ends.
func CleanupPrefix(t testing.TB, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, storagetest.RedisURL(), prefix); err != nil {
			t.Errorf("cleaning up redis prefix %s: %v", prefix, err)
		}
	})
}

// DeletePrefix deletes every key starting with prefix on the plain
// (redis:// or rediss://) server at url.
func DeletePrefix(ctx context.Context, url, prefix string) error {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("parsing redis url: %w", err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	keys, err := Keys(ctx, c, prefix)
	if err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("deleting keys: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// Keys lists every key starting with prefix.
func Keys(ctx context.Context, c goredis.Cmdable, prefix string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scanning keys: %w", err)
	}
	return keys, nil
}

func escapeGlob(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
