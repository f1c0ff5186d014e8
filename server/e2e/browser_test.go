package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/demo"
)

// artifactsDir is where the browser test saves its screenshots:
// $GATEHOUSE_TEST_ARTIFACTS, else test-artifacts at the repository root
// (gitignored).
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("GATEHOUSE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds the browser, skipping loudly without one (failing in CI,
// where .ci/run installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI needs it for the browser test (apt-get install -y chromium)")
	}
	t.Skip("SKIPPED: chromium is not installed, so the browser test did not run (apt-get install -y chromium)")
	return ""
}

// TestBrowserDemoSignIn signs in through dev mode's /demo in real headless
// Chromium: click "Sign in", type alice's password, submit, and see her
// verified claims. It saves screenshots of the login and consent pages.
func TestBrowserDemoSignIn(t *testing.T) {
	exe := chromium(t)
	e := start(t, backends[0].open(t), func(c *config.Config) { c.Dev = true })
	info := e.app.Demo
	if info == nil || info.Password == "" {
		t.Fatal("dev mode did not bootstrap alice with a fresh password")
	}
	dir := artifactsDir(t)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 800),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first Run starts the browser and must not carry the timeout (the
	// browser lives as long as that call's context).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 45*time.Second)
	defer cancelTimeout()

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", filepath.Join(dir, name))
	}

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.issuer+demo.HomePath),
		chromedp.Click(chromedp.CSS(`form[action="/demo/login"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#password")),
	)
	if err != nil {
		t.Fatalf("from /demo to the login page: %v", err)
	}
	shot("login.png")
	err = chromedp.Do(ctx,
		chromedp.Clear(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), demo.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), info.Password),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("pre")),
	)
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, e.issuer+demo.CallbackPath) {
		t.Fatalf("after sign-in the browser is at %s, want the demo callback", loc)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Signed in", `"email": "alice@example.com"`, `"preferred_username": "alice"`, `"iss": "` + e.issuer + `"`} {
		if !strings.Contains(text, want) {
			t.Errorf("claims page lacks %s:\n%s", want, text)
		}
	}
	shot("demo-result.png")

	// A third-party client gets the consent page; the session from the
	// demo sign-in is reused.
	md := e.client(clients.Metadata{
		ClientName: "Acme Reports",
		ClientURI:  "https://reports.example.test",
		PolicyURI:  "https://reports.example.test/privacy",
		GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		Scope:      fullScope,
	})
	authURL := e.rp(md, strings.Fields(fullScope)...).AuthCodeURL("browser-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	err = chromedp.Do(ctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`button[value="allow"]`)),
	)
	if err != nil {
		t.Fatalf("consent page: %v", err)
	}
	text, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Acme Reports") || !strings.Contains(text, "alice") {
		t.Errorf("consent page does not name the client and the user:\n%s", text)
	}
	shot("consent.png")
}
