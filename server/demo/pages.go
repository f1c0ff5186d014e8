package demo

import (
	"github.com/gatehouse-idp/gatehouse/server/web"
)

// Page template files (templates/demo*.html).
const (
	homeTemplate   = "demo.html"
	resultTemplate = "demo_result.html"
	errorTemplate  = "demo_error.html"
)

// HomePage is the data of templates/demo.html.
type HomePage struct {
	LoginAction string // the form's action, /demo/login
	Issuer      string
	ClientID    string
	Username    string // the demo user to sign in as
	SignedIn    bool   // the demo holds tokens from an earlier sign-in
}

// ResultPage is the data of templates/demo_result.html. The JSON documents
// are pre-indented text; the template escapes them like any other text.
type ResultPage struct {
	Refreshed          bool // after a refresh rather than a sign-in
	Subject            string
	IDTokenVerified    bool   // false: the ID token could not be re-verified after a refresh
	IDTokenClaims      string // indented JSON
	UserInfo           string // indented JSON
	Scope              string
	TokenType          string
	AccessTokenExpires string // RFC 3339, "" when the server gave no expires_in
	HasRefreshToken    bool
	RefreshAction      string // /demo/refresh
	LogoutAction       string // /demo/logout
	HomeURL            string // /demo
}

// ErrorPage is the data of templates/demo_error.html: an OAuth error code
// (RFC 6749 §4.1.2.1, §5.2) or a demo-specific one, and its description.
type ErrorPage struct {
	Code        string
	Description string
	HomeURL     string
}

// samples are rendered once at start so a broken template fails fast.
var samples = map[string]any{
	homeTemplate: HomePage{LoginAction: LoginPath, Issuer: "http://localhost:8080", ClientID: ClientID, Username: Username, SignedIn: true},
	resultTemplate: ResultPage{Refreshed: true, Subject: "s", IDTokenVerified: true, IDTokenClaims: "{}", UserInfo: "{}",
		Scope: Scope, TokenType: "Bearer", AccessTokenExpires: "2006-01-02T15:04:05Z", HasRefreshToken: true,
		RefreshAction: RefreshPath, LogoutAction: LogoutPath, HomeURL: HomePath},
	errorTemplate: ErrorPage{Code: "access_denied", Description: "Sample", HomeURL: HomePath},
}

// NewPages parses the demo's templates in the UI's layout. cfg must be the
// web.Config the UI was built with (for template overrides).
func NewPages(ui *web.UI, cfg web.Config) (*web.PageSet, error) {
	return web.NewPageSet(ui, cfg, samples)
}
