// Package logbuf batches log lines into fewer writes.
//
// Every request writes an access-log line. Written one by one, each line is a
// write system call: 7-8 % of the server's CPU on a discovery request. A
// Writer collects lines in memory and writes them together, at most Interval
// after the first one was buffered, at once when the buffer is full, when a
// warning or worse is logged (Handler), and on Close. Lines are never split
// or reordered; what a crash can lose is the last Interval of lines below
// warning level.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultLimit is the buffer size that triggers a write.
const DefaultLimit = 64 << 10

// Writer is an io.Writer that buffers what it is given and writes it to the
// underlying writer in batches. It is safe for concurrent use.
type Writer struct {
	out      io.Writer
	interval time.Duration
	limit    int

	mu     sync.Mutex
	buf    []byte
	closed bool

	kick chan struct{} // the buffer went from empty to non-empty
	stop chan struct{}
	done chan struct{}
}

// New returns a Writer over out that writes buffered lines at most interval
// after they arrive, or as soon as limit bytes are waiting (limit <= 0:
// DefaultLimit). Close it to write the rest and stop its goroutine.
func New(out io.Writer, interval time.Duration, limit int) *Writer {
	if limit <= 0 {
		limit = DefaultLimit
	}
	w := &Writer{
		out:      out,
		interval: interval,
		limit:    limit,
		buf:      make([]byte, 0, limit),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.loop()
	return w
}

// Write buffers p. A p that does not fit makes the buffer go out first; a p
// as large as the buffer, or a write after Close, goes out directly. Slog
// handlers write one record per call, so records stay whole.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf)+len(p) > w.limit {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	if w.closed || len(p) >= w.limit {
		return w.out.Write(p)
	}
	if len(w.buf) == 0 {
		// Only the first line of a batch wakes the flusher: an idle server
		// has no timer running.
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	// On error the batch is dropped rather than retried forever: logging
	// must not stop the server (slog ignores handler errors too).
	w.buf = w.buf[:0]
	return err
}

// Close writes what is buffered and stops the flusher. Later writes go
// straight to the underlying writer, so late log lines are not lost.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTimer(w.interval)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			return
		}
		t.Reset(w.interval)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return
		}
		_ = w.Flush()
	}
}

// Handler wraps h, which writes to w, so that a record at level or above
// makes w write at once: a warning or an error is seen without delay, with
// every line before it, even if the process dies right after.
func Handler(h slog.Handler, w *Writer, level slog.Level) slog.Handler {
	return &handler{inner: h, w: w, level: level}
}

type handler struct {
	inner slog.Handler
	w     *Writer
	level slog.Level
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.inner.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{inner: h.inner.WithAttrs(attrs), w: h.w, level: h.level}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{inner: h.inner.WithGroup(name), w: h.w, level: h.level}
}
