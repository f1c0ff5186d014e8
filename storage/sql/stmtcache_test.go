package sql

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func openTestSQLite(t *testing.T, url string) *Store {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *stmtCache) size() (stmts, pending int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.stmts), len(c.pending)
}

func testRequest(kind storage.RequestKind, sig, grant string) storage.Request {
	now := time.Now()
	return storage.Request{Kind: kind, Signature: sig, RequestID: grant, ClientID: "c", Active: true,
		RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte(`{}`)}
}

// TestStmtCache: statements are prepared once and reused, including those
// first run inside a write transaction on the single writer connection
// (prepared after it, not during it, which would wait for ever), and
// concurrent readers and writers share them.
func TestStmtCache(t *testing.T) {
	for name, url := range map[string]string{
		"file":   "sqlite://" + filepath.Join(t.TempDir(), "stmt.db"),
		"memory": "sqlite::memory:",
	} {
		t.Run(name, func(t *testing.T) {
			st := openTestSQLite(t, url)
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 4 {
				wg.Go(func() {
					for i := range 10 {
						grant := fmt.Sprintf("grant-%d-%d", g, i)
						code := testRequest(storage.KindAuthorizeCode, grant+"-code", grant)
						if err := st.CreateRequest(ctx, code); err != nil {
							errs <- err
							return
						}
						b := storage.RequestBatch{
							Deactivate: []storage.RequestRef{{Kind: code.Kind, Signature: code.Signature, RequestID: grant}},
							Create:     []storage.Request{testRequest(storage.KindAccessToken, grant+"-at", grant)},
							Delete:     []storage.RequestRef{{Kind: storage.KindPKCE, Signature: grant + "-pkce", RequestID: grant}},
						}
						if err := st.ApplyRequests(ctx, b); err != nil {
							errs <- err
							return
						}
						// Exactly once still holds with prepared statements.
						if err := st.ApplyRequests(ctx, b); !errors.Is(err, storage.ErrInactive) {
							errs <- fmt.Errorf("second batch on %s: %v, want ErrInactive", grant, err)
							return
						}
						got, err := st.GetRequest(ctx, storage.KindAccessToken, grant+"-at")
						if err != nil || got.RequestID != grant {
							errs <- fmt.Errorf("reading %s access token: %+v, %v", grant, got, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			w, pending := st.wStmts.size()
			if w == 0 || pending != 0 {
				t.Errorf("writer statements: %d prepared, %d pending; want some prepared, none pending", w, pending)
			}
			if st.rStmts != nil {
				if r, _ := st.rStmts.size(); r == 0 {
					t.Error("no reader statement prepared")
				}
			}
		})
	}
}

// TestStmtCacheBound: past maxCachedStmts distinct queries, the rest run
// unprepared and still answer.
func TestStmtCacheBound(t *testing.T) {
	st := openTestSQLite(t, "sqlite://"+filepath.Join(t.TempDir(), "bound.db"))
	ctx := context.Background()
	for i := range maxCachedStmts + 10 {
		var n int
		if err := st.queryRow(ctx, st.r, fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if n, _ := st.rStmts.size(); n != maxCachedStmts {
		t.Errorf("%d statements kept, want %d", n, maxCachedStmts)
	}
}
