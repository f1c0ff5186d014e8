package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

type ephemeralCase = testCase[storage.Ephemeral]

func ephemeralCases() []ephemeralCase {
	return []ephemeralCase{
		{"Ping", func(t *testing.T, ctx context.Context, s storage.Ephemeral) { must(t, s.Ping(ctx), "Ping") }},
		{"Sessions/CRUD", testSessionsCRUD},
		{"Sessions/NotFound", testSessionsNotFound},
		{"Sessions/Conflict", testSessionsConflict},
		{"Sessions/List", testSessionsList},
		{"Sessions/UpdaterError", testSessionsUpdaterError},
		{"Sessions/Isolation", testSessionsIsolation},
		{"Sessions/ConcurrentUpdate", testSessionsConcurrentUpdate},
		{"Requests/CreateGet", testRequestsCreateGet},
		{"Requests/NotFound", testRequestsNotFound},
		{"Requests/GetMany", testRequestsGetMany},
		{"Requests/GetManyLarge", testRequestsGetManyLarge},
		{"Requests/Conflict", testRequestsConflict},
		{"Requests/KindsDistinct", testRequestsKindsDistinct},
		{"Requests/Isolation", testRequestsIsolation},
		{"Requests/Deactivate", testRequestsDeactivate},
		{"Requests/Delete", testRequestsDelete},
		{"Requests/RevokeGrant", testRequestsRevokeGrant},
		{"Requests/RevokeGrantKinds", testRequestsRevokeGrantKinds},
		{"Requests/ApplySuccess", testApplySuccess},
		{"Requests/ApplyAllOrNothing", testApplyAllOrNothing},
		{"Requests/ApplyMissing", testApplyMissing},
		{"Requests/ApplyCreateConflict", testApplyCreateConflict},
		{"Requests/DeactivateOnce", testDeactivateOnce},
		{"Requests/ApplyOnce", testApplyOnce},
		{"Requests/RevokeGrantsBySubject", testRevokeGrantsBySubject},
		{"Requests/RevokeGrantsByClient", testRevokeGrantsByClient},
		{"ReplayCache/UseOnce", testUseOnce},
		{"ReplayCache/ConcurrentUseOnce", testConcurrentUseOnce},
		{"Throttle/HitCountReset", testThrottle},
		{"Throttle/ConcurrentHit", testThrottleConcurrent},
	}
}

// ---------------------------------------------------------------------------
// Sessions

func newSession(id, subject string) storage.Session {
	now := time.Now().In(zone)
	return storage.Session{
		ID:        id,
		Subject:   subject,
		AuthTime:  now.Add(-time.Minute),
		ACR:       "urn:gatehouse:acr:password",
		AMR:       []string{"pwd", "otp"},
		Remember:  true,
		ClientIDs: []string{"shop", "blog"},
		CreatedAt: now.Add(-time.Minute),
		ExpiresAt: now.Add(time.Hour),
	}
}

func createSession(t *testing.T, ctx context.Context, s storage.SessionStore, x storage.Session) {
	t.Helper()
	must(t, s.CreateSession(ctx, x), "CreateSession "+x.ID)
}

func testSessionsCRUD(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	x := newSession("s1", "alice")
	checkAllSet(t, "newSession", x)
	createSession(t, ctx, s, x)
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	checkEqual(t, "GetSession", x, got)

	want := x
	want.ClientIDs = append(slices.Clone(x.ClientIDs), "admin")
	want.ACR = "urn:gatehouse:acr:mfa"
	want.Remember = false
	want.ExpiresAt = x.ExpiresAt.Add(time.Hour) // extending a session
	updated, err := s.UpdateSession(ctx, "s1", func(y storage.Session) (storage.Session, error) {
		checkEqual(t, "the session given to the updater", x, y)
		y.ID = "hijacked"     // kept
		y.Subject = "mallory" // kept
		y.ClientIDs = append(y.ClientIDs, "admin")
		y.ACR = want.ACR
		y.Remember = false
		y.ExpiresAt = want.ExpiresAt
		return y, nil
	})
	must(t, err, "UpdateSession")
	checkEqual(t, "UpdateSession result", want, updated)
	got, err = s.GetSession(ctx, "s1")
	must(t, err, "GetSession after update")
	checkEqual(t, "GetSession after update", want, got)
	_, err = s.GetSession(ctx, "hijacked")
	wantErr(t, err, storage.ErrNotFound, "GetSession of the ID the updater tried to set")
	list, err := s.ListSessions(ctx, "mallory")
	must(t, err, "ListSessions")
	if len(list) != 0 {
		t.Errorf("ListSessions of the subject the updater tried to set: got %d sessions", len(list))
	}

	must(t, s.DeleteSession(ctx, "s1"), "DeleteSession")
	_, err = s.GetSession(ctx, "s1")
	wantErr(t, err, storage.ErrNotFound, "GetSession after DeleteSession")
	list, err = s.ListSessions(ctx, "alice")
	must(t, err, "ListSessions")
	if len(list) != 0 {
		t.Errorf("ListSessions after DeleteSession: got %d sessions, want 0", len(list))
	}
	wantNotFoundOrNil(t, s.DeleteSession(ctx, "s1"), "DeleteSession of a deleted session")
}

