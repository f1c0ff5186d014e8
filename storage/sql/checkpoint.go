package sql

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"sync"
	"time"
)

// Checkpoints off the write path.
//
// In WAL mode SQLite copies the log back into the database file
// (checkpoints) by default inside the commit that crosses 1,000 log pages,
// on the writer connection: the copy and its fsync then stall every write
// queued behind it (10 % of the server's CPU and most of the writer's idle
// waits on client_credentials at c=32). A connection of its own runs a
// PASSIVE checkpoint every checkpointEvery instead, which neither blocks nor
// waits for the writer or the readers. The writer keeps an automatic
// checkpoint at a much larger size as a safety net, should the background
// one fall behind or fail.
const (
	checkpointEvery = 250 * time.Millisecond
	// writerAutoCheckpoint is the writer's own threshold, in pages (4 KiB).
	writerAutoCheckpoint = 16000
)

type checkpointer struct {
	db   *dbsql.DB
	stop chan struct{}
	wg   sync.WaitGroup
}

// startCheckpointer opens a connection to path and checkpoints through it
// until close.
func (s *Store) startCheckpointer(ctx context.Context, path, params string) error {
	db, err := dbsql.Open("sqlite", path+"?"+params)
	if err != nil {
		return fmt.Errorf("opening SQLite checkpoint connection: %w", err)
	}
	oneConn(db)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("opening SQLite checkpoint connection: %w", err)
	}
	c := &checkpointer{db: db, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.loop(s)
	s.checkpoint = c
	return nil
}

func (c *checkpointer) loop(s *Store) {
	defer c.wg.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
		switch {
		case err != nil && !failing:
			// The writer's own checkpoint still bounds the log.
			s.log.Warn("SQLite background checkpoint failed", "error", err.Error())
			failing = true
		case err == nil && failing:
			s.log.Info("SQLite background checkpoint works again")
			failing = false
		}
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	c.wg.Wait()
	return c.db.Close()
}
