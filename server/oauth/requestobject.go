package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/server/jwksfetch"
)

// Request objects (RFC 9101, OIDC Core §6) are verified here, before fosite
// sees the request, because fosite 0.49 accepts alg "none", checks neither
// iss nor aud nor the client_id inside, ignores a request object unless the
// outer scope has openid, needs use "sig" on every key, knows no EdDSA and
// fetches request_uri with a plain HTTP client. Once verified, the object's
// parameters are written into the request's form (they take precedence, OIDC
// Core §6.3.3) and request/request_uri removed, so fosite parses a plain
// authorization request.

// requestObjects verifies request objects of registered clients.
type requestObjects struct {
	keys    *clientKeys
	fetcher *jwksfetch.Fetcher
	issuer  string
	now     func() time.Time
}

// jwtOnlyClaims are the JWT claims of a request object that are not
// authorization request parameters.
var jwtOnlyClaims = []string{"iss", "aud", "exp", "nbf", "iat", "jti", "sub"}

// apply verifies the request object in form (by value or, outside PAR, by
// reference) and merges its parameters into form.
func (o *requestObjects) apply(ctx context.Context, form url.Values, c *Client, atPAR bool) error {
	raw, uri := form.Get("request"), form.Get("request_uri")
	switch {
	case raw == "" && uri == "":
		return nil
	case raw != "" && uri != "":
		return fosite.ErrInvalidRequest.WithHint("Use request or request_uri, not both (RFC 9101 §5).")
	case atPAR && uri != "":
		return nil // fosite refuses request_uri at the PAR endpoint (RFC 9126 §2.1)
	}
	if uri != "" {
		// Only registered URIs are fetched (OIDC Registration §2
		// request_uris), so the server is no open proxy.
		if !slices.Contains(c.C.RequestURIs, uri) {
			return fosite.ErrInvalidRequestURI.WithHint("The request_uri is not registered for this client.")
		}
		body, err := o.fetcher.Fetch(ctx, uri, "application/oauth-authz-req+jwt")
		if err != nil {
			return fosite.ErrInvalidRequestURI.WithHint("The request_uri could not be fetched.").WithWrap(err).WithDebug(err.Error())
		}
		raw = strings.TrimSpace(string(body))
	}

	allowed := allAsymmetricAlgs
	if reg := c.C.RequestObjectSigningAlg; reg != "" {
		// A registered "none" intersects to nothing: unsigned objects are
		// never accepted.
		allowed = intersect([]string{reg}, allAsymmetricAlgs)
	}
	if len(allowed) == 0 {
		return fosite.ErrInvalidRequestObject.WithHint("This client's request_object_signing_alg is not supported.")
	}
	tok, err := josejwt.ParseSigned(raw, sigAlgs(allowed))
	if err != nil {
		return fosite.ErrInvalidRequestObject.WithHintf("The request object must be a JWS signed with %s (unsigned and encrypted objects are refused).", strings.Join(allowed, ", ")).WithWrap(err).WithDebug(err.Error())
	}
	if len(tok.Headers) != 1 {
		return fosite.ErrInvalidRequestObject.WithHint("The request object must have exactly one signature.")
	}
	var std josejwt.Claims
	var params map[string]any
	if err := o.keys.verify(ctx, c.C, tok, &std, &params); err != nil {
		return fosite.ErrInvalidRequestObject.WithHint("The request object's signature does not verify with the client's registered keys.").WithWrap(err).WithDebug(err.Error())
	}
	if err := o.checkClaims(form, c.C.ID, std, params); err != nil {
		return err
	}
	for k, v := range params {
		if slices.Contains(jwtOnlyClaims, k) {
			continue
		}
		s, err := paramString(v)
		if err != nil {
			return fosite.ErrInvalidRequestObject.WithHintf("The request object's %q member cannot be a request parameter.", k)
		}
		form.Set(k, s)
	}
	form.Del("request")
	form.Del("request_uri")
	return nil
}

