package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestPProfOnlyWhenEnabled: the profiler is on the admin listener only, only
// with admin.pprof, and behind the admin token (RFC 6750 §3.1 challenge
// without it).
func TestPProfOnlyWhenEnabled(t *testing.T) {
	off := newFixture(t, func(c *Config) { c.Admin.Token = adminTokenForPProf })
	if rec := do(off.srv.AdminHandler(), http.MethodGet, "/debug/pprof/", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("admin /debug/pprof/ without admin.pprof: %d, want 404", rec.Code)
	}
	on := newFixture(t, func(c *Config) { c.Admin.PProf = true; c.Admin.Token = adminTokenForPProf })
	auth := map[string]string{"Authorization": "Bearer " + adminTokenForPProf}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if rec := do(on.srv.AdminHandler(), http.MethodGet, path, nil, nil); rec.Code != http.StatusUnauthorized ||
			!strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("admin %s without the token: %d, want 401 with a Bearer challenge", path, rec.Code)
		}
		wrong := map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(adminTokenForPProf))}
		if rec := do(on.srv.AdminHandler(), http.MethodGet, path, wrong, nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("admin %s with a wrong token: %d, want 401", path, rec.Code)
		}
	}
	rec := do(on.srv.AdminHandler(), http.MethodGet, "/debug/pprof/", auth, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("admin /debug/pprof/ with admin.pprof and the token: %d", rec.Code)
	}
	if rec := do(on.srv.Handler(), http.MethodGet, "/debug/pprof/", auth, nil); rec.Code != http.StatusNotFound {
		t.Errorf("public /debug/pprof/: %d, want 404", rec.Code)
	}
}

const adminTokenForPProf = "pprof-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"
