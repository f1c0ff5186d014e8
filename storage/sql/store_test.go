package sql_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/migrations"
	"github.com/gatehouse-idp/gatehouse/storage"
	sqlstore "github.com/gatehouse-idp/gatehouse/storage/sql"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

// backends runs f against a fresh migrated store of each dialect.
func backends(t *testing.T, f func(t *testing.T, st *sqlstore.Store)) {
	t.Run("SQLite", func(t *testing.T) { f(t, sqltest.NewSQLite(t)) })
	t.Run("Postgres", func(t *testing.T) { f(t, sqltest.NewPostgres(t)) })
}

func TestMigrationNumbersAreContiguous(t *testing.T) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no migrations embedded")
	}
	re := regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)
	for i, n := range names { // fs.Glob returns names sorted
		m := re.FindStringSubmatch(n)
		if m == nil {
			t.Fatalf("migration %q is not named NNNN_description.sql", n)
		}
		v, _ := strconv.Atoi(m[1])
		if v != i+1 {
			t.Fatalf("migration %q has number %d, want %d (numbers must be contiguous from 1)", n, v, i+1)
		}
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "-- +goose Up") {
			t.Errorf("migration %q lacks its -- +goose Up annotation", n)
		}
		if strings.Contains(string(body), "-- +goose Down") {
			t.Errorf("migration %q has a Down section; migrations are forward-only", n)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, st *sqlstore.Store) {
		current, err := st.SchemaCurrent(ctx)
		if err != nil {
			t.Fatalf("SchemaCurrent before Migrate: %v", err)
		}
		if current {
			t.Fatal("SchemaCurrent = true before Migrate")
		}
		status, err := st.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("MigrationStatus: %v", err)
		}
		for _, m := range status {
			if m.Applied {
				t.Errorf("migration %d applied before Migrate", m.Version)
			}
		}
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if err := st.Migrate(ctx); err != nil { // a second run is a no-op
			t.Fatalf("second Migrate: %v", err)
		}
		current, err = st.SchemaCurrent(ctx)
		if err != nil || !current {
			t.Fatalf("SchemaCurrent after Migrate = %v, %v; want true, nil", current, err)
		}
		status, err = st.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("MigrationStatus: %v", err)
		}
		names, _ := fs.Glob(migrations.FS, "*.sql")
		if len(status) != len(names) {
			t.Fatalf("MigrationStatus lists %d migrations, %d are embedded", len(status), len(names))
		}
		for i, m := range status {
			if m.Version != int64(i+1) || !m.Applied || m.AppliedAt.IsZero() || m.Name == "" {
				t.Errorf("migration status %+v: want version %d applied with a time and a name", m, i+1)
			}
		}
		if status[0].Name != "init" {
			t.Errorf("first migration name = %q, want init", status[0].Name)
		}
		// The schema works: a round trip through a table of every migration's kind.
		if err := st.CreateUser(ctx, storage.User{ID: "u1", Username: "alice"}); err != nil {
			t.Fatalf("CreateUser after Migrate: %v", err)
		}
	}
	t.Run("SQLite", func(t *testing.T) {
		st, err := sqlstore.Open(ctx, sqlstore.Config{URL: "sqlite://" + t.TempDir() + "/m.db"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
	t.Run("SQLiteMemory", func(t *testing.T) {
		st, err := sqlstore.Open(ctx, sqlstore.Config{URL: "sqlite::memory:"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
	t.Run("Postgres", func(t *testing.T) {
		st, _ := sqltest.NewPostgresDatabase(t)
		check(t, st)
	})
}

// Several replicas starting at once on one fresh database all succeed: the
// advisory lock makes them take turns.
func TestConcurrentMigratePostgres(t *testing.T) {
	ctx := context.Background()
	first, url := sqltest.NewPostgresDatabase(t)
	stores := []*sqlstore.Store{first}
	for range 3 {
		st, err := sqlstore.Open(ctx, sqlstore.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		stores = append(stores, st)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, st := range stores {
		wg.Go(func() { errs[i] = st.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Migrate: %v", i, err)
		}
	}
	for i, st := range stores {
		if ok, err := st.SchemaCurrent(ctx); err != nil || !ok {
			t.Errorf("replica %d: SchemaCurrent = %v, %v", i, ok, err)
		}
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	ctx := context.Background()
	const password = "hunter2-s3cret"
	// Port 1 on loopback refuses connections at once.
	_, err := sqlstore.Open(ctx, sqlstore.Config{URL: "postgres://gate:" + password + "@127.0.0.1:1/gatehouse?sslmode=disable"})
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"cannot reach PostgreSQL at 127.0.0.1:1", "is it running", "check database_url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, password) {
		t.Errorf("error %q shows the password", msg)
	}

	_, err = sqlstore.Open(ctx, sqlstore.Config{URL: "postgres://gate:" + password + "@127.0.0.1:notaport/gatehouse"})
	if err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error %q shows the password", err)
	}
}

// A server that answers but refuses the database gets its own advice.
func TestOpenRefusedPostgres(t *testing.T) {
	ctx := context.Background()
	sqltest.NewPostgresDatabase(t) // skips (or fails in CI) when the server is down
	u, err := url.Parse(storagetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-s3cret"
	u.User = url.UserPassword(u.User.Username(), password)
	u.Path = "/gh_no_such_database"
	_, err = sqlstore.Open(ctx, sqlstore.Config{URL: u.String()})
	if err == nil {
		t.Fatal("Open of a missing database succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"refused the connection", "gh_no_such_database", "check the user, password and database name in database_url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, password) {
		t.Errorf("error %q shows the password", msg)
	}
}

// Two stores on one file (two processes, in production) write at once
// without SQLITE_BUSY: busy_timeout and IMMEDIATE transactions make them wait.
func TestSQLiteTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := "sqlite://" + t.TempDir() + "/shared.db"
	var stores []*sqlstore.Store
	for range 2 {
		st, err := sqlstore.Open(ctx, sqlstore.Config{URL: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
	}
	if err := stores[0].CreateClient(ctx, storage.Client{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			st := stores[i%2]
			_, err := st.UpdateClient(ctx, "c", func(c storage.Client) (storage.Client, error) {
				c.Contacts = append(c.Contacts, strconv.Itoa(i))
				return c, nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := stores[1].GetClient(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Contacts) != 50 {
		t.Errorf("client has %d contacts, want 50: an update was lost", len(c.Contacts))
	}
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	for _, u := range []string{"", "mysql://x", "sqlite://"} {
		if st, err := sqlstore.Open(context.Background(), sqlstore.Config{URL: u}); err == nil {
			st.Close()
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestDialect(t *testing.T) {
	if d := sqltest.NewSQLite(t).Dialect(); d != "sqlite" {
		t.Errorf("SQLite dialect = %q", d)
	}
	if d := sqltest.NewPostgres(t).Dialect(); d != "postgres" {
		t.Errorf("Postgres dialect = %q", d)
	}
}

// 50 writers at once on one SQLite file must all succeed (no SQLITE_BUSY).
func TestConcurrentWriters(t *testing.T) {
	backends(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 50 {
			wg.Go(func() {
				id := fmt.Sprintf("u%02d", i)
				if err := st.CreateUser(ctx, storage.User{ID: id, Username: id}); err != nil {
					errs <- err
				}
				if _, err := st.Hit(ctx, "login:alice", time.Minute); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n, err := st.Count(ctx, "login:alice"); err != nil || n[0] != 50 {
			t.Errorf("Count = %v, %v; want 50", n, err)
		}
		users, err := st.ListUsers(ctx, storage.Page{})
		if err != nil || len(users) != 50 {
			t.Errorf("ListUsers = %d users, %v; want 50", len(users), err)
		}
	})
}

// RFC 6749 §4.1.2: an authorization code is used once; under concurrency
// exactly one DeactivateRequest wins.
func TestDeactivateExactlyOnce(t *testing.T) {
	backends(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		now := time.Now()
		code := storage.Request{Kind: storage.KindAuthorizeCode, Signature: "sig", RequestID: "g1", Active: true,
			RequestedAt: now, ExpiresAt: now.Add(time.Minute), Payload: []byte{0xff, 0x00, 0xfe}}
		if err := st.CreateRequest(ctx, code); err != nil {
			t.Fatal(err)
		}
		ref := storage.RequestRef{Kind: code.Kind, Signature: code.Signature}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, inactive := 0, 0
		for range 50 {
			wg.Go(func() {
				err := st.DeactivateRequest(ctx, ref)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, storage.ErrInactive):
					inactive++
				default:
					t.Errorf("DeactivateRequest: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || inactive != 49 {
			t.Errorf("wins=%d inactive=%d; want 1 and 49", wins, inactive)
		}
		err := st.DeactivateRequest(ctx, storage.RequestRef{Kind: code.Kind, Signature: "missing"})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Deactivate of a missing record = %v; want ErrNotFound", err)
		}
		// A failed condition rolls the whole batch back.
		err = st.ApplyRequests(ctx, storage.RequestBatch{
			Deactivate: []storage.RequestRef{ref},
			Create: []storage.Request{{Kind: storage.KindAccessToken, Signature: "at", RequestID: "g1",
				ExpiresAt: now.Add(time.Minute)}},
			RevokeGrants: []string{"g1"},
		})
		if !errors.Is(err, storage.ErrInactive) {
			t.Fatalf("ApplyRequests on a used code = %v; want ErrInactive", err)
		}
		if _, err := st.GetRequest(ctx, storage.KindAccessToken, "at"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("batch create applied despite the failed condition: %v", err)
		}
		got, err := st.GetRequest(ctx, code.Kind, code.Signature)
		if err != nil {
			t.Fatalf("batch revoke applied despite the failed condition: %v", err)
		}
		if got.Active || string(got.Payload) != string(code.Payload) {
			t.Errorf("got %+v; want inactive with the payload kept", got)
		}
	})
}
