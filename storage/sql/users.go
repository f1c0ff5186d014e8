package sql

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatehouse-idp/gatehouse/storage"
)

const userColumns = "id, username, password_hash, disabled, claims, created_at, updated_at"

func normUser(u storage.User) storage.User {
	u.CreatedAt = normTime(u.CreatedAt)
	u.UpdatedAt = normTime(u.UpdatedAt)
	return u
}

// userArgs returns the values of every column but id, in the order of the
// INSERT and UPDATE statements.
func userArgs(u storage.User) ([]any, error) {
	claims, err := json.Marshal(u.Claims)
	if err != nil {
		return nil, fmt.Errorf("encoding claims: %w", err)
	}
	return []any{u.Username, strings.ToLower(u.Claims.Email), u.PasswordHash, u.Disabled, string(claims),
		dbTime(u.CreatedAt), dbTime(u.UpdatedAt)}, nil
}

func scanUser(row interface{ Scan(...any) error }) (storage.User, error) {
	var (
		u                storage.User
		claims           string
		created, updated dbsql.NullInt64
	)
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Disabled, &claims, &created, &updated); err != nil {
		return storage.User{}, err
	}
	if err := json.Unmarshal([]byte(claims), &u.Claims); err != nil {
		return storage.User{}, fmt.Errorf("decoding claims of user %q: %w", u.ID, err)
	}
	u.CreatedAt, u.UpdatedAt = goTime(created), goTime(updated)
	return u, nil
}

// CreateUser implements storage.UserStore.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	args, err := userArgs(normUser(u))
	if err != nil {
		return fmt.Errorf("creating user %q: %w", u.ID, err)
	}
	_, err = s.exec(ctx, s.w, `INSERT INTO users (id, username, email_lower, password_hash, disabled, claims, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, append([]any{u.ID}, args...)...)
	return mapErr(fmt.Sprintf("creating user %q", u.ID), err)
}

func (s *Store) getUserWhere(ctx context.Context, q querier, doing, where string, arg any) (storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, q, "SELECT "+userColumns+" FROM users WHERE "+where, arg))
	if err != nil {
		return storage.User{}, mapErr(doing, err)
	}
	return u, nil
}

// GetUser implements storage.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	return s.getUserWhere(ctx, s.r, fmt.Sprintf("getting user %q", id), "id = ?", id)
}

// GetUserByUsername implements storage.UserStore.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (storage.User, error) {
	return s.getUserWhere(ctx, s.r, "getting user by username", "username = ?", username)
}

// GetUserByEmail implements storage.UserStore; the comparison ignores case.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (storage.User, error) {
	if email == "" {
		return storage.User{}, fmt.Errorf("getting user by email: %w", storage.ErrNotFound)
	}
	return s.getUserWhere(ctx, s.r, "getting user by email", "email_lower = ?", strings.ToLower(email))
}

// ListUsers implements storage.UserStore.
func (s *Store) ListUsers(ctx context.Context, p storage.Page) ([]storage.User, error) {
	return queryAll(ctx, s, s.r, scanUser, "listing users", "SELECT "+userColumns+" FROM users WHERE id"+s.collate+" > ? ORDER BY id"+s.collate+" LIMIT ?",
		p.After, pageLimit(p))
}

// UpdateUser implements storage.UserStore.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(storage.User) (storage.User, error)) (storage.User, error) {
	doing := fmt.Sprintf("updating user %q", id)
	var out storage.User
	err := s.inTx(ctx, func(tx *dbsql.Tx) error {
		cur, err := s.getUserWhere(ctx, tx, doing, "id = ?"+s.forUpdate, id)
		if err != nil {
			return err
		}
		next, err := update(cur)
		if err != nil {
			return err // as is, per the contract
		}
		next.ID, next.CreatedAt = cur.ID, cur.CreatedAt
		next = normUser(next)
		args, err := userArgs(next)
		if err != nil {
			return fmt.Errorf("%s: %w", doing, err)
		}
		_, err = s.exec(ctx, tx, `UPDATE users SET username = ?, email_lower = ?, password_hash = ?, disabled = ?, claims = ?,
			created_at = ?, updated_at = ? WHERE id = ?`, append(args, id)...)
		if err != nil {
			return mapErr(doing, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return storage.User{}, err
	}
	return out, nil
}

// DeleteUser implements storage.UserStore.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.deleteOne(ctx, fmt.Sprintf("deleting user %q", id), "DELETE FROM users WHERE id = ?", id)
}

// deleteOne runs a DELETE and reports ErrNotFound when it removed nothing.
func (s *Store) deleteOne(ctx context.Context, doing, query string, args ...any) error {
	n, err := s.exec(ctx, s.w, query, args...)
	if err != nil {
		return mapErr(doing, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", doing, storage.ErrNotFound)
	}
	return nil
}
