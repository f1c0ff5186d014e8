package keys

import (
	"net/http"
	"strings"
)

// JWKSPath is where the JWKS document is served (the discovery document's
// jwks_uri points here).
const JWKSPath = "/.well-known/jwks.json"

// JWKSContentType is the RFC 7517 §8.5.1 media type of a JWK Set.
const JWKSContentType = "application/jwk-set+json"

// JWKSHandler serves the JWKS document (RFC 7517 §5) of the set in memory:
// next, active and retired public keys. The body is encoded once per reload,
// never per request. Responses carry Cache-Control max-age=JWKSMaxAge and a
// strong ETag, and a matching If-None-Match gets 304 (RFC 9110 §13.1.2).
// The caller mounts it at JWKSPath.
//
// Header values are shared slices assigned under their canonical keys (no
// per-request canonicalization or allocation); see server.securityHeaders
// for why sharing them is safe.
func (m *Manager) JWKSHandler() http.Handler {
	var (
		cacheControl = []string{"public, max-age=" + m.maxAge()}
		anyOrigin    = []string{"*"}
		contentType  = []string{JWKSContentType}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s := m.snap.Load()
		h := w.Header()
		h["Cache-Control"] = cacheControl
		h["Etag"] = s.etagHeader
		// Public keys: any origin may read them (browser-based relying parties).
		h["Access-Control-Allow-Origin"] = anyOrigin
		if etagMatches(r.Header.Get("If-None-Match"), s.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = contentType
		h["Content-Length"] = s.lengthHeader
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(s.body)
		}
	})
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 §13.1.2,
// §8.8.3.2): "*" or any listed tag equal to etag once "W/" is dropped.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
