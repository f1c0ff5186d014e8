package logbuf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records every write it is given, as the file or pipe under the
// logger would see them.
type sink struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func (s *sink) all() string { return strings.Join(s.snapshot(), "") }

// never is an interval no test waits for: what a test sees written was
// written by a flush it caused, not by the timer.
const never = time.Hour

func TestLinesAreBatchedIntoOneWrite(t *testing.T) {
	var out sink
	w := New(&out, never, 0)
	defer w.Close()
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("%d writes before any flush, want 0 (lines must be buffered)", len(got))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := out.snapshot()
	if len(got) != 1 {
		t.Fatalf("flush made %d writes, want 1", len(got))
	}
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got[0] != want.String() {
		t.Fatalf("flushed %q, want the 100 lines in order", got[0])
	}
}

func TestTimerWritesBufferedLines(t *testing.T) {
	var out sink
	w := New(&out, time.Millisecond, 0)
	defer w.Close()
	fmt.Fprintln(w, "first")
	// Bounded wait for the flusher; how long it takes is not asserted.
	for deadline := time.Now().Add(time.Minute); out.all() != "first\n"; {
		if time.Now().After(deadline) {
			t.Fatalf("the flusher never wrote the line; written: %q", out.all())
		}
		time.Sleep(time.Millisecond)
	}
	// A second batch after the buffer emptied wakes the flusher again.
	fmt.Fprintln(w, "second")
	for deadline := time.Now().Add(time.Minute); out.all() != "first\nsecond\n"; {
		if time.Now().After(deadline) {
			t.Fatalf("the flusher never wrote the second batch; written: %q", out.all())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFullBufferGoesOutFirstAndLargeLinesDirectly(t *testing.T) {
	var out sink
	w := New(&out, never, 16)
	defer w.Close()
	fmt.Fprint(w, "0123456789\n") // 11 bytes: buffered
	fmt.Fprint(w, "abcdefghij\n") // would make 22 > 16: the first goes out, this one waits
	if got := out.snapshot(); len(got) != 1 || got[0] != "0123456789\n" {
		t.Fatalf("writes = %q, want the first line alone", got)
	}
	big := strings.Repeat("x", 40) + "\n"
	fmt.Fprint(w, big) // larger than the buffer: what waits goes out, then this, unbuffered
	want := []string{"0123456789\n", "abcdefghij\n", big}
	if got := out.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("writes = %q, want %q", got, want)
	}
}

func TestCloseWritesTheRestAndLaterLinesGoThrough(t *testing.T) {
	var out sink
	w := New(&out, never, 0)
	fmt.Fprintln(w, "before close")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the flusher goroutine still runs after Close")
	}
	if got := out.all(); got != "before close\n" {
		t.Fatalf("after Close: %q", got)
	}
	fmt.Fprintln(w, "after close")
	if got := out.all(); got != "before close\nafter close\n" {
		t.Fatalf("a line logged after Close was held back: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWriteErrorIsReportedAndTheBatchDropped(t *testing.T) {
	out := sink{fail: errors.New("disk full")}
	w := New(&out, never, 0)
	defer w.Close()
	fmt.Fprintln(w, "lost")
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush = %v, want the write error", err)
	}
	out.mu.Lock()
	out.fail = nil
	out.mu.Unlock()
	fmt.Fprintln(w, "kept")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.all(); got != "kept\n" {
		t.Fatalf("after a failed write: %q, want only the later line (no endless retry)", got)
	}
}

// Concurrent writers (run with -race): every line arrives once and whole.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var out sink
	w := New(&out, time.Millisecond, 256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(w, "g%d line %d %s\n", g, i, strings.Repeat("-", i%40))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(out.all(), "\n"), "\n") {
		seen[l]++
	}
	for g := range 8 {
		for i := range 500 {
			l := fmt.Sprintf("g%d line %d %s", g, i, strings.Repeat("-", i%40))
			if seen[l] != 1 {
				t.Fatalf("line %q seen %d times, want once", l, seen[l])
			}
		}
	}
	if len(seen) != 8*500 {
		t.Fatalf("%d distinct lines, want %d (a line was split or mixed)", len(seen), 8*500)
	}
}

func TestHandlerWritesWarningsAtOnce(t *testing.T) {
	var out sink
	w := New(&out, never, 0)
	defer w.Close()
	log := slog.New(Handler(slog.NewTextHandler(w, nil), w, slog.LevelWarn))
	log.Info("request one")
	log.With("component", "sql").WithGroup("g").Info("request two")
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("info lines written at once: %q", got)
	}
	log.With("component", "redis").WithGroup("g").Warn("connection lost", "error", "EOF")
	got := out.all()
	for _, want := range []string{"request one", "request two", "component=sql", "connection lost", "component=redis"} {
		if !strings.Contains(got, want) {
			t.Errorf("after a warning, %q is not written: %q", want, got)
		}
	}
	if strings.Index(got, "request two") > strings.Index(got, "connection lost") {
		t.Errorf("lines out of order: %q", got)
	}
	log.Error("broken")
	if !strings.Contains(out.all(), "broken") {
		t.Error("an error line was held back")
	}
	if !log.Enabled(context.Background(), slog.LevelInfo) || log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled must follow the wrapped handler's level")
	}
}
