package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Token is the token endpoint (RFC 6749 §3.2): authorization_code (with PKCE,
// RFC 7636), refresh_token (rotated on every use) and client_credentials.
func (p *Provider) Token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// RFC 6749 §5.1: responses carrying tokens must not be cached; errors too.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if dup := duplicateParam(r); dup != "" {
		p.f.WriteAccessError(ctx, w, fosite.NewAccessRequest(nil), fosite.ErrInvalidRequest.WithHintf("The %q parameter was sent more than once (RFC 6749 §3.2).", dup))
		return
	}
	// duplicateParam parsed the form. Only refreshes can be retried within
	// a grace period (see grace.go).
	grace := p.cfg.RefreshGracePeriod > 0 && r.PostForm.Get("grant_type") == "refresh_token"
	if grace {
		ctx = withGraceProbe(ctx)
	}
	ctx = p.withRefreshPolicy(ctx, r) // refreshpolicy.go
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		ctx = withTokenScratch(ctx, r.PostForm.Get("code"))
		defer p.flushScratch(ctx)
	case "refresh_token":
		ctx = withTokenScratch(ctx, "")
		defer p.flushScratch(ctx)
	}
	sess := NewSession(p.issuer)
	ar, err := p.f.NewAccessRequest(ctx, r, sess)
	if err != nil {
		if grace && p.refreshRetry(ctx, w, ar, err) {
			return
		}
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	if err := p.grantUserActive(ctx, ar); err != nil {
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// No end user: grant what the client may have (fosite checked), minus
		// the user-centric scopes, which mean nothing here.
		sess.ClientID = ar.GetClient().GetID()
		for _, s := range ar.GetRequestedScopes() {
			if s != "openid" && s != "offline_access" {
				ar.GrantScope(s)
			}
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
	}
	resp, err := p.f.NewAccessResponse(ctx, ar)
	if err != nil {
		if grace && p.refreshRetry(ctx, w, ar, err) {
			return
		}
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	if !grace {
		p.f.WriteAccessResponse(ctx, w, ar, resp)
		return
	}
	body, err := json.Marshal(resp.ToMap())
	if err != nil {
		p.writeAccessError(ctx, w, ar, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		return
	}
	p.keepGraceResponse(ctx, ar, body)
	writeTokenResponse(w, body)
}

// grantUserActive refuses a code or refresh token whose user has been
// disabled or deleted since the grant was made: the grant would otherwise
// keep minting access tokens, for the refresh token's whole lifetime, for an
// account that can no longer sign in (RFC 6749 §10.4 lets the server refuse
// a refresh token whenever it sees fit; UserInfo already refuses such users).
// Nothing has been consumed yet: fosite changes state only in
// NewAccessResponse.
func (p *Provider) grantUserActive(ctx context.Context, ar fosite.AccessRequester) error {
	gt := ar.GetGrantTypes()
	if !gt.ExactOne("authorization_code") && !gt.ExactOne("refresh_token") {
		return nil
	}
	return p.tokenUserActive(ctx, ar)
}

// tokenUserActive returns fosite.ErrInvalidGrant when the end user of a
// request (none for client_credentials) is disabled or deleted.
func (p *Provider) tokenUserActive(ctx context.Context, ar fosite.Requester) error {
	if ar == nil || ar.GetSession() == nil {
		return nil
	}
	sub := ar.GetSession().GetSubject()
	if sub == "" {
		return nil
	}
	u, err := p.durable.GetUser(ctx, sub)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled):
		return fosite.ErrInvalidGrant.WithHint("The user of this grant is disabled or no longer exists.")
	case err != nil:
		return fosite.ErrServerError.WithWrap(err).WithDebug("loading the grant's user: " + err.Error())
	}
	return nil
}

// writeAccessError turns a lost race on a code or refresh token (the batch
// condition failed at commit) into invalid_grant rather than server_error.
func (p *Provider) writeAccessError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	// An unknown client also wraps storage.ErrNotFound; it stays
	// invalid_client (RFC 6749 §5.2).
	if (errors.Is(err, storage.ErrInactive) || errors.Is(err, storage.ErrNotFound)) && !errors.Is(err, fosite.ErrInvalidClient) {
		err = fosite.ErrInvalidGrant.WithHint("The authorization code or refresh token was already used.").WithWrap(err)
	}
	p.logServerError(ctx, "token", err)
	if ar == nil {
		ar = fosite.NewAccessRequest(nil)
	}
	p.f.WriteAccessError(ctx, w, ar, err)
}

