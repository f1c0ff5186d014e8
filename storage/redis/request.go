package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Request records of one grant live on one hash slot (keys.go). Uniqueness
// of (Kind, Signature) across grants is held by the signature pointer: a
// creation first claims it with SET NX, then writes the record with the grant
// script, and gives the claim back if the script refuses. Deletions run the
// other way round (record, then pointer), so a pointer outlives its record
// only briefly, or until its expiry if a process dies in between; the record
// is the truth and lookups through such a pointer find nothing.

func checkRequest(r storage.Request) error {
	if err := validKind(r.Kind); err != nil {
		return err
	}
	switch {
	case r.Signature == "":
		return errors.New("request signature is empty")
	case r.RequestID == "":
		return errors.New("request has no request id (grant id)")
	case r.ExpiresAt.IsZero():
		return errors.New("request has no expiry")
	}
	return nil
}

// grantOps are the changes to one grant's records that one script applies.
type grantOps struct {
	grant       string
	deactivate  []storage.RequestRef
	create      []storage.Request
	delete      []storage.RequestRef
	revoke      bool
	revokeKinds []storage.RequestKind // all kinds when empty
}

// scriptRefusal is the grant script's "no": which list and which entry failed.
type scriptRefusal struct {
	reason string // notfound, inactive, conflict
	index  int    // 0-based in the list the reason belongs to
}

func (r *scriptRefusal) Error() string { return r.reason }

func (r *scriptRefusal) sentinel() error {
	switch r.reason {
	case "notfound":
		return storage.ErrNotFound
	case "inactive":
		return storage.ErrInactive
	default:
		return storage.ErrConflict
	}
}

// run applies ops atomically and returns the index members it removed. A
// refusal comes back as *scriptRefusal, with nothing written. The grants of
// the records ops creates join their subject's and client's owner indexes in
// the same round trip (see ownerIndexCalls).
func (s *Store) run(ctx context.Context, ops *grantOps, now time.Time) ([]string, error) {
	keys, args, err := s.grantScriptArgs(ops, now)
	if err != nil {
		return nil, err
	}
	calls := append([]scriptCall{{grantScript, keys, args}}, s.ownerIndexCalls(ops.create)...)
	cmds, err := s.evalPipelined(ctx, calls)
	if err != nil {
		return nil, err
	}
	res, err := cmds[0].Slice()
	if err != nil {
		return nil, err
	}
	removed, err := parseGrantReply(res)
	if err != nil {
		return nil, err
	}
	for _, c := range cmds[1:] {
		if err := c.Err(); err != nil {
			// The records are written and their pointers claimed, so failing
			// the create now would leave them half there; only a revocation
			// by owner can miss this grant. Say so loudly.
			s.log.Error("indexing grant by subject and client", "error", err.Error())
		}
	}
	return removed, nil
}

func (s *Store) grantScriptArgs(ops *grantOps, now time.Time) ([]string, []any, error) {
	keys := make([]string, 0, 1+len(ops.deactivate)+len(ops.create)+len(ops.delete))
	keys = append(keys, s.keys.grantIndex(ops.grant))
	for _, r := range ops.deactivate {
		keys = append(keys, s.keys.request(ops.grant, r.Kind, r.Signature))
	}
	for _, r := range ops.create {
		keys = append(keys, s.keys.request(ops.grant, r.Kind, r.Signature))
	}
	for _, r := range ops.delete {
		keys = append(keys, s.keys.request(ops.grant, r.Kind, r.Signature))
	}
	nr := -1
	if ops.revoke {
		nr = len(ops.revokeKinds)
	}
	args := []any{now.UnixMicro(), len(ops.deactivate), len(ops.create), len(ops.delete), s.keys.requestBase(ops.grant), nr}
	if ops.revoke {
		for _, k := range ops.revokeKinds {
			args = append(args, string(k))
		}
	}
	for _, r := range ops.create {
		b, err := encodeRequest(r)
		if err != nil {
			return nil, nil, err
		}
		active := "0"
		if r.Active {
			active = "1"
		}
		args = append(args, member(r.Kind, r.Signature), b, active, toMicro(r.ExpiresAt), pxat(r.ExpiresAt))
	}
	for _, r := range ops.delete {
		args = append(args, member(r.Kind, r.Signature))
	}
	return keys, args, nil
}

