package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// maxTxRetries bounds the optimistic-locking retries of UpdateSession.
const maxTxRetries = 100

func normalSession(s storage.Session) storage.Session {
	s.AuthTime = normalTime(s.AuthTime)
	s.CreatedAt = normalTime(s.CreatedAt)
	s.ExpiresAt = normalTime(s.ExpiresAt)
	s.AMR = nilIfEmpty(s.AMR)
	s.ClientIDs = nilIfEmpty(s.ClientIDs)
	return s
}

func checkSession(s storage.Session) error {
	switch {
	case s.ID == "":
		return errors.New("session id is empty")
	case s.ExpiresAt.IsZero():
		return errors.New("session has no expiry")
	}
	return nil
}

// CreateSession stores s; ErrConflict when its ID is taken.
func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if err := checkSession(sess); err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	b, err := encodeSession(sess)
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	// The record and its index entry go in one round trip. Indexing before
	// the SET NX is known to have won is harmless: the record is the truth,
	// and a conflicting ID (256 random bits) is not expected anyway.
	key := s.keys.session(sess.ID)
	var set, idx *goredis.Cmd
	_, _ = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		set = p.Do(ctx, "set", key, b, "pxat", pxat(sess.ExpiresAt), "nx")
		idx = indexScript.EvalSha(ctx, p, []string{s.keys.subject(sess.Subject)}, "add", sess.ID, pxat(sess.ExpiresAt))
		return nil
	})
	err = set.Err()
	if errors.Is(err, goredis.Nil) {
		err = s.replaceExpiredSession(ctx, sess, b)
	}
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	if err := idx.Err(); err != nil && !errors.Is(err, goredis.Nil) {
		if !goredis.HasErrorPrefix(err, "NOSCRIPT") {
			return fmt.Errorf("creating session: indexing: %w", err)
		}
		if err := s.indexSession(ctx, "add", sess); err != nil { // loads the script
			return fmt.Errorf("creating session: %w", err)
		}
	}
	return nil
}

// replaceExpiredSession writes b over a session whose ExpiresAt has passed
// but whose key Redis has not dropped yet (keys expire at the millisecond):
// an expired session's ID is free at once. ErrConflict when the session
// stored under the ID is live.
func (s *Store) replaceExpiredSession(ctx context.Context, sess storage.Session, b []byte) error {
	key := s.keys.session(sess.ID)
	err := s.client.Watch(ctx, func(tx *goredis.Tx) error {
		_, err := s.getSession(ctx, tx, sess.ID)
		if err == nil {
			return storage.ErrConflict
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Do(ctx, "set", key, b, "pxat", pxat(sess.ExpiresAt))
			return nil
		})
		return err
	}, key)
	if errors.Is(err, goredis.TxFailedErr) {
		return storage.ErrConflict // a concurrent creation won
	}
	return err
}

// indexSession changes the subject's session index; the record is the truth,
// so a member whose record is gone is merely pruned later.
func (s *Store) indexSession(ctx context.Context, op string, sess storage.Session) error {
	err := indexScript.Run(ctx, s.client, []string{s.keys.subject(sess.Subject)}, op, sess.ID, pxat(sess.ExpiresAt)).Err()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("indexing session: %w", err)
	}
	return nil
}

// GetSession returns ErrNotFound when absent or expired.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	sess, err := s.getSession(ctx, s.client, id)
	if err != nil {
		return storage.Session{}, fmt.Errorf("getting session: %w", err)
	}
	return sess, nil
}

func (s *Store) getSession(ctx context.Context, c goredis.Cmdable, id string) (storage.Session, error) {
	return readSession(c.Get(ctx, s.keys.session(id)))
}

