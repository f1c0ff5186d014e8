package oauth

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The form_post page's policy (OAuth 2.0 Form Post Response Mode §2) names
// the redirect URI's origin; a host carrying CSP separators must not add
// directives of its own to the header.
func TestFormPostCSPRefusesSeparatorsInOrigin(t *testing.T) {
	for raw, want := range map[string]string{
		"https://rp.example/cb":                     "form-action https://rp.example;",
		"http://127.0.0.1:9999/cb":                  "form-action http://127.0.0.1:9999;",
		"https://rp.example;frame-ancestors/cb":     "form-action 'none';",
		"https://rp.example,sandbox/cb":             "form-action 'none';",
		"https://rp.example'x/cb":                   "form-action 'none';",
		"com.example.app:/oauth2redirect":           "form-action 'none';",
		"https://rp.example;script-src/cb?x=1#frag": "form-action 'none';",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		w := httptest.NewRecorder()
		setFormPostCSP(w, u)
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP = %q, want it to contain %q", raw, csp, want)
		}
		if n := strings.Count(csp, ";"); n != 4 {
			t.Errorf("%s: CSP = %q has %d separators, want 4 (five directives)", raw, csp, n)
		}
	}
}