func parseGrantReply(res []any) ([]string, error) {
	if len(res) == 0 {
		return nil, errors.New("grant script: empty reply")
	}
	if status, _ := res[0].(string); status != "ok" {
		i, _ := res[1].(int64)
		return nil, &scriptRefusal{reason: status, index: int(i) - 1}
	}
	removed := make([]string, 0, len(res)-1)
	for _, m := range res[1:] {
		if str, ok := m.(string); ok {
			removed = append(removed, str)
		}
	}
	return removed, nil
}

type pointer struct {
	kind  storage.RequestKind
	sig   string
	grant string
}

// claim writes the signature pointers of rs, all or none: ErrConflict when
// one is taken.
func (s *Store) claim(ctx context.Context, rs []storage.Request) error {
	if len(rs) == 0 {
		return nil
	}
	cmds := make([]*goredis.Cmd, len(rs))
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, r := range rs {
			cmds[i] = p.Do(ctx, "set", s.keys.pointer(r.Kind, r.Signature), r.RequestID, "pxat", pxat(r.ExpiresAt), "nx")
		}
		return nil
	})
	var claimed []pointer
	conflict := false
	for i, cmd := range cmds {
		switch cerr := cmd.Err(); {
		case cerr == nil:
			claimed = append(claimed, pointer{rs[i].Kind, rs[i].Signature, rs[i].RequestID})
		case errors.Is(cerr, goredis.Nil) && !conflict:
			ok, terr := s.takeOver(ctx, rs[i])
			switch {
			case terr != nil:
				err = terr
			case ok:
				claimed = append(claimed, pointer{rs[i].Kind, rs[i].Signature, rs[i].RequestID})
			default:
				conflict = true
			}
		case errors.Is(cerr, goredis.Nil):
			conflict = true
		}
	}
	if err != nil && !errors.Is(err, goredis.Nil) || conflict {
		s.release(ctx, claimed)
		if conflict {
			return storage.ErrConflict
		}
		return fmt.Errorf("claiming signatures: %w", err)
	}
	return nil
}

// takeOver claims the pointer of r when it names a record that exists but
// has expired (Redis drops keys at the millisecond, records expire at the
// microsecond): an expired record's signature is free at once. A pointer to
// a record that does not exist is left alone, since its creation may be in
// flight.
func (s *Store) takeOver(ctx context.Context, r storage.Request) (bool, error) {
	key := s.keys.pointer(r.Kind, r.Signature)
	g, err := s.client.Get(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		// Gone meanwhile: try once more.
		return setNX(ctx, s.client, key, r.RequestID, r.ExpiresAt)
	}
	if err != nil {
		return false, err
	}
	x, err := s.client.HGet(ctx, s.keys.request(g, r.Kind, r.Signature), "x").Int64()
	if errors.Is(err, goredis.Nil) || err == nil && x > time.Now().UnixMicro() {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return takeoverScript.Run(ctx, s.client, []string{key}, g, r.RequestID, pxat(r.ExpiresAt)).Bool()
}

// release deletes pointers that still name their grant. It is best effort:
// a pointer left behind finds no record and expires with the record it named.
func (s *Store) release(ctx context.Context, ps []pointer) {
	if len(ps) == 0 {
		return
	}
	// Not canceled with the caller: a release is cleanup after a decision.
	ctx = context.WithoutCancel(ctx)
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, ptr := range ps {
			// EVAL rather than EVALSHA: a pipeline cannot fall back on NOSCRIPT.
			releaseScript.Eval(ctx, p, []string{s.keys.pointer(ptr.kind, ptr.sig)}, ptr.grant)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("releasing request signature pointers", "error", err.Error(), "count", len(ps))
	}
}

// removedPointers turns a grant's removed index members into pointers.
func removedPointers(grant string, members []string) []pointer {
	ps := make([]pointer, 0, len(members))
	for _, m := range members {
		kind, sig, ok := cutMember(m)
		if ok {
			ps = append(ps, pointer{kind, sig, grant})
		}
	}
	return ps
}

func cutMember(m string) (storage.RequestKind, string, bool) {
	for i := 0; i < len(m); i++ {
		if m[i] == ':' {
			return storage.RequestKind(m[:i]), m[i+1:], true
		}
	}
	return "", "", false
}

// resolve fills in ref.RequestID from the signature pointer when it is empty.
func (s *Store) resolve(ctx context.Context, ref storage.RequestRef) (storage.RequestRef, error) {
	if err := validKind(ref.Kind); err != nil {
		return ref, err
	}
	if ref.RequestID != "" {
		return ref, nil
	}
	g, err := s.client.Get(ctx, s.keys.pointer(ref.Kind, ref.Signature)).Result()
	if errors.Is(err, goredis.Nil) {
		return ref, storage.ErrNotFound
	}
	if err != nil {
		return ref, err
	}
	ref.RequestID = g
	return ref, nil
}

// CreateRequest stores r; ErrConflict when (Kind, Signature) exists.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	if err := checkRequest(r); err != nil {
		return fmt.Errorf("creating request: %w", err)
	}
	if _, cluster := s.client.(*goredis.ClusterClient); !cluster {
		// One round trip (see applyPipelined); a taken or stale pointer
		// falls back to the careful path below.
		ops := &grantOps{grant: r.RequestID, create: []storage.Request{r}}
		if done, err := s.applyPipelined(ctx, ops, ops.create, time.Now()); done {
			if err != nil {
				return fmt.Errorf("creating %s request: %w", r.Kind, err)
			}
			return nil
		}
	}
	if err := s.claim(ctx, []storage.Request{r}); err != nil {
		return fmt.Errorf("creating %s request: %w", r.Kind, err)
	}
	if _, err := s.run(ctx, &grantOps{grant: r.RequestID, create: []storage.Request{r}}, time.Now()); err != nil {
		s.release(ctx, []pointer{{r.Kind, r.Signature, r.RequestID}})
		return fmt.Errorf("creating %s request: %w", r.Kind, refusalError(err))
	}
	return nil
}

