package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// clientFlags binds a flag to every RFC 7591 / OIDC Registration field and
// Gatehouse's per-client policy.
type clientFlags struct {
	md           clients.Metadata
	clientID     string
	metadataFile string
	jwks         string
	accessTTL    time.Duration
	refreshTTL   time.Duration
	idTTL        time.Duration
}

func (c *clientFlags) register(cmd *cobra.Command) {
	f, m := cmd.Flags(), &c.md
	f.StringVar(&c.metadataFile, "metadata-file", "", "read RFC 7591 client metadata (JSON) from this file; flags given override it")
	f.StringVar(&c.clientID, "client-id", "", "use this client_id instead of a random one")
	f.StringVar(&m.ClientName, "name", "", "client_name shown on the consent page")
	f.StringSliceVar(&m.RedirectURIs, "redirect-uri", nil, "redirect_uris, comma-separated or repeated")
	f.StringSliceVar(&m.GrantTypes, "grant-type", nil, "grant_types: authorization_code, refresh_token, client_credentials (default authorization_code)")
	f.StringSliceVar(&m.ResponseTypes, "response-type", nil, "response_types (default code)")
	f.StringVar(&m.Scope, "scope", "", `scope values the client may request, space-separated, e.g. "openid profile offline_access"`)
	f.StringVar(&m.TokenEndpointAuthMethod, "token-endpoint-auth-method", "", "client_secret_basic (default), client_secret_post, private_key_jwt or none (public client)")
	f.StringVar(&m.ApplicationType, "application-type", "", "web (default) or native")
	f.StringVar(&m.ClientURI, "client-uri", "", "client_uri: the client's home page")
	f.StringVar(&m.LogoURI, "logo-uri", "", "logo_uri")
	f.StringSliceVar(&m.Contacts, "contact", nil, "contacts, comma-separated or repeated")
	f.StringVar(&m.TOSURI, "tos-uri", "", "tos_uri: terms of service")
	f.StringVar(&m.PolicyURI, "policy-uri", "", "policy_uri: privacy policy")
	f.StringVar(&m.JWKSURI, "jwks-uri", "", "jwks_uri: the client's public keys (for private_key_jwt)")
	f.StringVar(&c.jwks, "jwks", "", "jwks: the client's JWK Set as JSON, or @file to read it")
	f.StringVar(&m.SoftwareID, "software-id", "", "software_id")
	f.StringVar(&m.SoftwareVersion, "software-version", "", "software_version")
	f.StringVar(&m.SoftwareStatement, "software-statement", "", "software_statement (a JWT)")
	f.StringVar(&m.SectorIdentifierURI, "sector-identifier-uri", "", "sector_identifier_uri")
	f.StringVar(&m.SubjectType, "subject-type", "", "subject_type: public")
	f.StringVar(&m.IDTokenSignedResponseAlg, "id-token-signed-response-alg", "", "id_token_signed_response_alg: RS256, ES256, EdDSA or PS256")
	f.StringVar(&m.UserinfoSignedResponseAlg, "userinfo-signed-response-alg", "", "userinfo_signed_response_alg")
	f.StringVar(&m.RequestObjectSigningAlg, "request-object-signing-alg", "", "request_object_signing_alg")
	f.StringVar(&m.TokenEndpointAuthSigningAlg, "token-endpoint-auth-signing-alg", "", "token_endpoint_auth_signing_alg")
	f.Int64Var(&m.DefaultMaxAge, "default-max-age", 0, "default_max_age in seconds")
	f.BoolVar(&m.RequireAuthTime, "require-auth-time", false, "require_auth_time")
	f.StringSliceVar(&m.DefaultACRValues, "default-acr-value", nil, "default_acr_values")
	f.StringVar(&m.InitiateLoginURI, "initiate-login-uri", "", "initiate_login_uri")
	f.StringSliceVar(&m.RequestURIs, "request-uri", nil, "request_uris")
	f.StringSliceVar(&m.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "post_logout_redirect_uris, comma-separated or repeated")
	f.StringVar(&m.BackchannelLogoutURI, "backchannel-logout-uri", "", "backchannel_logout_uri")
	f.BoolVar(&m.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false, "backchannel_logout_session_required")
	f.StringVar(&m.FrontchannelLogoutURI, "frontchannel-logout-uri", "", "frontchannel_logout_uri")
	f.BoolVar(&m.FrontchannelLogoutSessionRequired, "frontchannel-logout-session-required", false, "frontchannel_logout_session_required")
	f.BoolVar(&m.RequirePushedAuthorizationRequests, "require-par", false, "require_pushed_authorization_requests (RFC 9126)")
	f.StringSliceVar(&m.Audience, "audience", nil, "audiences (resource servers) the client's access tokens are for")
	f.StringVar(&m.AccessTokenFormat, "access-token-format", "", "opaque (default) or jwt (RFC 9068)")
	f.DurationVar(&c.accessTTL, "access-token-lifetime", 0, "access token lifetime for this client, e.g. 15m (default: server setting)")
	f.DurationVar(&c.refreshTTL, "refresh-token-lifetime", 0, "refresh token lifetime for this client")
	f.DurationVar(&c.idTTL, "id-token-lifetime", 0, "ID token lifetime for this client")
	f.BoolVar(&m.FirstParty, "first-party", false, "a first-party client: users are not asked for consent")
}

