package sql

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/gatehouse-idp/gatehouse/migrations"
)

// migrationTable records applied migrations (goose's version table).
const migrationTable = "schema_migrations"

// migrationLockID is the PostgreSQL advisory lock key that serialises
// replicas migrating at once ("gatehous" in ASCII). Advisory locks are
// scoped to one database, so other databases on the server are not affected.
const migrationLockID int64 = 0x67617465686f7573

// MigrationState is one migration and whether the database has it.
type MigrationState struct {
	Version   int64
	Name      string // the file name without number and extension, e.g. "init"
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// provider builds a goose provider over the embedded migrations. It is built
// per call: goose caches "version table exists" per provider, even when the
// first check failed.
func (s *Store) provider() (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{
		goose.WithTableName(migrationTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.log),
	}
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		opts = append(opts, goose.WithSessionLocker(pgAdvisoryLocker{id: migrationLockID}))
	}
	// On SQLite the single writer connection already serialises migrations
	// within a process.
	p, err := goose.NewProvider(dialect, s.w, migrations.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration, forward only. Several replicas may
// call it at once on PostgreSQL: an advisory lock makes them take turns, and
// the later ones find nothing left to do.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating %s schema: %w", s.dialect, err)
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "applied migration", "dialect", s.dialect, "version", r.Source.Version,
			"file", path.Base(r.Source.Path), "duration_ms", r.Duration.Milliseconds())
	}
	s.log.DebugContext(ctx, "database schema is current", "dialect", s.dialect, "applied_now", len(results))
	return nil
}

// MigrationStatus lists every known migration, in version order, with whether
// it is applied.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	p, err := s.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(st))
	for _, m := range st {
		ms := MigrationState{
			Version: m.Source.Version,
			Name:    migrationName(m.Source.Path),
			Applied: m.State == goose.StateApplied,
		}
		if ms.Applied {
			ms.AppliedAt = normTime(m.AppliedAt)
		}
		out = append(out, ms)
	}
	return out, nil
}

// SchemaCurrent reports whether every migration is applied. Like every goose
// read it creates the (empty) migration table if it is missing.
func (s *Store) SchemaCurrent(ctx context.Context) (bool, error) {
	p, err := s.provider()
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for pending migrations: %w", err)
	}
	return !pending, nil
}

// migrationName turns "0001_init.sql" into "init".
func migrationName(p string) string {
	name := strings.TrimSuffix(path.Base(p), ".sql")
	if _, rest, ok := strings.Cut(name, "_"); ok {
		return rest
	}
	return name
}

// pgAdvisoryLocker is a goose session locker that waits in the server for
// the lock (pg_advisory_lock) rather than polling for it as goose's own does,
// so a waiting replica starts the moment the first one is done.
type pgAdvisoryLocker struct{ id int64 }

func (l pgAdvisoryLocker) SessionLock(ctx context.Context, conn *dbsql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("taking migration lock: %w", err)
	}
	return nil
}

func (l pgAdvisoryLocker) SessionUnlock(ctx context.Context, conn *dbsql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&released); err != nil {
		return fmt.Errorf("releasing migration lock: %w", err)
	}
	if !released {
		return fmt.Errorf("releasing migration lock: lock %d was not held", l.id)
	}
	return nil
}

var _ lock.SessionLocker = pgAdvisoryLocker{}