// readSession decodes a session GET's reply.
func readSession(get *goredis.StringCmd) (storage.Session, error) {
	b, err := get.Bytes()
	if errors.Is(err, goredis.Nil) {
		return storage.Session{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Session{}, err
	}
	sess, err := decodeSession(b)
	if err != nil {
		return storage.Session{}, err
	}
	if expired(sess.ExpiresAt, time.Now()) {
		return storage.Session{}, storage.ErrNotFound
	}
	return sess, nil
}

// UpdateSession reads, updates and writes back the session under WATCH, so
// that a concurrent change makes the transaction fail and update run again.
func (s *Store) UpdateSession(ctx context.Context, id string, update func(storage.Session) (storage.Session, error)) (storage.Session, error) {
	key := s.keys.session(id)
	var (
		result    storage.Session
		oldExp    time.Time
		updateErr error
	)
	txf := func(tx *goredis.Tx) (err error) {
		// WATCH and GET go in one round trip. go-redis only knows of a WATCH
		// it sent itself, so every way out that does not reach EXEC (which
		// ends the WATCH) sends UNWATCH: the connection goes back to the pool
		// watching nothing.
		executed := false
		defer func() {
			if !executed {
				if uerr := tx.Unwatch(ctx).Err(); uerr != nil && err == nil {
					err = uerr
				}
			}
		}()
		var get *goredis.StringCmd
		if _, err := tx.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Do(ctx, "watch", key)
			get = p.Get(ctx, key)
			return nil
		}); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		old, err := readSession(get)
		if err != nil {
			return err
		}
		next, err := update(old)
		if err != nil {
			updateErr = err
			return err
		}
		next.ID, next.Subject = old.ID, old.Subject
		if err := checkSession(next); err != nil {
			return err
		}
		b, err := encodeSession(next)
		if err != nil {
			return err
		}
		executed = true
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Do(ctx, "set", key, b, "pxat", pxat(next.ExpiresAt))
			return nil
		})
		if err != nil {
			return err
		}
		result, oldExp = normalSession(next), old.ExpiresAt
		return nil
	}
	for range maxTxRetries {
		err := s.client.Watch(ctx, txf) // txf sends the WATCH with its GET
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		if err != nil {
			if updateErr != nil && err == updateErr {
				return storage.Session{}, err // the update's own error, as is
			}
			return storage.Session{}, fmt.Errorf("updating session: %w", err)
		}
		if !result.ExpiresAt.Equal(oldExp) {
			if err := s.indexSession(ctx, "add", result); err != nil {
				return storage.Session{}, fmt.Errorf("updating session: %w", err)
			}
		}
		return result, nil
	}
	return storage.Session{}, fmt.Errorf("updating session: %d concurrent writers won: %w", maxTxRetries, storage.ErrConflict)
}

// DeleteSession removes the session; ErrNotFound when absent or expired.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	key := s.keys.session(id)
	b, err := s.client.GetDel(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("deleting session: %w", storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	sess, err := decodeSession(b)
	if err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	if err := s.indexSession(ctx, "rem", sess); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	if expired(sess.ExpiresAt, time.Now()) {
		return fmt.Errorf("deleting session: %w", storage.ErrNotFound)
	}
	return nil
}

// ListSessions lists the subject's unexpired sessions ordered by ID, and
// prunes index members whose session is gone.
func (s *Store) ListSessions(ctx context.Context, subject string) ([]storage.Session, error) {
	idx := s.keys.subject(subject)
	ids, err := indexScript.Run(ctx, s.client, []string{idx}, "list", "", 0).StringSlice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// A pipeline rather than MGET: session keys live on many cluster slots.
	cmds := make([]*goredis.StringCmd, len(ids))
	_, err = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.keys.session(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	now := time.Now()
	var out []storage.Session
	var dead []any
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, goredis.Nil) {
			dead = append(dead, ids[i])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		sess, err := decodeSession(b)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		if sess.Subject != subject || expired(sess.ExpiresAt, now) {
			continue
		}
		out = append(out, sess)
	}
	if len(dead) > 0 {
		if err := s.client.ZRem(ctx, idx, dead...).Err(); err != nil {
			s.log.Warn("pruning session index", "error", err.Error())
		}
	}
	slices.SortFunc(out, func(a, b storage.Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
