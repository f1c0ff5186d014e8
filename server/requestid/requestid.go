// Package requestid carries a per-request identifier through contexts and into
// every log line, so that an operator can follow one request across the logs
// and match it with the ID shown on an error page.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
)

// Header is the HTTP header a request ID is read from and echoed in.
const Header = "X-Request-ID"

// MaxLen bounds an accepted incoming request ID; longer ones are replaced.
const MaxLen = 128

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request ID in ctx, or "" when there is none.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a fresh random request ID (128 bits, hex).
func New() string {
	var b [16]byte
	// crypto/rand.Read never returns an error since Go 1.24.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Valid reports whether an incoming request ID may be reused as is. Only a
// short, plain token is honoured: anything else could forge log lines or
// carry markup into pages.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=':
		default:
			return false
		}
	}
	return true
}

// LogHandler wraps h so that every record logged with a context carrying a
// request ID gets a top-level request_id attribute, even from a logger with
// groups. Wrapping twice adds it once.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*logHandler); ok {
		return h
	}
	return &logHandler{root: h, inner: h}
}

// logHandler remembers how inner was derived from root (ops), so that when a
// group is open it can rebuild the chain with request_id added before the
// group; inside a group, Record.AddAttrs would nest the attribute.
type logHandler struct {
	root    slog.Handler
	inner   slog.Handler
	ops     []func(slog.Handler) slog.Handler
	grouped bool
}

func (h *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	id := FromContext(ctx)
	if id == "" {
		return h.inner.Handle(ctx, r)
	}
	if !h.grouped {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
		return h.inner.Handle(ctx, r)
	}
	inner := h.root.WithAttrs([]slog.Attr{slog.String("request_id", id)})
	for _, op := range h.ops {
		inner = op(inner)
	}
	return inner.Handle(ctx, r)
}

func (h *logHandler) with(op func(slog.Handler) slog.Handler, group bool) *logHandler {
	return &logHandler{
		root:    h.root,
		inner:   op(h.inner),
		ops:     append(h.ops[:len(h.ops):len(h.ops)], op),
		grouped: h.grouped || group,
	}
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithAttrs(attrs) }, false)
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithGroup(name) }, true)
}