func testSessionsNotFound(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	createSession(t, ctx, s, newSession("present", "alice"))
	_, err := s.GetSession(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetSession of an unknown ID")
	_, err = s.UpdateSession(ctx, "absent", func(x storage.Session) (storage.Session, error) { return x, nil })
	wantErr(t, err, storage.ErrNotFound, "UpdateSession of an unknown ID")
	_, err = s.GetSession(ctx, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetSession after UpdateSession of an unknown ID (it must not create one)")
	wantNotFoundOrNil(t, s.DeleteSession(ctx, "absent"), "DeleteSession of an unknown ID")
}

func testSessionsConflict(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	x := newSession("s1", "alice")
	createSession(t, ctx, s, x)
	wantErr(t, s.CreateSession(ctx, newSession("s1", "bob")), storage.ErrConflict, "CreateSession with a duplicate ID")
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	checkEqual(t, "GetSession after a refused duplicate", x, got)
	list, err := s.ListSessions(ctx, "bob")
	must(t, err, "ListSessions bob")
	if len(list) != 0 {
		t.Errorf("ListSessions of the refused duplicate's subject: got %d sessions", len(list))
	}
}

func testSessionsList(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	ids := []string{"s-b", "S-a", "s-a", "_s", "0s"}
	for _, id := range ids {
		createSession(t, ctx, s, newSession(id, "alice"))
	}
	createSession(t, ctx, s, newSession("bob-1", "bob"))
	expired := newSession("s-expired", "alice")
	expired.ExpiresAt = time.Now().Add(-time.Second)
	must(t, s.CreateSession(ctx, expired), "CreateSession already expired")

	list, err := s.ListSessions(ctx, "alice")
	must(t, err, "ListSessions")
	want := slices.Sorted(slices.Values(ids))
	var got []string
	for _, x := range list {
		got = append(got, x.ID)
		checkEqual(t, "listed session "+x.ID, newSessionLike(x.ID, "alice", x), x)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListSessions alice: got %q, want %q (only alice's unexpired sessions, ordered by ID)", got, want)
	}
	list, err = s.ListSessions(ctx, "nobody")
	must(t, err, "ListSessions of a subject without sessions")
	if len(list) != 0 {
		t.Errorf("ListSessions of a subject without sessions: got %d", len(list))
	}
}

// newSessionLike is newSession(id, subject) with the times of got, which the
// test cannot know exactly.
func newSessionLike(id, subject string, got storage.Session) storage.Session {
	x := newSession(id, subject)
	x.AuthTime, x.CreatedAt, x.ExpiresAt = got.AuthTime, got.CreatedAt, got.ExpiresAt
	return x
}

func testSessionsUpdaterError(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	x := newSession("s1", "alice")
	createSession(t, ctx, s, x)
	_, err := s.UpdateSession(ctx, "s1", func(y storage.Session) (storage.Session, error) {
		y.ACR = "changed"
		return y, errUpdater
	})
	wantErr(t, err, errUpdater, "UpdateSession with a failing updater")
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	checkEqual(t, "GetSession after a failing updater", x, got)
}

func testSessionsIsolation(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	x := newSession("s1", "alice")
	orig := x
	orig.AMR, orig.ClientIDs = slices.Clone(x.AMR), slices.Clone(x.ClientIDs)
	createSession(t, ctx, s, x)
	scribble(reflect.ValueOf(&x))
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	checkEqual(t, "GetSession after the caller changed its input", orig, got)
	scribble(reflect.ValueOf(&got))
	got, err = s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	checkEqual(t, "GetSession after the caller changed a returned session", orig, got)
}

// testSessionsConcurrentUpdate: tokens issued in one session at once by many
// requests each add their client; none is lost (logout must reach them all).
func testSessionsConcurrentUpdate(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	x := newSession("s1", "alice")
	x.ClientIDs = nil
	createSession(t, ctx, s, x)
	errs := race(concurrency, func(i int) error {
		_, err := s.UpdateSession(ctx, "s1", func(y storage.Session) (storage.Session, error) {
			y.ClientIDs = append(y.ClientIDs, fmt.Sprintf("client-%02d", i))
			return y, nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent UpdateSession %d: %v", i, err)
		}
	}
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "GetSession")
	distinct := slices.Compact(slices.Sorted(slices.Values(got.ClientIDs)))
	if len(got.ClientIDs) != concurrency || len(distinct) != concurrency {
		t.Errorf("after %d concurrent UpdateSession appending a client: %d client IDs (%d distinct), want %d: lost updates",
			concurrency, len(got.ClientIDs), len(distinct), concurrency)
	}
}

// ---------------------------------------------------------------------------
// Requests

// binaryPayload is not valid UTF-8 and contains NUL bytes: backends must keep
// payloads as bytes, not text.
var binaryPayload = []byte{0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, '{', '"', 0x00, 0xe2, 0x82}

func newRequest(kind storage.RequestKind, sig, grant string) storage.Request {
	now := time.Now().In(zone)
	return storage.Request{
		Kind:        kind,
		Signature:   sig,
		RequestID:   grant,
		ClientID:    "shop",
		Subject:     "alice",
		Active:      true,
		RequestedAt: now,
		ExpiresAt:   now.Add(time.Hour),
		Payload:     append([]byte(string(kind)+":"+sig+":"), binaryPayload...),
	}
}

func createRequest(t *testing.T, ctx context.Context, s storage.RequestStore, r storage.Request) {
	t.Helper()
	must(t, s.CreateRequest(ctx, r), fmt.Sprintf("CreateRequest %s/%s", r.Kind, r.Signature))
}

// requestState is how a record looks from outside: absent, active or inactive.
func requestState(t testing.TB, ctx context.Context, s storage.RequestStore, kind storage.RequestKind, sig string) string {
	t.Helper()
	r, err := s.GetRequest(ctx, kind, sig)
	switch {
	case err == nil && r.Active:
		return "active"
	case err == nil:
		return "inactive"
	case isNotFound(err):
		return "absent"
	default:
		t.Fatalf("GetRequest %s/%s: %v", kind, sig, err)
		return ""
	}
}

func wantState(t testing.TB, ctx context.Context, s storage.RequestStore, kind storage.RequestKind, sig, want, when string) {
	t.Helper()
	if got := requestState(t, ctx, s, kind, sig); got != want {
		t.Errorf("%s: record %s/%s is %s, want %s", when, kind, sig, got, want)
	}
}

func ref(r storage.Request) storage.RequestRef {
	return storage.RequestRef{Kind: r.Kind, Signature: r.Signature, RequestID: r.RequestID}
}

// bareRef names r without its grant ID, which callers may not know.
func bareRef(r storage.Request) storage.RequestRef {
	return storage.RequestRef{Kind: r.Kind, Signature: r.Signature}
}

func testRequestsCreateGet(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	for _, kind := range storage.Kinds {
		r := newRequest(kind, "sig-"+string(kind), "grant-1")
		checkAllSet(t, "newRequest", r)
		createRequest(t, ctx, s, r)
		got, err := s.GetRequest(ctx, kind, r.Signature)
		must(t, err, "GetRequest")
		checkEqual(t, "GetRequest "+string(kind), r, got)
	}
	// An inactive record can be created and read back as such, and an empty
	// payload is fine.
	r := newRequest(storage.KindRefreshGrace, "grace", "grant-2")
	r.Active, r.Payload = false, nil
	createRequest(t, ctx, s, r)
	got, err := s.GetRequest(ctx, r.Kind, r.Signature)
	must(t, err, "GetRequest inactive")
	checkEqual(t, "GetRequest inactive", r, got)
	// Every byte value survives.
	all := newRequest(storage.KindAccessToken, "all-bytes", "grant-3")
	all.Payload = make([]byte, 256)
	for i := range all.Payload {
		all.Payload[i] = byte(255 - i)
	}
	createRequest(t, ctx, s, all)
	got, err = s.GetRequest(ctx, all.Kind, all.Signature)
	must(t, err, "GetRequest all bytes")
	checkEqual(t, "GetRequest with every byte value in its payload", all, got)
}

func testRequestsNotFound(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	r := newRequest(storage.KindAuthorizeCode, "present", "grant-1")
	createRequest(t, ctx, s, r)
	_, err := s.GetRequest(ctx, storage.KindAuthorizeCode, "absent")
	wantErr(t, err, storage.ErrNotFound, "GetRequest of an unknown signature")
	_, err = s.GetRequest(ctx, storage.KindAccessToken, "present")
	wantErr(t, err, storage.ErrNotFound, "GetRequest of a known signature under another kind")
	absent := newRequest(storage.KindAuthorizeCode, "absent", "grant-1")
	wantErr(t, s.DeactivateRequest(ctx, ref(absent)), storage.ErrNotFound, "DeactivateRequest of an unknown record")
	wantErr(t, s.DeactivateRequest(ctx, bareRef(absent)), storage.ErrNotFound, "DeactivateRequest of an unknown record without grant ID")
	wantNotFoundOrNil(t, s.DeleteRequest(ctx, ref(absent)), "DeleteRequest of an unknown record")
	wantNotFoundOrNil(t, s.DeleteRequest(ctx, bareRef(absent)), "DeleteRequest of an unknown record without grant ID")
	must(t, s.RevokeGrant(ctx, "no-such-grant"), "RevokeGrant of an unknown grant")
	wantState(t, ctx, s, r.Kind, r.Signature, "active", "after operations on unknown records")
}

// testRequestsGetMany: GetRequests answers each key as GetRequest does, in
// the order asked, repeated keys included.
func testRequestsGetMany(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	code := newRequest(storage.KindAuthorizeCode, "sig-1", "grant-1")
	pkce := newRequest(storage.KindPKCE, "sig-1", "grant-1")
	// A grant ID with the characters a backend may escape in keys.
	oidc := newRequest(storage.KindOIDC, "hash-1", "grant-{2}%")
	inactive := newRequest(storage.KindRefreshToken, "rt-used", "grant-3")
	inactive.Active = false
	expired := newRequest(storage.KindAccessToken, "at-expired", "grant-1")
	expired.ExpiresAt = time.Now().Add(-time.Second)
	for _, r := range []storage.Request{code, pkce, oidc, inactive, expired} {
		createRequest(t, ctx, s, r)
	}
	key := func(kind storage.RequestKind, sig string) storage.RequestKey {
		return storage.RequestKey{Kind: kind, Signature: sig}
	}
	keys := []storage.RequestKey{
		key(code.Kind, code.Signature),
		key(pkce.Kind, pkce.Signature),
		key(oidc.Kind, oidc.Signature),
		key(storage.KindAuthorizeCode, "absent"),
		key(expired.Kind, expired.Signature),
		key(inactive.Kind, inactive.Signature),
		key(storage.KindAccessToken, code.Signature), // a known signature under another kind
		key(code.Kind, code.Signature),               // repeated
		key(storage.KindAuthorizeCode, "absent"),     // repeated, missing
	}
	want := []*storage.Request{&code, &pkce, &oidc, nil, nil, &inactive, nil, &code, nil}
	recs, found, err := s.GetRequests(ctx, keys)
	must(t, err, "GetRequests")
	if len(recs) != len(keys) || len(found) != len(keys) {
		t.Fatalf("GetRequests of %d keys: %d records and %d found flags", len(keys), len(recs), len(found))
	}
	for i, k := range keys {
		what := fmt.Sprintf("GetRequests key %d (%s/%s)", i, k.Kind, k.Signature)
		if found[i] != (want[i] != nil) {
			t.Errorf("%s: found %v, want %v", what, found[i], want[i] != nil)
			continue
		}
		// The same answer as GetRequest.
		one, err := s.GetRequest(ctx, k.Kind, k.Signature)
		if !found[i] {
			wantErr(t, err, storage.ErrNotFound, "GetRequest of "+what)
			continue
		}
		must(t, err, "GetRequest of "+what)
		checkEqual(t, what, *want[i], recs[i])
		checkEqual(t, what+" against GetRequest", one, recs[i])
	}
	// Each answer is the caller's own, the repeated ones too.
	scribble(reflect.ValueOf(&recs[0]))
	checkEqual(t, "GetRequests repeated key after the caller changed the first answer", code, recs[7])

	for _, empty := range [][]storage.RequestKey{nil, {}} {
		recs, found, err := s.GetRequests(ctx, empty)
		must(t, err, "GetRequests of no keys")
		if len(recs) != 0 || len(found) != 0 {
			t.Errorf("GetRequests of no keys: %d records, %d found flags; want none", len(recs), len(found))
		}
	}
}

// testRequestsGetManyLarge: a key list longer than one statement or script
// would sensibly hold is answered whole.
func testRequestsGetManyLarge(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	const n = 1200
	keys := make([]storage.RequestKey, n)
	for i := range keys {
		keys[i] = storage.RequestKey{Kind: storage.KindAccessToken, Signature: fmt.Sprintf("at-%04d", i)}
	}
	created := map[int]storage.Request{}
	for i := 0; i < n; i += 97 {
		r := newRequest(storage.KindAccessToken, keys[i].Signature, fmt.Sprintf("grant-%d", i))
		createRequest(t, ctx, s, r)
		created[i] = r
	}
	recs, found, err := s.GetRequests(ctx, keys)
	must(t, err, "GetRequests")
	if len(recs) != n || len(found) != n {
		t.Fatalf("GetRequests of %d keys: %d records and %d found flags", n, len(recs), len(found))
	}
	for i := range keys {
		r, ok := created[i]
		if found[i] != ok {
			t.Errorf("GetRequests key %d: found %v, want %v", i, found[i], ok)
		} else if ok {
			checkEqual(t, fmt.Sprintf("GetRequests key %d", i), r, recs[i])
		}
	}
}

func testRequestsConflict(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	r := newRequest(storage.KindAuthorizeCode, "code-1", "grant-1")
	createRequest(t, ctx, s, r)
	dup := newRequest(storage.KindAuthorizeCode, "code-1", "grant-2")
	dup.Payload = []byte("other")
	wantErr(t, s.CreateRequest(ctx, dup), storage.ErrConflict, "CreateRequest with a duplicate kind and signature")
	got, err := s.GetRequest(ctx, r.Kind, r.Signature)
	must(t, err, "GetRequest")
	checkEqual(t, "GetRequest after a refused duplicate", r, got)
	// The refused record did not join grant-2: revoking grant-2 leaves r alone.
	must(t, s.RevokeGrant(ctx, "grant-2"), "RevokeGrant grant-2")
	wantState(t, ctx, s, r.Kind, r.Signature, "active", "after revoking the refused duplicate's grant")
	// Also a duplicate of an inactive record.
	must(t, s.DeactivateRequest(ctx, ref(r)), "DeactivateRequest")
	wantErr(t, s.CreateRequest(ctx, dup), storage.ErrConflict, "CreateRequest duplicating an inactive record")
	wantState(t, ctx, s, r.Kind, r.Signature, "inactive", "after a refused duplicate of an inactive record")
}

func testRequestsKindsDistinct(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	code := newRequest(storage.KindAuthorizeCode, "same", "grant-1")
	pkce := newRequest(storage.KindPKCE, "same", "grant-1")
	oidc := newRequest(storage.KindOIDC, "same", "grant-2")
	for _, r := range []storage.Request{code, pkce, oidc} {
		createRequest(t, ctx, s, r)
	}
	for _, r := range []storage.Request{code, pkce, oidc} {
		got, err := s.GetRequest(ctx, r.Kind, "same")
		must(t, err, "GetRequest")
		checkEqual(t, "GetRequest "+string(r.Kind), r, got)
	}
	must(t, s.DeactivateRequest(ctx, bareRef(code)), "DeactivateRequest code")
	wantState(t, ctx, s, storage.KindAuthorizeCode, "same", "inactive", "after deactivating it")
	wantState(t, ctx, s, storage.KindPKCE, "same", "active", "after deactivating the code of the same signature")
	must(t, s.DeleteRequest(ctx, bareRef(pkce)), "DeleteRequest pkce")
	wantState(t, ctx, s, storage.KindPKCE, "same", "absent", "after deleting it")
	wantState(t, ctx, s, storage.KindAuthorizeCode, "same", "inactive", "after deleting the pkce record of the same signature")
	wantState(t, ctx, s, storage.KindOIDC, "same", "active", "after deleting the pkce record of the same signature")
}

func testRequestsIsolation(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	r := newRequest(storage.KindAccessToken, "at-1", "grant-1")
	orig := r
	orig.Payload = slices.Clone(r.Payload)
	createRequest(t, ctx, s, r)
	scribble(reflect.ValueOf(&r))
	got, err := s.GetRequest(ctx, orig.Kind, orig.Signature)
	must(t, err, "GetRequest")
	checkEqual(t, "GetRequest after the caller changed its input", orig, got)
	scribble(reflect.ValueOf(&got))
	got, err = s.GetRequest(ctx, orig.Kind, orig.Signature)
	must(t, err, "GetRequest")
	checkEqual(t, "GetRequest after the caller changed a returned record", orig, got)
}

func testRequestsDeactivate(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	for _, withGrant := range []bool{true, false} {
		r := newRequest(storage.KindAuthorizeCode, fmt.Sprintf("code-%v", withGrant), "grant-1")
		createRequest(t, ctx, s, r)
		rf := ref(r)
		if !withGrant {
			rf = bareRef(r)
		}
		must(t, s.DeactivateRequest(ctx, rf), fmt.Sprintf("DeactivateRequest (ref with grant ID: %v)", withGrant))
		got, err := s.GetRequest(ctx, r.Kind, r.Signature)
		must(t, err, "GetRequest of a deactivated record (inactive records are still readable)")
		want := r
		want.Active = false
		checkEqual(t, "GetRequest after DeactivateRequest", want, got)
		wantErr(t, s.DeactivateRequest(ctx, rf), storage.ErrInactive, "second DeactivateRequest")
		wantErr(t, s.DeactivateRequest(ctx, ref(r)), storage.ErrInactive, "third DeactivateRequest, with grant ID")
		wantErr(t, s.DeactivateRequest(ctx, bareRef(r)), storage.ErrInactive, "fourth DeactivateRequest, without grant ID")
	}
	// A record created inactive cannot be deactivated either.
	r := newRequest(storage.KindRefreshToken, "born-inactive", "grant-2")
	r.Active = false
	createRequest(t, ctx, s, r)
	wantErr(t, s.DeactivateRequest(ctx, ref(r)), storage.ErrInactive, "DeactivateRequest of a record created inactive")
}

func testRequestsDelete(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	a := newRequest(storage.KindAccessToken, "at-1", "grant-1")
	b := newRequest(storage.KindAccessToken, "at-2", "grant-1")
	c := newRequest(storage.KindAccessToken, "at-3", "grant-1")
	for _, r := range []storage.Request{a, b, c} {
		createRequest(t, ctx, s, r)
	}
	must(t, s.DeleteRequest(ctx, ref(a)), "DeleteRequest with grant ID")
	must(t, s.DeleteRequest(ctx, bareRef(b)), "DeleteRequest without grant ID")
	wantState(t, ctx, s, a.Kind, a.Signature, "absent", "after DeleteRequest with grant ID")
	wantState(t, ctx, s, b.Kind, b.Signature, "absent", "after DeleteRequest without grant ID")
	wantState(t, ctx, s, c.Kind, c.Signature, "active", "after deleting its siblings")
	wantErr(t, s.DeactivateRequest(ctx, ref(a)), storage.ErrNotFound, "DeactivateRequest of a deleted record")
	// The signature is free again.
	createRequest(t, ctx, s, a)
	wantState(t, ctx, s, a.Kind, a.Signature, "active", "after re-creating a deleted record")
	// And a deleted record no longer belongs to its grant's index: revoking
	// the grant after re-creating b under another grant leaves b alone.
	b2 := b
	b2.RequestID = "grant-2"
	createRequest(t, ctx, s, b2)
	must(t, s.RevokeGrant(ctx, "grant-1"), "RevokeGrant grant-1")
	wantState(t, ctx, s, b2.Kind, b2.Signature, "active", "a record re-created under grant-2 after revoking grant-1")
	wantState(t, ctx, s, a.Kind, a.Signature, "absent", "after revoking grant-1")
	wantState(t, ctx, s, c.Kind, c.Signature, "absent", "after revoking grant-1")
}

// grantRecords creates one record of every kind in grant, and returns them.
func grantRecords(t *testing.T, ctx context.Context, s storage.RequestStore, grant string) []storage.Request {
	t.Helper()
	var rs []storage.Request
	for _, kind := range storage.Kinds {
		r := newRequest(kind, grant+"-"+string(kind), grant)
		createRequest(t, ctx, s, r)
		rs = append(rs, r)
	}
	return rs
}

func testRequestsRevokeGrant(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	g1 := grantRecords(t, ctx, s, "g1")
	g2 := grantRecords(t, ctx, s, "g2")
	// Inactive records are revoked too.
	must(t, s.DeactivateRequest(ctx, ref(g1[0])), "DeactivateRequest")
	must(t, s.RevokeGrant(ctx, "g1"), "RevokeGrant")
	for _, r := range g1 {
		wantState(t, ctx, s, r.Kind, r.Signature, "absent", "after RevokeGrant of its grant")
	}
	for _, r := range g2 {
		wantState(t, ctx, s, r.Kind, r.Signature, "active", "after RevokeGrant of another grant")
	}
	must(t, s.RevokeGrant(ctx, "g1"), "RevokeGrant of a revoked grant")
	// The grant can get records again (its ID is not poisoned).
	r := newRequest(storage.KindAccessToken, "g1-new", "g1")
	createRequest(t, ctx, s, r)
	wantState(t, ctx, s, r.Kind, r.Signature, "active", "a record created in a revoked grant")
}

func testRequestsRevokeGrantKinds(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	g1 := grantRecords(t, ctx, s, "g1")
	g2 := grantRecords(t, ctx, s, "g2")
	must(t, s.RevokeGrant(ctx, "g1", storage.KindAccessToken, storage.KindRefreshToken), "RevokeGrant of two kinds")
	for _, r := range g1 {
		want := "active"
		if r.Kind == storage.KindAccessToken || r.Kind == storage.KindRefreshToken {
			want = "absent"
		}
		wantState(t, ctx, s, r.Kind, r.Signature, want, "after RevokeGrant of access and refresh tokens")
	}
	for _, r := range g2 {
		wantState(t, ctx, s, r.Kind, r.Signature, "active", "after RevokeGrant of another grant")
	}
	// The rest of the grant is still revocable as a whole.
	must(t, s.RevokeGrant(ctx, "g1"), "RevokeGrant of all kinds")
	for _, r := range g1 {
		wantState(t, ctx, s, r.Kind, r.Signature, "absent", "after RevokeGrant of all kinds")
	}
}

// testApplySuccess: a refresh-token rotation as server/oauth does it, plus a
// revocation of another grant; everything is applied.
func testApplySuccess(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	oldRefresh := newRequest(storage.KindRefreshToken, "rt-old", "g1")
	oldAccess := newRequest(storage.KindAccessToken, "at-old", "g1")
	createRequest(t, ctx, s, oldRefresh)
	createRequest(t, ctx, s, oldAccess)
	other := grantRecords(t, ctx, s, "g2")
	newAccess := newRequest(storage.KindAccessToken, "at-new", "g1")
	newRefresh := newRequest(storage.KindRefreshToken, "rt-new", "g1")
	err := s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate:   []storage.RequestRef{ref(oldRefresh)},
		Create:       []storage.Request{newAccess, newRefresh},
		Delete:       []storage.RequestRef{bareRef(oldAccess)},
		RevokeGrants: []string{"g2"},
	})
	must(t, err, "ApplyRequests")
	wantState(t, ctx, s, oldRefresh.Kind, oldRefresh.Signature, "inactive", "deactivated by the batch")
	wantState(t, ctx, s, oldAccess.Kind, oldAccess.Signature, "absent", "deleted by the batch")
	for _, r := range []storage.Request{newAccess, newRefresh} {
		got, err := s.GetRequest(ctx, r.Kind, r.Signature)
		must(t, err, "GetRequest of a record the batch created")
		checkEqual(t, "record created by the batch", r, got)
	}
	for _, r := range other {
		wantState(t, ctx, s, r.Kind, r.Signature, "absent", "in a grant the batch revoked")
	}
	// The created records belong to their grant.
	must(t, s.RevokeGrant(ctx, "g1"), "RevokeGrant g1")
	for _, r := range []storage.Request{newAccess, newRefresh, oldRefresh} {
		wantState(t, ctx, s, r.Kind, r.Signature, "absent", "after revoking the grant of the batch")
	}
	// A batch without condition is applied as well, and an empty one is fine.
	must(t, s.ApplyRequests(ctx, storage.RequestBatch{Create: []storage.Request{newRequest(storage.KindOIDC, "o1", "g3")}}), "ApplyRequests without Deactivate")
	wantState(t, ctx, s, storage.KindOIDC, "o1", "active", "created by a batch without Deactivate")
	must(t, s.ApplyRequests(ctx, storage.RequestBatch{}), "ApplyRequests of an empty batch")
}

// testApplyAllOrNothing: a batch whose condition fails changes nothing, even
// when its first Deactivate alone would have succeeded.
func testApplyAllOrNothing(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	active := newRequest(storage.KindRefreshToken, "rt-active", "g1")
	used := newRequest(storage.KindAuthorizeCode, "code-used", "g1")
	toDelete := newRequest(storage.KindAccessToken, "at-1", "g1")
	for _, r := range []storage.Request{active, used, toDelete} {
		createRequest(t, ctx, s, r)
	}
	must(t, s.DeactivateRequest(ctx, ref(used)), "DeactivateRequest")
	other := grantRecords(t, ctx, s, "g2")
	created := newRequest(storage.KindAccessToken, "at-new", "g1")
	for _, withGrant := range []bool{true, false} {
		refs := []storage.RequestRef{ref(active), ref(used)}
		if !withGrant {
			refs = []storage.RequestRef{bareRef(active), bareRef(used)}
		}
		err := s.ApplyRequests(ctx, storage.RequestBatch{
			Deactivate:   refs,
			Create:       []storage.Request{created},
			Delete:       []storage.RequestRef{ref(toDelete)},
			RevokeGrants: []string{"g2"},
		})
		when := fmt.Sprintf("after a batch deactivating an inactive record failed (refs with grant ID: %v)", withGrant)
		wantErr(t, err, storage.ErrInactive, "ApplyRequests deactivating an inactive record")
		wantState(t, ctx, s, active.Kind, active.Signature, "active", when)
		wantState(t, ctx, s, used.Kind, used.Signature, "inactive", when)
		wantState(t, ctx, s, created.Kind, created.Signature, "absent", when)
		wantState(t, ctx, s, toDelete.Kind, toDelete.Signature, "active", when)
		for _, r := range other {
			wantState(t, ctx, s, r.Kind, r.Signature, "active", when+" (in a grant it would have revoked)")
		}
	}
}

func testApplyMissing(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	active := newRequest(storage.KindRefreshToken, "rt-active", "g1")
	createRequest(t, ctx, s, active)
	missing := newRequest(storage.KindAuthorizeCode, "code-missing", "g1")
	created := newRequest(storage.KindAccessToken, "at-new", "g1")
	err := s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{ref(active), ref(missing)},
		Create:     []storage.Request{created},
	})
	wantErr(t, err, storage.ErrNotFound, "ApplyRequests deactivating a missing record")
	wantState(t, ctx, s, active.Kind, active.Signature, "active", "after a batch deactivating a missing record failed")
	wantState(t, ctx, s, created.Kind, created.Signature, "absent", "after a batch deactivating a missing record failed")
	err = s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{bareRef(missing)},
		Create:     []storage.Request{created},
	})
	wantErr(t, err, storage.ErrNotFound, "ApplyRequests deactivating a missing record without grant ID")
	wantState(t, ctx, s, created.Kind, created.Signature, "absent", "after a batch deactivating a missing record failed")
}

