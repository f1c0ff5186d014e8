// Package web renders Gatehouse's HTML pages and serves their static assets.
//
// Templates are parsed once, at start, from the embedded templates package or
// from an operator's override directory (file by file: a file present there
// replaces the embedded one of the same name). Every page is rendered once
// with sample data at start, so a missing or broken template fails fast
// rather than on the first visitor. All output goes through html/template and
// is escaped for its context.
package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/gatehouse-idp/gatehouse/static"
	"github.com/gatehouse-idp/gatehouse/templates"
)

// Brand is the operator's look: product name, logo and accent colour.
type Brand struct {
	// ProductName is shown in the header and page titles. Default "Gatehouse".
	ProductName string
	// LogoURL is an https URL or an absolute path on this server ("/...");
	// default: the embedded Gatehouse logo.
	LogoURL string
	// AccentColor is #rgb or #rrggbb; default DefaultAccentColor.
	AccentColor string
}

// Config configures New. Every field is optional.
type Config struct {
	Brand Brand
	// Lang is the pages' lang attribute. Default "en".
	Lang string
	// TemplatesDir, when set, is a directory whose files replace the embedded
	// templates of the same name.
	TemplatesDir string
	// Templates and Static replace the embedded file systems (tests use them).
	Templates fs.FS
	Static    fs.FS
}

// layoutFile is the base layout every page is rendered in. It defines the
// template "layout" with the blocks "title" and "content" that pages fill.
const layoutFile = "layout.html"

// Page template files.
const (
	errorPage = "error.html"
)

// pages lists every page template with sample data rendered at start.
var pages = map[string]any{
	errorPage: ErrorPage{Title: "Sample", Message: "Sample", RequestID: "sample"},
}

// ErrorPage is the data of the HTML error page.
type ErrorPage struct {
	Title     string
	Message   string
	RequestID string
}

// UI renders pages and serves static assets.
type UI struct {
	brand   Brand
	lang    string
	logoURL string
	assets  *assets
	pages   map[string]*template.Template
}

// New parses the templates and loads the assets, failing when a template is
// missing or does not render, or when the branding is invalid.
func New(cfg Config) (*UI, error) {
	if cfg.Brand.ProductName == "" {
		cfg.Brand.ProductName = "Gatehouse"
	}
	if cfg.Lang == "" {
		cfg.Lang = "en"
	}
	if cfg.Templates == nil {
		cfg.Templates = templates.FS
	}
	if cfg.Static == nil {
		cfg.Static = static.FS
	}
	theme, err := themeCSS(cfg.Brand.AccentColor)
	if err != nil {
		return nil, fmt.Errorf("ui accent colour: %w", err)
	}
	a, err := loadAssets(cfg.Static, theme)
	if err != nil {
		return nil, err
	}
	u := &UI{brand: cfg.Brand, lang: cfg.Lang, assets: a}

	u.logoURL = cfg.Brand.LogoURL
	if u.logoURL == "" {
		if u.logoURL, err = a.url("logo.svg"); err != nil {
			return nil, fmt.Errorf("default logo: %w", err)
		}
	} else if err := checkLogoURL(u.logoURL); err != nil {
		return nil, err
	}

	if u.pages, err = u.parsePages(cfg, pages); err != nil {
		return nil, err
	}
	return u, nil
}

// parsePages parses the templates named by the keys of samples over the
// layout, the files of cfg.TemplatesDir overriding the embedded ones, and
// renders each once with its sample value, so that a missing or broken
// template fails at start rather than on a user's request.
func (u *UI) parsePages(cfg Config, samples map[string]any) (map[string]*template.Template, error) {
	if cfg.Templates == nil {
		cfg.Templates = templates.FS
	}
	src, err := templateSource(cfg.Templates, cfg.TemplatesDir)
	if err != nil {
		return nil, err
	}
	layoutText, err := src(layoutFile)
	if err != nil {
		return nil, err
	}
	layout, err := template.New(layoutFile).Parse(layoutText)
	if err != nil {
		return nil, fmt.Errorf("parsing template %s: %w", layoutFile, err)
	}
	if layout.Lookup("layout") == nil {
		return nil, fmt.Errorf("template %s does not define \"layout\"", layoutFile)
	}
	pages := make(map[string]*template.Template, len(samples))
	for name, sample := range samples {
		text, err := src(name)
		if err != nil {
			return nil, err
		}
		t, err := template.Must(layout.Clone()).New(name).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", name, err)
		}
		pages[name] = t
		if err := u.execute(pages, io.Discard, name, "sample", sample); err != nil {
			return nil, err
		}
	}
	return pages, nil
}