// checkClaims applies RFC 9101 §4-§6 and OIDC Core §6.1.
func (o *requestObjects) checkClaims(form url.Values, clientID string, std josejwt.Claims, params map[string]any) error {
	now := o.now()
	bad := fosite.ErrInvalidRequestObject.WithHintf
	if std.Issuer != clientID {
		return bad("The request object's iss must be the client_id (RFC 9101 §4).")
	}
	if !slices.Contains(std.Audience, o.issuer) {
		return bad("The request object's aud must be the issuer %s (RFC 9101 §4).", o.issuer)
	}
	if std.Expiry != nil && now.After(std.Expiry.Time().Add(clockSkew)) {
		return bad("The request object has expired.")
	}
	if std.NotBefore != nil && std.NotBefore.Time().After(now.Add(clockSkew)) {
		return bad("The request object is not valid yet (nbf).")
	}
	if id, ok := params["client_id"]; ok && id != clientID {
		return bad("The client_id inside the request object must match the client_id parameter (RFC 9101 §5).")
	}
	if _, ok := params["request"]; ok {
		return bad("A request object must not contain request (RFC 9101 §4).")
	}
	if _, ok := params["request_uri"]; ok {
		return bad("A request object must not contain request_uri (RFC 9101 §4).")
	}
	if rt, ok := params["response_type"]; ok && form.Get("response_type") != "" && rt != form.Get("response_type") {
		return bad("response_type inside and outside the request object must match (OIDC Core §6.1).")
	}
	return nil
}

// paramString renders a request object member as a request parameter:
// strings as they are, numbers and booleans in JSON syntax, objects (such as
// claims, OIDC Core §5.5) as JSON text.
func paramString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case map[string]any, []any:
		b, err := json.Marshal(v)
		return string(b), err
	}
	return "", fmt.Errorf("unsupported type %T", v)
}

// entryGuard wraps fosite's provider at the authorization and PAR endpoints
// (request objects, RFC 9126 §5 PAR policy) and on client-authentication
// errors (RFC 6749 §5.2 WWW-Authenticate).
type entryGuard struct {
	fosite.OAuth2Provider
	store      *Store
	objects    *requestObjects
	requirePAR bool
	parPrefix  string
	realm      string
}

func parseForm(r *http.Request) error {
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return fosite.ErrInvalidRequest.WithHint("Unable to parse the request body.").WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

// NewAuthorizeRequest refuses a request that should have been pushed and
// resolves a request object before fosite parses the request.
func (g *entryGuard) NewAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	if err := parseForm(r); err != nil {
		return nil, err
	}
	if strings.HasPrefix(r.Form.Get("request_uri"), g.parPrefix) {
		// A pushed request: fosite loads it and checks the client matches.
		return g.OAuth2Provider.NewAuthorizeRequest(ctx, r)
	}
	if g.requirePAR {
		return nil, fosite.ErrInvalidRequest.WithHint("This server requires pushed authorization requests (RFC 9126 §5).")
	}
	fc, err := g.store.GetClient(ctx, r.Form.Get("client_id"))
	c, ok := fc.(*Client)
	if err != nil || !ok {
		// fosite reports the unknown client.
		return g.OAuth2Provider.NewAuthorizeRequest(ctx, r)
	}
	if c.C.RequirePushedAuthorizationRequests {
		return nil, fosite.ErrInvalidRequest.WithHint("This client must use pushed authorization requests (RFC 9126 §5).")
	}
	if err := g.objects.apply(ctx, r.Form, c, false); err != nil {
		return nil, err
	}
	return g.OAuth2Provider.NewAuthorizeRequest(ctx, r)
}

