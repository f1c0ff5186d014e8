package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func groupReq(sig, grant string) storage.Request {
	now := time.Now()
	return storage.Request{Kind: storage.KindAccessToken, Signature: sig, RequestID: grant, ClientID: "c",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte(`{}`)}
}

// holdWriter takes SQLite's one writer connection until the returned
// function is called, so that writes queue up behind it.
func holdWriter(t *testing.T, s *Store) func() {
	t.Helper()
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return func() { _ = tx.Rollback() }
}

// waitQueued waits until n writes are queued or the group writer holds them.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.group.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(s.group.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitSharesTransactions: writes that queue behind a busy writer
// commit in one transaction, not one each, and each keeps its own outcome:
// a duplicate signature is refused (ErrConflict) and a batch whose condition
// fails writes nothing, while the rest of their group commits.
func TestGroupCommitSharesTransactions(t *testing.T) {
	s := openMigrated(t, filepath.Join(t.TempDir(), "group.db"))
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateRequest(ctx, groupReq("used", "g0")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: storage.KindAccessToken, Signature: "used"}); err != nil {
		t.Fatal(err)
	}
	before := s.group.groups.Load()

	release := holdWriter(t, s)
	const n = 20
	errs := make([]error, n+2)
	var wg sync.WaitGroup
	// The first write is taken by the group writer, which then waits for the
	// connection; the others queue.
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = s.CreateRequest(ctx, groupReq("first", "g1")) }()
	waitQueued(t, s, 0)
	time.Sleep(20 * time.Millisecond)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.CreateRequest(ctx, groupReq(fmt.Sprint("s", i), "g1")) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); errs[n] = s.CreateRequest(ctx, groupReq("s1", "g2")) }() // a duplicate of s1
	go func() {
		defer wg.Done()
		errs[n+1] = s.ApplyRequests(ctx, storage.RequestBatch{
			Deactivate: []storage.RequestRef{{Kind: storage.KindAccessToken, Signature: "used"}},
			Create:     []storage.Request{groupReq("never", "g0")},
		})
	}()
	waitQueued(t, s, n+1)
	release()
	wg.Wait()

	conflicts := 0
	for i, err := range errs[:n+1] {
		switch {
		case errors.Is(err, storage.ErrConflict):
			conflicts++
		case err != nil:
			t.Errorf("write %d: %v", i, err)
		}
	}
	if conflicts != 1 {
		t.Errorf("%d writes of s1 refused, want exactly one", conflicts)
	}
	if !errors.Is(errs[n+1], storage.ErrInactive) {
		t.Errorf("batch on an inactive record: %v, want ErrInactive", errs[n+1])
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "never"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused batch's creation was written: %v", err)
	}
	for i := 1; i < n; i++ {
		if _, err := s.GetRequest(ctx, storage.KindAccessToken, fmt.Sprint("s", i)); err != nil {
			t.Errorf("s%d: %v", i, err)
		}
	}
	if g := s.group.groups.Load() - before; g > 3 {
		t.Errorf("%d queued writes took %d transactions, want them grouped (at most 3)", n+2, g)
	}
}

// TestGroupCommitCancelledWhileQueued: a write whose context ends before its
// turn is not run.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	s := openMigrated(t, filepath.Join(t.TempDir(), "group.db"))
	defer s.Close()
	release := holdWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var first, second error
	wg.Add(1)
	go func() { defer wg.Done(); first = s.CreateRequest(context.Background(), groupReq("a", "g")) }()
	time.Sleep(20 * time.Millisecond)
	wg.Add(1)
	go func() { defer wg.Done(); second = s.CreateRequest(ctx, groupReq("b", "g")) }()
	waitQueued(t, s, 1)
	cancel()
	release()
	wg.Wait()
	if first != nil || !errors.Is(second, context.Canceled) {
		t.Fatalf("first %v, second %v: want nil and context.Canceled", first, second)
	}
	if _, err := s.GetRequest(context.Background(), storage.KindAccessToken, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the cancelled write was run: %v", err)
	}
}

// TestGroupCommitClose: writes after Close fail; Close waits for queued ones.
func TestGroupCommitClose(t *testing.T) {
	s := openMigrated(t, filepath.Join(t.TempDir(), "group.db"))
	if err := s.CreateRequest(context.Background(), groupReq("a", "g")); err != nil {
		t.Fatal(err)
	}
	s.group.close()
	if err := s.CreateRequest(context.Background(), groupReq("b", "g")); !errors.Is(err, errStoreClosed) {
		t.Errorf("write after close: %v", err)
	}
	_ = s.Close()
}

// TestGroupCommitSurvivesPanic: a call that panics fails its group with an
// error, and the writer goes on serving later writes.
func TestGroupCommitSurvivesPanic(t *testing.T) {
	s := openMigrated(t, filepath.Join(t.TempDir(), "group.db"))
	defer s.Close()
	ctx := context.Background()
	err := s.group.write(ctx, func(ctx context.Context, tx *dbsql.Tx) error {
		if err := s.createRequest(ctx, tx, groupReq("half", "g")); err != nil {
			return err
		}
		panic("boom")
	})
	if !errors.Is(err, errWritePanicked) {
		t.Fatalf("panicking write: %v, want errWritePanicked", err)
	}
	if _, err := s.GetRequest(ctx, storage.KindAccessToken, "half"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the panicking write's record was kept: %v", err)
	}
	if err := s.CreateRequest(ctx, groupReq("after", "g")); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
}
