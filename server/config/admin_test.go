package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// devEnv is a dev-mode environment whose dev secret file goes to a temporary
// directory rather than the package's.
func devEnv(t *testing.T, m map[string]string) func(string) string {
	t.Helper()
	env := map[string]string{"GATEHOUSE_DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "dev.db")}
	for k, v := range m {
		env[k] = v
	}
	return envMap(env)
}

func TestAdminTokenFromEnvAndFile(t *testing.T) {
	token := strings.Repeat("t", MinAdminTokenBytes)
	cfg, err := Load("", devEnv(t, map[string]string{"GATEHOUSE_ADMIN_TOKEN": token}), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token.Reveal() != token {
		t.Errorf("admin.token from GATEHOUSE_ADMIN_TOKEN = %d bytes, want the variable's value", cfg.Admin.Token.Len())
	}

	path := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load("", devEnv(t, map[string]string{"GATEHOUSE_ADMIN_TOKEN_FILE": path}), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token.Reveal() != token {
		t.Errorf("admin.token from GATEHOUSE_ADMIN_TOKEN_FILE keeps %d bytes, want the file's line without its newline", cfg.Admin.Token.Len())
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid admin token refused: %v", err)
	}
	// The token is a Secret: no printable form of the config shows it.
	if s := fmt.Sprintf("%v %+v", cfg, cfg.Admin); strings.Contains(s, token) {
		t.Error("the admin token shows in a formatted config")
	}
}

func TestAdminTokenFromYAML(t *testing.T) {
	token := strings.Repeat("y", 40)
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte("admin:\n  token: "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, devEnv(t, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token.Reveal() != token {
		t.Errorf("admin.token from YAML is %d bytes, want %d", cfg.Admin.Token.Len(), len(token))
	}
}

func TestAdminTokenValidation(t *testing.T) {
	for _, tc := range []struct {
		name, token, want string
	}{
		{"unset is allowed", "", ""},
		{"long enough", strings.Repeat("a", MinAdminTokenBytes), ""},
		{"too short", strings.Repeat("a", MinAdminTokenBytes-1), "admin.token: is 31 bytes: use at least 32"},
		{"white space", " " + strings.Repeat("a", MinAdminTokenBytes), "admin.token: has leading or trailing white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", devEnv(t, nil), true)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Admin.Token = NewSecret(tc.token)
			err = cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Error("the validation error shows the token")
			}
		})
	}
}
