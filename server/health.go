package server

import (
	"context"
	"net/http"
	"sync"

	"github.com/gatehouse-idp/gatehouse/server/respond"
)

// healthStatus is the body of both health endpoints.
type healthStatus struct {
	Status string `json:"status"`
	// Failed names the checks that failed; the errors themselves are logged,
	// never shown, since they may carry addresses or credentials.
	Failed []string `json:"failed,omitempty"`
}

// alive answers as long as the process serves HTTP (a liveness probe).
func (s *Server) alive(w http.ResponseWriter, r *http.Request) {
	respond.JSON(w, http.StatusOK, healthStatus{Status: "ok"})
}

// ready answers 200 when both stores answer a ping within ReadyTimeout, 503
// naming the failed checks otherwise (a readiness probe).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	checks := []struct {
		name string
		ping func(context.Context) error
	}{
		{"durable", s.cfg.Stores.Durable.Ping},
		{"ephemeral", s.cfg.Stores.Ephemeral.Ping},
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
			defer cancel()
			errs[i] = c.ping(ctx)
		})
	}
	wg.Wait()

	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, checks[i].name)
			s.log.WarnContext(r.Context(), "readiness check failed", "check", checks[i].name, "error", err)
		}
	}
	if len(failed) > 0 {
		respond.JSON(w, http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Failed: failed})
		return
	}
	respond.JSON(w, http.StatusOK, healthStatus{Status: "ok"})
}
