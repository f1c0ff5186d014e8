// Package login owns the pages a person sees during sign-in: the login form,
// the consent page and the RP-initiated logout pages, and it implements the
// authorization endpoint's Interaction (server/oauth): it decides, for each
// authorization request, whether the browser session is enough, whether the
// user must sign in (again) or consent, and hands the decision back.
package login
