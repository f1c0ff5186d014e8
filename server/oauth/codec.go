package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// Stored requests are encoded at every token write and decoded at every read:
// with encoding/json that was about a fifth of a refresh's CPU. goccy/go-json
// does the same three times faster (BenchmarkCodec) and writes the same
// documents (TestCodecStoredFormat, TestCodecReadableByEncodingJSON), so
// records written by either are read by both across a rolling upgrade. It
// only ever reads what this package wrote: input from clients and users
// stays with encoding/json.

// secretFormKeys are request parameters that are never persisted: client
// credentials, PKCE verifiers, passwords and the codes and tokens themselves
// (only their signatures are stored).
var secretFormKeys = []string{
	"client_secret", "client_assertion", "code_verifier", "password",
	"code", "refresh_token", "access_token", "token", "subject_token", "actor_token",
}

// payload is the JSON form of a fosite.Requester kept in storage.Request.Payload.
// The client is kept by ID only and re-read on load, so a deleted or changed
// client takes effect at once.
type payload struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"scopes,omitempty"`
	GrantedScope      []string   `json:"granted_scopes,omitempty"`
	RequestedAudience []string   `json:"audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	// Session is the fosite session, encoded and decoded in the same pass
	// as the rest (a nested RawMessage would be scanned twice more).
	Session any `json:"session,omitempty"`
	// Authorize is set for authorization requests (PAR and pending
	// interactions), which must be rebuilt whole.
	Authorize *authorizePayload `json:"authorize,omitempty"`
	// AccessSignature links a refresh token to the access token issued with
	// it, so that rotation can drop that access token.
	AccessSignature string `json:"access_signature,omitempty"`
}

type authorizePayload struct {
	ResponseTypes        []string `json:"response_types,omitempty"`
	HandledResponseTypes []string `json:"handled_response_types,omitempty"`
	RedirectURI          string   `json:"redirect_uri,omitempty"`
	State                string   `json:"state,omitempty"`
	ResponseMode         string   `json:"response_mode,omitempty"`
	DefaultResponseMode  string   `json:"default_response_mode,omitempty"`
}

