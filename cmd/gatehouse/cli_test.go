package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/clients"
)

const cliTestSecret = "cli-test-system-secret-0123456789-abcdefghij"

// cli runs the gatehouse command line in-process against a SQLite database
// in a temporary directory.
type cli struct {
	t   *testing.T
	dir string
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	dir := t.TempDir()
	cfg := `issuer: https://login.example.com
database_url: sqlite://` + filepath.Join(dir, "gatehouse.db") + `
secrets:
  system: ["` + cliTestSecret + `"]
password_hash:
  memory_kib: 19456
  iterations: 1
  parallelism: 1
`
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, dir: dir, env: map[string]string{"GATEHOUSE_CONFIG": path}}
}

type result struct {
	stdout, stderr string
	code           int
}

func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return c.env[k] }, strings.NewReader(stdin), &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

// ok runs a command that must succeed.
func (c *cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("gatehouse %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with a one-line error containing want.
func (c *cli) fails(want string, stdin string, args ...string) result {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code == 0 {
		c.t.Fatalf("gatehouse %s succeeded, want failure %q\nstdout: %s", strings.Join(args, " "), want, r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		c.t.Fatalf("gatehouse %s: stderr %q, want it to contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// user fetches a user as JSON.
func (c *cli) user(ref string) userView {
	c.t.Helper()
	var u userView
	if err := json.Unmarshal([]byte(c.ok("", "users", "get", ref, "-o", "json")), &u); err != nil {
		c.t.Fatal(err)
	}
	return u
}

func (c *cli) migrated() *cli {
	c.ok("", "migrate", "up")
	return c
}

func TestVersion(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("", "version"); !strings.HasPrefix(out, "gatehouse dev") {
		t.Errorf("version: %q", out)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(c.ok("", "version", "-o", "json")), &v); err != nil || v["version"] != "dev" || v["go"] == "" {
		t.Errorf("version -o json: %v %v", v, err)
	}
	c.fails(`--output "yaml" is not supported: use table or json`, "", "version", "-o", "yaml")
	c.fails(`unknown command "nope" for "gatehouse"`, "", "nope")
	c.fails(`unknown command "nope" for "gatehouse users"`, "", "users", "nope")
	if out := c.ok("", "users"); !strings.Contains(out, "Available Commands:") {
		t.Errorf("bare group: %q", out)
	}
}

func TestConfigValidate(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("", "config", "validate"); out != "configuration OK\n" {
		t.Errorf("good config: %q", out)
	}
	bad := filepath.Join(c.dir, "bad.yaml")
	os.WriteFile(bad, []byte("issuer: http://login.example.com\nsecrets:\n  system: [\"hunter2-short-secret\"]\nkeys:\n  rsa_bits: 1024\n"), 0o600)
	r := c.run("", "config", "validate", "--config", bad)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, want := range []string{
		"configuration has 3 problem(s):",
		`  - issuer: "http://login.example.com" uses http on a public host`,
		"  - secrets.system[0]: is 20 bytes, at least 32 are required: generate one with: openssl rand -base64 48",
		"  - keys.rsa_bits: 1024 is out of range",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "hunter2") {
		t.Error("a secret was printed")
	}
	unknown := filepath.Join(c.dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("issuer: https://a.example\ntokens:\n  acess_token_lifetime: 1h\n"), 0o600)
	c.fails("line 3: field acess_token_lifetime not found", "", "config", "validate", "-c", unknown)

	// Other commands refuse an invalid configuration and point at validate.
	c.fails("invalid configuration (check it with `gatehouse config validate`)", "", "users", "list", "--config", bad)
}

func TestCommandsNeedMigratedSchema(t *testing.T) {
	c := newCLI(t)
	c.fails("run `gatehouse migrate up` first", "", "users", "list")
	c.fails("run `gatehouse migrate up` first", "", "clients", "list")
	if out := c.ok("", "migrate", "status"); !strings.Contains(out, "pending") {
		t.Errorf("status before up: %q", out)
	}
	if out := c.ok("", "migrate", "up"); !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
		t.Errorf("up: %q", out)
	}
	c.ok("", "users", "list")
}

func TestUnreachableDatabase(t *testing.T) {
	c := newCLI(t)
	c.env["GATEHOUSE_DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/gatehouse?sslmode=disable&connect_timeout=2"
	r := c.fails("error: ", "", "users", "list")
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "127.0.0.1") {
		t.Errorf("want a one-line storage error naming the server, got %q", r.stderr)
	}
}

func TestUsersLifecycle(t *testing.T) {
	c := newCLI(t).migrated()
	const pw = "Through the looking glass"
	c.ok(pw+"\n", "users", "create", "--username", "alice", "--email", "alice@example.com",
		"--name", "Alice Liddell", "--password-stdin")
	c.fails(`error: username "alice" is taken`, "", "users", "create", "--username", "alice")
	c.fails(`error: email "ALICE@example.com" is taken`, "", "users", "create", "--username", "alice2", "--email", "ALICE@example.com")
	c.fails("password must be at least 8 characters", "short\n", "users", "create", "--username", "bob", "--password-stdin")
	c.fails("no password on stdin", "", "users", "create", "--username", "bob", "--password-stdin")
	c.fails(`email "nope" is not an email address`, "", "users", "create", "--username", "bob", "--email", "nope")
	c.fails(`required flag(s) "username" not set`, "", "users", "create")

	var u userView
	out := c.ok("", "users", "get", "alice", "-o", "json")
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.Claims.Name != "Alice Liddell" || !u.HasPassword || u.Disabled {
		t.Errorf("get: %+v", u)
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, pw) {
		t.Error("get printed the password or its hash")
	}
	// Found by ID and email too; the table shows the claims.
	if out := c.ok("", "users", "get", u.ID); !strings.Contains(out, "Alice Liddell") {
		t.Errorf("get by id: %q", out)
	}
	c.ok("", "users", "get", "alice@example.com")
	c.fails(`error: user "carol" not found`, "", "users", "get", "carol")

	// A partial update changes only what is given.
	c.ok("", "users", "update", "alice", "--given-name", "Alice", "--address-country", "UK", "--locale", "en-GB")
	after := c.user("alice")
	if after.Claims.GivenName != "Alice" || after.Claims.Address.Country != "UK" || after.Claims.Name != "Alice Liddell" ||
		after.Claims.Email != "alice@example.com" {
		t.Errorf("after update: %+v", after.Claims)
	}
	c.ok("", "users", "update", "alice", "--name", "")
	after = c.user("alice")
	if after.Claims.Name != "" || after.Claims.GivenName != "Alice" {
		t.Errorf("clearing name: %+v", after.Claims)
	}
	c.fails(`birthdate "31/12/1990" must be YYYY-MM-DD`, "", "users", "update", "alice", "--birthdate", "31/12/1990")

	c.ok("another long password\n", "users", "set-password", "alice", "--password-stdin")
	if out := c.ok("", "users", "disable", "alice"); out != "user \"alice\" disabled\n" {
		t.Errorf("disable: %q", out)
	}
	after = c.user("alice")
	if !after.Disabled {
		t.Error("not disabled")
	}
	c.ok("", "users", "enable", "alice")

	c.ok("", "users", "create", "--username", "bob")
	out = c.ok("", "users", "list")
	if !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || !strings.HasPrefix(out, "ID ") {
		t.Errorf("list: %q", out)
	}
	var page []userView
	json.Unmarshal([]byte(c.ok("", "users", "list", "--limit", "1", "-o", "json")), &page)
	if len(page) != 1 {
		t.Errorf("--limit 1 gave %d users", len(page))
	}
	c.ok("", "users", "delete", "bob")
	c.fails(`error: user "bob" not found`, "", "users", "delete", "bob")
}

func TestClientsLifecycle(t *testing.T) {
	c := newCLI(t).migrated()
	out := c.ok("", "clients", "create", "--name", "shop",
		"--redirect-uri", "https://shop.example/cb,https://shop.example/cb2",
		"--grant-type", "authorization_code,refresh_token",
		"--scope", "openid profile offline_access", "-o", "json")
	var md clients.Metadata
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("create output is not JSON: %v\n%s", err, out)
	}
	if md.ClientID == "" || len(md.ClientSecret) != 43 || md.ClientSecretExpiresAt == nil ||
		len(md.RedirectURIs) != 2 || md.Scope != "openid profile offline_access" ||
		strings.Join(md.GrantTypes, " ") != "authorization_code refresh_token" || strings.Join(md.ResponseTypes, " ") != "code" {
		t.Errorf("created: %+v", md)
	}

	// The secret is printed once: never again.
	got := c.ok("", "clients", "get", md.ClientID, "-o", "json")
	if strings.Contains(got, md.ClientSecret) || strings.Contains(got, `"client_secret"`) {
		t.Errorf("get shows the secret: %s", got)
	}
	if table := c.ok("", "clients", "get", md.ClientID); !strings.Contains(table, "client_name:") || !strings.Contains(table, "https://shop.example/cb2") {
		t.Errorf("get table: %q", table)
	}

	// A public native client with every kind of flag.
	out = c.ok("", "clients", "create", "--name", "cli", "--application-type", "native",
		"--token-endpoint-auth-method", "none", "--redirect-uri", "http://127.0.0.1/cb",
		"--redirect-uri", "com.example.app:/cb", "--post-logout-redirect-uri", "com.example.app:/bye",
		"--first-party", "--access-token-format", "jwt", "--access-token-lifetime", "15m",
		"--audience", "https://api.example", "--client-id", "my-cli", "-o", "json")
	var pub clients.Metadata
	json.Unmarshal([]byte(out), &pub)
	if pub.ClientID != "my-cli" || pub.ClientSecret != "" || !pub.FirstParty || pub.AccessTokenLifetime != 900 ||
		len(pub.RedirectURIs) != 2 || pub.AccessTokenFormat != "jwt" {
		t.Errorf("public client: %+v", pub)
	}

	// Metadata from a file, a flag overriding it.
	file := filepath.Join(c.dir, "md.json")
	os.WriteFile(file, []byte(`{"client_name":"from file","redirect_uris":["https://f.example/cb"],"grant_types":["client_credentials","authorization_code"]}`), 0o600)
	json.Unmarshal([]byte(c.ok("", "clients", "create", "--metadata-file", file, "--name", "flag wins", "-o", "json")), &pub)
	if pub.ClientName != "flag wins" || len(pub.GrantTypes) != 2 {
		t.Errorf("metadata file: %+v", pub)
	}
	os.WriteFile(file, []byte(`{"client_nam":"typo"}`), 0o600)
	c.fails(`unknown field "client_nam"`, "", "clients", "create", "--metadata-file", file)

	c.fails(`error: invalid_redirect_uri: redirect_uris[0] "http://shop.example/cb" uses http on a non-loopback host`, "",
		"clients", "create", "--redirect-uri", "http://shop.example/cb")
	c.fails(`error: invalid_redirect_uri: redirect_uris[0] "javascript:alert(1)"`, "",
		"clients", "create", "--redirect-uri", "javascript:alert(1)")
	c.fails(`error: invalid_client_metadata: grant_types "password" is not supported`, "",
		"clients", "create", "--redirect-uri", "https://a.example/cb", "--grant-type", "password")
	c.fails(`error: client "my-cli" already exists`, "", "clients", "create", "--client-id", "my-cli",
		"--redirect-uri", "https://a.example/cb")

	if list := c.ok("", "clients", "list"); !strings.Contains(list, md.ClientID) || !strings.Contains(list, "my-cli") {
		t.Errorf("list: %q", list)
	}

	r := c.run("", "clients", "rotate-secret", md.ClientID, "-o", "json")
	var rot map[string]string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rot) != nil || len(rot["client_secret"]) != 43 || rot["client_secret"] == md.ClientSecret {
		t.Errorf("rotate-secret: %+v %q", r, rot)
	}
	c.fails(`is public`, "", "clients", "rotate-secret", "my-cli")

	c.ok("", "clients", "delete", "my-cli")
	c.fails(`error: client "my-cli" not found`, "", "clients", "get", "my-cli")
	c.fails(`error: client "x" not found`, "", "clients", "delete", "x")
}

func TestKeys(t *testing.T) {
	c := newCLI(t).migrated()
	var before []map[string]any
	if err := json.Unmarshal([]byte(c.ok("", "keys", "list", "-o", "json")), &before); err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, k := range before {
		states[k["state"].(string)]++
	}
	// RS256 and ES256 by default: an active and a next key each.
	if states["active"] != 2 || states["next"] != 2 {
		t.Errorf("keys: %v", states)
	}
	// The next keys were just published: rotation waits unless forced.
	c.fails("published too recently", "", "keys", "rotate")
	out := c.ok("", "keys", "rotate", "--force")
	if !strings.HasPrefix(out, "keys rotated\n") || !strings.Contains(out, "retired") {
		t.Errorf("rotate --force: %q", out)
	}
}

func TestDevModeNeedsNoConfig(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, dir: dir, env: map[string]string{"GATEHOUSE_DATABASE_URL": "sqlite://" + filepath.Join(dir, "dev.db")}}
	c.ok("", "--dev", "migrate", "up")
	c.ok("a long dev password\n", "--dev", "users", "create", "--username", "dev", "--password-stdin")
	if _, err := os.Stat(filepath.Join(dir, "gatehouse-dev.secret")); err != nil {
		t.Errorf("dev secret: %v", err)
	}
}
