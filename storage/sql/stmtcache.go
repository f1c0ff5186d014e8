package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"sync"
)

// maxCachedStmts bounds the prepared statements kept per pool; the queries
// of this package are fixed strings, far fewer than this, so the bound only
// guards against a future query built with a variable shape.
const maxCachedStmts = 256

// stmtCache keeps the prepared statements of one SQLite pool. modernc's
// driver has no statement cache of its own, and preparing (parsing and
// planning) was about 14 % of an SSO sign-in's CPU on SQLite; PostgreSQL needs
// none (pgx caches statements per connection).
//
// The SQLite writer pool has a single connection: preparing on the pool while
// a transaction holds that connection would wait for ever, so a statement
// first seen inside a transaction runs unprepared and is prepared after the
// transaction ends (preparePending).
type stmtCache struct {
	db      *dbsql.DB
	mu      sync.RWMutex
	stmts   map[string]*dbsql.Stmt
	pending map[string]bool
}

func newStmtCache(db *dbsql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*dbsql.Stmt), pending: make(map[string]bool)}
}

func (c *stmtCache) lookup(query string) *dbsql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stmts[query]
}

// get returns the statement for query, preparing it on the pool when
// missing; nil when it cannot (the caller then runs the query unprepared,
// which reports any error in the query itself).
func (c *stmtCache) get(ctx context.Context, query string) *dbsql.Stmt {
	if st := c.lookup(query); st != nil {
		return st
	}
	c.mu.RLock()
	full := len(c.stmts) >= maxCachedStmts
	c.mu.RUnlock()
	if full {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	return c.keep(query, st)
}

// keep stores st unless another caller stored one first.
func (c *stmtCache) keep(query string, st *dbsql.Stmt) *dbsql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, query)
	if old := c.stmts[query]; old != nil {
		_ = st.Close() // a duplicate of old
		return old
	}
	if len(c.stmts) >= maxCachedStmts {
		_ = st.Close()
		return nil
	}
	c.stmts[query] = st
	return st
}

// inTx returns the statement for query bound to tx, or nil when it is not
// prepared yet; then it is noted for preparePending.
func (c *stmtCache) inTx(ctx context.Context, tx *dbsql.Tx, query string) *dbsql.Stmt {
	if st := c.lookup(query); st != nil {
		return tx.StmtContext(ctx, st)
	}
	c.mu.Lock()
	if len(c.stmts)+len(c.pending) < maxCachedStmts {
		c.pending[query] = true
	}
	c.mu.Unlock()
	return nil
}

// preparePending prepares the statements first seen inside a transaction;
// called when no transaction holds the connection.
func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.RLock()
	n := len(c.pending)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	queries := make([]string, 0, len(c.pending))
	for q := range c.pending {
		queries = append(queries, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range queries {
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.keep(q, st)
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.stmts {
		errs = append(errs, st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}

// stmt returns the cached prepared statement for query on q (a pool or a
// write transaction), or nil to run it unprepared.
func (s *Store) stmt(ctx context.Context, q querier, query string) *dbsql.Stmt {
	if s.wStmts == nil {
		return nil
	}
	switch v := q.(type) {
	case *dbsql.Tx:
		return s.wStmts.inTx(ctx, v, query)
	case *dbsql.DB:
		if v == s.w {
			return s.wStmts.get(ctx, query)
		}
		if v == s.r && s.rStmts != nil {
			return s.rStmts.get(ctx, query)
		}
	}
	return nil
}
