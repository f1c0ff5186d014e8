package oauth

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

func fullSession() *Session {
	now := time.Now().UTC().Truncate(time.Second)
	return &Session{
		DefaultSession: openid.DefaultSession{
			Claims: &jwt.IDTokenClaims{
				Subject: "alice", Audience: []string{"web"}, Nonce: "n", AuthTime: now, RequestedAt: now,
				AuthenticationContextClassReference: "1", AuthenticationMethodsReferences: []string{"pwd"},
				Extra: map[string]any{
					"sid":     "s1",
					"address": map[string]any{"country": "FR", "lines": []any{"1 rue", map[string]any{"x": 1.0}}},
					"groups":  []string{"a", "b"},
					"n":       int64(7),
					"ok":      true,
				},
			},
			Headers:   &jwt.Headers{Extra: map[string]any{"kid": "k1"}},
			ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)},
			Subject:   "alice",
		},
		ClientID: "web", Issuer: "https://id.example", BrowserSessionID: "s1", UserInfoClaims: []string{"email"},
	}
}

// TestSessionCloneIsDeep: a clone encodes exactly as the original, and
// changing anything reachable from it leaves the original alone (fosite
// edits the sessions it clones for each token).
func TestSessionCloneIsDeep(t *testing.T) {
	orig := fullSession()
	before, _ := json.Marshal(orig)
	c := orig.Clone().(*Session)
	after, _ := json.Marshal(c)
	if string(before) != string(after) {
		t.Fatalf("clone encodes differently:\n%s\n%s", before, after)
	}
	c.Claims.Subject = "mallory"
	c.Claims.Audience[0] = "x"
	c.Claims.AuthenticationMethodsReferences[0] = "x"
	c.Claims.Extra["sid"] = "x"
	c.Claims.Extra["address"].(map[string]any)["country"] = "x"
	c.Claims.Extra["address"].(map[string]any)["lines"].([]any)[1].(map[string]any)["x"] = 2.0
	c.Claims.Extra["groups"].([]string)[0] = "x"
	c.Headers.Extra["kid"] = "x"
	c.ExpiresAt[fosite.AccessToken] = time.Time{}
	c.UserInfoClaims[0] = "x"
	if now, _ := json.Marshal(orig); string(now) != string(before) {
		t.Errorf("changing the clone changed the original:\n%s\n%s", before, now)
	}
	if (*Session)(nil).Clone() != nil {
		t.Error("nil session cloned to non-nil")
	}
}

// TestSessionCloneUnknownExtra: a claim value of a type the copy does not
// know goes through JSON, so the clone still shares nothing.
func TestSessionCloneUnknownExtra(t *testing.T) {
	type odd struct{ A []string }
	orig := fullSession()
	orig.Claims.Extra["odd"] = &odd{A: []string{"v"}}
	c := orig.Clone().(*Session)
	if _, isMap := c.Claims.Extra["odd"].(map[string]any); !isMap {
		t.Fatalf("odd value cloned as %T, want the JSON form", c.Claims.Extra["odd"])
	}
	if orig.Claims.Extra["odd"].(*odd).A[0] != "v" {
		t.Error("original changed")
	}
}

// TestSessionFieldsKnownToClone fails when a field that holds a reference (a
// slice, map, pointer or interface) is added to the session or its claims
// without Clone copying it.
func TestSessionFieldsKnownToClone(t *testing.T) {
	known := []string{
		"Session.UserInfoClaims", "DefaultSession.Claims", "DefaultSession.Headers", "DefaultSession.ExpiresAt",
		"IDTokenClaims.Audience", "IDTokenClaims.AuthenticationMethodsReferences", "IDTokenClaims.Extra",
		"Headers.Extra",
	}
	var found []string
	var walk func(ty reflect.Type)
	walk = func(ty reflect.Type) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			switch f.Type.Kind() {
			case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
				found = append(found, ty.Name()+"."+f.Name)
				if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
					walk(f.Type.Elem())
				}
			}
		}
	}
	walk(reflect.TypeFor[Session]())
	slices.Sort(found)
	slices.Sort(known)
	if !slices.Equal(found, known) {
		t.Errorf("reference fields %v, Clone knows %v: update Session.Clone", found, known)
	}
}
