package oauth

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

type oneClient struct{ c fosite.Client }

func (o oneClient) GetClient(context.Context, string) (fosite.Client, error) { return o.c, nil }

// TestCodecStoredFormat: the session is encoded inline in one pass, and the
// document is that of the earlier two-pass encoding (session marshalled on its
// own, embedded as raw JSON) less the session's empty strings, zero times and
// nil claim lists (storedSession). (Field order may differ; the documents are
// equal.) TestStoredSessionLeavesOutZeros checks that both forms decode the same.
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
	old := oldPayload{Session: leaveOutZeros(t, rawSession)}
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

// TestCodecReadableByEncodingJSON: during a rolling upgrade a release that
// decodes stored requests with encoding/json reads records this one wrote
// with goccy/go-json, and the reverse. Both directions must rebuild the same
// request, including strings that need escaping and claims of every JSON type.
func TestCodecReadableByEncodingJSON(t *testing.T) {
	const issuer = "https://id.example"
	r, client := benchRequest()
	sess := r.Session.(*Session)
	sess.Claims.Extra["name"] = "Zoë \"Z\" <z&z>\n\u2028tab\t"
	sess.Claims.Extra["nested"] = map[string]any{"n": 1.5, "list": []any{"a", 2.0, true, nil}, "empty": map[string]any{}}
	sess.Claims.AuthenticationMethodsReferences = []string{}
	sess.UserInfoClaims = []string{"email", "name"}
	r.Form.Set("state", "ü<>&\x7f")
	ar := &fosite.AuthorizeRequest{
		State: "s<>&", ResponseTypes: fosite.Arguments{"code"}, HandledResponseTypes: fosite.Arguments{},
		RedirectURI: &url.URL{Scheme: "https", Host: "app.example", Path: "/cb", RawQuery: "a=1&b=%20"},
		Request:     *r,
	}

	decodeStd := func(t *testing.T, data []byte) *fosite.AuthorizeRequest {
		t.Helper()
		into := NewSession(issuer)
		p := payload{Session: into}
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("encoding/json cannot read %s: %v", data, err)
		}
		// Rebuild through the same code path, from encoding/json's own bytes.
		std, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeAuthorizeRequest(context.Background(), oneClient{client}, std, nil, issuer)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, req := range map[string]fosite.Requester{"token request": r, "authorization request": ar} {
		t.Run(name, func(t *testing.T) {
			ours, err := encodeRequest(req, "at-sig")
			if err != nil {
				t.Fatal(err)
			}
			fromOurs, err := decodeAuthorizeRequest(context.Background(), oneClient{client}, ours, nil, issuer)
			if err != nil {
				t.Fatal(err)
			}
			fromStd := decodeStd(t, ours)
			if !reflect.DeepEqual(fromOurs, fromStd) {
				t.Fatalf("the two decoders disagree:\nours %+v\nstd  %+v", fromOurs, fromStd)
			}
			got := fromOurs.GetSession().(*Session)
			if got.Claims.Extra["name"] != sess.Claims.Extra["name"] || got.Subject != "alice" ||
				!reflect.DeepEqual(got.Claims.Extra["nested"], sess.Claims.Extra["nested"]) {
				t.Fatalf("session not rebuilt: %+v", got.Claims)
			}
			if fromOurs.GetRequestForm().Get("state") != "ü<>&\x7f" {
				t.Fatalf("form %v", fromOurs.GetRequestForm())
			}
		})
	}
}

