package config

import (
	"os"
	"path/filepath"
	"strings"
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

// TestProtocolPolicy: oauth.pkce defaults to required (RFC 9700 §2.1.1),
// implicit and hybrid are off (RFC 9700 §2.1.2), no client gets refresh
// tokens without offline_access (OIDC Core §11); each can be set in the
// environment and bad values are reported.
func TestProtocolPolicy_RFC9700_2_1(t *testing.T) {
	def, err := Load("testdata/good.yaml", noEnv, false)
	if err != nil {
		t.Fatal(err)
	}
	if def.OAuth.PKCE != PKCERequired || def.OAuth.ImplicitEnabled || def.OAuth.HybridEnabled || len(def.OAuth.RefreshWithoutOfflineAccess) != 0 {
		t.Errorf("defaults = %+v", def.OAuth)
	}
	cfg, err := Load("testdata/good.yaml", envMap(map[string]string{
		"GATEHOUSE_OAUTH_PKCE":                           "public_clients",
		"GATEHOUSE_OAUTH_IMPLICIT_ENABLED":               "true",
		"GATEHOUSE_OAUTH_HYBRID_ENABLED":                 "true",
		"GATEHOUSE_OAUTH_REFRESH_WITHOUT_OFFLINE_ACCESS": "app-one,app-two",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OAuth
	if o.PKCE != PKCEPublicClients || !o.ImplicitEnabled || !o.HybridEnabled || len(o.RefreshWithoutOfflineAccess) != 2 || o.RefreshWithoutOfflineAccess[1] != "app-two" {
		t.Errorf("from the environment: %+v", o)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid policy refused: %v", err)
	}
	cfg.OAuth.PKCE = "plain"
	cfg.OAuth.RefreshWithoutOfflineAccess = []string{"a", "a", " "}
	err = cfg.Validate()
	for _, want := range []string{"oauth.pkce", `client "a" is listed twice`, "an empty client ID"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}
