package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
	"github.com/gatehouse-idp/gatehouse/server/web"
)

// The middleware wraps the router rather than being registered with
// router.Use, because gorilla/mux runs Use middleware only for matched
// routes: 404s and 405s would go unlogged and without security headers.

// wrap applies the middleware, outermost first.
func (s *Server) wrap(h http.Handler, listener string) http.Handler {
	h = s.limitBody(h)
	h = s.securityHeaders(h)
	h = s.recoverPanics(h)
	h = s.accessLog(h, listener)
	h = withRequestID(h)
	return h
}

// withRequestID honours a sane incoming X-Request-ID (a proxy's), or makes
// one, and puts it in the context (hence every log line) and the response.
func withRequestID(next http.Handler) http.Handler {
	key := http.CanonicalHeaderKey(requestid.Header) // once, not per request
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(key)
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		w.Header()[key] = []string{id}
		next.ServeHTTP(w, r.WithContext(requestid.NewContext(r.Context(), id)))
	})
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (rec *statusRecorder) WriteHeader(code int) {
	if !rec.wroteHeader && code >= 200 {
		rec.status = code
		rec.wroteHeader = true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *statusRecorder) Write(b []byte) (int, error) {
	if !rec.wroteHeader {
		rec.status = http.StatusOK
		rec.wroteHeader = true
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, deadlines and the like.
func (rec *statusRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// accessLog logs one line per request. It logs the path only, never the
// query string: queries carry authorization codes, tokens and state.
//
// Typed attributes (LogAttrs) rather than key-value pairs: the line is
// written for every request, and boxing its numbers cost allocations.
func (s *Server) accessLog(next http.Handler, listener string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			status := rec.status
			if !rec.wroteHeader {
				// Nothing written: net/http sends 200 with an empty body.
				status = http.StatusOK
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("listener", listener),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(s.cfg.Now().Sub(start).Microseconds())/1000),
				slog.String("remote_ip", remoteIP(r)),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recoverPanics turns a panicking handler into a generic 500. The panic and
// its stack go to the log only; the client sees the request ID to quote.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The access log's recorder, when it is the writer, already knows
		// whether the header went out.
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w}
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				// The handler asked net/http to abort the connection.
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method,
				"path", r.URL.Path,
				"panic", fmt.Sprint(v),
				"stack", string(debug.Stack()),
			)
			if rec.wroteHeader {
				// Too late for an error page: cut the response short instead.
				panic(http.ErrAbortHandler)
			}
			s.writeError(w, r, http.StatusInternalServerError, "server_error", "Something went wrong",
				"The server could not complete your request. Please try again; if it keeps happening, quote the request ID below.")
		}()
		next.ServeHTTP(rec, r)
	})
}

// securityHeaders sets the headers every answer carries. Handlers that must
// loosen the Content-Security-Policy (a form_post response posting to the
// client) replace it with web.ContentSecurityPolicy(origins...).
//
// The values are built once and shared by every response: assigning the
// canonical key directly skips Header.Set's canonicalization and a slice per
// header. Sharing is safe because nothing writes into a header's slice in
// place: Set replaces it, and Add appends to a full slice, which copies.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	var (
		csp       = []string{web.ContentSecurityPolicy()}
		deny      = []string{"DENY"}
		nosniff   = []string{"nosniff"}
		noReferer = []string{"no-referrer"}
		hsts      = []string{"max-age=63072000"}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = csp
		h["X-Frame-Options"] = deny
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = noReferer
		if s.hsts {
			// RFC 6797: only meaningful, and only honoured, over https.
			h["Strict-Transport-Security"] = hsts
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds request bodies; reading past the limit fails with
// *http.MaxBytesError and makes net/http close the connection.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}