// NewPushedAuthorizeRequest resolves a request object sent by value to the
// PAR endpoint (RFC 9126 §3); the client that signed it must be the client
// that authenticated.
func (g *entryGuard) NewPushedAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	if err := parseForm(r); err != nil {
		return nil, err
	}
	if r.Form.Get("request") == "" {
		return g.OAuth2Provider.NewPushedAuthorizeRequest(ctx, r)
	}
	id := r.Form.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok && id == "" {
		id, _ = url.QueryUnescape(u)
	}
	if id == "" && r.Form.Get("client_assertion") != "" {
		// Only picks whose keys to try; authentication checks the assertion.
		if tok, err := josejwt.ParseSigned(r.Form.Get("client_assertion"), sigAlgs(append(slices.Clone(allAsymmetricAlgs), hmacAlgs...))); err == nil {
			var cl josejwt.Claims
			if tok.UnsafeClaimsWithoutVerification(&cl) == nil {
				id = cl.Subject
			}
		}
	}
	fc, err := g.store.GetClient(ctx, id)
	c, ok := fc.(*Client)
	if err != nil || !ok {
		return nil, fosite.ErrInvalidClient.WithHint("The client could not be identified.")
	}
	if err := g.objects.apply(ctx, r.Form, c, true); err != nil {
		return nil, err
	}
	ar, err := g.OAuth2Provider.NewPushedAuthorizeRequest(ctx, r)
	if err == nil && ar.GetClient().GetID() != c.C.ID {
		return ar, fosite.ErrInvalidRequest.WithHint("The request object was signed by another client than the authenticated one.")
	}
	return ar, err
}

// challengeOnInvalidClient adds the Basic challenge RFC 6749 §5.2 requires
// with a 401 invalid_client (it is allowed for any failed authentication).
func (g *entryGuard) challengeOnInvalidClient(w http.ResponseWriter, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, g.realm))
	}
}

// WriteAccessError writes a token endpoint error.
func (g *entryGuard) WriteAccessError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	g.challengeOnInvalidClient(w, err)
	g.OAuth2Provider.WriteAccessError(ctx, w, ar, err)
}

// WritePushedAuthorizeError writes a PAR endpoint error.
func (g *entryGuard) WritePushedAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	g.challengeOnInvalidClient(w, err)
	g.OAuth2Provider.WritePushedAuthorizeError(ctx, w, ar, err)
}

// WriteRevocationResponse writes a revocation endpoint response.
func (g *entryGuard) WriteRevocationResponse(ctx context.Context, w http.ResponseWriter, err error) {
	g.challengeOnInvalidClient(w, err)
	g.OAuth2Provider.WriteRevocationResponse(ctx, w, err)
}

// WriteIntrospectionError writes an introspection endpoint error.
func (g *entryGuard) WriteIntrospectionError(ctx context.Context, w http.ResponseWriter, err error) {
	g.challengeOnInvalidClient(w, err)
	g.OAuth2Provider.WriteIntrospectionError(ctx, w, err)
}

// installClientPolicy plugs client authentication, request objects and the
// PAR policy into a provider New has built.
func (p *Provider) installClientPolicy() {
	fetcher := p.cfg.JWKSFetcher
	if fetcher == nil {
		fetcher = jwksfetch.New(jwksfetch.Config{Logger: p.log})
	}
	keys := &clientKeys{fetcher: fetcher}
	auth := &clientAuth{store: p.store, ring: p.cfg.Ring, keys: keys, issuer: p.issuer, ep: p.ep, now: p.now}
	p.fcfg.ClientAuthenticationStrategy = auth.authenticate
	p.fcfg.IsPushedAuthorizeEnforced = p.cfg.RequirePushedAuthorizationRequests
	p.f = &entryGuard{
		OAuth2Provider: p.f,
		store:          p.store,
		objects:        &requestObjects{keys: keys, fetcher: fetcher, issuer: p.issuer, now: p.now},
		requirePAR:     p.cfg.RequirePushedAuthorizationRequests,
		parPrefix:      p.fcfg.PushedAuthorizeRequestURIPrefix,
		realm:          p.issuer,
	}
}
