package sql

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBackgroundCheckpointBoundsTheLog: the writer's own checkpoint starts
// only at writerAutoCheckpoint pages, so without the background checkpoint
// this test's writes (12.8 MB of payload) would all stay in the WAL; with it
// the log is copied back between bursts and its file is reused from the
// start, so it holds about one burst.
func TestBackgroundCheckpointBoundsTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s := openMigrated(t, path)
	defer s.Close()
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 8000) // two to three pages per record
	for burst := range 16 {
		for i := range 100 {
			r := groupReq(fmt.Sprintf("b%d-%d", burst, i), "g")
			r.Payload = payload
			if err := s.CreateRequest(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * checkpointEvery / 2)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	const unbounded = 1600 * 8000 // the data written, which an unchecked log would hold at least
	if fi.Size() > unbounded/2 {
		t.Errorf("WAL is %d bytes after writing %d: the background checkpoint did not keep it down", fi.Size(), unbounded)
	}
}
