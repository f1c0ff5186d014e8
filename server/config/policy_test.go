package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestClientAndOAuthPolicy: oauth.require_pushed_authorization_requests (RFC
// 9126 §5) and clients.allow_private_jwks_uri are off by default and can be
// set in the file or the environment.
func TestClientAndOAuthPolicy(t *testing.T) {
	def, err := Load("testdata/empty.yaml", noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if def.OAuth.RequirePushedAuthorizationRequests || def.Clients.AllowPrivateJWKSURI {
		t.Errorf("defaults = %+v %+v, want both off", def.OAuth, def.Clients)
	}

	dir := t.TempDir()
	good, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	body := append(good, []byte("\noauth:\n  require_pushed_authorization_requests: true\nclients:\n  allow_private_jwks_uri: true\n")...)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.OAuth.RequirePushedAuthorizationRequests || !cfg.Clients.AllowPrivateJWKSURI {
		t.Errorf("from the file: %+v %+v", cfg.OAuth, cfg.Clients)
	}

	cfg, err = Load("testdata/good.yaml", envMap(map[string]string{
		"GATEHOUSE_OAUTH_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS": "true",
		"GATEHOUSE_CLIENTS_ALLOW_PRIVATE_JWKS_URI":              "true",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.OAuth.RequirePushedAuthorizationRequests || !cfg.Clients.AllowPrivateJWKSURI {
		t.Errorf("from the environment: %+v %+v", cfg.OAuth, cfg.Clients)
	}
}
