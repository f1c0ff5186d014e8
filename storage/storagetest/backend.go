package storagetest

import (
	"os"
	"testing"
)

// Default addresses of the real servers the backend tests use. Override them
// with GATEHOUSE_TEST_POSTGRES_URL and GATEHOUSE_TEST_REDIS_URL. Redis tests
// use database 9 so that a local server's own data (a dev or load-test run in
// database 0) neither mixes with theirs nor slows their prefix scans.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/9"
)

// PostgresURL is the administrative URL of the PostgreSQL server tests use;
// each test creates its own database there.
func PostgresURL() string { return envOr("GATEHOUSE_TEST_POSTGRES_URL", DefaultPostgresURL) }

// RedisURL is the URL of the Redis server tests use; each test uses its own key prefix.
func RedisURL() string { return envOr("GATEHOUSE_TEST_REDIS_URL", DefaultRedisURL) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Unavailable handles a backend server that cannot be reached: with CI=true the
// test fails, since CI must run every backend; elsewhere it skips, loudly.
func Unavailable(t testing.TB, backend string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required when CI=true but unavailable: %v", backend, err)
	}
	t.Logf("!!!!!!!! SKIPPING %s TESTS: server unavailable (%v); start it or set CI=true to make this fatal", backend, err)
	t.Skipf("%s unavailable: %v", backend, err)
}