// metadata builds the registration request: the metadata file if any, then
// every flag that was given.
func (c *clientFlags) metadata(cmd *cobra.Command) (clients.Metadata, error) {
	md := clients.Metadata{}
	if c.metadataFile != "" {
		b, err := os.ReadFile(c.metadataFile)
		if err != nil {
			return md, fmt.Errorf("reading --metadata-file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields() // a typo in a field name must not go unnoticed
		if err := dec.Decode(&md); err != nil {
			return md, fmt.Errorf("parsing --metadata-file %s: %w", c.metadataFile, err)
		}
	}
	flagged := c.md
	if c.jwks != "" {
		raw := []byte(c.jwks)
		if name, ok := strings.CutPrefix(c.jwks, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return md, fmt.Errorf("reading --jwks: %w", err)
			}
			raw = b
		}
		if !json.Valid(raw) {
			return md, fmt.Errorf("--jwks is not valid JSON: give a JWK Set such as {\"keys\":[...]} or @file")
		}
		flagged.JWKS = json.RawMessage(bytes.TrimSpace(raw))
	}
	flagged.AccessTokenLifetime = int64(c.accessTTL / time.Second)
	flagged.RefreshTokenLifetime = int64(c.refreshTTL / time.Second)
	flagged.IDTokenLifetime = int64(c.idTTL / time.Second)

	// Copy over the file's value each field whose flag was given.
	fs := cmd.Flags()
	for flag, copyField := range map[string]func(){
		"name": func() { md.ClientName = flagged.ClientName }, "redirect-uri": func() { md.RedirectURIs = flagged.RedirectURIs },
		"grant-type": func() { md.GrantTypes = flagged.GrantTypes }, "response-type": func() { md.ResponseTypes = flagged.ResponseTypes },
		"scope": func() { md.Scope = flagged.Scope }, "token-endpoint-auth-method": func() { md.TokenEndpointAuthMethod = flagged.TokenEndpointAuthMethod },
		"application-type": func() { md.ApplicationType = flagged.ApplicationType }, "client-uri": func() { md.ClientURI = flagged.ClientURI },
		"logo-uri": func() { md.LogoURI = flagged.LogoURI }, "contact": func() { md.Contacts = flagged.Contacts },
		"tos-uri": func() { md.TOSURI = flagged.TOSURI }, "policy-uri": func() { md.PolicyURI = flagged.PolicyURI },
		"jwks-uri": func() { md.JWKSURI = flagged.JWKSURI }, "jwks": func() { md.JWKS = flagged.JWKS },
		"software-id": func() { md.SoftwareID = flagged.SoftwareID }, "software-version": func() { md.SoftwareVersion = flagged.SoftwareVersion },
		"software-statement":           func() { md.SoftwareStatement = flagged.SoftwareStatement },
		"sector-identifier-uri":        func() { md.SectorIdentifierURI = flagged.SectorIdentifierURI },
		"subject-type":                 func() { md.SubjectType = flagged.SubjectType },
		"id-token-signed-response-alg": func() { md.IDTokenSignedResponseAlg = flagged.IDTokenSignedResponseAlg },
		"userinfo-signed-response-alg": func() { md.UserinfoSignedResponseAlg = flagged.UserinfoSignedResponseAlg },
		"request-object-signing-alg":   func() { md.RequestObjectSigningAlg = flagged.RequestObjectSigningAlg },
		"token-endpoint-auth-signing-alg": func() {
			md.TokenEndpointAuthSigningAlg = flagged.TokenEndpointAuthSigningAlg
		},
		"default-max-age":    func() { md.DefaultMaxAge = flagged.DefaultMaxAge },
		"require-auth-time":  func() { md.RequireAuthTime = flagged.RequireAuthTime },
		"default-acr-value":  func() { md.DefaultACRValues = flagged.DefaultACRValues },
		"initiate-login-uri": func() { md.InitiateLoginURI = flagged.InitiateLoginURI },
		"request-uri":        func() { md.RequestURIs = flagged.RequestURIs },
		"post-logout-redirect-uri": func() {
			md.PostLogoutRedirectURIs = flagged.PostLogoutRedirectURIs
		},
		"backchannel-logout-uri": func() { md.BackchannelLogoutURI = flagged.BackchannelLogoutURI },
		"backchannel-logout-session-required": func() {
			md.BackchannelLogoutSessionRequired = flagged.BackchannelLogoutSessionRequired
		},
		"frontchannel-logout-uri": func() { md.FrontchannelLogoutURI = flagged.FrontchannelLogoutURI },
		"frontchannel-logout-session-required": func() {
			md.FrontchannelLogoutSessionRequired = flagged.FrontchannelLogoutSessionRequired
		},
		"require-par":            func() { md.RequirePushedAuthorizationRequests = flagged.RequirePushedAuthorizationRequests },
		"audience":               func() { md.Audience = flagged.Audience },
		"access-token-format":    func() { md.AccessTokenFormat = flagged.AccessTokenFormat },
		"access-token-lifetime":  func() { md.AccessTokenLifetime = flagged.AccessTokenLifetime },
		"refresh-token-lifetime": func() { md.RefreshTokenLifetime = flagged.RefreshTokenLifetime },
		"id-token-lifetime":      func() { md.IDTokenLifetime = flagged.IDTokenLifetime },
		"first-party":            func() { md.FirstParty = flagged.FirstParty },
	} {
		if fs.Changed(flag) {
			copyField()
		}
	}
	return md, nil
}

// withClients runs f with a client service over the configured database.
func withClients(cmd *cobra.Command, app *App, f func(*clients.Service) error) error {
	e, err := app.open(cmd.Context())
	if err != nil {
		return err
	}
	defer e.close()
	ring, err := e.keyring()
	if err != nil {
		return err
	}
	return f(clients.New(e.db, ring, e.log.With("component", "clients")))
}

func printClient(app *App, md clients.Metadata) error {
	if app.json() {
		return app.printJSON(md)
	}
	tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
	// Walk the JSON form so every set field shows, in RFC 7591 order.
	b, err := json.Marshal(md)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		k, _ := dec.Token()
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		var s string
		switch v := v.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ", ")
		case map[string]any:
			raw, _ := json.Marshal(v)
			s = string(raw)
		default:
			s = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, s)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if md.ClientSecret != "" {
		fmt.Fprintln(app.stderr, "The client secret is shown only now: store it safely.")
	}
	return nil
}

func newClientsCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("clients", "Manage OAuth clients")

	var cf clientFlags
	create := &cobra.Command{
		Use:   "create [flags]",
		Short: "Register a client; a confidential client's secret is printed once",
		Example: `  gatehouse clients create --name shop \
      --redirect-uri https://shop.example/cb,https://shop.example/cb2 \
      --grant-type authorization_code,refresh_token \
      --scope "openid profile offline_access" -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			md, err := cf.metadata(cmd)
			if err != nil {
				return err
			}
			return withClients(cmd, app, func(s *clients.Service) error {
				out, err := s.Create(cmd.Context(), md, clients.CreateOptions{Trusted: true, ClientID: cf.clientID})
				if err != nil {
					return err
				}
				return printClient(app, out)
			})
		},
	}
	cf.register(create)

	var (
		limit int
		after string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List clients, ordered by client_id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClients(cmd, app, func(s *clients.Service) error {
				cs, err := s.List(cmd.Context(), storage.Page{After: after, Limit: limit})
				if err != nil {
					return err
				}
				return printList(app, cs, clients.FromClient, "CLIENT_ID\tNAME\tAUTH\tGRANT_TYPES\tREDIRECT_URIS", func(c storage.Client) string {
					return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", c.ID, dash(c.Name), c.TokenEndpointAuthMethod,
						dash(strings.Join(c.GrantTypes, ",")), dash(strings.Join(c.RedirectURIs, ",")))
				})
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", storage.DefaultPageLimit, "page size")
	list.Flags().StringVar(&after, "after", "", "list clients after this client_id (the last of the previous page)")

	get := &cobra.Command{
		Use:   "get CLIENT_ID",
		Short: "Show a client's metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClients(cmd, app, func(s *clients.Service) error {
				c, err := s.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printClient(app, clients.FromClient(c))
			})
		},
	}

	del := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClients(cmd, app, func(s *clients.Service) error {
				if err := s.Delete(cmd.Context(), args[0]); err != nil {
					return err
				}
				return printDone(app, fmt.Sprintf("client %q deleted", args[0]), args[0])
			})
		},
	}

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Issue a new client secret; the old one keeps working for --overlap",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClients(cmd, app, func(s *clients.Service) error {
				secret, err := s.RotateSecret(cmd.Context(), args[0], overlap)
				if err != nil {
					return err
				}
				if app.json() {
					return app.printJSON(map[string]string{"client_id": args[0], "client_secret": secret})
				}
				fmt.Fprintf(app.stdout, "client_id:\t%s\nclient_secret:\t%s\n", args[0], secret)
				fmt.Fprintln(app.stderr, "The client secret is shown only now: store it safely.")
				return nil
			})
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the previous secret stays valid, e.g. 24h (default: stops at once)")

	cmd.AddCommand(create, list, get, del, rotate, newRegistrationTokenCmd(app))
	return cmd
}
