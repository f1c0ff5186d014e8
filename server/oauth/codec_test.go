package oauth

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
)

type oneClient struct{ c fosite.Client }

func (o oneClient) GetClient(context.Context, string) (fosite.Client, error) { return o.c, nil }

// TestCodecStoredFormat: the session is encoded inline in one pass, and the
// bytes are those of the earlier two-pass encoding (session marshalled on its
// own, embedded as raw JSON), so records stored by an older release (refresh
// tokens live for weeks) decode unchanged. (Field order may differ; the
// documents are equal.)
func TestCodecStoredFormat(t *testing.T) {
	const issuer = "https://id.example"
	sess := NewSession(issuer)
	sess.Subject = "alice"
	sess.Claims.Subject = "alice"
	sess.Claims.Nonce = "nonce-0123456789"
	sess.Claims.AuthTime = time.Unix(1700000000, 0).UTC()
	sess.Claims.Extra = map[string]any{"sid": "sid-1", "amr": []any{"pwd"}}
	sess.SetExpiresAt(fosite.AccessToken, time.Unix(1700003600, 0).UTC())
	client := &fosite.DefaultClient{ID: "web"}
	ar := &fosite.AuthorizeRequest{
		State:         "state-0123456789",
		ResponseTypes: fosite.Arguments{"code"},
		RedirectURI:   &url.URL{Scheme: "https", Host: "app.example", Path: "/cb"},
		Request: fosite.Request{
			ID: "grant-1", RequestedAt: time.Unix(1700000000, 0).UTC(), Client: client,
			RequestedScope: fosite.Arguments{"openid", "email"}, GrantedScope: fosite.Arguments{"openid"},
			Form: url.Values{"nonce": {"nonce-0123456789"}, "code_verifier": {"secret"}}, Session: sess,
		},
	}
	got, err := encodeRequest(ar, "at-sig")
	if err != nil {
		t.Fatal(err)
	}

	// The earlier encoding, spelled out.
	rawSession, err := json.Marshal(sess)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["session"]; !ok {
		t.Fatalf("no session in %s", got)
	}
	type oldPayload struct {
		payload
		Session json.RawMessage `json:"session,omitempty"`
	}
	old := oldPayload{Session: rawSession}
	if err := json.Unmarshal(got, &old.payload); err != nil {
		t.Fatal(err)
	}
	old.payload.Session = nil
	want, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	var gotDoc, wantDoc any
	if err := json.Unmarshal(got, &gotDoc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &wantDoc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotDoc, wantDoc) {
		t.Fatalf("stored format changed:\n got %s\nwant %s", got, want)
	}

	// And back: the session decodes into the caller's session object.
	into := NewSession(issuer)
	r, _, err := decodeRequest(context.Background(), oneClient{client}, want, into, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if r.Session != fosite.Session(into) || into.Subject != "alice" || into.Claims.Nonce != "nonce-0123456789" ||
		into.Claims.Extra["sid"] != "sid-1" || !into.GetExpiresAt(fosite.AccessToken).Equal(time.Unix(1700003600, 0).UTC()) {
		t.Fatalf("decoded session %+v", into)
	}
	if r.Form.Get("code_verifier") != "" || r.Form.Get("nonce") != "nonce-0123456789" {
		t.Fatalf("form %v: secrets must not be stored, the rest must", r.Form)
	}
	// A record without a session leaves the caller's session as it was.
	empty := NewSession(issuer)
	if _, _, err := decodeRequest(context.Background(), oneClient{client}, []byte(`{"id":"g","client_id":"web"}`), empty, issuer); err != nil || empty.Subject != "" {
		t.Fatalf("no session: %v %+v", err, empty)
	}
}

// TestDecodeWithoutSession: the PKCE record is read for its challenge, its
// method and its client only (RFC 7636 §4.6; fosite's PKCE handler); its
// stored session is skipped and the caller's session is left as it was.
func TestDecodeWithoutSession(t *testing.T) {
	const issuer = "https://id.example"
	stored := NewSession(issuer)
	stored.Subject = "stored-subject"
	client := &fosite.DefaultClient{ID: "web"}
	data, err := encodeRequest(&fosite.Request{ID: "g", Client: client, Session: stored,
		Form: url.Values{"code_challenge": {"abc"}, "code_challenge_method": {"S256"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	mine := NewSession(issuer)
	mine.Subject = "token-request-subject"
	r, _, err := decodeRequestAs(context.Background(), oneClient{client}, data, mine, issuer, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Form.Get("code_challenge") != "abc" || r.Form.Get("code_challenge_method") != "S256" || r.Client.GetID() != "web" {
		t.Errorf("decoded %+v", r)
	}
	if r.Session != fosite.Session(mine) || mine.Subject != "token-request-subject" {
		t.Errorf("the caller's session changed: %+v", mine)
	}
	// Malformed JSON is still refused.
	if _, _, err := decodeRequestAs(context.Background(), oneClient{client}, []byte(`{"session":{`), mine, issuer, false); err == nil {
		t.Error("malformed record decoded")
	}
}
