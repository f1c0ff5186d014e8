// Package templates embeds the HTML templates of the login, consent, logout
// and error pages. Operators may override any of them from a directory.
package templates

import "embed"

// FS holds the templates.
//
//go:embed *.html
var FS embed.FS
