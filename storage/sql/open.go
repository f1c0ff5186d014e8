package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

const (
	defaultPostgresConns = 10
	defaultSQLiteReaders = 4
	// sqliteBusyTimeout makes a connection wait for another process's write lock
	// instead of failing at once with SQLITE_BUSY.
	sqliteBusyTimeout = 10 * time.Second
	// pingTimeout bounds Open's first contact when ctx has no deadline, so an
	// unroutable host fails clearly instead of hanging.
	pingTimeout = 10 * time.Second
)

// Open connects to the database named by cfg.URL and checks it answers. It
// does not migrate: call Migrate (or check SchemaCurrent) after.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := strings.TrimSpace(cfg.URL)
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return openPostgres(ctx, u, cfg.MaxOpenConns, log)
	case strings.HasPrefix(u, "sqlite:"), strings.HasPrefix(u, "file:"):
		return openSQLite(ctx, u, cfg.MaxOpenConns, log)
	case u == "":
		return nil, errors.New("opening database: database_url is empty; use sqlite:///path/to/gatehouse.db or postgres://user@host:5432/db")
	default:
		return nil, errors.New("opening database: database_url must start with sqlite:, file:, postgres:// or postgresql://")
	}
}

func openPostgres(ctx context.Context, u string, maxConns int, log *slog.Logger) (*Store, error) {
	cc, err := pgx.ParseConfig(u)
	if err != nil {
		// pgx's parse errors may quote the URL; never echo a password.
		pw := passwordOf(u)
		dec, _ := url.PathUnescape(pw)
		return nil, fmt.Errorf("parsing PostgreSQL database_url: %w", redact(err, pw, dec))
	}
	hostport := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	db := stdlib.OpenDB(*cc)
	if maxConns <= 0 {
		maxConns = defaultPostgresConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The server answered: it is up but refuses this user or database.
			return nil, fmt.Errorf("PostgreSQL at %s refused the connection (database %q, user %q): %w — check the user, password and database name in database_url",
				hostport, cc.Database, cc.User, redact(err, cc.Password))
		}
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s (database %q, user %q): %w — is it running and accepting connections? check database_url",
			hostport, cc.Database, cc.User, redact(err, cc.Password))
	}
	s := &Store{
		dialect: DialectPostgres,
		w:       db,
		r:       db,
		log:     log,
		now:     time.Now,
		// Row lock for read-modify-write; the C collation orders IDs by bytes
		// whatever the database's default collation.
		forUpdate: " FOR UPDATE",
		collate:   ` COLLATE "C"`,
	}
	log.InfoContext(ctx, "connected to database", "dialect", s.dialect, "address", hostport, "database", cc.Database)
	return s, nil
}

// sqlitePath extracts the file path from sqlite:///abs, sqlite://rel,
// sqlite:rel, file:path and their :memory: forms. Query parameters are passed
// to the driver.
func sqlitePath(u string) (path, params string) {
	switch {
	case strings.HasPrefix(u, "sqlite://"):
		u = strings.TrimPrefix(u, "sqlite://")
	case strings.HasPrefix(u, "sqlite:"):
		u = strings.TrimPrefix(u, "sqlite:")
	case strings.HasPrefix(u, "file:"):
		u = strings.TrimPrefix(u, "file:")
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i], u[i+1:]
	}
	return u, ""
}

func openSQLite(ctx context.Context, u string, maxReaders int, log *slog.Logger) (*Store, error) {
	path, extra := sqlitePath(u)
	if path == "" {
		return nil, errors.New("opening SQLite: database_url has no file path; use sqlite:///abs/path.db or sqlite://rel/path.db")
	}
	busy := "_pragma=busy_timeout(" + strconv.Itoa(int(sqliteBusyTimeout/time.Millisecond)) + ")"
	common := busy + "&_pragma=foreign_keys(1)"
	withExtra := func(q string) string {
		if extra != "" {
			return q + "&" + extra
		}
		return q
	}
	s := &Store{dialect: DialectSQLite, log: log, now: time.Now}

	if path == ":memory:" {
		// Every connection to :memory: is a new, empty database, so the store
		// keeps exactly one connection forever, for reads and writes.
		db, err := dbsql.Open("sqlite", ":memory:?"+withExtra(common+"&_txlock=immediate"))
		if err != nil {
			return nil, fmt.Errorf("opening in-memory SQLite: %w", err)
		}
		oneConn(db)
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("opening in-memory SQLite: %w", err)
		}
		s.w, s.r = db, db
		s.wStmts = newStmtCache(db)
		s.group = newGroupWriter(s)
		return s, nil
	}

	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("cannot create SQLite database %s: %w — does its directory exist and is it writable? check database_url", path, err)
	}
	w, err := dbsql.Open("sqlite", path+"?"+withExtra(common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"+
		"&_pragma=wal_autocheckpoint("+strconv.Itoa(writerAutoCheckpoint)+")"))
	if err != nil {
		return nil, fmt.Errorf("opening SQLite %s: %w", path, err)
	}
	oneConn(w)
	// The writer connects first so the file exists and is in WAL mode before
	// any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("cannot open SQLite database %s: %w — does its directory exist and is it writable? check database_url", path, err)
	}
	r, err := dbsql.Open("sqlite", path+"?"+withExtra(common+"&_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("opening SQLite %s: %w", path, err)
	}
	if maxReaders <= 0 {
		maxReaders = defaultSQLiteReaders
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("opening SQLite %s for reading: %w", path, err)
	}
	if err := s.startCheckpointer(ctx, path, withExtra(common)); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, err
	}
	s.w, s.r = w, r
	s.wStmts, s.rStmts = newStmtCache(w), newStmtCache(r)
	s.group = newGroupWriter(s)
	log.InfoContext(ctx, "connected to database", "dialect", s.dialect, "path", path)
	return s, nil
}

// createPrivate creates the database file empty (which SQLite takes for an
// empty database) and readable by its owner only, when it does not exist: it
// holds password hashes and SQLite would create it 0644, less the umask. The
// Unix VFS gives the -wal and -shm files the main file's mode. An existing
// file's mode is the operator's and is left alone.
func createPrivate(path string) error {
	if strings.HasPrefix(path, "file:") {
		// An SQLite URI filename (sqlite:file:...): the driver decodes it, so
		// path is not the file's name; SQLite creates it.
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// passwordOf digs the password out of a postgres URL or key=value string
// without failing, so that it can be scrubbed from error messages.
func passwordOf(u string) string {
	rest, ok := strings.CutPrefix(u, "postgres://")
	if !ok {
		rest, _ = strings.CutPrefix(u, "postgresql://")
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	userinfo := rest[:at]
	if i := strings.IndexByte(userinfo, ':'); i >= 0 {
		return userinfo[i+1:]
	}
	return ""
}

// redactedError keeps the original error for errors.Is/As but prints it with
// the password replaced.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, passwords ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, pw := range passwords {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// oneConn makes db a pool of exactly one connection, kept open for ever:
// SQLite's writer, an in-memory database, the checkpoint connection.
func oneConn(db *dbsql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}
