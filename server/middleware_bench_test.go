package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is the cheapest http.ResponseWriter, so that the benchmark
// measures the middleware and not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkPublicMiddleware is the per-request cost of the public listener's
// middleware (request ID, access log formatted as text, panic guard,
// security headers, body limit, routing) around the cheapest handlers: the
// discovery document and the JWKS, both served from memory.
func BenchmarkPublicMiddleware(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) })
	h := f.srv.Handler()
	for name, path := range map[string]string{"discovery": "/.well-known/openid-configuration", "jwks": "/.well-known/jwks.json"} {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