func refusalError(err error) error {
	var ref *scriptRefusal
	if errors.As(err, &ref) {
		return ref.sentinel()
	}
	return err
}

// GetRequest returns the record, active or not; ErrNotFound when absent or expired.
func (s *Store) GetRequest(ctx context.Context, kind storage.RequestKind, signature string) (storage.Request, error) {
	now := time.Now()
	cached := kind == storage.KindAccessToken
	var cacheKey string
	if cached {
		cacheKey = member(kind, signature)
		if r, ok, err := s.getCachedGrant(ctx, cacheKey, kind, signature, now); ok || err != nil {
			return r, err
		}
	}
	gen := s.tokenGrants.Gen()
	var vals []any
	if _, cluster := s.client.(*goredis.ClusterClient); !cluster {
		// One round trip instead of two (see getRequestScript).
		if err := validKind(kind); err != nil {
			return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, err)
		}
		v, err := getRequestScript.Run(ctx, s.client, []string{s.keys.pointer(kind, signature)}, s.keys.prefix+"req:", member(kind, signature)).Slice()
		switch {
		case errors.Is(err, goredis.Nil):
			return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, storage.ErrNotFound)
		case err != nil:
			return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, err)
		case len(v) != 3:
			return storage.Request{}, fmt.Errorf("getting %s request: script returned %d values", kind, len(v))
		}
		vals = v
	} else {
		ref, err := s.resolve(ctx, storage.RequestRef{Kind: kind, Signature: signature})
		if err != nil {
			return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, err)
		}
		vals, err = s.client.HMGet(ctx, s.keys.request(ref.RequestID, kind, signature), "d", "a", "x").Result()
		if err != nil {
			return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, err)
		}
	}
	r, ok, err := decodeFields(vals, now)
	switch {
	case err != nil:
		return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, err)
	case !ok:
		return storage.Request{}, fmt.Errorf("getting %s request: %w", kind, storage.ErrNotFound)
	}
	if cached && r.RequestID != "" {
		s.tokenGrants.Put(cacheKey, r.RequestID, gen, r.ExpiresAt, now)
	}
	return r, nil
}

// getCachedGrant reads an access token's record straight from the grant
// that its signature pointed to when last read: one HMGET instead of the
// pointer script. A resource server presents the same token on every call
// it introspects, and the script's Lua costs Redis several times its two
// commands (docs/performance.md, "Ninth pass").
//
// Only the indirection is cached, never the record, so revocation and
// deactivation show at once. A live record at the cached key is the
// signature's: a pointer is deleted only after its record (grantScript, then
// release), and moves to another grant only once the record it named has
// expired (takeOver). So when the record there is absent or expired, the
// entry is dropped and false sends the caller to the pointer.
func (s *Store) getCachedGrant(ctx context.Context, cacheKey string, kind storage.RequestKind, signature string, now time.Time) (storage.Request, bool, error) {
	g, ok, _ := s.tokenGrants.Get(cacheKey, now)
	if !ok {
		return storage.Request{}, false, nil
	}
	vals, err := s.client.HMGet(ctx, s.keys.request(g, kind, signature), "d", "a", "x").Result()
	if err != nil {
		return storage.Request{}, false, fmt.Errorf("getting %s request: %w", kind, err)
	}
	r, ok, err := decodeFields(vals, now)
	if err != nil {
		return storage.Request{}, false, fmt.Errorf("getting %s request: %w", kind, err)
	}
	if !ok {
		s.tokenGrants.ForgetKey(cacheKey)
	}
	return r, ok, nil
}

