package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// The refresh token grace period (off by default).
//
// Rotation stays strict (RFC 9700 §4.14.2): the batch that deactivates a used
// refresh token also creates a KindRefreshGrace record keyed by that token's
// signature, expiring when the grace period ends. Once fosite has produced the
// whole token response, Token stores it, sealed, in a second KindRefreshGrace
// record. A retry with the rotated token (a lost response, two browser tabs)
// by the same client within the window gets that response again, byte for
// byte: the same new pair, nothing issued, nothing extended. Everything else
// (window over, another client, the new refresh token itself already rotated,
// no stored response in time) revokes the grant as strict mode does.

const (
	// defaultGraceWait bounds how long a retry waits for the first request's
	// response to be stored (the two-tabs race).
	defaultGraceWait = 3 * time.Second
	// gracePending is the first record's payload: the rotation committed.
	gracePending = "pending"
	// graceAAD binds a sealed response to its record (signature and client),
	// so that a box copied elsewhere does not open.
	graceAAD = "gatehouse/refresh-grace/v1"
)

// graceResponseSignature keys the record holding the sealed response. A
// fosite HMAC signature is base64url, so the suffix cannot collide with one.
func graceResponseSignature(signature string) string { return signature + "/response" }

func graceSealAAD(signature, clientID string) []byte {
	return []byte(graceAAD + "\x00" + signature + "\x00" + clientID)
}

type graceProbeKey struct{}

// withGraceProbe marks a token endpoint refresh request: only there does a
// rotated token within its grace period mean a retry rather than reuse
// (introspection and revocation still see it as inactive).
func withGraceProbe(ctx context.Context) context.Context {
	return context.WithValue(ctx, graceProbeKey{}, true)
}

func graceProbe(ctx context.Context) bool {
	v, _ := ctx.Value(graceProbeKey{}).(bool)
	return v
}

// graceRetry is what GetRefreshTokenSession reports, instead of
// fosite.ErrInactiveToken (which makes fosite revoke the grant), for a rotated
// token still within its grace period. Token answers it.
type graceRetry struct {
	signature string
	grace     storage.Request // the pending record
}

func (g *graceRetry) Error() string { return "refresh token retried within its grace period" }

// graceRecord creates, in the rotation batch, the record that opens the grace
// period of the token with the given signature.
func (s *Store) graceRecord(signature string, rotated storage.Request) storage.Request {
	now := s.now()
	return storage.Request{
		Kind:        storage.KindRefreshGrace,
		Signature:   signature,
		RequestID:   rotated.RequestID,
		ClientID:    rotated.ClientID,
		Subject:     rotated.Subject,
		Active:      true,
		RequestedAt: now,
		ExpiresAt:   now.Add(s.grace),
		Payload:     []byte(gracePending),
	}
}

// graceFor returns the grace record of a rotated token if its window is still
// open. ok is false when strict mode applies.
func (s *Store) graceFor(ctx context.Context, signature string) (rec storage.Request, ok bool, err error) {
	rec, err = s.ephemeral.GetRequest(ctx, storage.KindRefreshGrace, signature)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Request{}, false, nil
	}
	if err != nil {
		return storage.Request{}, false, fmt.Errorf("loading refresh grace record: %w", err)
	}
	// Checked here too: the backend expires records on its own clock.
	if !rec.ExpiresAt.After(s.now()) {
		return storage.Request{}, false, nil
	}
	return rec, true, nil
}

// keepGraceResponse stores the token response of a refresh just made, sealed,
// for retries within the grace period. A failure only costs the retries their
// grace, so it is logged, not returned.
func (p *Provider) keepGraceResponse(ctx context.Context, ar fosite.AccessRequester, body []byte) {
	signature := p.tokens.RefreshTokenSignature(ctx, ar.GetRequestForm().Get("refresh_token"))
	pending, ok, err := p.store.graceFor(ctx, signature)
	if err != nil || !ok {
		if err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "keeping refresh response for its grace period", slog.String("error", err.Error()))
		}
		return
	}
	sealed, err := p.cfg.Ring.Seal(body, graceSealAAD(signature, pending.ClientID))
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "sealing refresh response", slog.String("error", err.Error()))
		return
	}
	rec := pending
	rec.Signature = graceResponseSignature(signature)
	rec.RequestedAt = p.now()
	rec.Payload = sealed // ExpiresAt stays the pending record's: nothing is extended
	if err := p.ephemeral.CreateRequest(ctx, rec); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "storing refresh response for its grace period", slog.String("error", err.Error()))
	}
}

