package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// formPostScript submits the form_post response (OAuth 2.0 Form Post Response
// Mode §2) on load. It is allowed by its hash, so the page needs no
// 'unsafe-inline' and works under Gatehouse's strict Content-Security-Policy.
const formPostScript = `document.forms[0].submit();`

var formPostTemplate = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continue</title></head>
<body><form method="post" action="{{ .RedirURL }}">
{{- range $key, $values := .Parameters }}{{ range $values }}
<input type="hidden" name="{{ $key }}" value="{{ . }}">
{{- end }}{{ end }}
<noscript><button type="submit">Continue</button></noscript>
</form><script>` + formPostScript + `</script></body></html>
`))

var formPostScriptHash = func() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// setFormPostCSP replaces the site-wide policy for a form_post page: it may
// run its one script and post to the client's redirect URI origin only.
func setFormPostCSP(w http.ResponseWriter, redirect *url.URL) {
	origin := "'none'"
	// A reg-name may hold sub-delims (RFC 3986 §3.2.2), so a registered
	// redirect URI's host can carry ';' or ',': written into the header, it
	// would end the directive and start another (CSP3 §2.2 parsing).
	if redirect != nil && redirect.Scheme != "" && redirect.Host != "" &&
		!strings.ContainsAny(redirect.Scheme+redirect.Host, "; ,\t\r\n'\"") {
		origin = redirect.Scheme + "://" + redirect.Host
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src "+formPostScriptHash+
		"; form-action "+origin+"; frame-ancestors 'none'; base-uri 'none'")
}
