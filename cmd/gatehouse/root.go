package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage/sql"
)

// App is what every administration command shares: the process's
// environment and streams, the global flags, and the helpers that load the
// configuration, build the logger and open storage.
type App struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	configPath string
	dev        bool
	output     string
	verbose    bool
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &App{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(app)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var pe problemsError
		if errors.As(err, &pe) {
			// Already printed, one problem per line.
			return 1
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Gatehouse: an OAuth 2.0 and OpenID Connect identity provider",
		Long: `Gatehouse is an OAuth 2.0 and OpenID Connect identity provider.

Configuration comes from a YAML file (--config, or GATEHOUSE_CONFIG) and
GATEHOUSE_* environment variables; --dev runs with local defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&app.configPath, "config", "c", "", "configuration file (YAML); GATEHOUSE_* variables override it (default $GATEHOUSE_CONFIG)")
	pf.BoolVar(&app.dev, "dev", false, "development mode: local issuer, SQLite, generated secret")
	pf.StringVarP(&app.output, "output", "o", "table", "output format: table or json")
	pf.BoolVarP(&app.verbose, "verbose", "v", false, "log at the configured level instead of warnings only")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if app.output != "table" && app.output != "json" {
			return fmt.Errorf("--output %q is not supported: use table or json", app.output)
		}
		return nil
	}
	root.AddCommand(
		newServeCmd(app.getenv),
		newVersionCmd(app),
		newConfigCmd(app),
		newMigrateCmd(app),
		newUsersCmd(app),
		newClientsCmd(app),
		newKeysCmd(app),
	)
	return root
}

// newGroupCmd is a command that only holds subcommands: bare, it prints
// help; with an unknown subcommand, it fails (cobra would print help and
// succeed).
func newGroupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return fmt.Errorf("unknown command %q for %q: see `%s --help`", args[0], cmd.CommandPath(), cmd.CommandPath())
		},
	}
}

// problemsError marks an error whose details were already printed.
type problemsError struct{ n int }

func (e problemsError) Error() string { return fmt.Sprintf("%d problems", e.n) }

// loadConfig loads and validates the configuration.
func (a *App) loadConfig() (config.Config, error) {
	path := a.configPath
	if path == "" {
		path = a.getenv("GATEHOUSE_CONFIG")
	}
	cfg, err := config.Load(path, a.getenv, a.dev)
	if err != nil {
		return config.Config{}, fmt.Errorf("loading configuration: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration (check it with `gatehouse config validate`): %s",
			strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return cfg, nil
}

// logger writes to stderr in the configured format. Administration commands
// only show warnings unless --verbose, so their output stays readable.
func (a *App) logger(cfg config.Config) *slog.Logger {
	level := slog.LevelWarn
	if a.verbose {
		level = cfg.Log.SlogLevel()
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// env is what a command that works on data gets: configuration, logger and
// an open, up-to-date store. close must be called.
type env struct {
	cfg config.Config
	log *slog.Logger
	db  *sql.Store
}

func (e *env) close() { _ = e.db.Close() }

// open loads the configuration and opens the database, refusing an outdated
// schema: every command except migrate goes through here.
func (a *App) open(ctx context.Context) (*env, error) {
	e, err := a.openUnchecked(ctx)
	if err != nil {
		return nil, err
	}
	current, err := e.db.SchemaCurrent(ctx)
	if err != nil {
		e.close()
		return nil, err
	}
	if !current {
		e.close()
		return nil, errors.New("the database schema is outdated or missing: run `gatehouse migrate up` first")
	}
	return e, nil
}

func (a *App) openUnchecked(ctx context.Context) (*env, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	log := a.logger(cfg)
	db, err := sql.Open(ctx, sql.Config{URL: cfg.DatabaseURL, Logger: log.With("component", "sql")})
	if err != nil {
		return nil, err
	}
	return &env{cfg: cfg, log: log, db: db}, nil
}

func (e *env) keyring() (*secrets.Keyring, error) {
	ring, err := secrets.NewKeyring(e.cfg.SystemSecrets()...)
	if err != nil {
		return nil, fmt.Errorf("building the system secret keyring: %w", err)
	}
	return ring, nil
}

func (e *env) hasher() *password.Hasher {
	p := e.cfg.PasswordHash
	return &password.Hasher{Params: password.Params{
		MemoryKiB:   uint32(p.MemoryKiB),
		Iterations:  uint32(p.Iterations),
		Parallelism: uint8(p.Parallelism),
	}}
}

// json reports whether -o json was asked for.
func (a *App) json() bool { return a.output == "json" }

// printList prints items as a JSON array of their views or, for people, as
// a table: header and each item's row are tab-separated columns.
func printList[T, V any](app *App, items []T, view func(T) V, header string, row func(T) string) error {
	if app.json() {
		vs := make([]V, 0, len(items))
		for _, it := range items {
			vs = append(vs, view(it))
		}
		return app.printJSON(vs)
	}
	tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
