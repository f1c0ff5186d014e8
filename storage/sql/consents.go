package sql

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// PutConsent implements storage.ConsentStore.
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	doing := fmt.Sprintf("storing consent of %q for client %q", c.Subject, c.ClientID)
	scopes, err := json.Marshal(c.Scopes)
	if err != nil {
		return fmt.Errorf("%s: encoding scopes: %w", doing, err)
	}
	_, err = s.exec(ctx, s.w, `INSERT INTO consents (subject, client_id, scopes, granted_at, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (subject, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at,
		expires_at = excluded.expires_at`,
		c.Subject, c.ClientID, string(scopes), dbTime(c.GrantedAt), dbTime(c.ExpiresAt))
	return mapErr(doing, err)
}

func scanConsent(row interface{ Scan(...any) error }) (storage.Consent, error) {
	var (
		c                storage.Consent
		scopes           string
		granted, expires dbsql.NullInt64
	)
	if err := row.Scan(&c.Subject, &c.ClientID, &scopes, &granted, &expires); err != nil {
		return storage.Consent{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return storage.Consent{}, fmt.Errorf("decoding scopes: %w", err)
	}
	c.GrantedAt, c.ExpiresAt = goTime(granted), goTime(expires)
	return c, nil
}

const consentLive = "(expires_at IS NULL OR expires_at > ?)"

// GetConsent implements storage.ConsentStore.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	c, err := scanConsent(s.queryRow(ctx, s.r, `SELECT subject, client_id, scopes, granted_at, expires_at FROM consents
		WHERE subject = ? AND client_id = ? AND `+consentLive, subject, clientID, s.now().UnixMicro()))
	if err != nil {
		return storage.Consent{}, mapErr(fmt.Sprintf("getting consent of %q for client %q", subject, clientID), err)
	}
	return c, nil
}

// ListConsents implements storage.ConsentStore.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]storage.Consent, error) {
	doing := fmt.Sprintf("listing consents of %q", subject)
	return queryAll(ctx, s, s.r, scanConsent, doing, `SELECT subject, client_id, scopes, granted_at, expires_at FROM consents
		WHERE subject = ? AND `+consentLive+` ORDER BY client_id`+s.collate, subject, s.now().UnixMicro())
}

// DeleteConsent implements storage.ConsentStore.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	return s.deleteOne(ctx, fmt.Sprintf("deleting consent of %q for client %q", subject, clientID),
		"DELETE FROM consents WHERE subject = ? AND client_id = ?", subject, clientID)
}

// DeleteConsentsByClient implements storage.ConsentStore. Client deletion is
// rare, so the scan of consents by client_id (the key starts with subject)
// needs no index of its own.
func (s *Store) DeleteConsentsByClient(ctx context.Context, clientID string) (int, error) {
	doing := fmt.Sprintf("deleting consents for client %q", clientID)
	// RETURNING (SQLite 3.35+, PostgreSQL) counts the unexpired ones in the
	// same statement that deletes them all.
	rows, err := s.query(ctx, s.w, "DELETE FROM consents WHERE client_id = ? RETURNING expires_at", clientID)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	defer rows.Close()
	now, n := s.now().UnixMicro(), 0
	for rows.Next() {
		var expires dbsql.NullInt64
		if err := rows.Scan(&expires); err != nil {
			return 0, fmt.Errorf("%s: %w", doing, err)
		}
		if !expires.Valid || expires.Int64 > now {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	return n, nil
}