// templateSource returns a reader of template files that prefers dir.
func templateSource(embedded fs.FS, dir string) (func(string) (string, error), error) {
	var override fs.FS
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("templates directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("templates directory %s is not a directory", dir)
		}
		override = os.DirFS(dir)
	}
	return func(name string) (string, error) {
		if override != nil {
			b, err := fs.ReadFile(override, name)
			if err == nil {
				return string(b), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("reading template %s from %s: %w", name, dir, err)
			}
		}
		b, err := fs.ReadFile(embedded, name)
		if err != nil {
			return "", fmt.Errorf("reading required template %s: %w", name, err)
		}
		return string(b), nil
	}, nil
}

func checkLogoURL(s string) error {
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		// The Content-Security-Policy allows images from 'self' and https: only.
		return fmt.Errorf("ui logo URL %q: want an https URL or an absolute path", s)
	}
	return nil
}

// view is what the layout sees; the page's own data is .Page.
type view struct {
	Lang      string
	Brand     Brand
	LogoURL   string
	RequestID string
	Page      any
	assets    *assets
}

// Asset returns the versioned URL of a static file.
func (v view) Asset(name string) (string, error) { return v.assets.url(name) }

// ThemeURL returns the versioned URL of the generated theme stylesheet.
func (v view) ThemeURL() (string, error) { return v.assets.url(ThemeCSS) }

// execute renders the named page of pages (the UI's own or a PageSet's) in
// the layout.
func (u *UI) execute(pages map[string]*template.Template, w io.Writer, name, requestID string, page any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("no page template %s", name)
	}
	v := view{Lang: u.lang, Brand: u.brand, LogoURL: u.logoURL, RequestID: requestID, Page: page, assets: u.assets}
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		return fmt.Errorf("rendering template %s: %w", name, err)
	}
	return nil
}

// render writes a whole page or, when it cannot be rendered, nothing: the
// page is rendered into a buffer first so a template error never leaves a
// half-written response.
func (u *UI) render(pages map[string]*template.Template, w http.ResponseWriter, status int, name, requestID string, page any) error {
	var buf bytes.Buffer
	if err := u.execute(pages, &buf, name, requestID, page); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages of an identity provider show per-user state: never cache them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing page %s: %w", name, err)
	}
	return nil
}

// RenderError writes the HTML error page with the given status.
func (u *UI) RenderError(w http.ResponseWriter, status int, p ErrorPage) error {
	return u.render(u.pages, w, status, errorPage, p.RequestID, p)
}

// StaticHandler serves the assets under StaticPrefix, including the
// generated ThemeCSS. Unknown names go to notFound (http.NotFound when nil).
func (u *UI) StaticHandler(notFound http.Handler) http.Handler {
	if notFound == nil {
		notFound = http.NotFoundHandler()
	}
	return staticHandler{assets: u.assets, notFound: notFound}
}

// AssetURL returns the versioned URL of a static file.
func (u *UI) AssetURL(name string) (string, error) { return u.assets.url(name) }

// ContentSecurityPolicy returns Gatehouse's strict policy. Pages that submit
// a form to another origin (form_post responses, logout redirects) pass those
// origins as formActions; everything else gets 'self' only.
func ContentSecurityPolicy(formActions ...string) string {
	fa := "'self'"
	for _, o := range formActions {
		// A separator inside a source would start another directive.
		if o == "" || strings.ContainsAny(o, "; ,\t\r\n'") {
			continue
		}
		fa += " " + o
	}
	return "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action " + fa +
		"; frame-ancestors 'none'; base-uri 'none'"
}