// testApplyCreateConflict: a batch creating a record that exists fails with
// ErrConflict, and all or nothing holds for it too.
func testApplyCreateConflict(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	code := newRequest(storage.KindAuthorizeCode, "code", "g1")
	existing := newRequest(storage.KindAccessToken, "at-existing", "g1")
	createRequest(t, ctx, s, code)
	createRequest(t, ctx, s, existing)
	fresh := newRequest(storage.KindRefreshToken, "rt-fresh", "g1")
	dup := newRequest(storage.KindAccessToken, "at-existing", "g1")
	dup.Payload = []byte("replacement")
	err := s.ApplyRequests(ctx, storage.RequestBatch{
		Deactivate: []storage.RequestRef{ref(code)},
		Create:     []storage.Request{fresh, dup},
	})
	wantErr(t, err, storage.ErrConflict, "ApplyRequests creating an existing record")
	wantState(t, ctx, s, code.Kind, code.Signature, "active", "after a batch with a conflicting create failed")
	wantState(t, ctx, s, fresh.Kind, fresh.Signature, "absent", "after a batch with a conflicting create failed")
	got, err := s.GetRequest(ctx, existing.Kind, existing.Signature)
	must(t, err, "GetRequest")
	checkEqual(t, "the existing record after a batch with a conflicting create failed", existing, got)
}

