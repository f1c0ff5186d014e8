package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"net/http"

	"github.com/gatehouse-idp/gatehouse/templates"
)

// PageSet renders page templates that a feature package owns (server/login's
// login, consent and logout pages) in the UI's layout, with the same override
// rules as New. It is kept apart from the UI's built-in pages so each package
// lists its own templates and sample data.
type PageSet struct {
	ui    *UI
	pages map[string]*template.Template
}

// NewPageSet parses the templates named by the keys of samples over the
// layout and renders each once with its sample value, so that a missing or
// broken template fails at start. cfg must be the Config u was built with
// (its TemplatesDir and Templates say where templates come from).
func NewPageSet(u *UI, cfg Config, samples map[string]any) (*PageSet, error) {
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
	p := &PageSet{ui: u, pages: map[string]*template.Template{}}
	for name, sample := range samples {
		text, err := src(name)
		if err != nil {
			return nil, err
		}
		t, err := template.Must(layout.Clone()).New(name).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", name, err)
		}
		p.pages[name] = t
		if err := p.execute(io.Discard, name, "sample", sample); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *PageSet) execute(w io.Writer, name, requestID string, page any) error {
	t, ok := p.pages[name]
	if !ok {
		return fmt.Errorf("no page template %s", name)
	}
	u := p.ui
	v := view{Lang: u.lang, Brand: u.brand, LogoURL: u.logoURL, RequestID: requestID, Page: page, assets: u.assets}
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		return fmt.Errorf("rendering template %s: %w", name, err)
	}
	return nil
}

// Render writes the named page with the given status, Content-Type and
// Cache-Control: no-store; on a template error it writes nothing.
func (p *PageSet) Render(w http.ResponseWriter, status int, name, requestID string, page any) error {
	var buf bytes.Buffer
	if err := p.execute(&buf, name, requestID, page); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing page %s: %w", name, err)
	}
	return nil
}

// UI returns the UI the set renders in (for its error page).
func (p *PageSet) UI() *UI { return p.ui }
