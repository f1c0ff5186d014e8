package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Error codes of the API's answers, shaped like RFC 6749 §5.2 errors so that
// clients parse one format everywhere.
const (
	codeNotFound        = "not_found"
	codeInvalidRequest  = "invalid_request"
	codeConflict        = "conflict"
	codeTooLarge        = "request_too_large"
	codeUnsupportedType = "unsupported_media_type"
	codeServerError     = "server_error"
)

// fail answers an error from a service: the caller's mistakes get a 4xx
// naming what to fix; anything else is logged and is a 500 without detail.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		clientErr   *clients.Error
		userInvalid *users.ValidationError
		userTaken   *users.ConflictError
		tokenErr    *registration.TokenError
		bodyErr     *bodyError
	)
	switch {
	case errors.As(err, &bodyErr):
		respond.Error(w, r, bodyErr.status, bodyErr.code, bodyErr.desc)
	case errors.As(err, &clientErr):
		respond.Error(w, r, http.StatusBadRequest, clientErr.Code, clientErr.Description)
	case errors.As(err, &userInvalid):
		respond.Error(w, r, http.StatusBadRequest, codeInvalidRequest, userInvalid.Error())
	case errors.As(err, &userTaken):
		respond.Error(w, r, http.StatusConflict, codeConflict, userTaken.Error())
	case errors.As(err, &tokenErr):
		respond.Error(w, r, http.StatusBadRequest, codeInvalidRequest, tokenErr.Reason)
	case errors.Is(err, storage.ErrNotFound):
		respond.Error(w, r, http.StatusNotFound, codeNotFound, notFoundText(err))
	case errors.Is(err, storage.ErrConflict):
		respond.Error(w, r, http.StatusConflict, codeConflict, "the resource exists already or was changed concurrently: "+err.Error())
	default:
		a.log.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		respond.Error(w, r, http.StatusInternalServerError, codeServerError, "the server could not complete the request; the log has the details under this request_id")
	}
}

// notFoundText is the services' own not-found sentence ("user "x" not
// found"), which names what is missing without internals.
func notFoundText(err error) string {
	var u *users.NotFoundError
	var c *clients.NotFoundError
	switch {
	case errors.As(err, &u):
		return u.Error()
	case errors.As(err, &c):
		return c.Error()
	}
	var nf *notFoundError
	if errors.As(err, &nf) {
		return nf.what + " not found"
	}
	return "not found"
}

// notFoundError is a missing resource the API itself looked up.
type notFoundError struct{ what string }

func (e *notFoundError) Error() string { return e.what + " not found" }
func (e *notFoundError) Unwrap() error { return storage.ErrNotFound }

func notFound(format string, args ...any) error {
	return &notFoundError{what: fmt.Sprintf(format, args...)}
}

// bodyError is a request body the API cannot use.
type bodyError struct {
	status     int
	code, desc string
}

func (e *bodyError) Error() string { return e.desc }

func badRequest(format string, args ...any) error {
	return &bodyError{status: http.StatusBadRequest, code: codeInvalidRequest, desc: fmt.Sprintf(format, args...)}
}

// decode reads a JSON object into v. Unknown members are refused, so that a
// misspelt field is an error rather than silently ignored. With optional,
// an empty body leaves v as it is.
func (a *API) decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &bodyError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
				desc: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
		}
		return badRequest("reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest("a JSON object is required as the request body")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &bodyError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedType,
			desc: "send the request body as JSON with Content-Type: application/json"}
	}
	if !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		return badRequest("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return badRequest("%s must be a JSON %s, not %s", typeErr.Field, jsonType(typeErr), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return badRequest("the request body is not valid JSON (at byte %d): %v", syntaxErr.Offset, syntaxErr)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest("unknown member %s: check its spelling against /admin/openapi.json",
				strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return badRequest("the request body is not valid: %v", err)
		}
	}
	if dec.More() {
		return badRequest("the request body must hold exactly one JSON object")
	}
	return nil
}

func jsonType(e *json.UnmarshalTypeError) string {
	t := e.Type.String()
	switch {
	case strings.HasPrefix(t, "[]") || strings.HasPrefix(t, "*[]"):
		return "array"
	case strings.HasSuffix(t, "string"):
		return "string"
	case strings.HasSuffix(t, "bool"):
		return "boolean"
	case strings.Contains(t, "int"):
		return "integer"
	case strings.Contains(t, "RawMessage"):
		return "value"
	}
	return "object"
}

// pageQuery reads ?limit= and ?after=.
func pageQuery(r *http.Request) (storage.Page, error) {
	q := r.URL.Query()
	p := storage.Page{After: q.Get("after"), Limit: storage.DefaultPageLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, badRequest("limit must be an integer from 1 to %d, not %q", MaxPageLimit, s)
		}
		p.Limit = n
	}
	return p, nil
}

// list is a page of a listing. Next, when set, is the ?after= value of the
// following page.
type list[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// pageFrom turns up to p.Limit+1 items, fetched after p.After, into a page:
// the extra item only tells that there is a next page.
func pageFrom[S, T any](items []S, p storage.Page, id func(S) string, view func(S) T) list[T] {
	out := list[T]{Items: make([]T, 0, min(len(items), p.Limit))}
	for i, it := range items {
		if i == p.Limit {
			out.Next = id(items[i-1])
			break
		}
		out.Items = append(out.Items, view(it))
	}
	return out
}

// pageOf pages a whole listing sorted by id in memory, for the stores that
// list one owner's records without paging (sessions, consents, tokens).
func pageOf[S, T any](all []S, p storage.Page, id func(S) string, view func(S) T) list[T] {
	all = slices.Clone(all)
	slices.SortFunc(all, func(a, b S) int { return strings.Compare(id(a), id(b)) })
	start, _ := slices.BinarySearchFunc(all, p.After, func(s S, after string) int {
		if id(s) <= after {
			return -1
		}
		return 1
	})
	if p.After == "" {
		start = 0
	}
	end := min(len(all), start+p.Limit+1)
	return pageFrom(all[start:end], p, id, view)
}

// allowProbe lists the methods a 405 answer's Allow header may name.
var allowProbe = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodNotAllowed answers 405 with the Allow header RFC 9110 §15.5.6 requires.
func methodNotAllowed(router *mux.Router) http.Handler {
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
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		respond.Error(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "this path does not accept "+r.Method)
	})
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