// decodeFields decodes the d, a, x fields of a record's hash; false when the
// record is absent or expired at now.
func decodeFields(vals []any, now time.Time) (storage.Request, bool, error) {
	if len(vals) != 3 {
		return storage.Request{}, false, fmt.Errorf("record read returned %d values", len(vals))
	}
	d, _ := vals[0].(string)
	a, _ := vals[1].(string)
	x, _ := vals[2].(string)
	exp, _ := strconv.ParseInt(x, 10, 64)
	if d == "" || exp <= now.UnixMicro() {
		return storage.Request{}, false, nil
	}
	r, err := decodeRequest([]byte(d), a == "1")
	if err != nil {
		return storage.Request{}, false, err
	}
	return r, true, nil
}

// GetRequests reads the records with one script call on a single server. On
// Redis Cluster the pointers and records of different grants lie on
// different slots, which one script cannot reach, so it reads them one by
// one as GetRequest does.
func (s *Store) GetRequests(ctx context.Context, keys []storage.RequestKey) ([]storage.Request, []bool, error) {
	recs, found := make([]storage.Request, len(keys)), make([]bool, len(keys))
	if len(keys) == 0 {
		return recs, found, nil
	}
	for _, k := range keys {
		if err := validKind(k.Kind); err != nil {
			return nil, nil, fmt.Errorf("getting %s request: %w", k.Kind, err)
		}
	}
	if _, cluster := s.client.(*goredis.ClusterClient); cluster {
		for i, k := range keys {
			r, err := s.GetRequest(ctx, k.Kind, k.Signature)
			switch {
			case err == nil:
				recs[i], found[i] = r, true
			case !errors.Is(err, storage.ErrNotFound):
				return nil, nil, err
			}
		}
		return recs, found, nil
	}
	ptrs := make([]string, len(keys))
	args := make([]any, 1+len(keys))
	args[0] = s.keys.prefix + "req:"
	for i, k := range keys {
		ptrs[i] = s.keys.pointer(k.Kind, k.Signature)
		args[1+i] = member(k.Kind, k.Signature)
	}
	replies, err := getRequestsScript.Run(ctx, s.client, ptrs, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("getting requests: %w", err)
	}
	if len(replies) != len(keys) {
		return nil, nil, fmt.Errorf("getting requests: script returned %d replies for %d keys", len(replies), len(keys))
	}
	now := time.Now()
	for i, reply := range replies {
		if reply == nil {
			continue // no pointer
		}
		vals, ok := reply.([]any)
		if !ok {
			return nil, nil, fmt.Errorf("getting %s request: script returned %T", keys[i].Kind, reply)
		}
		recs[i], found[i], err = decodeFields(vals, now)
		if err != nil {
			return nil, nil, fmt.Errorf("getting %s request: %w", keys[i].Kind, err)
		}
	}
	return recs, found, nil
}

// DeleteRequest deletes one record; ErrNotFound when it is absent.
func (s *Store) DeleteRequest(ctx context.Context, ref storage.RequestRef) error {
	ref, err := s.resolve(ctx, ref)
	if err != nil {
		return fmt.Errorf("deleting %s request: %w", ref.Kind, err)
	}
	removed, err := s.run(ctx, &grantOps{grant: ref.RequestID, delete: []storage.RequestRef{ref}}, time.Now())
	if err != nil {
		return fmt.Errorf("deleting %s request: %w", ref.Kind, refusalError(err))
	}
	// Released even when the record was already gone: the pointer may be a leftover.
	s.release(ctx, []pointer{{ref.Kind, ref.Signature, ref.RequestID}})
	if len(removed) == 0 {
		return fmt.Errorf("deleting %s request: %w", ref.Kind, storage.ErrNotFound)
	}
	return nil
}