// testDeactivateOnce: an authorization code redeemed by 50 requests at once is
// consumed exactly once (RFC 6749 §4.1.2: a code must not be used more than once).
func testDeactivateOnce(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	for _, withGrant := range []bool{true, false} {
		code := newRequest(storage.KindAuthorizeCode, fmt.Sprintf("code-%v", withGrant), "g1")
		createRequest(t, ctx, s, code)
		rf := ref(code)
		if !withGrant {
			rf = bareRef(code)
		}
		errs := race(concurrency, func(int) error { return s.DeactivateRequest(ctx, rf) })
		exactlyOne(t, errs, storage.ErrInactive, fmt.Sprintf("DeactivateRequest of one code (ref with grant ID: %v)", withGrant))
		wantState(t, ctx, s, code.Kind, code.Signature, "inactive", "after the race")
	}
}

// testApplyOnce: a refresh token presented by 50 requests at once is rotated
// exactly once, and only the winner's new tokens exist (RFC 9700 §4.14.2).
func testApplyOnce(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	old := newRequest(storage.KindRefreshToken, "rt-0", "g1")
	createRequest(t, ctx, s, old)
	errs := race(concurrency, func(i int) error {
		return s.ApplyRequests(ctx, storage.RequestBatch{
			Deactivate: []storage.RequestRef{ref(old)},
			Create: []storage.Request{
				newRequest(storage.KindAccessToken, fmt.Sprintf("at-%02d", i), "g1"),
				newRequest(storage.KindRefreshToken, fmt.Sprintf("rt-%02d", i+1), "g1"),
			},
		})
	})
	w := exactlyOne(t, errs, storage.ErrInactive, "ApplyRequests rotating one refresh token")
	wantState(t, ctx, s, old.Kind, old.Signature, "inactive", "the rotated refresh token")
	for i := range concurrency {
		want := "absent"
		if i == w {
			want = "active"
		}
		wantState(t, ctx, s, storage.KindAccessToken, fmt.Sprintf("at-%02d", i), want, fmt.Sprintf("access token of caller %d (winner %d)", i, w))
		wantState(t, ctx, s, storage.KindRefreshToken, fmt.Sprintf("rt-%02d", i+1), want, fmt.Sprintf("refresh token of caller %d (winner %d)", i, w))
	}
}

