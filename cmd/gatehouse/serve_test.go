package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/storage/sql"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

// logBuffer collects the command's log output; the server goroutines write
// while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listenAddrs returns the addresses of the "listening" log lines so far.
func (b *logBuffer) listenAddrs() map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "listening" {
			continue
		}
		out[m["listener"].(string)], _ = m["addr"].(string)
	}
	return out
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startServe runs `gatehouse serve <args>` in-process and returns the public
// and admin base URLs, a stop function and the command's result channel.
func startServe(t *testing.T, env map[string]string, args ...string) (public, admin string, logs *logBuffer, stop func() error) {
	t.Helper()
	logs = &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Through the root command, as main runs it, so its global flags apply.
		if code := run(ctx, args, envMap(env), strings.NewReader(""), io.Discard, logs); code != 0 {
			done <- fmt.Errorf("exit code %d", code)
			return
		}
		done <- nil
	}()

	var (
		once    sync.Once
		stopErr error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(time.Minute):
				stopErr = errors.New("serve did not stop within a minute of its context ending")
			}
		})
		return stopErr
	}
	// Wait (bounded) for both listeners to be bound, or for an early exit.
	deadline := time.Now().Add(time.Minute)
	for {
		addrs := logs.listenAddrs()
		if addrs["public"] != "" && addrs["admin"] != "" {
			t.Cleanup(func() { _ = stop() })
			return "http://" + addrs["public"], "http://" + addrs["admin"], logs, stop
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v; logs:\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start listening; logs:\n%s", logs)
		}
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, body
}

func checkServing(t *testing.T, public, admin string) {
	t.Helper()
	for _, base := range []string{public, admin} {
		code, body := get(t, base+"/health/ready")
		if code != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
			t.Errorf("GET %s/health/ready = %d %s", base, code, body)
		}
	}
	code, body := get(t, public+"/.well-known/jwks.json")
	if code != 200 {
		t.Fatalf("GET jwks = %d %s", code, body)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Kty string `json:"kty"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("jwks %s: %v", body, err)
	}
	algs := map[string]bool{}
	for _, k := range set.Keys {
		algs[k.Alg] = true
		if k.D != "" {
			t.Errorf("the JWKS publishes private key material for %s", k.Kid)
		}
	}
	if !algs["RS256"] || !algs["ES256"] {
		t.Errorf("jwks algorithms = %v, want RS256 and ES256 (the defaults)", algs)
	}
}

func TestServeDevSQLite(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"GATEHOUSE_DATABASE_URL":  "sqlite://" + filepath.Join(dir, "gatehouse.db"),
		"GATEHOUSE_LISTEN_PUBLIC": "127.0.0.1:0",
		"GATEHOUSE_LISTEN_ADMIN":  "127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT":    "json",
		"GATEHOUSE_LOG_LEVEL":     "info",
	}
	public, admin, logs, stop := startServe(t, env, "--dev", "serve")
	checkServing(t, public, admin)

	// The query string of a request never reaches the logs.
	get(t, public+"/.well-known/jwks.json?code=SECRET-CODE-123")

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v; logs:\n%s", err, logs)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"shut down cleanly"`) {
		t.Errorf("no clean shutdown logged:\n%s", out)
	}
	if strings.Contains(out, "SECRET-CODE-123") {
		t.Errorf("the logs contain a query string:\n%s", out)
	}
	if !strings.Contains(out, `"msg":"http request"`) || !strings.Contains(out, `"request_id":"`) {
		t.Errorf("no access log line with a request_id:\n%s", out)
	}
}

func TestServeWithRedis(t *testing.T) {
	redisURL := storagetest.RedisURL()
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opt)
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Ping(ctx).Err(); err != nil {
		storagetest.Unavailable(t, "redis", err)
	}
	prefix := "gatehouse-test-serve-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000") + ":"
	t.Cleanup(func() {
		keys, _ := rc.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})

	dir := t.TempDir()
	env := map[string]string{
		"GATEHOUSE_DATABASE_URL":                "sqlite://" + filepath.Join(dir, "gatehouse.db"),
		"GATEHOUSE_REDIS_URL":                   redisURL,
		"GATEHOUSE_REDIS_PREFIX":                prefix,
		"GATEHOUSE_REDIS_ALLOW_EVICTION_POLICY": "true",
		"GATEHOUSE_LISTEN_PUBLIC":               "127.0.0.1:0",
		"GATEHOUSE_LISTEN_ADMIN":                "127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT":                  "json",
		"GATEHOUSE_SECRETS_SYSTEM":              strings.Repeat("s", 48),
	}
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	yaml := "issuer: http://127.0.0.1:8080\nui:\n  accent_color: \"#114477\"\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	public, admin, logs, stop := startServe(t, env, "serve", "--config", cfgFile, "--migrate")
	checkServing(t, public, admin)
	code, body := get(t, public+"/static/theme.css")
	if code != 200 || !strings.Contains(string(body), "#114477") {
		t.Errorf("theme.css = %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v; logs:\n%s", err, logs)
	}
}

// An outdated schema is refused with the command that fixes it.
func TestServeRefusesOutdatedSchema(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Issuer = "https://id.example.com"
	cfg.DatabaseURL = "sqlite://" + filepath.Join(dir, "gatehouse.db")
	cfg.Listen = config.Listen{Public: "127.0.0.1:0"}
	cfg.Secrets.System = []config.Secret{config.NewSecret(strings.Repeat("x", 48))}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	err := runServe(context.Background(), cfg, serveOptions{LogOut: &logs})
	if err == nil || !strings.Contains(err.Error(), "database schema is at version 0") ||
		!strings.Contains(err.Error(), "gatehouse migrate up") {
		t.Fatalf("runServe on an empty database: err = %v, want the outdated-schema message", err)
	}

	// After a migration the same configuration starts.
	db, err := sql.Open(context.Background(), sql.Config{URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, serveOptions{LogOut: &logs, Listening: func(public, admin net.Addr) {
			if admin != nil {
				t.Errorf("admin listener %v started although listen.admin is empty", admin)
			}
			started <- "http://" + public.String()
		}})
	}()
	select {
	case public := <-started:
		if code, body := get(t, public+"/health/alive"); code != 200 {
			t.Errorf("alive = %d %s", code, body)
		}
	case err := <-done:
		t.Fatalf("runServe: %v; logs:\n%s", err, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runServe after cancel: %v", err)
	}
}
