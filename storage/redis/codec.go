package redis

import (
	"bytes"
	"fmt"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	// Every record here is one this package wrote; goccy/go-json reads and
	// writes the same documents as encoding/json, faster (server/oauth's
	// codec explains the choice).
	json "github.com/goccy/go-json"
)

// wireVersion is the version of the session encoding below (and of request
// records written before requestWireVersion). A record written by a
// newer version is refused rather than misread; bump it on any change that
// an older reader would get wrong.
const wireVersion = 1

// Times travel as Unix microseconds (0 for the zero time): exact at the
// storage contract's precision and smaller than RFC 3339 text.

type wireSession struct {
	V         int      `json:"v"`
	ID        string   `json:"id"`
	Subject   string   `json:"sub"`
	AuthTime  int64    `json:"auth,omitempty"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	Remember  bool     `json:"rem,omitempty"`
	ClientIDs []string `json:"cids,omitempty"`
	CreatedAt int64    `json:"cat,omitempty"`
	ExpiresAt int64    `json:"exp"`
}

// wireRequest leaves out Active: it is a field of its own in the record's
// hash so that the scripts can flip it without decoding JSON in Lua.
type wireRequest struct {
	V           int    `json:"v"`
	Kind        string `json:"k"`
	Signature   string `json:"sig"`
	RequestID   string `json:"rid"`
	ClientID    string `json:"cid,omitempty"`
	Subject     string `json:"sub,omitempty"`
	RequestedAt int64  `json:"rat,omitempty"`
	ExpiresAt   int64  `json:"exp"`
	Payload     []byte `json:"p,omitempty"`
}

func toMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicro(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// normalTime is what a time looks like after a round trip.
func normalTime(t time.Time) time.Time { return fromMicro(toMicro(t)) }

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func encodeSession(s storage.Session) ([]byte, error) {
	return json.Marshal(wireSession{
		V:         wireVersion,
		ID:        s.ID,
		Subject:   s.Subject,
		AuthTime:  toMicro(s.AuthTime),
		ACR:       s.ACR,
		AMR:       s.AMR,
		Remember:  s.Remember,
		ClientIDs: s.ClientIDs,
		CreatedAt: toMicro(s.CreatedAt),
		ExpiresAt: toMicro(s.ExpiresAt),
	})
}

func decodeSession(b []byte) (storage.Session, error) {
	var w wireSession
	if err := json.Unmarshal(b, &w); err != nil {
		return storage.Session{}, fmt.Errorf("decoding session: %w", err)
	}
	if w.V != wireVersion {
		return storage.Session{}, fmt.Errorf("decoding session: unsupported wire version %d", w.V)
	}
	return storage.Session{
		ID:        w.ID,
		Subject:   w.Subject,
		AuthTime:  fromMicro(w.AuthTime),
		ACR:       w.ACR,
		AMR:       nilIfEmpty(w.AMR),
		Remember:  w.Remember,
		ClientIDs: nilIfEmpty(w.ClientIDs),
		CreatedAt: fromMicro(w.CreatedAt),
		ExpiresAt: fromMicro(w.ExpiresAt),
	}, nil
}

// A request record's data field is its JSON header (wireRequest without
// the payload), a newline, then the payload's raw bytes. Inside JSON the
// payload (itself JSON, 1-2 KB) was base64 text that every read and write
// scanned, escaped and decoded again; encoding/json never writes a raw
// newline, so the first one ends the header. Version 1 records (the payload
// as base64 inside the JSON) are still read; a version 1 reader refuses the
// newer form (trailing data) rather than misreading it.
const requestWireVersion = 2

func encodeRequest(r storage.Request) ([]byte, error) {
	h, err := json.Marshal(wireRequest{
		V:           requestWireVersion,
		Kind:        string(r.Kind),
		Signature:   r.Signature,
		RequestID:   r.RequestID,
		ClientID:    r.ClientID,
		Subject:     r.Subject,
		RequestedAt: toMicro(r.RequestedAt),
		ExpiresAt:   toMicro(r.ExpiresAt),
	})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(h)+1+len(r.Payload))
	b = append(append(append(b, h...), '\n'), r.Payload...)
	return b, nil
}

// decodeRequest decodes a record's data field; active is its "a" field.
func decodeRequest(b []byte, active bool) (storage.Request, error) {
	header, payload, split := bytes.Cut(b, []byte{'\n'})
	var w wireRequest
	if err := json.Unmarshal(header, &w); err != nil {
		return storage.Request{}, fmt.Errorf("decoding request: %w", err)
	}
	switch {
	case split && w.V == requestWireVersion && w.Payload == nil:
		w.Payload = bytes.Clone(payload)
	case !split && w.V == wireVersion:
		// Version 1: the payload is inside the JSON.
	default:
		return storage.Request{}, fmt.Errorf("decoding request: unsupported wire version %d", w.V)
	}
	return storage.Request{
		Kind:        storage.RequestKind(w.Kind),
		Signature:   w.Signature,
		RequestID:   w.RequestID,
		ClientID:    w.ClientID,
		Subject:     w.Subject,
		Active:      active,
		RequestedAt: fromMicro(w.RequestedAt),
		ExpiresAt:   fromMicro(w.ExpiresAt),
		Payload:     nilIfEmpty(w.Payload),
	}, nil
}
