package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Revocation by owner. Each grant ID is a member of its subject's and its
// client's owner index (keys.go), scored by the latest expiry of the grant's
// records of that owner, so an index forgets a grant once those records have
// expired. An index may name a grant that has no records left (revoked or
// deleted one by one); revoking it then removes nothing and does not count.

// ownerIndexScript adds grants to an owner index, keeping each grant's
// highest score, drops expired members and expires the key with its
// latest member.
//
// KEYS[1] the owner index; ARGV score, grant, score, grant, ...
var ownerIndexScript = goredis.NewScript(nowMsFunc + ownerIndexFunc + `
return ownerIndex(KEYS[1], ARGV)
`)

// ownerIndexFunc is ownerIndexScript's body as a Lua function, shared with
// grantPointersScript; both define nowMs first (nowMsFunc).
const ownerIndexFunc = `
local function ownerIndex(key, args)
  redis.call('ZADD', key, 'GT', unpack(args))
  redis.call('ZREMRANGEBYSCORE', key, '-inf', nowMs())
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top > 0 then redis.call('PEXPIREAT', key, top[2]) end
  return #top
end
`

// ownerForgetScript removes grants from an owner index unless their score
// changed since they were read (a record of the grant created meanwhile).
//
// KEYS[1] the owner index; ARGV grant, score, grant, score, ...
var ownerForgetScript = goredis.NewScript(`
for i = 1, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 0
`)

// scriptCall is one script invocation of a pipeline.
type scriptCall struct {
	script *goredis.Script
	keys   []string
	args   []any
}

// evalPipelined runs calls in one round trip with EVALSHA, and those the
// server had not cached again with EVAL (a NOSCRIPT reply means the call did
// not run). It returns each call's reply; an error only when nothing could be
// sent.
func (s *Store) evalPipelined(ctx context.Context, calls []scriptCall) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(calls))
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	if err != nil && cmds[0] == nil {
		return nil, err
	}
	var again []int
	for i, c := range cmds {
		if goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds, nil
	}
	_, _ = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, i := range again {
			cmds[i] = calls[i].script.Eval(ctx, p, calls[i].keys, calls[i].args...)
		}
		return nil
	})
	return cmds, nil
}

// ownerIndexCalls returns the owner index updates for created records.
func (s *Store) ownerIndexCalls(created []storage.Request) []scriptCall {
	if len(created) == 0 {
		return nil
	}
	byKey := make(map[string][]any)
	var order []string
	add := func(key string, r storage.Request) {
		if _, ok := byKey[key]; !ok {
			order = append(order, key)
		}
		byKey[key] = append(byKey[key], pxat(r.ExpiresAt), r.RequestID)
	}
	for _, r := range created {
		if r.Subject != "" {
			add(s.keys.subjectGrants(r.Subject), r)
		}
		if r.ClientID != "" {
			add(s.keys.clientGrants(r.ClientID), r)
		}
	}
	calls := make([]scriptCall, 0, len(order))
	for _, k := range order {
		calls = append(calls, scriptCall{ownerIndexScript, []string{k}, byKey[k]})
	}
	return calls
}

// RevokeGrantsBySubject deletes every grant with a live record of subject.
func (s *Store) RevokeGrantsBySubject(ctx context.Context, subject string) (int, error) {
	if subject == "" {
		return 0, errors.New("revoking grants by subject: empty subject")
	}
	n, err := s.revokeByOwner(ctx, s.keys.subjectGrants(subject))
	if err != nil {
		return n, fmt.Errorf("revoking grants by subject: %w", err)
	}
	return n, nil
}

// RevokeGrantsByClient deletes every grant with a live record of clientID.
func (s *Store) RevokeGrantsByClient(ctx context.Context, clientID string) (int, error) {
	if clientID == "" {
		return 0, errors.New("revoking grants by client: empty client id")
	}
	n, err := s.revokeByOwner(ctx, s.keys.clientGrants(clientID))
	if err != nil {
		return n, fmt.Errorf("revoking grants by client: %w", err)
	}
	return n, nil
}

// revokeByOwner revokes the grants of an owner index in three round trips
// whatever their number: read the index, run the grant script for every
// grant, then release the signature pointers and forget the grants.
func (s *Store) revokeByOwner(ctx context.Context, index string) (int, error) {
	now := time.Now()
	// A member's score is its records' expiry rounded up to the millisecond:
	// a score below the current millisecond means they have all expired.
	grants, err := s.client.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
		Key: index, ByScore: true, Start: strconv.FormatInt(now.UnixMilli(), 10), Stop: "+inf",
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("reading owner index: %w", err)
	}
	if len(grants) == 0 {
		return 0, nil
	}
	calls := make([]scriptCall, len(grants))
	forget := make([]any, 0, 2*len(grants))
	for i, z := range grants {
		g, _ := z.Member.(string)
		keys, args, err := s.grantScriptArgs(&grantOps{grant: g, revoke: true}, now)
		if err != nil {
			return 0, err
		}
		calls[i] = scriptCall{grantScript, keys, args}
		forget = append(forget, g, strconv.FormatFloat(z.Score, 'f', -1, 64))
	}
	cmds, err := s.evalPipelined(ctx, calls)
	if err != nil {
		return 0, fmt.Errorf("revoking grants: %w", err)
	}
	revoked := 0
	var pointers []pointer
	var errs []error
	for i, c := range cmds {
		g, _ := grants[i].Member.(string)
		res, err := c.Slice()
		if err == nil {
			var removed []string
			if removed, err = parseGrantReply(res); err == nil {
				if len(removed) > 0 {
					revoked++
				}
				pointers = append(pointers, removedPointers(g, removed)...)
				continue
			}
		}
		errs = append(errs, err)
	}
	s.release(ctx, pointers)
	if len(errs) > 0 {
		// Keep the index: a later call retries the grants that failed.
		return revoked, fmt.Errorf("revoking %d of %d grants: %w", len(errs), len(grants), errors.Join(errs...))
	}
	if err := ownerForgetScript.Run(ctx, s.client, []string{index}, forget...).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		s.log.Warn("forgetting revoked grants in owner index", "error", err.Error())
	}
	return revoked, nil
}
