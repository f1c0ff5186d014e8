// Package respond writes the JSON answers of Gatehouse's HTTP APIs (the admin
// API, dynamic client registration, the server's own JSON errors), so that
// every API answers errors in one shape.
package respond

import (
	"encoding/json"
	"net/http"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
)

// ErrorBody is the JSON error answer, shaped like RFC 6749 §5.2 errors (and
// so RFC 7591 §3.2.2 ones) so that API clients parse one format everywhere.
// RequestID lets an operator find the request's log lines.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	RequestID        string `json:"request_id,omitempty"`
}

// JSON answers v as JSON with status. The answer is never cached
// (Cache-Control: no-store): API answers carry secrets and tokens shown once.
// Headers set on w before the call are kept.
func JSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Answers hold URLs (redirect_uris, logo_uri): keep & < > readable.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Error answers an error with its code and description and the request's ID.
// desc is shown to the caller: never put internal error text in it.
func Error(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	JSON(w, status, ErrorBody{Error: code, ErrorDescription: desc, RequestID: requestid.FromContext(r.Context())})
}
