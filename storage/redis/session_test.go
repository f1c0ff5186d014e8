package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
)

// replySizes records the largest array reply of the commands the store
// sends, inside pipelines too.
type replySizes struct {
	roundTrips
	mu2 sync.Mutex
	max int
}

func (r *replySizes) note(cmd goredis.Cmder) {
	c, ok := cmd.(*goredis.Cmd)
	if !ok {
		return
	}
	if v, ok := c.Val().([]any); ok {
		r.mu2.Lock()
		r.max = max(r.max, len(v))
		r.mu2.Unlock()
	}
}

func (r *replySizes) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	count := r.roundTrips.ProcessHook(next)
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := count(ctx, cmd)
		r.note(cmd)
		return err
	}
}

func (r *replySizes) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	count := r.roundTrips.ProcessPipelineHook(next)
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := count(ctx, cmds)
		for _, c := range cmds {
			r.note(c)
		}
		return err
	}
}

// TestCreateSessionCostDoesNotGrowWithSessions: a subject with many sessions
// (a shared or scripted account) once made every sign-in read back the whole
// session index, which cost Redis 18-26 ms per sign-in at ~3,000 sessions.
// Creating a session is now one round trip with a constant-size reply, and
// the index still lists every session.
func TestCreateSessionCostDoesNotGrowWithSessions(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	c, ok := s.Client().(*goredis.Client)
	if !ok {
		t.Skip("not a single-server client")
	}
	now := time.Now()
	const n = 300
	for i := range n {
		sess := storage.Session{ID: fmt.Sprintf("s%03d", i), Subject: "busy", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	rs := &replySizes{}
	c.AddHook(rs)
	sess := storage.Session{ID: "last", Subject: "busy", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if got := rs.take(); got != 1 {
		t.Errorf("CreateSession took %d round trips, want 1", got)
	}
	if rs.max > 1 {
		t.Errorf("CreateSession read back a reply of %d elements; its cost grows with the subject's sessions", rs.max)
	}
	list, err := s.ListSessions(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n+1 {
		t.Errorf("ListSessions = %d sessions, want %d", len(list), n+1)
	}
	rs.max = 0 // the listing's reply is the list
	if err := s.DeleteSession(ctx, "last"); err != nil {
		t.Fatal(err)
	}
	if rs.max > 1 {
		t.Errorf("DeleteSession read back a reply of %d elements", rs.max)
	}
}

// cmdLog records the commands of each round trip, pipelines whole.
type cmdLog struct {
	mu    sync.Mutex
	trips [][]string
}

func (l *cmdLog) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (l *cmdLog) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *cmdLog) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		l.add(cmds...)
		return next(ctx, cmds)
	}
}

func (l *cmdLog) add(cmds ...goredis.Cmder) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name()
	}
	l.mu.Lock()
	l.trips = append(l.trips, names)
	l.mu.Unlock()
}

func (l *cmdLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	parts := make([]string, len(l.trips))
	for i, t := range l.trips {
		parts[i] = "[" + strings.Join(t, " ") + "]"
	}
	l.trips = nil
	return strings.Join(parts, " ")
}

// TestUpdateSessionRoundTrips: UpdateSession sends WATCH in the round trip of
// its GET (two round trips in all, not three). go-redis does not know of that
// WATCH, so when UpdateSession ends without EXEC (the update fails, the
// session is gone) it must send UNWATCH itself: otherwise the pooled
// connection would refuse a later, unrelated transaction whenever the
// session changed meanwhile.
func TestUpdateSessionRoundTrips(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	if err := s.CreateSession(ctx, storage.Session{ID: "s", Subject: "alice", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	log := &cmdLog{}
	s.Client().AddHook(log)
	boom := errors.New("boom")
	for _, c := range []struct {
		name, id string
		update   func(storage.Session) (storage.Session, error)
		want     error
		trips    string
	}{
		{"update", "s", func(x storage.Session) (storage.Session, error) { x.ClientIDs = []string{"a"}; return x, nil }, nil,
			"[watch get] [multi set exec]"},
		{"failing update", "s", func(storage.Session) (storage.Session, error) { return storage.Session{}, boom }, boom,
			"[watch get] [unwatch]"},
		{"missing session", "gone", func(x storage.Session) (storage.Session, error) { return x, nil }, storage.ErrNotFound,
			"[watch get] [unwatch]"},
	} {
		if _, err := s.UpdateSession(ctx, c.id, c.update); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if got := log.take(); got != c.trips {
			t.Errorf("%s: round trips %s, want %s", c.name, got, c.trips)
		}
	}
}
