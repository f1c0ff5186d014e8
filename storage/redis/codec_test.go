package redis_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
)

// TestRequestWireFormats: a record's data field is a JSON header, a newline
// and the raw payload (version 2); records written by the earlier version 1
// (the payload as base64 inside the JSON) are still read, since refresh
// tokens live for weeks across an upgrade; a version 1 reader, which decodes
// the whole field as JSON, refuses the newer form instead of misreading it.
func TestRequestWireFormats(t *testing.T) {
	s := redistest.New(t)
	ctx := ctxT(t)
	c := s.Client()
	// A payload with newlines and JSON of its own, as the stored requests are.
	payload := []byte("{\"session\":{\"a\":\"b\\nc\"}}\n\x00\xff")

	r := req(storage.KindRefreshToken, "v2", "g1")
	r.Payload = payload
	b, err := redis.EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	header, raw, ok := bytes.Cut(b, []byte{'\n'})
	if !ok || !bytes.Equal(raw, payload) {
		t.Fatalf("version 2 data %q: want a header, a newline and the raw payload", b)
	}
	var v1reader struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &v1reader); err == nil {
		t.Error("a version 1 reader decodes the version 2 form without error")
	}
	if err := json.Unmarshal(header, &v1reader); err != nil || v1reader.V != 2 {
		t.Errorf("header %s: v=%d, %v; want 2", header, v1reader.V, err)
	}
	if err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRequest(ctx, r.Kind, r.Signature); err != nil || !bytes.Equal(got.Payload, payload) {
		t.Fatalf("version 2 round trip: %q, %v", got.Payload, err)
	}

	// A version 1 record, as the earlier release wrote it.
	old := req(storage.KindRefreshToken, "v1", "g0")
	v1 := fmt.Sprintf(`{"v":1,"k":%q,"sig":%q,"rid":%q,"cid":"client","sub":"alice","rat":%d,"exp":%d,"p":%q}`,
		old.Kind, old.Signature, old.RequestID, old.RequestedAt.UnixMicro(), old.ExpiresAt.UnixMicro(),
		base64.StdEncoding.EncodeToString(payload))
	if err := c.HSet(ctx, s.RequestKey(old), "d", v1, "a", "1", "x", old.ExpiresAt.UnixMicro()).Err(); err != nil {
		t.Fatal(err)
	}
	c.Expire(ctx, s.RequestKey(old), time.Minute)
	c.Set(ctx, s.PointerKey(old.Kind, old.Signature), "g0", time.Minute)
	got, err := s.GetRequest(ctx, old.Kind, old.Signature)
	if err != nil || !bytes.Equal(got.Payload, payload) || got.RequestID != "g0" || got.Subject != "alice" || !got.Active ||
		!got.ExpiresAt.Equal(old.ExpiresAt.Truncate(time.Microsecond)) {
		t.Fatalf("version 1 record: %+v, %v", got, err)
	}
	recs, found, err := s.GetRequests(ctx, []storage.RequestKey{{Kind: old.Kind, Signature: old.Signature}, {Kind: r.Kind, Signature: r.Signature}})
	if err != nil || !found[0] || !found[1] || !bytes.Equal(recs[0].Payload, payload) || !bytes.Equal(recs[1].Payload, payload) {
		t.Fatalf("GetRequests over both versions: %v %v", found, err)
	}
	// And it can be consumed as usual.
	if err := s.DeactivateRequest(ctx, storage.RequestRef{Kind: old.Kind, Signature: old.Signature}); err != nil {
		t.Fatalf("deactivating a version 1 record: %v", err)
	}

	// Anything else is refused, not misread.
	for _, bad := range []string{`{"v":3,"k":"refresh_token"}` + "\npayload", `{"v":2,"k":"refresh_token"}`, `{"v":1}` + "\nx"} {
		if err := c.HSet(ctx, s.RequestKey(old), "d", bad, "a", "1").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRequest(ctx, old.Kind, old.Signature); err == nil {
			t.Errorf("data %q was read", bad)
		}
	}
}
