// Package sql is the SQL backend of Gatehouse storage, on SQLite (modernc.org/sqlite,
// pure Go) or PostgreSQL (pgx v5). One *Store holds every durable role and,
// when Redis is not configured, every short-lived role too.
//
// Both databases go through database/sql: goose needs a *sql.DB anyway, and
// one code path for both dialects (queries written with ? and rebound to $n on
// PostgreSQL) is worth more here than pgx's native protocol speed-up.
package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Compile-time checks that *Store holds every role.
var (
	_ storage.Durable   = (*Store)(nil)
	_ storage.Ephemeral = (*Store)(nil)
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Config configures Open.
type Config struct {
	// URL is sqlite:///abs/path.db, sqlite://rel/path.db, file:path.db,
	// sqlite::memory: or postgres:// / postgresql://.
	URL    string
	Logger *slog.Logger
	// MaxOpenConns bounds the PostgreSQL pool, or the SQLite reader pool (SQLite
	// always has a single writer connection). 0 picks a default.
	MaxOpenConns int
}

// Store is the SQL backend. It is safe for concurrent use.
type Store struct {
	dialect string
	// w takes every write. On SQLite it has exactly one connection and begins
	// transactions IMMEDIATE, so concurrent writers queue in the pool instead
	// of failing with SQLITE_BUSY; r is a separate pool of read-only
	// connections that WAL lets run beside the writer. On PostgreSQL and for
	// in-memory SQLite, r and w are the same pool.
	w, r *dbsql.DB
	// Prepared statements of the SQLite pools (stmtcache.go); nil on
	// PostgreSQL. rStmts is nil when r is w.
	wStmts, rStmts *stmtCache
	// group runs SQLite's token writes in shared transactions
	// (groupcommit.go); nil on PostgreSQL.
	group *groupWriter
	// checkpoint copies SQLite's WAL back into the database file in the
	// background (checkpoint.go); nil on PostgreSQL and in memory.
	checkpoint *checkpointer
	log        *slog.Logger
	now        func() time.Time
	// Dialect-specific SQL fragments.
	forUpdate string // row lock for read-modify-write; SQLite's IMMEDIATE transaction already locks
	collate   string // byte-order comparison of IDs, matching Go's string order
}

// Dialect reports "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging %s: %w", s.dialect, err)
	}
	return nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	var err error
	if s.checkpoint != nil {
		err = s.checkpoint.close()
	}
	if s.rStmts != nil {
		err = errors.Join(err, s.rStmts.close())
	}
	if s.wStmts != nil {
		err = errors.Join(err, s.wStmts.close())
	}
	err = errors.Join(err, s.w.Close())
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	if err != nil {
		return fmt.Errorf("closing %s: %w", s.dialect, err)
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (dbsql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*dbsql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *dbsql.Row
}

// rebind turns ? placeholders into PostgreSQL's $1, $2, ... No query of this
// package has a ? inside a literal.
func (s *Store) rebind(q string) string {
	if s.dialect != DialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	var res dbsql.Result
	var err error
	if st := s.stmt(ctx, q, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.ExecContext(ctx, s.rebind(query), args...)
	}
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("reading rows affected: %w", err)
	}
	return n, nil
}

func (s *Store) query(ctx context.Context, q querier, query string, args ...any) (*dbsql.Rows, error) {
	if st := s.stmt(ctx, q, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.QueryContext(ctx, s.rebind(query), args...)
}

// queryAll runs a query and scans every row with scan, wrapping any error
// with doing.
func queryAll[T any](ctx context.Context, s *Store, q querier, scan func(row interface{ Scan(...any) error }) (T, error),
	doing, query string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, q, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", doing, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	return out, nil
}

func (s *Store) queryRow(ctx context.Context, q querier, query string, args ...any) *dbsql.Row {
	if st := s.stmt(ctx, q, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.QueryRowContext(ctx, s.rebind(query), args...)
}

// inTx runs fn in a write transaction and commits it. An error from fn is
// returned as is (the contract of the Update* methods needs that). On
// PostgreSQL a deadlock or serialization failure reruns fn a few times.
func (s *Store) inTx(ctx context.Context, fn func(tx *dbsql.Tx) error) error {
	const attempts = 5
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if s.wStmts != nil {
			// The writer connection is free again (stmtcache.go).
			s.wStmts.preparePending(ctx)
		}
		if err == nil || attempt == attempts || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
		s.log.DebugContext(ctx, "retrying transaction", "attempt", attempt, "error", err)
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *dbsql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the original error matters more
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// isUniqueViolation reports a duplicate key on either database.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		c := liteErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// isRetryable reports PostgreSQL errors after which rerunning the transaction
// may succeed.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40P01" || pgErr.Code == "40001" // deadlock_detected, serialization_failure
	}
	return false
}

// mapErr turns driver errors into the storage sentinels, wrapped with what was
// being done.
func mapErr(doing string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dbsql.ErrNoRows):
		return fmt.Errorf("%s: %w", doing, storage.ErrNotFound)
	case isUniqueViolation(err):
		return fmt.Errorf("%s: %w: %w", doing, storage.ErrConflict, err)
	default:
		return fmt.Errorf("%s: %w", doing, err)
	}
}

// dbTime stores a time as unix microseconds UTC; the zero time is NULL.
func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// goTime is dbTime's inverse.
func goTime(n dbsql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// normTime is what a time looks like after a round trip through storage.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func pageLimit(p storage.Page) int {
	if p.Limit <= 0 {
		return storage.DefaultPageLimit
	}
	return p.Limit
}
