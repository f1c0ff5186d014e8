package sql

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/storage"
)

func normClient(c storage.Client) storage.Client {
	c.SecretExpiresAt = normTime(c.SecretExpiresAt)
	c.RotatedSecretExpiresAt = normTime(c.RotatedSecretExpiresAt)
	c.CreatedAt = normTime(c.CreatedAt)
	c.UpdatedAt = normTime(c.UpdatedAt)
	return c
}

func decodeClient(doc string) (storage.Client, error) {
	var c storage.Client
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return storage.Client{}, fmt.Errorf("decoding client document: %w", err)
	}
	return normClient(c), nil
}

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	doing := fmt.Sprintf("creating client %q", c.ID)
	c = normClient(c)
	doc, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("%s: encoding: %w", doing, err)
	}
	_, err = s.exec(ctx, s.w, "INSERT INTO clients (id, document, created_at, updated_at) VALUES (?, ?, ?, ?)",
		c.ID, string(doc), dbTime(c.CreatedAt), dbTime(c.UpdatedAt))
	return mapErr(doing, err)
}

func (s *Store) getClient(ctx context.Context, q querier, doing, id, suffix string) (storage.Client, error) {
	var doc string
	if err := s.queryRow(ctx, q, "SELECT document FROM clients WHERE id = ?"+suffix, id).Scan(&doc); err != nil {
		return storage.Client{}, mapErr(doing, err)
	}
	c, err := decodeClient(doc)
	if err != nil {
		return storage.Client{}, fmt.Errorf("%s: %w", doing, err)
	}
	return c, nil
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	return s.getClient(ctx, s.r, fmt.Sprintf("getting client %q", id), id, "")
}

// scanClientDoc reads a row of the document column.
func scanClientDoc(row interface{ Scan(...any) error }) (storage.Client, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		return storage.Client{}, err
	}
	return decodeClient(doc)
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(ctx context.Context, p storage.Page) ([]storage.Client, error) {
	return queryAll(ctx, s, s.r, scanClientDoc, "listing clients", "SELECT document FROM clients WHERE id"+s.collate+" > ? ORDER BY id"+s.collate+" LIMIT ?",
		p.After, pageLimit(p))
}

// UpdateClient implements storage.ClientStore.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	doing := fmt.Sprintf("updating client %q", id)
	var out storage.Client
	err := s.inTx(ctx, func(tx *dbsql.Tx) error {
		cur, err := s.getClient(ctx, tx, doing, id, s.forUpdate)
		if err != nil {
			return err
		}
		next, err := update(cur)
		if err != nil {
			return err // as is, per the contract
		}
		next.ID, next.CreatedAt = cur.ID, cur.CreatedAt
		next = normClient(next)
		doc, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("%s: encoding: %w", doing, err)
		}
		if _, err := s.exec(ctx, tx, "UPDATE clients SET document = ?, updated_at = ? WHERE id = ?",
			string(doc), dbTime(next.UpdatedAt), id); err != nil {
			return mapErr(doing, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return storage.Client{}, err
	}
	return out, nil
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.deleteOne(ctx, fmt.Sprintf("deleting client %q", id), "DELETE FROM clients WHERE id = ?", id)
}