// ---------------------------------------------------------------------------
// Replay cache and throttle

func testUseOnce(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	exp := time.Now().Add(time.Hour).In(zone)
	must(t, s.UseOnce(ctx, "jti-1", exp), "first UseOnce")
	wantErr(t, s.UseOnce(ctx, "jti-1", exp), storage.ErrConflict, "second UseOnce")
	wantErr(t, s.UseOnce(ctx, "jti-1", exp.Add(time.Hour)), storage.ErrConflict, "third UseOnce with a later expiry")
	must(t, s.UseOnce(ctx, "jti-2", exp), "UseOnce of another ID")
}

// testConcurrentUseOnce: a client assertion replayed by 50 requests at once is
// accepted once (RFC 7523 §3, jti).
func testConcurrentUseOnce(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	exp := time.Now().Add(time.Hour)
	errs := race(concurrency, func(int) error { return s.UseOnce(ctx, "jti-raced", exp) })
	exactlyOne(t, errs, storage.ErrConflict, "UseOnce of one jti")
}

func testThrottle(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	count := func(key string) int64 {
		t.Helper()
		n, err := s.Count(ctx, key)
		must(t, err, "Count of "+key)
		if len(n) != 1 {
			t.Fatalf("Count of one key returned %d counts", len(n))
		}
		return n[0]
	}
	if n := count("login:alice"); n != 0 {
		t.Errorf("Count of an absent key: %d, want 0", n)
	}
	for want := int64(1); want <= 3; want++ {
		n, err := s.Hit(ctx, "login:alice", time.Hour)
		must(t, err, "Hit")
		if n != want {
			t.Errorf("Hit number %d returned %d", want, n)
		}
	}
	if n, err := s.Hit(ctx, "login:bob", time.Hour); err != nil || n != 1 {
		t.Errorf("Hit of another key: %d, %v; want 1", n, err)
	}
	if n := count("login:alice"); n != 3 {
		t.Errorf("Count after 3 hits: %d, want 3", n)
	}
	// Several keys at once come back in the order asked, absent ones as 0.
	ns, err := s.Count(ctx, "login:bob", "login:absent", "login:alice")
	must(t, err, "Count of three keys")
	if fmt.Sprint(ns) != "[1 0 3]" {
		t.Errorf("Count(bob, absent, alice) = %v, want [1 0 3]", ns)
	}
	must(t, s.Reset(ctx, "login:alice"), "Reset")
	if n := count("login:alice"); n != 0 {
		t.Errorf("Count after Reset: %d, want 0", n)
	}
	if n := count("login:bob"); n != 1 {
		t.Errorf("Count of another key after Reset: %d, want 1", n)
	}
	if n, err := s.Hit(ctx, "login:alice", time.Hour); err != nil || n != 1 {
		t.Errorf("Hit after Reset: %d, %v; want 1", n, err)
	}
	must(t, s.Reset(ctx, "login:absent"), "Reset of an absent key")
	// Reset of several keys clears each, absent ones included.
	must(t, s.Reset(ctx, "login:alice", "login:absent", "login:bob"), "Reset of three keys")
	ns, err = s.Count(ctx, "login:alice", "login:bob")
	must(t, err, "Count after Reset of three keys")
	if fmt.Sprint(ns) != "[0 0]" {
		t.Errorf("Count after Reset of both: %v, want [0 0]", ns)
	}
}

func testThrottleConcurrent(t *testing.T, ctx context.Context, s storage.Ephemeral) {
	counts := make([]int64, concurrency)
	errs := race(concurrency, func(i int) error {
		n, err := s.Hit(ctx, "login:raced", time.Hour)
		counts[i] = n
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Hit %d: %v", i, err)
		}
	}
	slices.Sort(counts)
	for i, n := range counts {
		if n != int64(i+1) {
			t.Fatalf("%d concurrent Hits returned counts %v, want each of 1..%d once", concurrency, counts, concurrency)
		}
	}
	if n, err := s.Count(ctx, "login:raced"); err != nil || len(n) != 1 || n[0] != concurrency {
		t.Errorf("Count after %d concurrent Hits: %v, %v", concurrency, n, err)
	}
}