// refreshRetry answers a refresh that failed because its token was already
// rotated, when the grace period covers it; it reports whether it wrote the
// response. Two ways lead here: the token was found rotated (graceRetry), or a
// concurrent request rotated it between our read and our commit (the batch
// failed on its condition, storage.ErrInactive, or on creating the grace
// record the winner created, storage.ErrConflict: backends may check either
// first).
func (p *Provider) refreshRetry(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) bool {
	if ar == nil || ar.GetClient() == nil {
		return false
	}
	var g *graceRetry
	if !errors.As(err, &g) {
		if !errors.Is(err, storage.ErrInactive) && !errors.Is(err, storage.ErrConflict) {
			return false
		}
		signature := p.tokens.RefreshTokenSignature(ctx, ar.GetRequestForm().Get("refresh_token"))
		var rec storage.Request
		lookup := func() (bool, error) {
			r, ok, err := p.store.graceFor(ctx, signature)
			rec = r
			return ok, err
		}
		ok, werr := lookup()
		if !ok && werr == nil && errors.Is(err, storage.ErrConflict) {
			// The winner's batch may still be landing.
			werr = p.poll(ctx, lookup)
			ok = werr == nil
		}
		if !ok || werr != nil {
			return false // the lost race is answered as in strict mode
		}
		g = &graceRetry{signature: signature, grace: rec}
	}
	clientID := ar.GetClient().GetID()
	body, reason := p.graceResponse(ctx, g, clientID)
	if body == nil {
		// As strict mode would: the token was reused (RFC 9700 §4.14.2).
		if rerr := p.store.RevokeGrant(ctx, g.grace.RequestID); rerr != nil {
			p.writeAccessError(ctx, w, ar, fosite.ErrServerError.WithWrap(rerr).WithDebug(rerr.Error()))
			return true
		}
		p.log.LogAttrs(ctx, slog.LevelInfo, "refresh token reuse revoked the grant",
			slog.String("client_id", clientID), slog.String("grant_id", g.grace.RequestID), slog.String("reason", reason))
		p.f.WriteAccessError(ctx, w, ar, fosite.ErrInvalidGrant.WithHint("The refresh token was already used."))
		return true
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "refresh token retried within its grace period",
		slog.String("client_id", clientID), slog.String("grant_id", g.grace.RequestID))
	writeTokenResponse(w, body)
	return true
}

// graceResponse returns the stored response for a retry, or nil and why the
// retry is treated as reuse.
func (p *Provider) graceResponse(ctx context.Context, g *graceRetry, clientID string) ([]byte, string) {
	if clientID != g.grace.ClientID {
		return nil, "another client presented the token"
	}
	rec, err := p.awaitGraceResponse(ctx, g.signature)
	if err != nil {
		return nil, err.Error()
	}
	body, err := p.cfg.Ring.Open(rec.Payload, graceSealAAD(g.signature, clientID))
	if err != nil {
		return nil, fmt.Sprintf("opening stored response: %v", err)
	}
	var resp struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.RefreshToken == "" {
		return nil, "stored response has no refresh token"
	}
	// The pair handed out must still be the grant's current one: once its
	// refresh token was used in turn, replaying it would resurrect nothing
	// but would hide a reuse.
	next, err := p.ephemeral.GetRequest(ctx, storage.KindRefreshToken, p.tokens.RefreshTokenSignature(ctx, resp.RefreshToken))
	if err != nil || !next.Active {
		return nil, "the new refresh token was already used or revoked"
	}
	return body, ""
}

// awaitGraceResponse waits, a bounded time, for the first request to store
// its response: with two tabs the retry can arrive before the first request
// finished.
func (p *Provider) awaitGraceResponse(ctx context.Context, signature string) (storage.Request, error) {
	var rec storage.Request
	err := p.poll(ctx, func() (bool, error) {
		var err error
		rec, err = p.ephemeral.GetRequest(ctx, storage.KindRefreshGrace, graceResponseSignature(signature))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return false, fmt.Errorf("loading stored response: %w", err)
		}
		// Revoking the grant meanwhile removes the pending record too.
		if _, err := p.ephemeral.GetRequest(ctx, storage.KindRefreshGrace, signature); err != nil {
			return false, fmt.Errorf("loading refresh grace record: %w", err)
		}
		return false, nil
	})
	return rec, err
}

// poll calls done until it reports true or fails, for at most p.graceWait.
func (p *Provider) poll(ctx context.Context, done func() (bool, error)) error {
	deadline := time.NewTimer(p.graceWait)
	defer deadline.Stop()
	delay := 5 * time.Millisecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-deadline.C:
			t.Stop()
			return errors.New("not stored in time")
		case <-t.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// writeTokenResponse writes a successful token response exactly as
// fosite.WriteAccessResponse does, from bytes that can be replayed.
func writeTokenResponse(w http.ResponseWriter, body []byte) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