// DeactivateRequest flips an active record to inactive in one script, so
// exactly one of any number of concurrent callers wins.
func (s *Store) DeactivateRequest(ctx context.Context, ref storage.RequestRef) error {
	ref, err := s.resolve(ctx, ref)
	if err != nil {
		return fmt.Errorf("deactivating %s request: %w", ref.Kind, err)
	}
	if _, err := s.run(ctx, &grantOps{grant: ref.RequestID, deactivate: []storage.RequestRef{ref}}, time.Now()); err != nil {
		return fmt.Errorf("deactivating %s request: %w", ref.Kind, refusalError(err))
	}
	return nil
}

// RevokeGrant deletes every record of the grant of the given kinds (all when none).
func (s *Store) RevokeGrant(ctx context.Context, requestID string, kinds ...storage.RequestKind) error {
	for _, k := range kinds {
		if err := validKind(k); err != nil {
			return fmt.Errorf("revoking grant: %w", err)
		}
	}
	if requestID == "" {
		return errors.New("revoking grant: empty request id")
	}
	removed, err := s.run(ctx, &grantOps{grant: requestID, revoke: true, revokeKinds: kinds}, time.Now())
	if err != nil {
		return fmt.Errorf("revoking grant: %w", err)
	}
	s.release(ctx, removedPointers(requestID, removed))
	return nil
}

// ApplyRequests applies b all or nothing as far as its conditions go.
//
// Every Deactivate of a batch must name records of one grant: the conditions
// and that grant's changes run as one script, atomically, before anything
// else is written. Changes to other grants (creations, deletions, revocations)
// follow, one script per grant; they carry no condition, so once the
// conditions hold they only fail if the server does. On a single server that
// is the whole batch's guarantee too, since the same code runs everywhere.
func (s *Store) ApplyRequests(ctx context.Context, b storage.RequestBatch) error {
	now := time.Now()
	var (
		groups []*grantOps
		byID   = map[string]*grantOps{}
	)
	group := func(grant string) *grantOps {
		g, ok := byID[grant]
		if !ok {
			g = &grantOps{grant: grant}
			byID[grant] = g
			groups = append(groups, g)
		}
		return g
	}
	for _, ref := range b.Deactivate {
		ref, err := s.resolve(ctx, ref)
		if err != nil {
			return fmt.Errorf("applying requests: deactivating %s: %w", ref.Kind, err)
		}
		g := group(ref.RequestID)
		g.deactivate = append(g.deactivate, ref)
	}
	if len(groups) > 1 {
		return fmt.Errorf("applying requests: the records to deactivate belong to %d grants; a batch's conditions must stay within one grant", len(groups))
	}
	for _, id := range b.RevokeGrants {
		if id == "" {
			return errors.New("applying requests: empty grant id to revoke")
		}
		group(id).revoke = true
	}
	for _, ref := range b.Delete {
		ref, err := s.resolve(ctx, ref)
		if errors.Is(err, storage.ErrNotFound) {
			continue // nothing to delete
		}
		if err != nil {
			return fmt.Errorf("applying requests: deleting %s: %w", ref.Kind, err)
		}
		g := group(ref.RequestID)
		g.delete = append(g.delete, ref)
	}
	for _, r := range b.Create {
		if err := checkRequest(r); err != nil {
			return fmt.Errorf("applying requests: %w", err)
		}
		g := group(r.RequestID)
		g.create = append(g.create, r)
	}

	if _, cluster := s.client.(*goredis.ClusterClient); !cluster && len(groups) == 1 {
		done, err := s.applyPipelined(ctx, groups[0], b.Create, now)
		if done {
			return err
		}
	}
	if err := s.claim(ctx, b.Create); err != nil {
		return fmt.Errorf("applying requests: creating: %w", err)
	}
	var removed []pointer
	for i, g := range groups {
		members, err := s.run(ctx, g, now)
		if err != nil {
			if i > 0 {
				// Earlier grants are changed already; say so loudly.
				s.log.Error("request batch applied in part", "grant_index", i, "grants", len(groups), "error", err.Error())
			}
			s.release(ctx, unappliedClaims(groups[i:]))
			var ref *scriptRefusal
			if errors.As(err, &ref) {
				return fmt.Errorf("applying requests: %s record %d of grant: %w", ref.listName(), ref.index+1, ref.sentinel())
			}
			return fmt.Errorf("applying requests: %w", err)
		}
		removed = append(removed, removedPointers(g.grant, members)...)
	}
	// Keep the pointers of records this batch created, even where it also
	// removed a record of the same signature.
	removed = slices.DeleteFunc(removed, func(p pointer) bool {
		return slices.ContainsFunc(b.Create, func(r storage.Request) bool {
			return r.Kind == p.kind && r.Signature == p.sig && r.RequestID == p.grant
		})
	})
	s.release(ctx, removed)
	return nil
}

