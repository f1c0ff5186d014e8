package login

import (
	"net/url"
	"strings"
)

// Page template files (templates/*.html).
const (
	loginTemplate     = "login.html"
	consentTemplate   = "consent.html"
	logoutTemplate    = "logout.html"
	loggedOutTemplate = "logged_out.html"
)

// LoginView is the data of templates/login.html.
type LoginView struct {
	Action     string // the form's action, /login
	CSRFToken  string
	Handle     string // the pending authorization request
	ClientName string
	Username   string // prefilled: the last attempt, or login_hint
	Remember   bool
	Error      string
	// CurrentAccount, under prompt=select_account, names the signed-in
	// account the user may continue with (a second form, account=current).
	CurrentAccount string
	// UILocales are the end user's preferred languages (OIDC Core §3.1.2.1
	// ui_locales), for templates that offer translations.
	UILocales []string
}

// ConsentView is the data of templates/consent.html.
type ConsentView struct {
	Action     string // /consent
	CSRFToken  string
	Handle     string
	ClientName string
	LogoURL    string
	ClientURI  string
	PolicyURI  string
	TOSURI     string
	Username   string
	Scopes     []Scope
	UILocales  []string
}

// Scope is one requested scope as the consent page shows it.
type Scope struct {
	Name        string
	Description string // plain words; empty for scopes Gatehouse does not know
	Verbatim    bool   // no description: show Name as is
}

// LogoutView is the data of templates/logout.html, the confirmation asked
// when a logout request cannot be tied to the current session.
type LogoutView struct {
	Action                string // /oauth2/logout
	CSRFToken             string
	ClientID              string
	ClientName            string
	PostLogoutRedirectURI string
	State                 string
	UILocales             string
}

// LoggedOutView is the data of templates/logged_out.html.
type LoggedOutView struct {
	ClientName string
	Notice     string
	// FrontChannelURLs are loaded in hidden iframes (OpenID Connect
	// Front-Channel Logout 1.0 §3).
	FrontChannelURLs []string
	// ContinueURL is post_logout_redirect_uri with state, when the page is
	// shown on the way there.
	ContinueURL string
}

// samples are rendered once at start so a broken template fails fast.
var samples = map[string]any{
	loginTemplate: LoginView{Action: LoginPath, CSRFToken: "t", Handle: "h", ClientName: "Sample", Username: "sample", Remember: true, Error: "Sample", CurrentAccount: "sample"},
	consentTemplate: ConsentView{Action: ConsentPath, CSRFToken: "t", Handle: "h", ClientName: "Sample", LogoURL: "https://example.com/logo.png",
		ClientURI: "https://example.com", PolicyURI: "https://example.com/p", TOSURI: "https://example.com/t", Username: "sample",
		Scopes: describeScopes([]string{"openid", "custom"})},
	logoutTemplate: LogoutView{Action: LogoutPath, CSRFToken: "t", ClientID: "c", ClientName: "Sample", PostLogoutRedirectURI: "https://example.com/", State: "s", UILocales: "en"},
	loggedOutTemplate: LoggedOutView{ClientName: "Sample", Notice: "Sample",
		FrontChannelURLs: []string{"https://example.com/fc?iss=https%3A%2F%2Fidp.example&sid=s"}, ContinueURL: "https://example.com/"},
}

// scopeWords describes the standard scopes (OIDC Core §5.4 and §11) in plain
// words.
var scopeWords = map[string]string{
	"openid":         "Sign you in with your account",
	"profile":        "See your name and basic profile (name, username, picture, website, birthdate, time zone, language)",
	"email":          "See your email address",
	"address":        "See your postal address",
	"phone":          "See your phone number",
	"offline_access": "Keep access to your account when you are not using it",
}

// describeScopes lists the requested scopes for the consent page, known ones
// in plain words and others verbatim, in the order requested.
func describeScopes(scopes []string) []Scope {
	out := make([]Scope, 0, len(scopes))
	for _, s := range scopes {
		if d, ok := scopeWords[s]; ok {
			out = append(out, Scope{Name: s, Description: d})
		} else {
			out = append(out, Scope{Name: s, Verbatim: true})
		}
	}
	return out
}

// webURL returns s when it is an absolute http(s) URL, else "": client
// metadata links are shown only when they cannot run script or point inside
// the page.
func webURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return s
}

// logoURL returns s when the Content-Security-Policy lets the page show it
// (img-src 'self' https: data:; only https is taken from client metadata).
func logoURL(s string) string {
	if !strings.HasPrefix(s, "https://") {
		return ""
	}
	return webURL(s)
}

// formActionSource is the CSP source that lets a form's submission end in a
// redirect to target (browsers check form-action against redirects too):
// scheme://host[:port] for web URLs, "scheme:" for private-use URI schemes
// of native apps (RFC 8252 §7.1).
func formActionSource(target string) string {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}
