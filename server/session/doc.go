// Package session owns Gatehouse's browser sign-in session and the CSRF
// protection of its HTML forms.
//
// The session cookie carries a 256-bit random value. The store does not keep
// that value: the session record's ID is the SHA-256 of it, so a copy of the
// store (or an ID token's sid claim, which is that record ID) cannot be turned
// back into a working cookie.
//
// CSRF protection is a double submit bound to a separate random cookie: every
// form carries HMAC("csrf", cookie) under the system keyring, so the form token
// is never the cookie value itself and cannot be forged without the server key.
package session
