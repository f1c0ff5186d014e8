package redis_test

import (
	"context"
	"fmt"
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
