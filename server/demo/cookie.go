package demo

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Cookies of the demo. Both are sealed (AES-GCM under the system secret):
// the browser can neither read nor change them.
const (
	// flowCookie carries state, nonce and the PKCE verifier from Start to
	// Callback (RFC 6749 §10.12, OIDC Core §15.5.2, RFC 7636 §4.1).
	flowCookie = "gatehouse_demo_flow"
	// tokensCookie carries the ID token (for id_token_hint) and the refresh
	// token from Callback to Refresh and Logout.
	tokensCookie = "gatehouse_demo_tokens"

	flowLifetime   = 10 * time.Minute
	tokensLifetime = 8 * time.Hour
)

// errCookie is any unusable cookie: absent, tampered with, sealed for
// another cookie, or expired.
var errCookie = errors.New("demo cookie missing, invalid or expired")

// Sealer is the part of secrets.Keyring the demo needs.
type Sealer interface {
	Seal(plaintext, additionalData []byte) ([]byte, error)
	Open(ciphertext, additionalData []byte) ([]byte, error)
}

// flowState is what one authorization request must find again at the callback.
type flowState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"` // unix seconds: the cookie's Max-Age is only advice to the browser
}

// tokenState is the demo's session: just enough to refresh and to sign out.
type tokenState struct {
	IDToken      string `json:"i"`
	RefreshToken string `json:"r,omitempty"`
	Expires      int64  `json:"e"`
}

// cookieJar seals values into cookies under the demo's path.
type cookieJar struct {
	ring   Sealer
	secure bool
	path   string
	now    func() time.Time
}

// aad binds a box to its cookie name so that one cookie cannot be replayed
// as the other.
func aad(name string) []byte { return []byte("gatehouse/demo/cookie/" + name) }

func (j cookieJar) set(w http.ResponseWriter, name string, v any, lifetime time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s cookie: %w", name, err)
	}
	box, err := j.ring.Seal(b, aad(name))
	if err != nil {
		return fmt.Errorf("sealing %s cookie: %w", name, err)
	}
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString(box),
		Path:     j.path,
		MaxAge:   int(lifetime / time.Second),
		HttpOnly: true,
		Secure:   j.secure,
		// Lax: the cookie comes back on the top-level redirect from the
		// authorization endpoint, but not on cross-site POSTs (CSRF).
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// get opens the named cookie into v and checks its expiry; every failure is errCookie.
func (j cookieJar) get(r *http.Request, name string, v any, expires func() int64) error {
	c, err := r.Cookie(name)
	if err != nil {
		return errCookie
	}
	box, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return errCookie
	}
	b, err := j.ring.Open(box, aad(name))
	if err != nil {
		return errCookie
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errCookie
	}
	if j.now().Unix() >= expires() {
		return errCookie
	}
	return nil
}

func (j cookieJar) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: j.path, MaxAge: -1,
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (j cookieJar) setFlow(w http.ResponseWriter, f flowState) error {
	f.Expires = j.now().Add(flowLifetime).Unix()
	return j.set(w, flowCookie, f, flowLifetime)
}

func (j cookieJar) flow(r *http.Request) (flowState, error) {
	var f flowState
	err := j.get(r, flowCookie, &f, func() int64 { return f.Expires })
	return f, err
}

func (j cookieJar) setTokens(w http.ResponseWriter, t tokenState) error {
	t.Expires = j.now().Add(tokensLifetime).Unix()
	return j.set(w, tokensCookie, t, tokensLifetime)
}

func (j cookieJar) tokens(r *http.Request) (tokenState, error) {
	var t tokenState
	err := j.get(r, tokensCookie, &t, func() int64 { return t.Expires })
	return t, err
}
