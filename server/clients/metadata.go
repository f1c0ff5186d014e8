package clients

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Metadata is a client's JSON representation: the RFC 7591 §3.2.1 client
// information response (client_id, client_secret when just issued,
// client_id_issued_at, client_secret_expires_at) with every RFC 7591 §2,
// OpenID Connect Dynamic Registration §2 and logout metadata field, plus
// Gatehouse's per-client policy (lifetimes in seconds). It is also the input
// of Create: the issued fields are ignored there.
type Metadata struct {
	ClientID         string `json:"client_id,omitempty"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at,omitempty"`
	// ClientSecretExpiresAt is REQUIRED when a secret was issued (RFC 7591
	// §3.2.1); 0 means it does not expire. Absent for public clients.
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`

	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	SoftwareStatement       string          `json:"software_statement,omitempty"`

	ApplicationType                    string   `json:"application_type,omitempty"`
	SectorIdentifierURI                string   `json:"sector_identifier_uri,omitempty"`
	SubjectType                        string   `json:"subject_type,omitempty"`
	IDTokenSignedResponseAlg           string   `json:"id_token_signed_response_alg,omitempty"`
	UserinfoSignedResponseAlg          string   `json:"userinfo_signed_response_alg,omitempty"`
	RequestObjectSigningAlg            string   `json:"request_object_signing_alg,omitempty"`
	TokenEndpointAuthSigningAlg        string   `json:"token_endpoint_auth_signing_alg,omitempty"`
	DefaultMaxAge                      int64    `json:"default_max_age,omitempty"`
	RequireAuthTime                    bool     `json:"require_auth_time,omitempty"`
	DefaultACRValues                   []string `json:"default_acr_values,omitempty"`
	InitiateLoginURI                   string   `json:"initiate_login_uri,omitempty"`
	RequestURIs                        []string `json:"request_uris,omitempty"`
	PostLogoutRedirectURIs             []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI               string   `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired   bool     `json:"backchannel_logout_session_required,omitempty"`
	FrontchannelLogoutURI              string   `json:"frontchannel_logout_uri,omitempty"`
	FrontchannelLogoutSessionRequired  bool     `json:"frontchannel_logout_session_required,omitempty"`
	RequirePushedAuthorizationRequests bool     `json:"require_pushed_authorization_requests,omitempty"`

	// Gatehouse policy; only trusted callers (CLI, admin API) may set it.
	Audience             []string `json:"audience,omitempty"`
	AccessTokenFormat    string   `json:"access_token_format,omitempty"`
	AccessTokenLifetime  int64    `json:"access_token_lifetime,omitempty"`  // seconds
	RefreshTokenLifetime int64    `json:"refresh_token_lifetime,omitempty"` // seconds
	IDTokenLifetime      int64    `json:"id_token_lifetime,omitempty"`      // seconds
	FirstParty           bool     `json:"first_party,omitempty"`
}

// hasPolicy reports whether any Gatehouse policy field is set.
func (m Metadata) hasPolicy() bool {
	return len(m.Audience) > 0 || m.AccessTokenFormat != "" || m.AccessTokenLifetime != 0 ||
		m.RefreshTokenLifetime != 0 || m.IDTokenLifetime != 0 || m.FirstParty
}

