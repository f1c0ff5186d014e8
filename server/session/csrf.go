package session

import (
	"encoding/base64"
	"errors"
	"net/http"
)

// CSRFField is the name of the hidden form field that carries the CSRF token.
const CSRFField = "csrf_token"

// csrfPurpose separates CSRF MACs from every other use of the keyring.
const csrfPurpose = "csrf"

// ErrCSRF is returned by CheckCSRF when a POST lacks a valid CSRF token.
var ErrCSRF = errors.New("missing or invalid csrf token")

// CSRFToken returns the token to embed in a form, setting the CSRF cookie
// first when the request has none. Call it before writing the response body.
//
// The cookie is SameSite=Strict: a cross-site POST never carries it, and
// since the form token is HMAC(cookie) under a server key, a token learnt from
// one browser is useless with another browser's cookie.
func (m *Manager) CSRFToken(w http.ResponseWriter, r *http.Request) (string, error) {
	raw, ok := cookieValue(r, m.csrfName)
	if !ok {
		var err error
		if raw, err = randomValue(); err != nil {
			return "", err
		}
		http.SetCookie(w, m.cookie(m.csrfName, raw, http.SameSiteStrictMode))
		// Later calls while handling the same request see the new cookie.
		replaceCookie(r, m.csrfName, raw)
	}
	return base64.RawURLEncoding.EncodeToString(m.keys.MAC(csrfPurpose, []byte(raw))), nil
}

// CheckCSRF verifies the CSRF token of a form POST against the CSRF cookie,
// in constant time. It returns ErrCSRF when either is missing or they do not
// match.
func (m *Manager) CheckCSRF(r *http.Request) error {
	raw, ok := cookieValue(r, m.csrfName)
	if !ok {
		return ErrCSRF
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(r.PostFormValue(CSRFField))
	if err != nil || len(mac) == 0 {
		return ErrCSRF
	}
	if !m.keys.VerifyMAC(csrfPurpose, []byte(raw), mac) {
		return ErrCSRF
	}
	return nil
}

// replaceCookie makes r carry name=value in place of any cookie of that name.
func replaceCookie(r *http.Request, name, value string) {
	cs := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cs {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
	r.AddCookie(&http.Cookie{Name: name, Value: value})
}