func (p *Provider) logServerError(ctx context.Context, endpoint string, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.CodeField < 500 {
		return
	}
	// The debug text of fosite errors names the failing step, never a secret.
	msg := err.Error()
	if rfc != nil && rfc.DebugField != "" {
		msg = rfc.DebugField
	}
	p.log.LogAttrs(ctx, slog.LevelError, "oauth request failed", slog.String("endpoint", endpoint), slog.String("error", msg))
}

// Revoke is the revocation endpoint (RFC 7009). Revoking either token of a
// grant revokes the tokens of that grant.
func (p *Provider) Revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := p.f.NewRevocationRequest(ctx, r)
	if err != nil {
		p.logServerError(ctx, "revoke", err)
	}
	p.f.WriteRevocationResponse(ctx, w, err)
}

// Introspect is the introspection endpoint (RFC 7662). Callers authenticate
// as a client (RFC 7662 §2.1 leaves the method to the server) with HTTP Basic
// or with client_id and client_secret in the form body (client_secret_post,
// RFC 6749 §2.3.1), which many resource servers use; unknown, expired and
// revoked tokens are reported as {"active": false}.
func (p *Provider) Introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r, hint := introspectionClientAuth(r)
	if hint != "" {
		// fosite would also accept any access token as a bearer credential;
		// only clients may introspect here.
		w.Header().Set("WWW-Authenticate", `Basic realm="`+p.issuer+`"`)
		p.f.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithHint(hint))
		return
	}
	resp, err := p.f.NewIntrospectionRequest(ctx, r, NewSession(p.issuer))
	if err == nil && resp.IsActive() {
		// A disabled or deleted user's tokens are refused at the token and
		// UserInfo endpoints; resource servers must hear the same (RFC 7662
		// §2.2: active is false when the token is not usable).
		err = p.tokenUserActive(ctx, resp.GetAccessRequester())
		if errors.Is(err, fosite.ErrInvalidGrant) {
			p.f.WriteIntrospectionResponse(ctx, w, &fosite.IntrospectionResponse{Active: false})
			return
		}
	}
	if err != nil {
		p.logServerError(ctx, "introspect", err)
		p.f.WriteIntrospectionError(ctx, w, err)
		return
	}
	p.f.WriteIntrospectionResponse(ctx, w, resp)
}

// introspectionClientAuth returns the request as fosite's introspection should
// see it: the client's credentials in HTTP Basic, the only form fosite accepts
// there (moved from the form body for client_secret_post), and no
// access_token parameter, which fosite would otherwise take as a bearer
// credential in place of the client's. On refusal it returns the hint.
func introspectionClientAuth(r *http.Request) (*http.Request, string) {
	if r.Method != http.MethodPost {
		return r, "" // fosite answers invalid_request
	}
	// An unparsable body is fosite's to report; here it just has no credentials.
	_ = r.ParseForm()
	_, _, basic := r.BasicAuth()
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case basic && secret != "":
		// RFC 6749 §2.3: a client must not use more than one method.
		return nil, "Client credentials were sent both in the Authorization header and in the request body."
	case r.URL.Query().Has("client_secret"):
		// RFC 6749 §2.3.1: never in the request URI.
		return nil, "The client secret must not be sent in the URL."
	case !basic && (id == "" || secret == ""):
		return nil, "Client authentication with HTTP Basic or client_secret_post is required."
	case len(r.PostForm["client_id"]) > 1 || len(r.PostForm["client_secret"]) > 1:
		return nil, "Client credentials were sent more than once."
	}
	r2 := r.Clone(r.Context()) // deep-copies Form and PostForm
	for _, v := range []url.Values{r2.Form, r2.PostForm} {
		v.Del("access_token")
		v.Del("client_secret")
	}
	if !basic {
		// fosite query-unescapes both (RFC 6749 §2.3.1).
		r2.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return r2, ""
}

