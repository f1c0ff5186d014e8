package sql

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// openMigrated opens the SQLite file at path and migrates it, so that the
// WAL and its shared-memory index exist beside it. The caller closes it.
func openMigrated(t *testing.T, path string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: "sqlite://" + path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	return s
}

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The database holds password hashes: a new file, and the -wal and -shm
// files SQLite makes beside it, are readable by their owner only.
func TestSQLiteNewFileIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	defer openMigrated(t, path).Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if got := modeOf(t, p); got != 0o600 {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), got, fs.FileMode(0o600))
		}
	}
}

// An existing database keeps the mode its operator gave it.
func TestSQLiteExistingFileKeepsItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	if err := openMigrated(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	defer openMigrated(t, path).Close()
	if got := modeOf(t, path); got != 0o640 {
		t.Errorf("existing file: mode %v, want %v kept", got, fs.FileMode(0o640))
	}
}

// A missing directory is still reported as the operator's mistake to fix.
func TestSQLiteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent", "gatehouse.db")
	_, err := Open(context.Background(), Config{URL: "sqlite://" + path})
	if err == nil {
		t.Fatal("Open in a missing directory: no error")
	}
	if _, serr := os.Stat(path); !os.IsNotExist(serr) {
		t.Errorf("Open in a missing directory left %s behind: %v", path, serr)
	}
}
