// Package registration is OAuth 2.0 Dynamic Client Registration (RFC 7591)
// and its management protocol (RFC 7592): the registration endpoint, the
// client configuration endpoint and the initial access tokens that may gate
// registration. Validation and storage of the metadata are server/clients'.
package registration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/respond"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// Policy says who may register a client.
type Policy string

// Policies; the values are those of the configuration's registration.policy.
const (
	PolicyOpen               Policy = "open"
	PolicyInitialAccessToken Policy = "initial_access_token"
	PolicyDisabled           Policy = "disabled"
)

// Paths. ClientPath's {client_id} is the route variable the handlers read.
const (
	Path       = "/oauth2/register"
	ClientPath = Path + "/{client_id}"
)

// DefaultMaxBodyBytes caps a request body when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 64 << 10

// Store is what registration needs of storage; a storage.Durable is one.
type Store interface {
	storage.RegistrationTokenStore
}

// GrantRevoker revokes a deleted client's grants; storage.Ephemeral is one.
type GrantRevoker interface {
	RevokeGrantsByClient(ctx context.Context, clientID string) (int, error)
}

// Config is what New needs.
type Config struct {
	// Issuer is the base of registration_client_uri.
	Issuer  string
	Clients *clients.Service
	Store   Store
	Ring    Keyring
	Policy  Policy
	// SigningAlgs are the algorithms the server has signing keys for:
	// id_token_signed_response_alg and userinfo_signed_response_alg must be
	// among them. Empty: RS256 only.
	SigningAlgs []string
	// AccessTokenLifetime is how long a registration access token works;
	// 0: until the client is deleted.
	AccessTokenLifetime time.Duration
	// SecretRotationOverlap keeps the previous secret working after an
	// update that asked for a new one.
	SecretRotationOverlap time.Duration
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Grants, when set, has a deleted client's grants revoked (RFC 7592 §2.3).
	Grants GrantRevoker
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves the registration and client configuration endpoints.
type Handler struct {
	cfg    Config
	tokens *TokenService
	log    *slog.Logger
}

// New checks cfg and returns the handlers.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("registration: the issuer is required")
	case cfg.Clients == nil || cfg.Store == nil || cfg.Ring == nil:
		return nil, errors.New("registration: the client service, store and keyring are required")
	case cfg.AccessTokenLifetime < 0 || cfg.SecretRotationOverlap < 0 || cfg.MaxBodyBytes < 0:
		return nil, errors.New("registration: lifetimes and the body cap must not be negative")
	}
	switch cfg.Policy {
	case PolicyOpen, PolicyInitialAccessToken, PolicyDisabled:
	default:
		return nil, fmt.Errorf("registration: unknown policy %q: use open, initial_access_token or disabled", cfg.Policy)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if len(cfg.SigningAlgs) == 0 {
		cfg.SigningAlgs = []string{"RS256"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	return &Handler{
		cfg:    cfg,
		tokens: NewTokenService(cfg.Store, cfg.Ring, cfg.Logger, cfg.Now),
		log:    cfg.Logger,
	}, nil
}

// Tokens returns the initial access token service over the same store.
func (h *Handler) Tokens() *TokenService { return h.tokens }

// Endpoint is the registration endpoint's URL, for the discovery document's
// registration_endpoint (RFC 8414 §2); empty when registration is disabled.
func (h *Handler) Endpoint() string {
	if h.cfg.Policy == PolicyDisabled {
		return ""
	}
	return h.cfg.Issuer + Path
}

// ClientURI is a client's registration_client_uri (RFC 7592 §3).
func (h *Handler) ClientURI(clientID string) string {
	return h.cfg.Issuer + Path + "/" + url.PathEscape(clientID)
}

// clientInformation is the RFC 7591 §3.2.1 / RFC 7592 §3 response.
type clientInformation struct {
	clients.Metadata
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

// info builds the response. Gatehouse's policy fields are the
// administrator's, not the client's metadata: they are left out, so a
// client echoing its metadata back on update (RFC 7592 §2.2) does not send
// them.
func (h *Handler) info(md clients.Metadata, token string) clientInformation {
	md.Audience, md.AccessTokenFormat, md.FirstParty = nil, "", false
	md.AccessTokenLifetime, md.RefreshTokenLifetime, md.IDTokenLifetime = 0, 0, 0
	return clientInformation{Metadata: md, RegistrationAccessToken: token, RegistrationClientURI: h.ClientURI(md.ClientID)}
}

// Register is the client registration endpoint (RFC 7591 §3): POST a JSON
// metadata document, get 201 and the client information.
func (h *Handler) Register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if h.cfg.Policy == PolicyDisabled {
		h.disabled(w, r)
		return
	}
	var initial string
	if h.cfg.Policy == PolicyInitialAccessToken {
		// RFC 7591 §3: the initial access token is an OAuth 2.0 bearer token (RFC 6750 §2.1).
		initial = bearer(r)
		if initial == "" {
			h.unauthorized(w, r, false, "an initial access token is required: send it as Authorization: Bearer <token>")
			return
		}
	}
	md, ok := h.decode(w, r)
	if !ok {
		return
	}
	// RFC 7591 §3.2.1: these are the server's to issue; a request's are ignored.
	md.ClientID, md.ClientSecret, md.ClientIDIssuedAt, md.ClientSecretExpiresAt = "", "", 0, nil
	if err := h.validate(md); err != nil {
		h.fail(w, r, err)
		return
	}
	// The token is spent only once the metadata is known to be acceptable,
	// so a typo does not burn a single-use token.
	var tokenID string
	if initial != "" {
		t, err := h.tokens.UseToken(ctx, initial)
		if errors.Is(err, storage.ErrNotFound) {
			h.unauthorized(w, r, true, "the initial access token is unknown, expired or used up")
			return
		}
		if err != nil {
			h.serverError(w, r, err)
			return
		}
		tokenID = t.ID
	}
	rat := h.newAccessToken()
	out, err := h.cfg.Clients.Create(ctx, md, clients.CreateOptions{
		RegistrationAccessTokenHash: h.cfg.Ring.MAC(AccessTokenPurpose, []byte(rat)),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(ctx, "client registered", "client_id", out.ClientID, "policy", string(h.cfg.Policy),
		"registration_token_id", tokenID, "token_endpoint_auth_method", out.TokenEndpointAuthMethod)
	w.Header().Set("Location", h.ClientURI(out.ClientID))
	writeJSON(w, http.StatusCreated, h.info(out, rat))
}

// Read is the client read request (RFC 7592 §2.1).
func (h *Handler) Read(w http.ResponseWriter, r *http.Request) {
	c, token, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	// The token presented is still valid: it is the one the response carries.
	writeJSON(w, http.StatusOK, h.info(clients.FromClient(c), token))
}

// Update is the client update request (RFC 7592 §2.2): a full replacement
// of the metadata. The query parameter rotate_secret=true asks for a new
// client secret (RFC 7592 §2.2 lets the server issue one); the old one keeps
// working for Config.SecretRotationOverlap.
func (h *Handler) Update(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, token, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	md, ok := h.decode(w, r)
	if !ok {
		return
	}
	if md.ClientID != c.ID {
		h.fail(w, r, &clients.Error{Code: clients.CodeInvalidClientMetadata,
			Description: "client_id is required and must be the client's own (RFC 7592 §2.2)"})
		return
	}
	// RFC 7592 §2.2: a client_secret sent must be the current one; the
	// client cannot choose its secret.
	if md.ClientSecret != "" && !h.cfg.Clients.VerifySecret(c, md.ClientSecret) {
		h.fail(w, r, &clients.Error{Code: clients.CodeInvalidClientMetadata,
			Description: "client_secret does not match the issued secret: leave it out, or ask for a new one with ?rotate_secret=true"})
		return
	}
	rotate, err := strconv.ParseBool(cmpOr(r.URL.Query().Get("rotate_secret"), "false"))
	if err != nil {
		h.fail(w, r, &clients.Error{Code: "invalid_request", Description: "rotate_secret must be true or false"})
		return
	}
	if err := h.validate(md); err != nil {
		h.fail(w, r, err)
		return
	}
	hash := c.RegistrationAccessTokenHash
	out, err := h.cfg.Clients.Update(ctx, c.ID, md, clients.UpdateOptions{
		RotateSecret: rotate,
		Overlap:      h.cfg.SecretRotationOverlap,
		// The client may have been deleted and its ID reused since it was read.
		Check: func(now storage.Client) error {
			if !slices.Equal(now.RegistrationAccessTokenHash, hash) {
				return errInvalidToken
			}
			return nil
		},
	})
	if errors.Is(err, errInvalidToken) || errors.Is(err, storage.ErrNotFound) {
		h.unauthorized(w, r, true, "the registration access token is not valid for this client")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(ctx, "client registration updated", "client_id", c.ID, "secret_issued", out.ClientSecret != "")
	writeJSON(w, http.StatusOK, h.info(out, token))
}

// Delete is the client delete request (RFC 7592 §2.3): the client, its
// secret and its registration access token stop working.
func (h *Handler) Delete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, _, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	if err := h.cfg.Clients.Delete(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.serverError(w, r, err)
		return
	}
	if h.cfg.Grants != nil {
		// RFC 7592 §2.3: the server SHOULD invalidate the client's tokens.
		if n, err := h.cfg.Grants.RevokeGrantsByClient(ctx, c.ID); err != nil {
			h.log.ErrorContext(ctx, "revoking a deleted client's grants", "client_id", c.ID, "error", err)
		} else {
			h.log.InfoContext(ctx, "deleted client's grants revoked", "client_id", c.ID, "grants", n)
		}
	}
	h.log.InfoContext(ctx, "client registration deleted", "client_id", c.ID)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

var errInvalidToken = errors.New("invalid registration access token")

// authenticate checks the registration access token against the client
// named in the path. A missing client and a wrong token get the same 401,
// so the answer does not tell whether a client exists (RFC 7592 §2).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (storage.Client, string, bool) {
	ctx := r.Context()
	if h.cfg.Policy == PolicyDisabled {
		h.disabled(w, r)
		return storage.Client{}, "", false
	}
	token := bearer(r)
	if token == "" {
		h.unauthorized(w, r, false, "a registration access token is required: send it as Authorization: Bearer <token>")
		return storage.Client{}, "", false
	}
	id := mux.Vars(r)["client_id"]
	if id == "" {
		id = r.PathValue("client_id")
	}
	c, err := h.cfg.Clients.Get(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.serverError(w, r, err)
		return storage.Client{}, "", false
	}
	// Verified even for a missing client (an empty hash never matches), so
	// both cost one MAC.
	valid := h.cfg.Ring.VerifyMAC(AccessTokenPurpose, []byte(token), c.RegistrationAccessTokenHash)
	if valid && !h.accessTokenLive(token) {
		valid = false
	}
	if err != nil || !valid {
		h.log.WarnContext(ctx, "registration access token rejected", "client_id", id)
		h.unauthorized(w, r, true, "the registration access token is not valid for this client")
		return storage.Client{}, "", false
	}
	return c, token, true
}

// newAccessToken makes a registration access token: 32 random bytes and,
// with a lifetime, its expiry as ".<unix seconds>". The expiry is covered by
// the stored MAC, so a client cannot change it, and needs no storage field.
func (h *Handler) newAccessToken() string {
	t := randomToken()
	if h.cfg.AccessTokenLifetime > 0 {
		t += "." + strconv.FormatInt(h.cfg.Now().Add(h.cfg.AccessTokenLifetime).Unix(), 10)
	}
	return t
}

// accessTokenLive reports whether a MAC-checked token is unexpired.
func (h *Handler) accessTokenLive(token string) bool {
	_, exp, ok := strings.Cut(token, ".")
	if !ok {
		return true
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && h.cfg.Now().Before(time.Unix(sec, 0))
}

// validate adds to server/clients' checks those that depend on the server's
// keys, then runs them, so that an initial access token is only spent on
// acceptable metadata.
func (h *Handler) validate(md clients.Metadata) error {
	for _, f := range []struct{ key, v string }{
		{"id_token_signed_response_alg", md.IDTokenSignedResponseAlg},
		{"userinfo_signed_response_alg", md.UserinfoSignedResponseAlg},
	} {
		if f.v != "" && !slices.Contains(h.cfg.SigningAlgs, f.v) {
			return &clients.Error{Code: clients.CodeInvalidClientMetadata,
				Description: fmt.Sprintf("%s %q: this server signs with %s only", f.key, f.v, strings.Join(h.cfg.SigningAlgs, ", "))}
		}
	}
	return clients.Validate(md, false)
}

// decode reads a JSON metadata document. Unknown members are ignored (RFC
// 7591 §2); a body that is not a JSON object, or a member of the wrong type,
// is refused naming what is wrong.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request) (clients.Metadata, bool) {
	var md clients.Metadata
	bad := func(format string, args ...any) (clients.Metadata, bool) {
		h.fail(w, r, &clients.Error{Code: clients.CodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)})
		return md, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return bad("the request body must be JSON sent with Content-Type: application/json (RFC 7591 §3.1)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return bad("request body too large: at most %d bytes", h.cfg.MaxBodyBytes)
		}
		return bad("reading the request body: %v", err)
	}
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if !strings.HasPrefix(trimmed, "{") {
		return bad("the request body must be a JSON object of client metadata (RFC 7591 §2)")
	}
	if err := json.Unmarshal(body, &md); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return bad("%s must be %s, not a JSON %s", fieldName(typeErr), jsonKind(typeErr.Type.String()), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return bad("the request body is not valid JSON (at byte %d): %v", syntaxErr.Offset, syntaxErr)
		default:
			return bad("the request body is not valid client metadata: %v", err)
		}
	}
	return md, true
}

func fieldName(e *json.UnmarshalTypeError) string {
	if e.Field == "" {
		return "a member"
	}
	return e.Field
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(goType string) string {
	if elem, ok := strings.CutPrefix(goType, "[]"); ok {
		return "an array of " + jsonKinds(elem)
	}
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.Contains(goType, "int"):
		return "an integer"
	}
	return "a " + goType
}

func jsonKinds(goType string) string {
	switch {
	case goType == "string":
		return "strings"
	case goType == "bool":
		return "booleans"
	case strings.Contains(goType, "int"):
		return "integers"
	}
	return goType + " values"
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// bearer returns the RFC 6750 §2.1 bearer token of the request, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// writeJSON answers with Pragma: no-cache besides no-store, for HTTP/1.0
// caches: RFC 7591 §3.2.1 and RFC 7592 §3 responses carry secrets.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Pragma", "no-cache")
	respond.JSON(w, status, v)
}

// writeError answers an RFC 7591 §3.2.2 error.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	w.Header().Set("Pragma", "no-cache")
	respond.Error(w, r, status, code, desc)
}

// fail answers a refused request: a validation error is the client's (400,
// RFC 7591 §3.2.2); anything else is the server's.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ce *clients.Error
	if errors.As(err, &ce) {
		h.writeError(w, r, http.StatusBadRequest, ce.Code, ce.Description)
		return
	}
	h.serverError(w, r, err)
}

func (h *Handler) serverError(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "registration request failed", "error", err)
	h.writeError(w, r, http.StatusInternalServerError, "server_error", "the server could not complete the request")
}

// unauthorized is RFC 6750 §3: a request with no token gets a bare
// challenge, one with a bad token gets error="invalid_token".
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, presented bool, desc string) {
	challenge := `Bearer realm="` + h.cfg.Issuer + `"`
	if presented {
		challenge += `, error="invalid_token", error_description="` + desc + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	h.writeError(w, r, http.StatusUnauthorized, "invalid_token", desc)
}

func (h *Handler) disabled(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, http.StatusForbidden, "access_denied", "dynamic client registration is disabled on this server")
}