// FromClient is the metadata of a stored client. The secret is never known
// here: ClientSecret is empty.
func FromClient(c storage.Client) Metadata {
	m := Metadata{
		ClientID:                           c.ID,
		RedirectURIs:                       c.RedirectURIs,
		TokenEndpointAuthMethod:            c.TokenEndpointAuthMethod,
		GrantTypes:                         c.GrantTypes,
		ResponseTypes:                      c.ResponseTypes,
		ClientName:                         c.Name,
		ClientURI:                          c.ClientURI,
		LogoURI:                            c.LogoURI,
		Scope:                              strings.Join(c.Scopes, " "),
		Contacts:                           c.Contacts,
		TOSURI:                             c.TOSURI,
		PolicyURI:                          c.PolicyURI,
		JWKSURI:                            c.JWKSURI,
		SoftwareID:                         c.SoftwareID,
		SoftwareVersion:                    c.SoftwareVersion,
		SoftwareStatement:                  c.SoftwareStatement,
		ApplicationType:                    c.ApplicationType,
		SectorIdentifierURI:                c.SectorIdentifierURI,
		SubjectType:                        c.SubjectType,
		IDTokenSignedResponseAlg:           c.IDTokenSignedResponseAlg,
		UserinfoSignedResponseAlg:          c.UserinfoSignedResponseAlg,
		RequestObjectSigningAlg:            c.RequestObjectSigningAlg,
		TokenEndpointAuthSigningAlg:        c.TokenEndpointAuthSigningAlg,
		DefaultMaxAge:                      c.DefaultMaxAge,
		RequireAuthTime:                    c.RequireAuthTime,
		DefaultACRValues:                   c.DefaultACRValues,
		InitiateLoginURI:                   c.InitiateLoginURI,
		RequestURIs:                        c.RequestURIs,
		PostLogoutRedirectURIs:             c.PostLogoutRedirectURIs,
		BackchannelLogoutURI:               c.BackchannelLogoutURI,
		BackchannelLogoutSessionRequired:   c.BackchannelLogoutSessionRequired,
		FrontchannelLogoutURI:              c.FrontchannelLogoutURI,
		FrontchannelLogoutSessionRequired:  c.FrontchannelLogoutSessionRequired,
		RequirePushedAuthorizationRequests: c.RequirePushedAuthorizationRequests,
		Audience:                           c.Audience,
		AccessTokenFormat:                  c.AccessTokenFormat,
		AccessTokenLifetime:                int64(c.AccessTokenLifetime / time.Second),
		RefreshTokenLifetime:               int64(c.RefreshTokenLifetime / time.Second),
		IDTokenLifetime:                    int64(c.IDTokenLifetime / time.Second),
		FirstParty:                         c.FirstParty,
	}
	if len(c.JWKS) > 0 {
		m.JWKS = json.RawMessage(c.JWKS)
	}
	if !c.CreatedAt.IsZero() {
		m.ClientIDIssuedAt = c.CreatedAt.Unix()
	}
	if len(c.SecretHash) > 0 {
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		m.ClientSecretExpiresAt = &exp
	}
	return m
}

// ToClient is the storage record of the metadata, without ID, secret hash or
// times (the service sets those).
func (m Metadata) ToClient() storage.Client {
	c := storage.Client{
		ID:                                 m.ClientID,
		RedirectURIs:                       m.RedirectURIs,
		TokenEndpointAuthMethod:            m.TokenEndpointAuthMethod,
		GrantTypes:                         m.GrantTypes,
		ResponseTypes:                      m.ResponseTypes,
		Name:                               m.ClientName,
		ClientURI:                          m.ClientURI,
		LogoURI:                            m.LogoURI,
		Scopes:                             strings.Fields(m.Scope),
		Contacts:                           m.Contacts,
		TOSURI:                             m.TOSURI,
		PolicyURI:                          m.PolicyURI,
		JWKSURI:                            m.JWKSURI,
		SoftwareID:                         m.SoftwareID,
		SoftwareVersion:                    m.SoftwareVersion,
		SoftwareStatement:                  m.SoftwareStatement,
		ApplicationType:                    m.ApplicationType,
		SectorIdentifierURI:                m.SectorIdentifierURI,
		SubjectType:                        m.SubjectType,
		IDTokenSignedResponseAlg:           m.IDTokenSignedResponseAlg,
		UserinfoSignedResponseAlg:          m.UserinfoSignedResponseAlg,
		RequestObjectSigningAlg:            m.RequestObjectSigningAlg,
		TokenEndpointAuthSigningAlg:        m.TokenEndpointAuthSigningAlg,
		DefaultMaxAge:                      m.DefaultMaxAge,
		RequireAuthTime:                    m.RequireAuthTime,
		DefaultACRValues:                   m.DefaultACRValues,
		InitiateLoginURI:                   m.InitiateLoginURI,
		RequestURIs:                        m.RequestURIs,
		PostLogoutRedirectURIs:             m.PostLogoutRedirectURIs,
		BackchannelLogoutURI:               m.BackchannelLogoutURI,
		BackchannelLogoutSessionRequired:   m.BackchannelLogoutSessionRequired,
		FrontchannelLogoutURI:              m.FrontchannelLogoutURI,
		FrontchannelLogoutSessionRequired:  m.FrontchannelLogoutSessionRequired,
		RequirePushedAuthorizationRequests: m.RequirePushedAuthorizationRequests,
		Audience:                           m.Audience,
		AccessTokenFormat:                  m.AccessTokenFormat,
		AccessTokenLifetime:                time.Duration(m.AccessTokenLifetime) * time.Second,
		RefreshTokenLifetime:               time.Duration(m.RefreshTokenLifetime) * time.Second,
		IDTokenLifetime:                    time.Duration(m.IDTokenLifetime) * time.Second,
		FirstParty:                         m.FirstParty,
	}
	if len(m.JWKS) > 0 {
		c.JWKS = []byte(m.JWKS)
	}
	return c
}
