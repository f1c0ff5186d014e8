package storage

import (
	"context"
	"time"
)

// Times: backends keep every time.Time to the microsecond and return it in UTC.
// A zero time.Time means "never" (no expiry) wherever an expiry is optional.

// ---------------------------------------------------------------------------
// Durable records

// Address is the OpenID Connect Core §5.1.1 address claim.
type Address struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"street_address,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postal_code,omitempty"`
	Country       string `json:"country,omitempty"`
}

// IsZero reports whether no member of the address is set.
func (a Address) IsZero() bool { return a == Address{} }

// Claims holds every standard claim of OpenID Connect Core §5.1 except sub
// (User.ID) and updated_at (User.UpdatedAt).
type Claims struct {
	Name                string  `json:"name,omitempty"`
	GivenName           string  `json:"given_name,omitempty"`
	FamilyName          string  `json:"family_name,omitempty"`
	MiddleName          string  `json:"middle_name,omitempty"`
	Nickname            string  `json:"nickname,omitempty"`
	PreferredUsername   string  `json:"preferred_username,omitempty"`
	Profile             string  `json:"profile,omitempty"`
	Picture             string  `json:"picture,omitempty"`
	Website             string  `json:"website,omitempty"`
	Email               string  `json:"email,omitempty"`
	EmailVerified       bool    `json:"email_verified,omitempty"`
	Gender              string  `json:"gender,omitempty"`
	Birthdate           string  `json:"birthdate,omitempty"`
	Zoneinfo            string  `json:"zoneinfo,omitempty"`
	Locale              string  `json:"locale,omitempty"`
	PhoneNumber         string  `json:"phone_number,omitempty"`
	PhoneNumberVerified bool    `json:"phone_number_verified,omitempty"`
	Address             Address `json:"address,omitzero"`
}

// User is a person who signs in. ID is the stable `sub`.
type User struct {
	ID       string
	Username string // unique, compared exactly
	// PasswordHash is a PHC-format argon2id string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
	// Empty means the user cannot sign in with a password.
	PasswordHash string
	Disabled     bool
	// Claims.Email is unique among users when non-empty (compared case-insensitively).
	Claims    Claims
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Client is a registered OAuth 2.0 client with the full RFC 7591 §2 metadata
// set, the OpenID Connect Dynamic Registration §2 additions, the logout specs'
// members and Gatehouse's own per-client policy.
type Client struct {
	ID string `json:"client_id"`
	// SecretHash is a keyed hash (HMAC-SHA-256 under the system secret) of the
	// client secret; empty for public clients. The secret itself is never stored.
	SecretHash      []byte    `json:"secret_hash,omitempty"`
	SecretExpiresAt time.Time `json:"secret_expires_at,omitzero"`
	// RotatedSecretHash keeps the previous secret valid until RotatedSecretExpiresAt
	// so that a rotation can overlap.
	RotatedSecretHash      []byte    `json:"rotated_secret_hash,omitempty"`
	RotatedSecretExpiresAt time.Time `json:"rotated_secret_expires_at,omitzero"`

	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Name                    string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scopes                  []string `json:"scopes,omitempty"` // RFC 7591 `scope`, split on spaces
	Contacts                []string `json:"contacts,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	JWKSURI                 string   `json:"jwks_uri,omitempty"`
	JWKS                    []byte   `json:"jwks,omitempty"` // a JSON Web Key Set document, verbatim
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	SoftwareStatement       string   `json:"software_statement,omitempty"`

	ApplicationType                    string   `json:"application_type,omitempty"` // web | native
	SectorIdentifierURI                string   `json:"sector_identifier_uri,omitempty"`
	SubjectType                        string   `json:"subject_type,omitempty"`
	IDTokenSignedResponseAlg           string   `json:"id_token_signed_response_alg,omitempty"`
	UserinfoSignedResponseAlg          string   `json:"userinfo_signed_response_alg,omitempty"`
	RequestObjectSigningAlg            string   `json:"request_object_signing_alg,omitempty"`
	TokenEndpointAuthSigningAlg        string   `json:"token_endpoint_auth_signing_alg,omitempty"`
	DefaultMaxAge                      int64    `json:"default_max_age,omitempty"` // seconds
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

	// Gatehouse policy.
	Audience             []string      `json:"audience,omitempty"`
	AccessTokenFormat    string        `json:"access_token_format,omitempty"` // "" or "opaque" | "jwt" (RFC 9068)
	AccessTokenLifetime  time.Duration `json:"access_token_lifetime,omitempty"`
	RefreshTokenLifetime time.Duration `json:"refresh_token_lifetime,omitempty"`
	IDTokenLifetime      time.Duration `json:"id_token_lifetime,omitempty"`
	FirstParty           bool          `json:"first_party,omitempty"` // skips the consent page
	// RegistrationAccessTokenHash is the keyed hash of the RFC 7592 registration access token.
	RegistrationAccessTokenHash []byte `json:"registration_access_token_hash,omitempty"`
	// SecretSealed is the client secret encrypted with the system keyring, kept
	// only for clients using client_secret_jwt: the server must know the secret
	// to verify their HMAC assertions (RFC 7523 §3, OpenID Connect Core §9).
	SecretSealed []byte `json:"secret_sealed,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Consent records that a user allowed a client some scopes.
type Consent struct {
	Subject   string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
	ExpiresAt time.Time // zero: never
}

// KeyState is a signing key's place in its lifecycle:
// next (published, not signing) -> active (signing) -> retired (published) -> deleted.
type KeyState string

// Key states.
const (
	KeyNext    KeyState = "next"
	KeyActive  KeyState = "active"
	KeyRetired KeyState = "retired"
)

// SigningKey is one key of the key set. Storage treats the key material as
// opaque: server/keys encrypts PrivateKey before it gets here.
type SigningKey struct {
	ID         string // the JWK kid
	Algorithm  string // JWS alg: RS256, ES256, EdDSA, PS256
	State      KeyState
	PrivateKey []byte // encrypted at rest by server/keys (AES-256-GCM under the system secret)
	PublicJWK  []byte // the public JWK, JSON
	CreatedAt  time.Time
	ActivateAt time.Time // for next: when it may start signing
	RetiredAt  time.Time // for retired: when it stopped signing
	DeleteAt   time.Time // for retired: when it may be removed from the set
}

// KeySet is the whole set of signing keys with its version. Every change bumps
// Version, which replicas poll cheaply to learn of a rotation.
type KeySet struct {
	Version int64
	Keys    []SigningKey
}

// RegistrationToken is an initial access token for dynamic client
// registration (RFC 7591 §3). It stays listed once used up (UsesLeft 0) until
// deleted; from ExpiresAt on it does not exist.
type RegistrationToken struct {
	ID          string // hex of a keyed hash of the token; the token itself is never stored
	Description string
	UsesLeft    int       // -1: unlimited
	ExpiresAt   time.Time // zero: never
	CreatedAt   time.Time // required
}

// UnlimitedUses is RegistrationToken.UsesLeft for a token without a use limit.
const UnlimitedUses = -1

// LogoutNotification is one pending OpenID Connect Back-Channel Logout 1.0
// delivery (§2.5): the logout token's claims for one client, signed when it is
// sent. It stays queued until delivered (CompleteLogout) or given up on.
type LogoutNotification struct {
	ID            string
	ClientID      string
	URL           string // the client's backchannel_logout_uri
	Payload       []byte // claims JSON; signed at delivery
	Attempts      int
	NextAttemptAt time.Time // required: when it is next due (set it to now to send at once)
	CreatedAt     time.Time // required
	LastError     string
}

// Page asks for one page of a listing ordered by ID: the items after After
// (exclusive), at most Limit of them (0 means a backend default of 100).
type Page struct {
	After string
	Limit int
}

// DefaultPageLimit is the page size used when Page.Limit is 0.
const DefaultPageLimit = 100

// ---------------------------------------------------------------------------
// Short-lived records

// Session is a browser sign-in session.
type Session struct {
	ID       string
	Subject  string
	AuthTime time.Time
	ACR      string
	AMR      []string
	Remember bool // "remember me": a persistent cookie rather than a browser-session cookie
	// ClientIDs are the clients that received tokens in this session; logout
	// propagation notifies each of them.
	ClientIDs []string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RequestKind names what a request record stands for.
type RequestKind string

// Request kinds. The protocol meaning is server/oauth's; storage only keeps them apart.
const (
	KindAuthorizeCode RequestKind = "authorize_code"
	KindAccessToken   RequestKind = "access_token"
	KindRefreshToken  RequestKind = "refresh_token"
	KindPKCE          RequestKind = "pkce"
	KindOIDC          RequestKind = "oidc"
	KindPAR           RequestKind = "par"
	// KindRefreshGrace remembers, for the optional grace period, what a rotated
	// refresh token was exchanged for.
	KindRefreshGrace RequestKind = "refresh_grace"
)

// Kinds lists every RequestKind.
var Kinds = []RequestKind{KindAuthorizeCode, KindAccessToken, KindRefreshToken, KindPKCE, KindOIDC, KindPAR, KindRefreshGrace}

// Request is a grant or token request record: an authorization code, an
// access or refresh token (only its signature, never the token), a PKCE or
// OIDC request, a pushed authorization request. Records of one grant share a
// RequestID (the grant ID).
type Request struct {
	Kind        RequestKind
	Signature   string // unique within Kind
	RequestID   string // the grant ID
	ClientID    string
	Subject     string
	Active      bool
	RequestedAt time.Time
	ExpiresAt   time.Time // required: every short-lived record expires
	Payload     []byte    // opaque to storage, returned byte for byte
}

// RequestRef names one request record. RequestID is the record's grant ID;
// backends that shard by grant (Redis Cluster hash tags) use it when set and
// look it up otherwise.
type RequestRef struct {
	Kind      RequestKind
	Signature string
	RequestID string
}

// RequestKey names one request record for RequestStore.GetRequests.
type RequestKey struct {
	Kind      RequestKind
	Signature string
}

// RequestBatch is a set of request-record changes applied all or nothing.
// Deactivate is the condition: when any listed record is missing or already
// inactive, nothing is applied and ApplyRequests returns ErrNotFound or
// ErrInactive. This is what makes consuming an authorization code and rotating
// a refresh token happen exactly once, together with the tokens they yield.
type RequestBatch struct {
	Deactivate []RequestRef
	Create     []Request
	Delete     []RequestRef
	// RevokeGrants deletes every record of these grant IDs (all kinds).
	RevokeGrants []string
}

// ---------------------------------------------------------------------------
// Roles

// UserStore holds users.
type UserStore interface {
	// CreateUser fails with ErrConflict on a duplicate ID, username or email.
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	// GetUserByEmail compares case-insensitively.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context, p Page) ([]User, error)
	// UpdateUser reads the user, applies update and writes the result back
	// atomically; update may run more than once and must only return a modified
	// copy of its argument (ID and CreatedAt are kept). An error from update is
	// returned as is. ErrConflict when the new username or email is taken.
	UpdateUser(ctx context.Context, id string, update func(User) (User, error)) (User, error)
	DeleteUser(ctx context.Context, id string) error
}

// ClientStore holds registered clients.
type ClientStore interface {
	CreateClient(ctx context.Context, c Client) error // ErrConflict on a duplicate ID
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context, p Page) ([]Client, error)
	// UpdateClient: same contract as UpdateUser.
	UpdateClient(ctx context.Context, id string, update func(Client) (Client, error)) (Client, error)
	DeleteClient(ctx context.Context, id string) error
}

// ConsentStore holds remembered consents, one per (subject, client).
type ConsentStore interface {
	// PutConsent creates or replaces the consent of c.Subject for c.ClientID.
	PutConsent(ctx context.Context, c Consent) error
	// GetConsent returns ErrNotFound when none is stored or it has expired.
	GetConsent(ctx context.Context, subject, clientID string) (Consent, error)
	// ListConsents lists a subject's unexpired consents ordered by client ID.
	ListConsents(ctx context.Context, subject string) ([]Consent, error)
	DeleteConsent(ctx context.Context, subject, clientID string) error
	// DeleteConsentsByClient deletes every subject's consent for the client
	// (the client deleted, so that a client later registered with the same
	// ID inherits none), expired ones included, and returns how many
	// unexpired consents it deleted.
	DeleteConsentsByClient(ctx context.Context, clientID string) (int, error)
}

// KeyStore holds the signing key set. Several replicas share it; changes are
// compare-and-swap on the set's version.
type KeyStore interface {
	// GetKeySet returns the current set; an empty set with Version 0 when none
	// was ever stored.
	GetKeySet(ctx context.Context) (KeySet, error)
	// KeySetVersion returns just the version, for cheap polling.
	KeySetVersion(ctx context.Context) (int64, error)
	// ReplaceKeySet stores keys as the new set if the stored version is still
	// expectVersion, and returns the new version (expectVersion+1). Otherwise it
	// returns ErrConflict and changes nothing.
	ReplaceKeySet(ctx context.Context, expectVersion int64, keys []SigningKey) (int64, error)
}

// SessionStore holds browser sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error // ErrConflict on a duplicate ID
	// GetSession returns ErrNotFound when absent or expired.
	GetSession(ctx context.Context, id string) (Session, error)
	// UpdateSession: same contract as UpdateUser (ID and Subject are kept).
	UpdateSession(ctx context.Context, id string, update func(Session) (Session, error)) (Session, error)
	DeleteSession(ctx context.Context, id string) error
	// ListSessions lists a subject's unexpired sessions ordered by ID.
	ListSessions(ctx context.Context, subject string) ([]Session, error)
}

// RequestStore holds grant and token request records.
type RequestStore interface {
	// CreateRequest fails with ErrConflict when (Kind, Signature) exists.
	CreateRequest(ctx context.Context, r Request) error
	// GetRequest returns active and inactive records alike; ErrNotFound when
	// absent or expired.
	GetRequest(ctx context.Context, kind RequestKind, signature string) (Request, error)
	// GetRequests is GetRequest for several records in one round trip where
	// the backend allows: recs[i] is the record of keys[i] and found[i]
	// whether it exists (a missing or expired record is not found, not an
	// error). Keys may repeat; no keys give empty results.
	GetRequests(ctx context.Context, keys []RequestKey) (recs []Request, found []bool, err error)
	DeleteRequest(ctx context.Context, ref RequestRef) error
	// DeactivateRequest flips an active record to inactive. Under any
	// concurrency exactly one caller succeeds; the others get ErrInactive.
	DeactivateRequest(ctx context.Context, ref RequestRef) error
	// RevokeGrant deletes every record of the grant, of the given kinds (all
	// kinds when none are given).
	RevokeGrant(ctx context.Context, requestID string, kinds ...RequestKind) error
	// ApplyRequests applies a batch all or nothing; see RequestBatch.
	ApplyRequests(ctx context.Context, b RequestBatch) error
	// RevokeGrantsBySubject deletes every record of every grant that has an
	// unexpired record with this subject (signing a user out everywhere), and
	// returns how many grants it revoked. The subject must not be empty.
	RevokeGrantsBySubject(ctx context.Context, subject string) (int, error)
	// RevokeGrantsByClient is RevokeGrantsBySubject for a client ID (a client
	// deleted or disabled, RFC 7592 §2.3).
	RevokeGrantsByClient(ctx context.Context, clientID string) (int, error)
}

// RegistrationTokenStore holds initial access tokens (RFC 7591 §3).
type RegistrationTokenStore interface {
	// CreateRegistrationToken fails with ErrConflict on a duplicate ID (an
	// expired token's ID is free).
	CreateRegistrationToken(ctx context.Context, t RegistrationToken) error
	// UseRegistrationToken atomically consumes one use of the token and
	// returns it as it is after the use (UsesLeft one less, unless unlimited).
	// ErrNotFound when it is absent, expired or used up: of any number of
	// concurrent callers on a token with N uses left, exactly N succeed.
	UseRegistrationToken(ctx context.Context, id string) (RegistrationToken, error)
	// ListRegistrationTokens lists the unexpired tokens, used up ones
	// included, ordered by ID.
	ListRegistrationTokens(ctx context.Context) ([]RegistrationToken, error)
	// DeleteRegistrationToken returns ErrNotFound when the token is absent or expired.
	DeleteRegistrationToken(ctx context.Context, id string) error
}

// LogoutOutbox is a durable queue of back-channel logout deliveries, shared
// by every replica, so that a restart loses none (OpenID Connect Back-Channel
// Logout 1.0 §2.5 asks the OP to retry failed deliveries).
type LogoutOutbox interface {
	// EnqueueLogouts adds notifications all or nothing: ErrConflict when an
	// ID is queued already, and then none is added.
	EnqueueLogouts(ctx context.Context, ns []LogoutNotification) error
	// ClaimLogouts returns up to limit notifications (DefaultPageLimit when
	// limit <= 0) whose NextAttemptAt is at or before now, earliest first
	// (then by ID), and atomically moves their NextAttemptAt to leaseUntil,
	// so that a replica claiming at the same time gets other ones. They are
	// returned as stored after the claim. A claimed notification that is
	// neither completed nor retried is due again at leaseUntil.
	ClaimLogouts(ctx context.Context, now, leaseUntil time.Time, limit int) ([]LogoutNotification, error)
	// CompleteLogout deletes a delivered notification; ErrNotFound when absent.
	CompleteLogout(ctx context.Context, id string) error
	// RetryLogout records a failed attempt: it sets Attempts, NextAttemptAt
	// and LastError. ErrNotFound when absent.
	RetryLogout(ctx context.Context, id string, attempts int, next time.Time, lastErr string) error
	// ListLogouts lists up to limit notifications (DefaultPageLimit when
	// limit <= 0) in the order ClaimLogouts takes them, due or not, for the
	// admin view.
	ListLogouts(ctx context.Context, limit int) ([]LogoutNotification, error)
}

// ReplayCache remembers single-use identifiers such as client-assertion jti values.
type ReplayCache interface {
	// UseOnce records id until expiresAt; ErrConflict when it is already recorded.
	UseOnce(ctx context.Context, id string, expiresAt time.Time) error
}

// Throttle counts events in a window, for login throttling.
type Throttle interface {
	// Hit adds one to key's counter and returns the new count. The counter
	// starts its window at the first hit and is reset window after it.
	Hit(ctx context.Context, key string, window time.Duration) (int64, error)
	// Count returns the current counts of keys, in their order (0 when
	// absent or expired). Several keys cost one round trip.
	Count(ctx context.Context, keys ...string) ([]int64, error)
	// Reset clears the keys' counters, in one round trip.
	Reset(ctx context.Context, keys ...string) error
}

// Pinger is implemented by every backend: Ping checks the server answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Durable is the set of roles kept in SQL (or memory).
type Durable interface {
	UserStore
	ClientStore
	ConsentStore
	KeyStore
	RegistrationTokenStore
	LogoutOutbox
	Pinger
	Close() error
}

// Ephemeral is the set of short-lived roles, kept in Redis, SQL or memory.
// Every record carries an expiry and disappears after it.
type Ephemeral interface {
	SessionStore
	RequestStore
	ReplayCache
	Throttle
	Pinger
	Close() error
}

// Stores is what the server is given: one backend for each lifetime (they may
// be the same object).
type Stores struct {
	Durable   Durable
	Ephemeral Ephemeral
}
