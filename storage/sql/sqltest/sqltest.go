// Package sqltest gives tests of other packages a fresh, migrated SQL store.
package sqltest

import (
	"context"
	"crypto/rand"
	dbsql "database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	sqlstore "github.com/gatehouse-idp/gatehouse/storage/sql"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

// NewSQLite returns a migrated store on a new SQLite file in t.TempDir(),
// closed when the test ends.
func NewSQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatalf("opening SQLite store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrating SQLite store: %v", err)
	}
	return st
}

// NewPostgres returns a migrated store on a new database of the server at
// storagetest.PostgresURL(), dropped when the test ends. It calls
// storagetest.Unavailable when the server cannot be reached.
func NewPostgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, _ := NewPostgresDatabase(t)
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrating PostgreSQL store: %v", err)
	}
	return st
}

// NewPostgresDatabase is NewPostgres without the migration: it returns the
// store on a new empty database and that database's URL.
func NewPostgresDatabase(t testing.TB) (*sqlstore.Store, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminURL := storagetest.PostgresURL()
	admin, err := dbsql.Open("pgx", adminURL)
	if err != nil {
		t.Fatalf("opening PostgreSQL admin connection: %v", err)
	}
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		storagetest.Unavailable(t, "PostgreSQL", err)
	}
	name := "gh_test_" + randomHex(8)
	// The name is ours and made of [a-z0-9_], so quoting it is enough.
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		_ = admin.Close()
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parsing PostgreSQL test URL: %v", err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	st, err := sqlstore.Open(ctx, sqlstore.Config{URL: dbURL, MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(func() { _ = st.Close() })
	return st, dbURL
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b)
}
