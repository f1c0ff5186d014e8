package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/web"
)

// wantsHTML reports whether the client asked for a page. Browsers list
// text/html in Accept; API clients and curl do not.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// writeError answers with the styled error page for browsers and JSON for
// everyone else. message is shown to the user: never put internal error
// text in it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, code, title, message string) {
	id := requestid.FromContext(r.Context())
	if wantsHTML(r) {
		err := s.ui.RenderError(w, status, web.ErrorPage{Title: title, Message: message, RequestID: id})
		if err == nil {
			return
		}
		s.log.ErrorContext(r.Context(), "rendering error page", "error", err)
	}
	respond.Error(w, r, status, code, message)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusNotFound, "not_found", "Page not found",
		"There is nothing at this address. Check the link you followed.")
}

// allowProbe lists the methods a 405 answer's Allow header may name.
var allowProbe = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// methodNotAllowed answers 405 with the Allow header RFC 9110 §15.5.6
// requires, found by asking the router which methods match the path.
func methodNotAllowed(router *mux.Router, s *Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range allowProbe {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if router.Match(probe, &match) && match.MatchErr == nil {
				allowed = append(allowed, m)
			}
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed",
			"This address does not accept "+r.Method+" requests.")
	})
}
