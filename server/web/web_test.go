package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func newUI(t *testing.T, cfg Config) *UI {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u
}

func TestRenderErrorEscapesAndBrands(t *testing.T) {
	u := newUI(t, Config{Brand: Brand{ProductName: "Acme <ID>", AccentColor: "#0a0"}})
	rec := httptest.NewRecorder()
	err := u.RenderError(rec, http.StatusTeapot, ErrorPage{
		Title:     "Oops",
		Message:   `<script>alert("x")</script>`,
		RequestID: "req-42",
	})
	if err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if rec.Code != http.StatusTeapot {
		t.Errorf("status = %d, want 418", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	for _, want := range []string{
		`<html lang="en">`,
		"Acme &lt;ID&gt;",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
		"req-42",
		"<h1>Oops</h1>",
		`href="/static/gatehouse.css?v=`,
		`href="/static/theme.css?v=`,
		`src="/static/logo.svg?v=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
		t.Errorf("page has a script or an inline style, which the CSP forbids:\n%s", body)
	}
}

func TestMissingTemplateFailsFast(t *testing.T) {
	_, err := New(Config{Templates: fstest.MapFS{
		"layout.html": {Data: []byte(`{{define "layout"}}{{block "content" .}}{{end}}{{end}}`)},
	}})
	if err == nil || !strings.Contains(err.Error(), "error.html") {
		t.Fatalf("New without error.html: err = %v, want one naming error.html", err)
	}
}

func TestBrokenTemplateFailsFast(t *testing.T) {
	// A reference to a static file that does not exist is caught by the
	// sample render at start.
	_, err := New(Config{Templates: fstest.MapFS{
		"layout.html": {Data: []byte(`{{define "layout"}}{{.Asset "nope.css"}}{{end}}`)},
		"error.html":  {Data: []byte(`{{define "content"}}{{end}}`)},
	}})
	if err == nil || !strings.Contains(err.Error(), "nope.css") {
		t.Fatalf("err = %v, want one naming nope.css", err)
	}
}

func TestTemplatesDirOverridesPerFile(t *testing.T) {
	dir := t.TempDir()
	page := `{{define "title"}}Custom{{end}}{{define "content"}}<p class="custom">{{.Page.Message}}</p>{{end}}`
	if err := os.WriteFile(filepath.Join(dir, "error.html"), []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	u := newUI(t, Config{TemplatesDir: dir})
	rec := httptest.NewRecorder()
	if err := u.RenderError(rec, 500, ErrorPage{Title: "t", Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<p class="custom">hello</p>`) {
		t.Errorf("override not used:\n%s", body)
	}
	// layout.html was not overridden, so the embedded one is used.
	if !strings.Contains(body, `<html lang="en">`) {
		t.Errorf("embedded layout not used:\n%s", body)
	}

	if _, err := New(Config{TemplatesDir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("New with a missing templates directory: want an error")
	}
}

func TestBrandValidation(t *testing.T) {
	for _, b := range []Brand{
		{AccentColor: "red"},
		{AccentColor: "#12345"},
		{AccentColor: "#123;}body{display:none"},
		{LogoURL: "http://example.com/logo.png"},
		{LogoURL: "//example.com/logo.png"},
		{LogoURL: "javascript:alert(1)"},
	} {
		if _, err := New(Config{Brand: b}); err == nil {
			t.Errorf("New(%+v): want an error", b)
		}
	}
	u := newUI(t, Config{Brand: Brand{LogoURL: "https://cdn.example.com/logo.png"}})
	rec := httptest.NewRecorder()
	if err := u.RenderError(rec, 500, ErrorPage{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Body.String(), `src="https://cdn.example.com/logo.png"`) {
		t.Errorf("configured logo not used:\n%s", rec.Body.String())
	}
}

func TestThemeCSS(t *testing.T) {
	for accent, want := range map[string]string{
		"":        "--accent: #1f5fbf;\n  --accent-contrast: #ffffff;",
		"#FFF":    "--accent: #ffffff;\n  --accent-contrast: #000000;",
		"#000000": "--accent: #000000;\n  --accent-contrast: #ffffff;",
		"#ffd700": "--accent-contrast: #000000;", // gold: black text reads better
		"#2f6fed": "--accent-contrast: #ffffff;", // white reaches 4.5:1, so white, though black is a hair higher
		"#777777": "--accent-contrast: #000000;", // white 4.48:1 misses AA; black is higher
	} {
		css, err := themeCSS(accent)
		if err != nil {
			t.Fatalf("themeCSS(%q): %v", accent, err)
		}
		if !strings.Contains(string(css), want) {
			t.Errorf("themeCSS(%q) = %s, want it to contain %q", accent, css, want)
		}
	}
}

func TestStaticHandlerCaching(t *testing.T) {
	u := newUI(t, Config{Brand: Brand{AccentColor: "#336699"}})
	h := u.StaticHandler(nil)
	themeURL, err := u.AssetURL(ThemeCSS)
	if err != nil {
		t.Fatal(err)
	}

	get := func(target string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := get(themeURL, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "--accent: #336699;") {
		t.Fatalf("GET %s = %d %q", themeURL, rec.Code, rec.Body.String())
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned URL Cache-Control = %q, want immutable", cc)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	rec = get("/static/theme.css", nil)
	if cc := rec.Header().Get("Cache-Control"); cc != "public, no-cache" {
		t.Errorf("unversioned URL Cache-Control = %q, want public, no-cache", cc)
	}
	rec = get("/static/theme.css?v=stale", http.Header{"If-None-Match": {etag}})
	if rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", rec.Code)
	}

	rec = get("/static/logo.svg", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("logo: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/static/", "/static/nope.css", "/static/static.go", "/static/../go.mod"} {
		if rec := get(p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	want := "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if got := ContentSecurityPolicy(); got != want {
		t.Errorf("ContentSecurityPolicy() = %q", got)
	}
	got := ContentSecurityPolicy("https://rp.example.com", "https://x; script-src *")
	if !strings.Contains(got, "form-action 'self' https://rp.example.com;") || strings.Contains(got, "script-src") {
		t.Errorf("ContentSecurityPolicy(...) = %q", got)
	}
}
