package sql

import (
	"context"
	dbsql "database/sql"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// GetKeySet implements storage.KeyStore. The version and the keys come from
// one statement, so they are consistent with each other without a transaction.
func (s *Store) GetKeySet(ctx context.Context) (storage.KeySet, error) {
	const doing = "getting key set"
	rows, err := s.query(ctx, s.r, `SELECT ks.version, k.kid, k.algorithm, k.state, k.private_key, k.public_jwk,
		k.created_at, k.activate_at, k.retired_at, k.delete_at
		FROM key_set ks LEFT JOIN signing_keys k ON 1 = 1 WHERE ks.id = 1 ORDER BY k.ordinal`)
	if err != nil {
		return storage.KeySet{}, fmt.Errorf("%s: %w", doing, err)
	}
	defer rows.Close()
	var set storage.KeySet
	for rows.Next() {
		var (
			kid, alg, state                         dbsql.NullString
			priv, pub                               []byte
			created, activate, retired, deleteAfter dbsql.NullInt64
		)
		if err := rows.Scan(&set.Version, &kid, &alg, &state, &priv, &pub, &created, &activate, &retired, &deleteAfter); err != nil {
			return storage.KeySet{}, fmt.Errorf("%s: %w", doing, err)
		}
		if !kid.Valid {
			continue // the LEFT JOIN row of an empty set
		}
		set.Keys = append(set.Keys, storage.SigningKey{
			ID:         kid.String,
			Algorithm:  alg.String,
			State:      storage.KeyState(state.String),
			PrivateKey: priv,
			PublicJWK:  pub,
			CreatedAt:  goTime(created),
			ActivateAt: goTime(activate),
			RetiredAt:  goTime(retired),
			DeleteAt:   goTime(deleteAfter),
		})
	}
	if err := rows.Err(); err != nil {
		return storage.KeySet{}, fmt.Errorf("%s: %w", doing, err)
	}
	return set, nil
}

// KeySetVersion implements storage.KeyStore.
func (s *Store) KeySetVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.queryRow(ctx, s.r, "SELECT version FROM key_set WHERE id = 1").Scan(&v); err != nil {
		return 0, mapErr("getting key set version", err)
	}
	return v, nil
}

// ReplaceKeySet implements storage.KeyStore: a compare-and-swap on the version
// row, then the keys are rewritten in the same transaction.
func (s *Store) ReplaceKeySet(ctx context.Context, expectVersion int64, keys []storage.SigningKey) (int64, error) {
	const doing = "replacing key set"
	err := s.inTx(ctx, func(tx *dbsql.Tx) error {
		n, err := s.exec(ctx, tx, "UPDATE key_set SET version = version + 1 WHERE id = 1 AND version = ?", expectVersion)
		if err != nil {
			return mapErr(doing, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: version %d is no longer current: %w", doing, expectVersion, storage.ErrConflict)
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM signing_keys"); err != nil {
			return mapErr(doing, err)
		}
		for i, k := range keys {
			if _, err := s.exec(ctx, tx, `INSERT INTO signing_keys (kid, ordinal, algorithm, state, private_key, public_jwk,
				created_at, activate_at, retired_at, delete_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				k.ID, i, k.Algorithm, string(k.State), k.PrivateKey, k.PublicJWK,
				dbTime(k.CreatedAt), dbTime(k.ActivateAt), dbTime(k.RetiredAt), dbTime(k.DeleteAt)); err != nil {
				return mapErr(fmt.Sprintf("%s: storing key %q", doing, k.ID), err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return expectVersion + 1, nil
}