// leaveOutZeros is the session document as storedSession writes it: the
// earlier document less its empty strings, zero times and the claims' null
// lists.
func leaveOutZeros(t *testing.T, session []byte) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(session, &m); err != nil {
		t.Fatal(err)
	}
	zero := func(v any, claimList bool) bool {
		return v == "" || v == "0001-01-01T00:00:00Z" || (claimList && v == nil)
	}
	for _, k := range []string{"username", "subject"} {
		if zero(m[k], false) {
			delete(m, k)
		}
	}
	if c, ok := m["id_token_claims"].(map[string]any); ok {
		for k, v := range c {
			if k != "ext" && zero(v, k == "aud" || k == "amr") {
				delete(c, k)
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoredSessionLeavesOutZeros: a record whose session leaves out its zero
// values (this release) and one that writes every key (earlier releases)
// decode to the same request, into a fresh session and into one that holds
// other values already (the OpenID Connect record is decoded into the session
// its code filled). A release that decodes straight into the session, as the
// earlier ones did, reads the short form into a fresh session as it read the
// long one (a rolling upgrade).
func TestStoredSessionLeavesOutZeros(t *testing.T) {
	const issuer = "https://id.example"
	client := &fosite.DefaultClient{ID: "web"}
	cc := NewSession(issuer)
	cc.ClientID = "svc"
	cc.SetExpiresAt(fosite.AccessToken, time.Unix(1700003600, 0).UTC())
	signIn, _ := benchRequest()
	full := fullSession()
	full.Claims.Extra["n"] = 7.0 // as JSON reads it back
	full.Claims.Extra["groups"] = []any{"a", "b"}
	full.Claims.JTI, full.Claims.Issuer, full.Claims.AccessTokenHash, full.Claims.CodeHash = "j", issuer, "ah", "ch"
	full.Claims.ExpiresAt, full.Claims.IssuedAt = time.Unix(1700003600, 0).UTC(), time.Unix(1700000000, 0).UTC()
	full.Username = "alice@example.com"
	emptyLists := NewSession(issuer)
	emptyLists.Claims.Audience, emptyLists.Claims.AuthenticationMethodsReferences = []string{}, []string{}
	noClaims := NewSession(issuer)
	noClaims.Claims, noClaims.Headers = nil, nil

	// stale is what a session may hold before a record is decoded into it.
	stale := func() *Session {
		s := fullSession()
		s.Username = "stale"
		s.Claims.JTI, s.Claims.Nonce, s.Claims.AuthenticationContextClassReference = "stale", "stale", "stale"
		s.Claims.ExpiresAt = time.Unix(1, 0).UTC()
		s.Claims.Audience = []string{"stale"}
		return s
	}
	for name, sess := range map[string]*Session{
		"client_credentials": cc, "sign-in": signIn.Session.(*Session), "every field": full,
		"empty lists": emptyLists, "no claims": noClaims,
	} {
		t.Run(name, func(t *testing.T) {
			r := &fosite.Request{ID: "g", RequestedAt: time.Unix(1700000000, 0).UTC(), Client: client,
				Form: url.Values{"grant_type": {"client_credentials"}}, Session: sess}
			short, err := encodeRequest(r, "")
			if err != nil {
				t.Fatal(err)
			}
			// The earlier form: the session as encoding/json writes it.
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(short, &doc); err != nil {
				t.Fatal(err)
			}
			if doc["session"], err = json.Marshal(sess); err != nil {
				t.Fatal(err)
			}
			long, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(short) > len(long) {
				t.Errorf("the stored form is longer: %d > %d bytes", len(short), len(long))
			}
			t.Logf("%d bytes, %d in the earlier form", len(short), len(long))

			for _, into := range []func() *Session{func() *Session { return NewSession(issuer) }, stale} {
				fromShort, fromLong := into(), into()
				if _, _, err := decodeRequest(context.Background(), oneClient{client}, short, fromShort, issuer); err != nil {
					t.Fatal(err)
				}
				if _, _, err := decodeRequest(context.Background(), oneClient{client}, long, fromLong, issuer); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(fromShort, fromLong) {
					t.Fatalf("the two forms decode differently:\nshort %+v\nlong  %+v", fromShort, fromLong)
				}
			}
			// The original comes back, but for what a round trip through
			// JSON changes anyway (the long form does the same).
			want := NewSession(issuer)
			if err := json.Unmarshal(long, &payload{Session: want}); err != nil {
				t.Fatal(err)
			}
			got := NewSession(issuer)
			if _, _, err := decodeRequest(context.Background(), oneClient{client}, short, got, issuer); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v\nwant    %+v", got, want)
			}
			if got.Subject != sess.Subject || got.ClientID != sess.ClientID ||
				!got.GetExpiresAt(fosite.AccessToken).Equal(sess.GetExpiresAt(fosite.AccessToken)) {
				t.Fatalf("decoded %+v from %+v", got, sess)
			}
			// An earlier release: encoding/json straight into a fresh session.
			earlier := NewSession(issuer)
			if err := json.Unmarshal(short, &payload{Session: earlier}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(earlier, want) {
				t.Fatalf("an earlier release reads %+v\nwant %+v", earlier, want)
			}
		})
	}
}

// TestStoredClaimsMirrorIDTokenClaims fails when fosite's ID token claims
// gain, lose or rename a field that storedClaims does not follow.
func TestStoredClaimsMirrorIDTokenClaims(t *testing.T) {
	fields := func(ty reflect.Type) []string {
		var out []string
		for i := range ty.NumField() {
			f := ty.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, f.Name+" "+key)
		}
		return out
	}
	got, want := fields(reflect.TypeFor[storedClaims]()), fields(reflect.TypeFor[jwt.IDTokenClaims]())
	if !slices.Equal(got, want) {
		t.Errorf("storedClaims has %v\njwt.IDTokenClaims has %v", got, want)
	}
}
