package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func noEnv(string) string { return "" }

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadGoodFile(t *testing.T) {
	cfg, err := Load("testdata/good.yaml", noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Issuer:      "https://login.example.com",
		Listen:      Listen{Public: ":9000", Admin: "127.0.0.1:9001"},
		DatabaseURL: "postgres://gatehouse@db.internal/gatehouse",
		Redis:       Redis{URL: "redis://cache.internal:6379/2", Prefix: "gh:", AllowEvictionPolicy: true},
		Secrets: Secrets{System: []Secret{
			NewSecret("current-secret-0123456789abcdefghijklmnop"),
			NewSecret("previous-secret-0123456789abcdefghijklmno"),
		}},
		Tokens: Tokens{
			AccessTokenLifetime:     30 * time.Minute,
			RefreshTokenLifetime:    168 * time.Hour,
			IDTokenLifetime:         15 * time.Minute,
			AuthorizeCodeLifetime:   5 * time.Minute,
			RefreshTokenGracePeriod: 30 * time.Second,
		},
		Keys: Keys{
			Algorithms:     []string{"RS256", "ES256", "EdDSA"},
			RotationPeriod: 336 * time.Hour,
			PublishAhead:   48 * time.Hour,
			RSABits:        3072,
			JWKSMaxAge:     10 * time.Minute,
		},
		PasswordHash: PasswordHash{MemoryKiB: 65536, Iterations: 3, Parallelism: 2},
		Log:          Log{Level: "warn", Format: "json", FlushInterval: 250 * time.Millisecond},
		HTTP: HTTP{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       20 * time.Second,
			WriteTimeout:      25 * time.Second,
			IdleTimeout:       90 * time.Second,
			MaxBodyBytes:      2 << 20,
		},
		UI: UI{ProductName: "Example Login", LogoURL: "https://cdn.example.com/logo.svg", AccentColor: "#123abc"},
		Registration: Registration{
			Policy:                RegistrationInitialAccessToken,
			AccessTokenLifetime:   720 * time.Hour,
			SecretRotationOverlap: 24 * time.Hour,
			MaxBodyBytes:          32 << 10,
		},
		Clients: Clients{CacheTTL: 5 * time.Second}, // the default
		Users:   Users{CacheTTL: 5 * time.Second},   // the default
		OAuth:   OAuth{PKCE: PKCERequired},          // the default
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("parsed config differs:\n got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := Load("testdata/empty.yaml", noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("empty file: got %+v, want the defaults", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"unknown_key.yaml", "line 6: field acess_token_lifetime not found"},
		{"bad_duration.yaml", "line 3: cannot unmarshal !!int `3600` into time.Duration"},
		{"missing.yaml", "reading config file: open testdata/missing.yaml: no such file or directory"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file), noEnv, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // the joined error, one line per problem
	}{
		{"http_loopback.yaml", nil},
		{"bad_issuer.yaml", []string{
			`issuer: "https://login.example.com/?tenant=a#frag" must not have a query or fragment (OIDC Discovery §2): remove them`,
			`issuer: "https://login.example.com/?tenant=a#frag" must not end with a slash: write it without the trailing /`,
		}},
		{"http_public.yaml", []string{
			`issuer: "http://login.example.com" uses http on a public host: use https (http is only allowed for localhost or with dev: true)`,
		}},
		{"short_secret.yaml", []string{
			`secrets.system[0]: is 17 bytes, at least 32 are required: generate one with: openssl rand -base64 48`,
		}},
		{"many_problems.yaml", []string{
			`issuer: "ftp://login.example.com" has scheme "ftp": use https`,
			`listen.public: "8080" is not a host:port address: use a form such as :8080 or 127.0.0.1:8081`,
			`database_url: scheme "mysql" is not supported: use sqlite:// or postgres://`,
			`redis.url: scheme "http" is not supported: use redis://, rediss:// or unix://`,
			`secrets.system: at least one secret is required: generate one with: openssl rand -base64 48 (or set GATEHOUSE_SECRETS_SYSTEM_FILE)`,
			`tokens.access_token_lifetime: 48h0m0s is longer than 24h: bearer tokens cannot be recalled, use a short lifetime and refresh tokens`,
			`tokens.refresh_token_lifetime: 1h0m0s is shorter than tokens.access_token_lifetime (48h0m0s): make it at least as long`,
			`tokens.authorize_code_lifetime: must be positive: use a Go duration such as 15m or 1h`,
			`keys.algorithms: "HS256" is not supported: use some of RS256, ES256, EdDSA, PS256`,
			`keys.algorithms: must include RS256 (OpenID Connect requires it): add RS256`,
			`keys.rsa_bits: 1024 is out of range: use 2048, 3072 or 4096`,
			`keys.rotation_period: must be positive: use a Go duration such as 15m or 1h`,
			`password_hash.memory_kib: 4096 is out of range: use 19456 (19 MiB) up to 1048576`,
			`password_hash.iterations: 0 is out of range: use 1 to 64 (2 is the usual choice)`,
			`password_hash.parallelism: 300 is out of range: use 1 to 255`,
			`log.level: "verbose" is unknown: use debug, info, warn or error`,
			`log.format: "xml" is unknown: use text or json`,
			`log.flush_interval: 1m0s is out of range: use 0s (write every line at once) up to 10s (100ms is the default)`,
			`http.max_body_bytes: must be positive: use e.g. 1048576 (1 MiB)`,
			`ui.accent_color: "red; background: url(x)" is not a color: use #rgb or #rrggbb, e.g. #2f6fed`,
			`registration.policy: "anyone" is unknown: use disabled, initial_access_token or open`,
			`registration.access_token_lifetime: must not be negative: use 0s (never expires) or a duration such as 720h`,
			`registration.secret_rotation_overlap: 1000h0m0s is out of range: use 0s (the old secret stops at once) up to 720h`,
			`registration.max_body_bytes: 10 is out of range: use 1024 up to 1048576 (65536 is the usual choice)`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tc.file), noEnv, false)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Validate()
			if tc.want == nil {
				if got != nil {
					t.Fatalf("Validate: %v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("Validate returned nil, want errors")
			}
			if g, w := got.Error(), strings.Join(tc.want, "\n"); g != w {
				t.Errorf("Validate:\n got:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

func TestValidateIssuer(t *testing.T) {
	good := []string{"https://login.example.com", "https://example.com/tenant/a", "http://localhost:8080", "http://[::1]:8080", "http://app.localhost"}
	bad := []string{"", "login.example.com", "/relative", "https://example.com/", "https://example.com?x=1", "https://user@example.com", "http://10.0.0.1"}
	for _, iss := range good {
		c := validCfg()
		c.Issuer = iss
		if err := c.Validate(); err != nil {
			t.Errorf("issuer %q: %v", iss, err)
		}
	}
	for _, iss := range bad {
		c := validCfg()
		c.Issuer = iss
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "issuer: ") {
			t.Errorf("issuer %q: got %v, want an issuer error", iss, err)
		}
	}
	c := validCfg()
	c.Issuer, c.Dev = "http://10.0.0.1:8080", true
	if err := c.Validate(); err != nil {
		t.Errorf("http issuer in dev mode: %v", err)
	}
}

func TestValidateKeysPublishAheadCoversJWKSCache(t *testing.T) {
	c := validCfg()
	c.Keys.PublishAhead, c.Keys.JWKSMaxAge = 5*time.Minute, time.Hour
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "keys.jwks_max_age: 1h0m0s is longer than keys.publish_ahead") {
		t.Errorf("got %v", err)
	}
}

// The logo rule matches server/web's start-up check: the pages'
// Content-Security-Policy (img-src 'self' https:) blocks any other image.
func TestValidateLogoURL(t *testing.T) {
	good := []string{"", "https://cdn.example.com/logo.svg", "/static/logo.svg"}
	bad := []string{"http://cdn.example.com/logo.svg", "//cdn.example.com/logo.svg", "https:///logo.svg", "javascript:alert(1)", "logo.svg"}
	for _, l := range good {
		c := validCfg()
		c.UI.LogoURL = l
		if err := c.Validate(); err != nil {
			t.Errorf("logo %q: %v", l, err)
		}
	}
	for _, l := range bad {
		c := validCfg()
		c.UI.LogoURL = l
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "ui.logo_url: ") {
			t.Errorf("logo %q: got %v, want a ui.logo_url error", l, err)
		}
	}
	c := validCfg()
	c.UI.LogoURL = "http://cdn.example.com/logo.svg"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Content-Security-Policy") {
		t.Errorf("http logo: got %v, want the reason (the CSP) in the message", err)
	}
}

// TestCacheTTLs: users.cache_ttl (like clients.cache_ttl) defaults to 5s,
// is set by file or environment, and is refused outside 0s-5m.
func TestCacheTTLs(t *testing.T) {
	if d := Default(); d.Users.CacheTTL != 5*time.Second || d.Clients.CacheTTL != 5*time.Second {
		t.Errorf("defaults: users %v, clients %v, want 5s", d.Users.CacheTTL, d.Clients.CacheTTL)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("users:\n  cache_ttl: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(file, noEnv, false); err != nil || cfg.Users.CacheTTL != time.Minute {
		t.Errorf("from the file: %v, %v; want 1m", cfg.Users.CacheTTL, err)
	}
	if cfg, err := Load(file, envMap(map[string]string{"GATEHOUSE_USERS_CACHE_TTL": "0s"}), false); err != nil || cfg.Users.CacheTTL != 0 {
		t.Errorf("from the environment: %v, %v; want 0s", cfg.Users.CacheTTL, err)
	}

	for _, ttl := range []time.Duration{0, time.Second, 5 * time.Minute} {
		c := validCfg()
		c.Users.CacheTTL, c.Clients.CacheTTL = ttl, ttl
		if err := c.Validate(); err != nil {
			t.Errorf("%v: %v", ttl, err)
		}
	}
	for _, ttl := range []time.Duration{-time.Second, 5*time.Minute + time.Second} {
		c := validCfg()
		c.Users.CacheTTL, c.Clients.CacheTTL = ttl, ttl
		want := fmt.Sprintf("clients.cache_ttl: %s is out of range: use 0s (no cache) up to 5m (5s is the default)\n"+
			"users.cache_ttl: %s is out of range: use 0s (no cache) up to 5m (5s is the default)", ttl, ttl)
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("%v: got %v, want:\n%s", ttl, err, want)
		}
	}
}

func validCfg() Config {
	c := Default()
	c.Issuer = "https://login.example.com"
	c.Secrets.System = []Secret{NewSecret(strings.Repeat("s", 40))}
	return c
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"GATEHOUSE_ISSUER":                       "https://env.example.com",
		"GATEHOUSE_DATABASE_URL":                 "postgres://env@db/gh",
		"GATEHOUSE_REDIS_URL":                    "redis://env:6379/1",
		"GATEHOUSE_REDIS_ALLOW_EVICTION_POLICY":  "true",
		"GATEHOUSE_TOKENS_ACCESS_TOKEN_LIFETIME": "45m",
		"GATEHOUSE_KEYS_ALGORITHMS":              "RS256, PS256,EdDSA",
		"GATEHOUSE_KEYS_RSA_BITS":                "4096",
		"GATEHOUSE_HTTP_MAX_BODY_BYTES":          "65536",
		"GATEHOUSE_SECRETS_SYSTEM":               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		"GATEHOUSE_LISTEN_ADMIN":                 "",
	}
	// The environment wins over the file.
	cfg, err := Load("testdata/good.yaml", envMap(env), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "https://env.example.com" || cfg.DatabaseURL != "postgres://env@db/gh" ||
		cfg.Redis.URL != "redis://env:6379/1" || !cfg.Redis.AllowEvictionPolicy ||
		cfg.Tokens.AccessTokenLifetime != 45*time.Minute || cfg.Keys.RSABits != 4096 || cfg.HTTP.MaxBodyBytes != 65536 {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	if want := []string{"RS256", "PS256", "EdDSA"}; !reflect.DeepEqual(cfg.Keys.Algorithms, want) {
		t.Errorf("algorithms = %v, want %v", cfg.Keys.Algorithms, want)
	}
	if len(cfg.Secrets.System) != 2 || cfg.Secrets.System[1].Reveal() != strings.Repeat("b", 36) {
		t.Errorf("secrets not split on commas: %d secrets", len(cfg.Secrets.System))
	}
	// An empty variable is not an override.
	if cfg.Listen.Admin != "127.0.0.1:9001" {
		t.Errorf("listen.admin = %q, want the file's value", cfg.Listen.Admin)
	}
	if got := EnvName("tokens.access_token_lifetime"); got != "GATEHOUSE_TOKENS_ACCESS_TOKEN_LIFETIME" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestEnvOverrideErrorsAreAllReported(t *testing.T) {
	_, err := Load("", envMap(map[string]string{
		"GATEHOUSE_TOKENS_ID_TOKEN_LIFETIME":   "forever",
		"GATEHOUSE_DEV":                        "yes please",
		"GATEHOUSE_KEYS_RSA_BITS":              "many",
		"GATEHOUSE_SECRETS_SYSTEM":             "x",
		"GATEHOUSE_SECRETS_SYSTEM_FILE":        "/nonexistent",
		"GATEHOUSE_PASSWORD_HASH_MEMORY_KIB_X": "ignored",
	}), false)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`GATEHOUSE_DEV: invalid boolean "yes please": use true or false`,
		`GATEHOUSE_SECRETS_SYSTEM and GATEHOUSE_SECRETS_SYSTEM_FILE are both set: set only one`,
		`GATEHOUSE_TOKENS_ID_TOKEN_LIFETIME: invalid duration "forever": use a Go duration such as 90s, 15m or 24h`,
		`GATEHOUSE_KEYS_RSA_BITS: invalid integer "many"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestEnvFileVariants(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	s1, s2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	if err := os.WriteFile(secrets, []byte(s1+"\n\n"+s2+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(dir, "db")
	if err := os.WriteFile(dbFile, []byte("postgres://u:pw@db/gh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("", envMap(map[string]string{
		"GATEHOUSE_SECRETS_SYSTEM_FILE": secrets,
		"GATEHOUSE_DATABASE_URL_FILE":   dbFile,
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Secrets.System) != 2 || cfg.Secrets.System[0].Reveal() != s1 || cfg.Secrets.System[1].Reveal() != s2 {
		t.Errorf("secrets from file: got %d secrets", len(cfg.Secrets.System))
	}
	if cfg.DatabaseURL != "postgres://u:pw@db/gh" {
		t.Errorf("database_url from file = %q (trailing newline must be trimmed)", cfg.DatabaseURL)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	const value = "super-secret-value-that-must-not-leak-0123456789"
	cfg := validCfg()
	cfg.Secrets.System = []Secret{NewSecret(value)}
	s := cfg.Secrets.System[0]

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg), fmt.Sprintf(verb, s))
	}
	outs = append(outs, fmt.Sprint(cfg), fmt.Sprintln(s))
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(y))
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("loaded", "config", cfg, "secret", s, "secrets", cfg.Secrets)
		outs = append(outs, buf.String())
	}
	for _, out := range outs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("secret leaked in %q", out)
		}
	}
	if !strings.Contains(string(j), `"REDACTED"`) || !strings.Contains(string(y), "REDACTED") {
		t.Errorf("JSON/YAML should show REDACTED: %s / %s", j, y)
	}
	if s.Reveal() != value {
		t.Error("Reveal must return the value")
	}
}

func TestDevDefaults(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "dev.db")
	env := envMap(map[string]string{"GATEHOUSE_DATABASE_URL": db})

	cfg, err := Load("", env, true)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Dev || cfg.Issuer != DevIssuer || cfg.DatabaseURL != db || cfg.Log.Level != "debug" || cfg.Log.Format != "text" ||
		cfg.Registration.Policy != RegistrationOpen {
		t.Errorf("dev defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("dev config invalid: %v", err)
	}
	path := filepath.Join(dir, DevSecretFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("dev secret file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("dev secret file mode %v, want 0600", st.Mode().Perm())
	}
	if len(cfg.Secrets.System) != 1 || cfg.Secrets.System[0].Len() < MinSecretBytes {
		t.Fatalf("dev secret: %d secrets", len(cfg.Secrets.System))
	}
	// A restart keeps the same secret.
	again, err := Load("", env, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.Secrets.System[0].Reveal() != cfg.Secrets.System[0].Reveal() {
		t.Error("second dev load generated a new secret")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dev load left %d files in the directory, want only the secret", len(entries))
	}
}

func TestDevFromFileKeepsExplicitValues(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	secret := strings.Repeat("k", 40)
	content := "dev: true\nissuer: http://192.168.1.5:8080\nlog:\n  level: warn\nsecrets:\n  system: [" + secret + "]\n" +
		"registration:\n  policy: initial_access_token\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "http://192.168.1.5:8080" || cfg.Log.Level != "warn" || cfg.DatabaseURL != DevDatabaseURL ||
		cfg.Registration.Policy != RegistrationInitialAccessToken {
		t.Errorf("dev from file: %+v", cfg)
	}
	if len(cfg.Secrets.System) != 1 || cfg.Secrets.System[0].Reveal() != secret {
		t.Error("configured secret replaced in dev mode")
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDatabaseDir(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:///var/lib/gh/g.db": "/var/lib/gh",
		"sqlite://data/g.db?_x=1":   "data",
		"sqlite://g.db":             ".",
		"sqlite:rel/g.db":           "rel",
		"sqlite://:memory:":         ".",
		"postgres://u@h/db":         ".",
	} {
		if got := databaseDir(in); got != want {
			t.Errorf("databaseDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistrationDefaultsAndLimits(t *testing.T) {
	// Outside dev mode nobody may register until the operator chooses a policy.
	if d := Default().Registration; d.Policy != RegistrationDisabled || d.MaxBodyBytes != 64<<10 || d.AccessTokenLifetime != 0 {
		t.Errorf("registration defaults: %+v", d)
	}
	c := validCfg()
	c.HTTP.MaxBodyBytes = 4096
	c.Registration.MaxBodyBytes = 8192
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "registration.max_body_bytes: 8192 is larger than http.max_body_bytes (4096)") {
		t.Errorf("registration body above the HTTP limit: %v", err)
	}
	cfg, err := Load("", envMap(map[string]string{"GATEHOUSE_REGISTRATION_POLICY": "open"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registration.Policy != RegistrationOpen {
		t.Errorf("GATEHOUSE_REGISTRATION_POLICY: got %q", cfg.Registration.Policy)
	}
}

// TestPProfNeedsAdminToken: the profiler is behind the admin token, so
// admin.pprof without one is refused at start, with the fix in the message;
// dev mode makes its own token.
func TestPProfNeedsAdminToken(t *testing.T) {
	c := validCfg()
	c.Admin.PProf = true
	want := "admin.pprof: needs admin.token: the profiler is behind the admin token (set GATEHOUSE_ADMIN_TOKEN or GATEHOUSE_ADMIN_TOKEN_FILE, or turn admin.pprof off)"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("pprof without a token: %v, want:\n%s", err, want)
	}
	c.Admin.Token = NewSecret(strings.Repeat("t", MinAdminTokenBytes))
	if err := c.Validate(); err != nil {
		t.Errorf("pprof with a token: %v", err)
	}
	d := validCfg()
	d.Admin.PProf, d.Dev = true, true
	if err := d.Validate(); err != nil && strings.Contains(err.Error(), "admin.pprof") {
		t.Errorf("pprof in dev mode: %v", err)
	}
}