// PAR is the pushed authorization request endpoint (RFC 9126).
func (p *Provider) PAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := p.f.NewPushedAuthorizeRequest(ctx, r)
	if err == nil {
		if dup := duplicateParam(r); dup != "" {
			err = fosite.ErrInvalidRequest.WithHintf("The %q parameter was sent more than once (RFC 6749 §3.1).", dup)
		}
	}
	if err == nil {
		_, err = parseClaimsRequest(ar.GetRequestForm().Get("claims")) // OIDC Core §5.5
	}
	if err != nil {
		p.logServerError(ctx, "par", err)
		p.f.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := p.f.NewPushedAuthorizeResponse(ctx, ar, NewSession(p.issuer))
	if err != nil {
		p.logServerError(ctx, "par", err)
		p.f.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	p.f.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

// UserInfo is the OpenID Connect UserInfo endpoint (OIDC Core §5.3), GET or
// POST, with the bearer token in the Authorization header or the form body
// (RFC 6750 §2.1, §2.2). Claims are released by scope (OIDC Core §5.4).
func (p *Provider) UserInfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, err := bearerToken(r)
	if err != nil {
		p.bearerError(w, http.StatusBadRequest, "invalid_request", err.Error(), "")
		return
	}
	if token == "" {
		// RFC 6750 §3.1: no error code when the request had no credentials.
		p.bearerError(w, http.StatusUnauthorized, "", "", "")
		return
	}
	tu, ar, err := p.f.IntrospectToken(ctx, token, fosite.AccessToken, NewSession(p.issuer))
	if err != nil || tu != fosite.AccessToken {
		p.bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.", "")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		p.bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.", "openid")
		return
	}
	sub := ar.GetSession().GetSubject()
	user, err := p.durable.GetUser(ctx, sub)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && user.Disabled) {
		p.bearerError(w, http.StatusUnauthorized, "invalid_token", "The user of this access token no longer exists.", "")
		return
	}
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelError, "loading user for userinfo", slog.String("error", err.Error()))
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	var requested []string
	if us, ok := ar.GetSession().(*Session); ok {
		requested = us.UserInfoClaims // OIDC Core §5.5 claims parameter
	}
	body, err := json.Marshal(userClaims(user, ar.GetGrantedScopes(), requested))
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// bearerToken takes the token from the Authorization header or, for a
// form-encoded POST, the access_token body parameter; never from the query
// (RFC 6750 §2.3 is not supported: URLs get logged). Using both is an error
// (RFC 6750 §2).
func bearerToken(r *http.Request) (string, error) {
	var header string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(v) == "" {
			return "", errors.New("the Authorization header must use the Bearer scheme")
		}
		header = strings.TrimSpace(v)
	}
	var form string
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			return "", errors.New("the request body is not a valid form")
		}
		if v := r.PostForm["access_token"]; len(v) > 1 {
			return "", errors.New("access_token was sent more than once")
		} else if len(v) == 1 {
			form = v[0]
		}
	}
	if header != "" && form != "" {
		return "", errors.New("the access token was sent in more than one way")
	}
	if header != "" {
		return header, nil
	}
	return form, nil
}

// bearerError answers with RFC 6750 §3's WWW-Authenticate challenge.
func (p *Provider) bearerError(w http.ResponseWriter, status int, code, desc, scope string) {
	challenge := fmt.Sprintf(`Bearer realm=%q`, p.issuer)
	if code != "" {
		challenge += fmt.Sprintf(`, error=%q`, code)
	}
	if desc != "" {
		challenge += fmt.Sprintf(`, error_description=%q`, desc)
	}
	if scope != "" {
		challenge += fmt.Sprintf(`, scope=%q`, scope)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if code == "" {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// duplicateParam returns the name of a parameter sent more than once (RFC 6749
// §3.1 and §3.2: "Request and response parameters MUST NOT be included more
// than once"), looking at the query and the form body together.
func duplicateParam(r *http.Request) string {
	if err := r.ParseForm(); err != nil {
		return ""
	}
	for k, v := range r.Form {
		if len(v) > 1 {
			return k
		}
	}
	return ""
}

// flushScratch deletes the PKCE and OIDC requests no commit took; a failure
// only leaves them to expire, so it is logged, not answered.
func (p *Provider) flushScratch(ctx context.Context) {
	if err := p.store.flushScratch(ctx); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "token request cleanup", slog.String("error", err.Error()))
	}
}
