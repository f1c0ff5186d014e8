package web

import (
	"html/template"
	"net/http"
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
	pages, err := u.parsePages(cfg, samples)
	if err != nil {
		return nil, err
	}
	return &PageSet{ui: u, pages: pages}, nil
}

// Render writes the named page with the given status, Content-Type and
// Cache-Control: no-store; on a template error it writes nothing.
func (p *PageSet) Render(w http.ResponseWriter, status int, name, requestID string, page any) error {
	return p.ui.render(p.pages, w, status, name, requestID, page)
}

// UI returns the UI the set renders in (for its error page).
func (p *PageSet) UI() *UI { return p.ui }
