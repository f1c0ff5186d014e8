package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit for SQLite's token writes.
//
// SQLite has one writer, and most of a token write's cost is its commit:
// writing the changed pages to the WAL (a write system call per page) and the
// periodic checkpoint. On client_credentials at c=32 the commit path was
// about 30 % of the server's CPU and the writer, not the CPU, bounded the
// rate. Concurrent CreateRequest and ApplyRequests calls are therefore run
// by one goroutine in a shared transaction, each inside a SAVEPOINT of its
// own: a call that fails is rolled back to its savepoint alone, as if it had
// run by itself, and the others commit together. When the commit fails, every
// call in the group gets the error and nothing of the group is written.
//
// Calls run one after another inside the transaction, in arrival order, so
// each sees the writes of those before it, exactly as serial transactions
// would. A call whose context ends while queued is not run. A call that has
// started runs to its end under the group's own deadline: cancelling a
// statement inside a shared transaction (sqlite3_interrupt) would roll back
// the whole group.

const (
	// maxGroup bounds one transaction's calls, so a long queue is committed
	// in steps and no call waits behind an unbounded group.
	maxGroup = 64
	// groupTimeout bounds one group's transaction.
	groupTimeout = 30 * time.Second
)

var (
	errStoreClosed = errors.New("store is closed")
	// errWritePanicked: a call panicked; its group is rolled back whole,
	// since what the call left in the transaction is unknown, and the
	// writer goes on with the next group.
	errWritePanicked = errors.New("write panicked")
)

// call runs op's function, turning a panic into errWritePanicked: the
// writer goroutine must outlive any one call, or every later write would
// wait for ever.
func call(ctx context.Context, op *groupOp, tx *dbsql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errWritePanicked, r)
		}
	}()
	return op.fn(ctx, tx)
}

type groupOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *dbsql.Tx) error
	done chan error
}

type groupWriter struct {
	s    *Store
	ops  chan *groupOp
	mu   sync.RWMutex // held for reading by senders, for writing by close
	shut bool
	wg   sync.WaitGroup
	// groups counts the transactions run, for tests.
	groups atomic.Int64
}

func newGroupWriter(s *Store) *groupWriter {
	g := &groupWriter{s: s, ops: make(chan *groupOp, 4*maxGroup)}
	g.wg.Add(1)
	go g.loop()
	return g
}

// write runs fn in a group transaction and returns its outcome, or the
// group's commit error.
func (g *groupWriter) write(ctx context.Context, fn func(ctx context.Context, tx *dbsql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &groupOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.mu.RLock()
	if g.shut {
		g.mu.RUnlock()
		return errStoreClosed
	}
	g.ops <- op
	g.mu.RUnlock()
	// Once queued, the outcome is waited for whatever the context says: the
	// caller must not report a failure for a write that then commits.
	return <-op.done
}

// close stops the writer after the queued calls have run.
func (g *groupWriter) close() {
	g.mu.Lock()
	if !g.shut {
		g.shut = true
		close(g.ops)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *groupWriter) loop() {
	defer g.wg.Done()
	batch := make([]*groupOp, 0, maxGroup)
	for op := range g.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < maxGroup {
			select {
			case op, ok := <-g.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

// run executes one group and reports each call's outcome.
func (g *groupWriter) run(batch []*groupOp) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	g.groups.Add(1)
	errs := make([]error, len(batch))
	ran := make([]bool, len(batch))
	// Alone, a call needs no savepoint: its failure rolls back only itself.
	savepoints := len(batch) > 1
	err := g.s.tryTx(ctx, func(tx *dbsql.Tx) error {
		for i, op := range batch {
			if errs[i] = op.ctx.Err(); errs[i] != nil {
				continue
			}
			ran[i] = true
			if !savepoints {
				return call(ctx, op, tx)
			}
			if _, err := g.s.exec(ctx, tx, "SAVEPOINT g"); err != nil {
				return fmt.Errorf("group commit: %w", err)
			}
			if errs[i] = call(ctx, op, tx); errors.Is(errs[i], errWritePanicked) {
				return errs[i]
			} else if errs[i] != nil {
				if _, err := g.s.exec(ctx, tx, "ROLLBACK TO g"); err != nil {
					return fmt.Errorf("group commit: %w", err)
				}
			}
			if _, err := g.s.exec(ctx, tx, "RELEASE g"); err != nil {
				return fmt.Errorf("group commit: %w", err)
			}
		}
		return nil
	})
	if g.s.wStmts != nil {
		g.s.wStmts.preparePending(ctx) // the writer connection is free again (stmtcache.go)
	}
	for i, op := range batch {
		if err != nil && (ran[i] || errs[i] == nil) {
			// Nothing of the group was written: a call's own error, if it
			// had one, still described its part, but the transaction's
			// failure is what the caller must see.
			errs[i] = err
		}
		op.done <- errs[i]
	}
}

// write runs fn in a write transaction: grouped with concurrent writes on
// SQLite (see above), in a transaction of its own on PostgreSQL.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *dbsql.Tx) error) error {
	if s.group != nil {
		return s.group.write(ctx, fn)
	}
	return s.inTx(ctx, func(tx *dbsql.Tx) error { return fn(ctx, tx) })
}
