package storage

import "errors"

// Sentinel errors. Backends wrap them with context (fmt.Errorf("...: %w", ErrNotFound));
// callers test with errors.Is.
var (
	// ErrNotFound: no such record, or it has expired.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a record with the same identity exists, or a compare-and-swap
	// lost to a concurrent writer, or a single-use value was used before.
	ErrConflict = errors.New("conflict")
	// ErrInactive: the request record exists but was already deactivated
	// (an authorization code already consumed, a refresh token already rotated).
	ErrInactive = errors.New("inactive")
)
