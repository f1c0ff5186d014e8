package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestPProfOnlyWhenEnabled: the profiler is on the admin listener only, and
// only with admin.pprof.
func TestPProfOnlyWhenEnabled(t *testing.T) {
	off := newFixture(t, nil)
	if rec := do(off.srv.AdminHandler(), http.MethodGet, "/debug/pprof/", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("admin /debug/pprof/ without admin.pprof: %d, want 404", rec.Code)
	}
	on := newFixture(t, func(c *Config) { c.Admin.PProf = true })
	rec := do(on.srv.AdminHandler(), http.MethodGet, "/debug/pprof/", nil, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("admin /debug/pprof/ with admin.pprof: %d", rec.Code)
	}
	if rec := do(on.srv.Handler(), http.MethodGet, "/debug/pprof/", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("public /debug/pprof/: %d, want 404", rec.Code)
	}
}
