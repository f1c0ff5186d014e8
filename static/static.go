// Package static embeds the stylesheets and images the pages use.
package static

import "embed"

// FS holds the static assets.
//
//go:embed *.css *.svg
var FS embed.FS
