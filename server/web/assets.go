package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// ThemeCSS is the name of the stylesheet generated from the branding
// configuration. It exists because a strict Content-Security-Policy forbids
// inline styles, so the accent colour cannot be put in the page itself.
const ThemeCSS = "theme.css"

// StaticPrefix is the URL path under which the assets are served.
const StaticPrefix = "/static/"

type asset struct {
	body        []byte
	contentType string
	etag        string // strong ETag: a hash of the content
	version     string // short hash used as the ?v= query in asset URLs
}

// assets holds every static file in memory, with its hash, so that pages can
// link to /static/name?v=hash and browsers may cache those for a year.
type assets struct {
	files map[string]asset
}

func loadAssets(fsys fs.FS, theme []byte) (*assets, error) {
	a := &assets{files: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(name, ".go") {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("reading static file %s: %w", name, err)
		}
		a.add(name, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading static files: %w", err)
	}
	a.add(ThemeCSS, theme)
	return a, nil
}

// assetTypes are the Content-Types of the files we ship, fixed here rather
// than looked up with mime.TypeByExtension: that reads the host's MIME
// database (about 0.4 MB of heap kept for the process's life, measured in
// docs/performance.md) and would make a header depend on the machine.
var assetTypes = map[string]string{
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".webp":  "image/webp",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
	".json":  "application/json",
}

func (a *assets) add(name string, body []byte) {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	ct, ok := assetTypes[path.Ext(name)]
	if !ok {
		ct = "application/octet-stream"
	}
	a.files[name] = asset{body: body, contentType: ct, etag: `"` + h[:32] + `"`, version: h[:16]}
}

// url returns the versioned URL of a static file. An unknown name is a
// mistake in a template; rendering every page once at start catches it.
func (a *assets) url(name string) (string, error) {
	f, ok := a.files[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return StaticPrefix + name + "?v=" + f.version, nil
}

// staticHandler serves the file named by the path after StaticPrefix. A request
// carrying the current version may be cached for a year, since a change of
// content changes the URL; anything else is revalidated with the ETag.
type staticHandler struct {
	assets   *assets
	notFound http.Handler
}

func (s staticHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, StaticPrefix)
	f, ok := s.assets.files[name]
	if !ok || name == "" {
		s.notFound.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == f.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, no-cache")
	}
	// ServeContent answers If-None-Match with 304 and handles Range and HEAD.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