// encodeRequest serializes r without any secret form value.
func encodeRequest(r fosite.Requester, accessSignature string) ([]byte, error) {
	p := payload{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt().UTC(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              publicForm(r.GetRequestForm()),
		AccessSignature:   accessSignature,
	}
	if c := r.GetClient(); c != nil {
		p.ClientID = c.GetID()
	}
	switch s := r.GetSession().(type) {
	case *Session:
		if s != nil {
			p.Session = s.stored()
		}
	case nil:
	default:
		p.Session = s
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		a := &authorizePayload{
			ResponseTypes:        ar.GetResponseTypes(),
			State:                ar.GetState(),
			ResponseMode:         string(ar.GetResponseMode()),
			DefaultResponseMode:  string(ar.GetDefaultResponseMode()),
			HandledResponseTypes: handledResponseTypes(ar),
		}
		if u := ar.GetRedirectURI(); u != nil {
			a.RedirectURI = u.String()
		}
		p.Authorize = a
	}
	b, err := gojson.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	return b, nil
}

func handledResponseTypes(ar fosite.AuthorizeRequester) []string {
	if a, ok := ar.(*fosite.AuthorizeRequest); ok {
		return a.HandledResponseTypes
	}
	return nil
}

func publicForm(in url.Values) url.Values {
	out := url.Values{}
	for k, v := range in {
		out[k] = append([]string(nil), v...)
	}
	for _, k := range secretFormKeys {
		delete(out, k)
	}
	return out
}

// clientGetter re-hydrates a request's client.
type clientGetter interface {
	GetClient(ctx context.Context, id string) (fosite.Client, error)
}

// decodeRequest rebuilds a request, decoding the stored session into session
// (the caller's session object, as fosite expects) or a new Session when nil.
func decodeRequest(ctx context.Context, clients clientGetter, data []byte, session fosite.Session, issuer string) (*fosite.Request, *payload, error) {
	return decodeRequestAs(ctx, clients, data, session, issuer, true)
}

// skippedSession takes a stored session's JSON without decoding it.
type skippedSession struct{}

func (*skippedSession) UnmarshalJSON([]byte) error { return nil }

// decodeRequestAs is decodeRequest; without withSession the stored session
// is skipped and session is returned as it was given.
func decodeRequestAs(ctx context.Context, clients clientGetter, data []byte, session fosite.Session, issuer string, withSession bool) (*fosite.Request, *payload, error) {
	if session == nil {
		session = NewSession(issuer)
	}
	// encoding/json decodes into the pointer the interface holds.
	p := payload{Session: session}
	if !withSession {
		p.Session = &skippedSession{}
	} else if s, ok := session.(*Session); ok {
		s.clearOmittable()
	}
	if err := gojson.Unmarshal(data, &p); err != nil {
		return nil, nil, fmt.Errorf("decoding request: %w", err)
	}
	client, err := clients.GetClient(ctx, p.ClientID)
	if err != nil {
		return nil, nil, fmt.Errorf("loading client of request: %w", err)
	}
	r := &fosite.Request{
		ID:                p.ID,
		RequestedAt:       p.RequestedAt,
		Client:            client,
		RequestedScope:    fosite.Arguments(orEmpty(p.RequestedScope)),
		GrantedScope:      fosite.Arguments(orEmpty(p.GrantedScope)),
		RequestedAudience: fosite.Arguments(orEmpty(p.RequestedAudience)),
		GrantedAudience:   fosite.Arguments(orEmpty(p.GrantedAudience)),
		Form:              p.Form,
		Session:           session,
	}
	if r.Form == nil {
		r.Form = url.Values{}
	}
	return r, &p, nil
}

// decodeAuthorizeRequest rebuilds a whole authorization request.
func decodeAuthorizeRequest(ctx context.Context, clients clientGetter, data []byte, session fosite.Session, issuer string) (*fosite.AuthorizeRequest, error) {
	r, p, err := decodeRequest(ctx, clients, data, session, issuer)
	if err != nil {
		return nil, err
	}
	ar := &fosite.AuthorizeRequest{
		ResponseTypes:        fosite.Arguments{},
		HandledResponseTypes: fosite.Arguments{},
		Request:              *r,
	}
	if a := p.Authorize; a != nil {
		ar.ResponseTypes = fosite.Arguments(orEmpty(a.ResponseTypes))
		ar.HandledResponseTypes = fosite.Arguments(orEmpty(a.HandledResponseTypes))
		ar.State = a.State
		ar.ResponseMode = fosite.ResponseModeType(a.ResponseMode)
		ar.DefaultResponseMode = fosite.ResponseModeType(a.DefaultResponseMode)
		if a.RedirectURI != "" {
			u, err := url.Parse(a.RedirectURI)
			if err != nil {
				return nil, fmt.Errorf("decoding redirect_uri: %w", err)
			}
			ar.RedirectURI = u
		}
	}
	return ar, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hashKey turns a bearer value that fosite hands the store in the clear (the
// OpenID Connect session's authorization code, a PAR request_uri) into a
// storage signature, so that no usable value is stored.
func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// storedSession is a *Session as stored: the keys of its own JSON form, less
// the strings and times that are empty and the ID token claims' lists that
// are nil. A client_credentials token has no ID token claims, and their zero
// values were 40 % of its record (in Redis, with the record's header: 777 ->
// 535 bytes). decodeRequestAs clears those fields before decoding, so an absent
// key stands for its zero value as when every key was written: records of
// either form decode the same (TestStoredSessionLeavesOutZeros).
//
// Maps are written as before, null included: decoding merges a stored map
// into the caller's, and only a present key keeps that behaviour.
type storedSession struct {
	Claims           *storedClaims                  `json:"id_token_claims"`
	Headers          *jwt.Headers                   `json:"headers"`
	ExpiresAt        map[fosite.TokenType]time.Time `json:"expires_at"`
	Username         string                         `json:"username,omitempty"`
	Subject          string                         `json:"subject,omitempty"`
	ClientID         string                         `json:"client_id,omitempty"`
	Issuer           string                         `json:"issuer,omitempty"`
	BrowserSessionID string                         `json:"browser_session_id,omitempty"`
	UserInfoClaims   []string                       `json:"userinfo_claims,omitempty"`

	claims storedClaims // Claims points here: one allocation for both
}

// storedClaims is jwt.IDTokenClaims with its zero values left out
// (TestStoredClaimsMirrorIDTokenClaims keeps the two in step). Times are
// pointers, nil when zero: goccy/go-json decides omitzero on a time (or a
// pointer to one) by calling IsZero through reflection, which made encoding
// 60 % slower; omitempty on a pointer is a nil check.
type storedClaims struct {
	JTI                                 string         `json:"jti,omitempty"`
	Issuer                              string         `json:"iss,omitempty"`
	Subject                             string         `json:"sub,omitempty"`
	Audience                            []string       `json:"aud,omitzero"`
	Nonce                               string         `json:"nonce,omitempty"`
	ExpiresAt                           *time.Time     `json:"exp,omitempty"`
	IssuedAt                            *time.Time     `json:"iat,omitempty"`
	RequestedAt                         *time.Time     `json:"rat,omitempty"`
	AuthTime                            *time.Time     `json:"auth_time,omitempty"`
	AccessTokenHash                     string         `json:"at_hash,omitempty"`
	AuthenticationContextClassReference string         `json:"acr,omitempty"`
	AuthenticationMethodsReferences     []string       `json:"amr,omitzero"`
	CodeHash                            string         `json:"c_hash,omitempty"`
	Extra                               map[string]any `json:"ext"`
}

// stored returns s as stored; it points into s.
func (s *Session) stored() *storedSession {
	st := &storedSession{
		Headers:          s.Headers,
		ExpiresAt:        s.ExpiresAt,
		Username:         s.Username,
		Subject:          s.DefaultSession.Subject,
		ClientID:         s.ClientID,
		Issuer:           s.Issuer,
		BrowserSessionID: s.BrowserSessionID,
		UserInfoClaims:   s.UserInfoClaims,
	}
	if c := s.Claims; c != nil {
		st.claims = storedClaims{
			JTI: c.JTI, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Nonce: c.Nonce,
			ExpiresAt: nonZero(&c.ExpiresAt), IssuedAt: nonZero(&c.IssuedAt),
			RequestedAt: nonZero(&c.RequestedAt), AuthTime: nonZero(&c.AuthTime),
			AccessTokenHash: c.AccessTokenHash, AuthenticationContextClassReference: c.AuthenticationContextClassReference,
			AuthenticationMethodsReferences: c.AuthenticationMethodsReferences, CodeHash: c.CodeHash, Extra: c.Extra,
		}
		st.Claims = &st.claims
	}
	return st
}

func nonZero(t *time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return t
}

// clearOmittable zeroes what a stored session may leave out, before a
// record is decoded into s.
func (s *Session) clearOmittable() {
	s.Username, s.DefaultSession.Subject = "", ""
	if c := s.Claims; c != nil {
		*c = jwt.IDTokenClaims{Extra: c.Extra}
	}
}
