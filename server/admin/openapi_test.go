package admin

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

type openAPIDocument struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	return doc
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIMatchesRouter walks the router: every route and method is in
// the document, and every path and method of the document is a route.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc := loadOpenAPI(t)
	st := memory.New()
	defer st.Close()
	e := newEnv(t, st, envOptions{token: testToken})
	r := mux.NewRouter()
	e.api.Routes(r)

	routed := map[string]bool{}
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s has no methods: every route must name them", path)
			return nil
		}
		for _, m := range methods {
			key := strings.ToLower(m) + " " + path
			if routed[key] {
				t.Errorf("%s is routed twice", key)
			}
			routed[key] = true
			if _, ok := doc.Paths[path][strings.ToLower(m)]; !ok {
				t.Errorf("route %s %s is not in openapi.json", m, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths {
		for key := range item {
			if !slices.Contains(httpMethods, key) {
				continue // parameters, summary
			}
			if !routed[key+" "+path] {
				t.Errorf("openapi.json has %s %s, which is not a route", strings.ToUpper(key), path)
			}
		}
	}
	if len(routed) != len(e.api.routes()) {
		t.Errorf("walked %d routes, the table has %d", len(routed), len(e.api.routes()))
	}

	// And it is served.
	res := e.do("GET", "/admin/openapi.json", nil)
	e.want(res, http.StatusOK, "")
	if string(res.body) != string(openAPIDoc) {
		t.Error("GET /admin/openapi.json does not serve the embedded document")
	}
}

// TestOpenAPIReferencesResolve: every $ref points at a component.
func TestOpenAPIReferencesResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// TestOpenAPISchemasMatchTypes: each schema names every JSON member of the
// Go type it describes, and no other.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"Client":               clients.Metadata{},
		"ClientSecret":         secretResponse{},
		"SecretRotation":       rotateRequest{},
		"Revoked":              revoked{},
		"User":                 userView{},
		"Claims":               storage.Claims{},
		"NewUser":              newUserRequest{},
		"UserPatch":            users.Patch{},
		"Password":             passwordRequest{},
		"DeletedUser":          deletedUser{},
		"Session":              sessionView{},
		"Ended":                ended{},
		"Consent":              consentView{},
		"Key":                  keyView{},
		"RegistrationToken":    tokenView{},
		"NewRegistrationToken": newTokenRequest{},
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var documented []string
		for k := range schema.Properties {
			documented = append(documented, k)
		}
		slices.Sort(documented)
		if got := jsonMembers(reflect.TypeOf(v)); !slices.Equal(got, documented) {
			t.Errorf("schema %s documents %v; the type has %v", name, documented, got)
		}
	}
}

// jsonMembers lists the JSON member names of a struct type, sorted.
func jsonMembers(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if f.Anonymous {
			out = append(out, jsonMembers(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
