package sql

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func TestSQLitePath(t *testing.T) {
	for _, c := range []struct{ url, path, params string }{
		{"sqlite:///var/lib/gatehouse.db", "/var/lib/gatehouse.db", ""},
		{"sqlite://data/gatehouse.db", "data/gatehouse.db", ""},
		{"sqlite:data.db?_pragma=cache_size(-2000)", "data.db", "_pragma=cache_size(-2000)"},
		{"sqlite::memory:", ":memory:", ""},
		{"file:/tmp/x.db", "/tmp/x.db", ""},
		{"file::memory:", ":memory:", ""},
	} {
		p, q := sqlitePath(c.url)
		if p != c.path || q != c.params {
			t.Errorf("sqlitePath(%q) = %q, %q; want %q, %q", c.url, p, q, c.path, c.params)
		}
	}
}

func TestRebind(t *testing.T) {
	s := &Store{dialect: DialectPostgres}
	if got := s.rebind("a = ? AND b IN (?, ?)"); got != "a = $1 AND b IN ($2, $3)" {
		t.Errorf("rebind = %q", got)
	}
	s.dialect = DialectSQLite
	if got := s.rebind("a = ?"); got != "a = ?" {
		t.Errorf("SQLite rebind = %q", got)
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	if pw := passwordOf("postgres://u:p%40ss@h/db"); pw != "p%40ss" {
		t.Errorf("passwordOf = %q", pw)
	}
	err := redact(errors.New("bad url postgres://u:pw1@h"), "pw1")
	if err.Error() != "bad url postgres://u:xxxxx@h" {
		t.Errorf("redact = %q", err)
	}
}

func testSQLite(t *testing.T) *Store {
	t.Helper()
	st, err := Open(context.Background(), Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "gc.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *Store) countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Expired rows are invisible before GC removes them, and may be replaced.
func TestExpiredRowsInvisibleBeforeGC(t *testing.T) {
	ctx := context.Background()
	st := testSQLite(t)
	past := time.Now().Add(-time.Second)
	r := storage.Request{Kind: storage.KindRefreshToken, Signature: "x", RequestID: "g", Active: true, ExpiresAt: past}
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRequest(ctx, r.Kind, r.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetRequest of an expired record = %v; want ErrNotFound", err)
	}
	if err := st.DeactivateRequest(ctx, storage.RequestRef{Kind: r.Kind, Signature: r.Signature}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeactivateRequest of an expired record = %v; want ErrNotFound", err)
	}
	r.ExpiresAt = time.Now().Add(time.Hour)
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Errorf("CreateRequest over an expired record: %v", err)
	}
	if err := st.CreateRequest(ctx, r); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("CreateRequest over a live record = %v; want ErrConflict", err)
	}
	if err := st.UseOnce(ctx, "jti", past); err != nil {
		t.Fatal(err)
	}
	if err := st.UseOnce(ctx, "jti", time.Now().Add(time.Minute)); err != nil {
		t.Errorf("UseOnce of an expired id: %v", err)
	}
	if err := st.UseOnce(ctx, "jti", time.Now().Add(time.Minute)); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("UseOnce of a live id = %v; want ErrConflict", err)
	}
}

func TestRunGCStopsWithContext(t *testing.T) {
	st := testSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.RunGC(ctx, time.Millisecond); close(done) }()
	if err := st.UseOnce(context.Background(), "j", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	// Wait until a round has removed the expired row, then stop the loop.
	giveUp := time.Now().Add(30 * time.Second) // a hang guard, not a timing assertion
	for st.countRows(t, "replay_cache") != 0 {
		if time.Now().After(giveUp) {
			t.Fatal("RunGC never removed the expired row")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