func unappliedClaims(groups []*grantOps) []pointer {
	var ps []pointer
	for _, g := range groups {
		for _, r := range g.create {
			ps = append(ps, pointer{r.Kind, r.Signature, r.RequestID})
		}
	}
	return ps
}

func (r *scriptRefusal) listName() string {
	if r.reason == "conflict" {
		return "creating"
	}
	return "deactivating"
}

// applyPipelined applies a one-grant batch in one round trip on a single
// server: the pointer claims (SET NX) and grantPointersScript (which refuses
// unless every claim named the grant, applies the batch, releases the
// pointers of the records deleted by name and adds the grant to its owner
// indexes, all in one atomic step) go in one pipeline. done is false, with nothing applied and the claims released,
// when the careful path must decide (a pointer taken or stale, the script
// not cached on the server, the pipeline failing before the script ran).
func (s *Store) applyPipelined(ctx context.Context, g *grantOps, creates []storage.Request, now time.Time) (done bool, err error) {
	keys, args, err := s.grantScriptArgs(g, now)
	if err != nil {
		return true, fmt.Errorf("applying requests: %w", err)
	}
	for _, r := range creates {
		keys = append(keys, s.keys.pointer(r.Kind, r.Signature))
	}
	for _, ref := range g.delete {
		keys = append(keys, s.keys.pointer(ref.Kind, ref.Signature))
	}
	owners := s.ownerIndexCalls(g.create)
	args = append(args, len(creates), len(g.delete), g.grant, len(owners))
	for _, c := range owners {
		keys = append(keys, c.keys[0])
		args = append(args, len(c.args))
		args = append(args, c.args...)
	}
	claims := make([]*goredis.Cmd, len(creates))
	var script *goredis.Cmd
	// Each command's own error is read below; Pipelined's is the first of them.
	_, _ = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, r := range creates {
			claims[i] = p.Do(ctx, "set", s.keys.pointer(r.Kind, r.Signature), r.RequestID, "pxat", pxat(r.ExpiresAt), "nx")
		}
		script = grantPointersScript.EvalSha(ctx, p, keys, args...)
		return nil
	})
	var claimed []pointer
	for i, c := range claims {
		if c != nil && c.Err() == nil {
			claimed = append(claimed, pointer{creates[i].Kind, creates[i].Signature, creates[i].RequestID})
		}
	}
	switch {
	case script == nil || goredis.HasErrorPrefix(script.Err(), "NOSCRIPT"):
		// Nothing applied: the careful path decides this time, and the
		// script is loaded for the next batch.
		s.release(ctx, claimed)
		if err := grantPointersScript.Load(context.WithoutCancel(ctx), s.client).Err(); err != nil {
			s.log.Warn("loading the grant script", "error", err.Error())
		}
		return false, nil
	case script.Err() != nil:
		// Failed, or its fate is unknown (the connection broke): an error
		// rather than the risk of applying the batch a second time.
		s.release(ctx, claimed)
		return true, fmt.Errorf("applying requests: %w", script.Err())
	}
	res, err := script.Slice()
	if err == nil && len(res) > 0 && res[0] == "claimfail" {
		s.release(ctx, claimed)
		return false, nil
	}
	var members []string
	if err == nil {
		members, err = parseGrantReply(res)
	}
	if err != nil {
		s.release(ctx, claimed)
		return true, fmt.Errorf("applying requests: %w", refusalError(err))
	}
	// The script released the pointers of the records deleted by name; a
	// revocation's members are released here, keeping what the batch created.
	removed := slices.DeleteFunc(removedPointers(g.grant, members), func(p pointer) bool {
		return slices.ContainsFunc(g.delete, func(ref storage.RequestRef) bool { return ref.Kind == p.kind && ref.Signature == p.sig }) ||
			slices.ContainsFunc(creates, func(r storage.Request) bool {
				return r.Kind == p.kind && r.Signature == p.sig && r.RequestID == p.grant
			})
	})
	s.release(ctx, removed)
	return true, nil
}
