package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/server/app"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/demo"
	"github.com/gatehouse-idp/gatehouse/server/logbuf"
	"github.com/gatehouse-idp/gatehouse/server/requestid"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis"
	"github.com/gatehouse-idp/gatehouse/storage/sql"
)

const (
	// serveShutdownTimeout bounds the drain of in-flight requests on SIGTERM;
	// orchestrators usually kill after 30 s, so finish well before.
	serveShutdownTimeout = 20 * time.Second
	// serveGCInterval is how often expired short-lived records are deleted
	// when they live in SQL (Redis expires its own).
	serveGCInterval = time.Minute
)

// newServeCmd builds `gatehouse serve`. getenv reads the GATEHOUSE_*
// overrides (os.Getenv in main; a map in tests). The configuration file and
// dev mode come from the root command's persistent --config and --dev flags
// (or GATEHOUSE_CONFIG), so `gatehouse --dev serve` and `gatehouse serve
// --dev` mean the same.
func newServeCmd(getenv func(string) string) *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the identity provider (public and admin listeners)",
		Long: `Run the identity provider.

The public listener serves the OAuth 2.0 / OpenID Connect endpoints, the login
pages and the JWKS; the admin listener serves health checks and must not be
exposed publicly. SIGINT or SIGTERM drains in-flight requests and exits.

An outdated database schema is refused unless --migrate or --dev is given;
--dev also runs on a local SQLite database with a generated secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Inherited persistent flags; absent when the command runs alone.
			configPath, _ := cmd.Flags().GetString("config")
			if configPath == "" {
				configPath = getenv("GATEHOUSE_CONFIG")
			}
			dev, _ := cmd.Flags().GetBool("dev")
			cfg, err := config.Load(configPath, getenv, dev)
			if err != nil {
				return fmt.Errorf("loading configuration: %w", err)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration (check it with `gatehouse config validate`): %s",
					strings.ReplaceAll(err.Error(), "\n", "; "))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cfg, serveOptions{
				Migrate: migrate || cfg.Dev,
				LogOut:  cmd.ErrOrStderr(),
			})
		},
	}
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply pending database migrations before serving")
	return cmd
}

// serveOptions are runServe's settings that are not configuration.
type serveOptions struct {
	// Migrate applies pending migrations; otherwise an outdated schema is refused.
	Migrate bool
	// LogOut receives the logs.
	LogOut io.Writer
	// Listening, when set, is told the listeners' addresses once they are
	// bound (admin is nil when disabled). Tests use it to find port 0's port.
	Listening func(public, admin net.Addr)
}

// serveLogger builds the process logger from the configuration. Every line
// logged with a request's context carries its request_id. Unless
// log.flush_interval is 0, lines are batched (server/logbuf): out is the
// batching writer, for text that must stay in order with the log lines, and
// closeLog writes what is still waiting.
func serveLogger(w io.Writer, c config.Log) (log *slog.Logger, out io.Writer, closeLog func()) {
	var lw *logbuf.Writer
	closeLog = func() {}
	if c.FlushInterval > 0 {
		lw = logbuf.New(w, c.FlushInterval, 0)
		w, closeLog = lw, func() { _ = lw.Close() }
	}
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	var h slog.Handler
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if lw != nil {
		h = logbuf.Handler(h, lw, slog.LevelWarn)
	}
	return slog.New(requestid.LogHandler(h)), w, closeLog
}

// runServe runs the server until ctx ends, then shuts down gracefully: stop
// accepting, drain requests (bounded), stop the background loops, close the
// stores.
func runServe(ctx context.Context, cfg config.Config, opts serveOptions) (err error) {
	log, logOut, closeLog := serveLogger(opts.LogOut, cfg.Log)
	defer closeLog() // first in, last out: after every other deferred log line
	if cfg.Dev {
		log.Warn("development mode: not for production", "issuer", cfg.Issuer)
	}

	db, err := sql.Open(ctx, sql.Config{URL: cfg.DatabaseURL, Logger: log.With("component", "sql")})
	if err != nil {
		return err
	}
	defer closeStore(log, "sql", db, &err)
	if err := serveCheckSchema(ctx, db, opts.Migrate); err != nil {
		return err
	}

	stores := storage.Stores{Durable: db, Ephemeral: db}
	sqlEphemeral := cfg.Redis.URL == ""
	if !sqlEphemeral {
		// Assigned, not declared: the deferred close must report into the named err.
		var rdb *redis.Store
		rdb, err = redis.Open(ctx, redis.Config{
			URL:                 cfg.Redis.URL,
			Prefix:              cfg.Redis.Prefix,
			AllowEvictionPolicy: cfg.Redis.AllowEvictionPolicy,
			Logger:              log.With("component", "redis"),
		})
		if err != nil {
			return fmt.Errorf("opening redis: %w", err)
		}
		defer closeStore(log, "redis", rdb, &err)
		stores.Ephemeral = rdb
	}

	a, err := app.New(ctx, cfg, stores, app.Options{Logger: log})
	if err != nil {
		return err
	}

	// Background loops stop when loopCtx ends, after the listeners drained.
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	defer loops.Wait()
	defer stopLoops()
	loops.Go(func() {
		if err := a.Run(loopCtx); err != nil {
			log.Error("background work stopped", "error", err)
		}
	})
	if sqlEphemeral {
		// Redis expires records itself; SQL needs expired rows deleted.
		loops.Go(func() { db.RunGC(loopCtx, serveGCInterval) })
	}

	public, err := serveListen(log, "public", cfg.Listen.Public, a.Server.Handler(), cfg.HTTP)
	if err != nil {
		return err
	}
	servers := []*serveListener{public}
	var adminAddr net.Addr
	if cfg.Listen.Admin != "" {
		admin, err := serveListen(log, "admin", cfg.Listen.Admin, a.Server.AdminHandler(), cfg.HTTP)
		if err != nil {
			public.ln.Close()
			return err
		}
		servers = append(servers, admin)
		adminAddr = admin.ln.Addr()
	}
	if opts.Listening != nil {
		opts.Listening(public.ln.Addr(), adminAddr)
	}

	failed := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("serving %s listener: %w", s.name, err)
			}
		}()
	}
	log.Info("gatehouse started", "issuer", cfg.Issuer)
	if a.Demo != nil {
		serveAnnounceDemo(log, logOut, cfg.Issuer, *a.Demo)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drain_timeout", serveShutdownTimeout.String())
	case serveErr = <-failed:
		log.Error("listener failed, shutting down", "error", serveErr)
	}

	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdownTimeout)
	defer cancel()
	var drainErr error
	for _, s := range servers {
		if err := s.srv.Shutdown(drainCtx); err != nil {
			drainErr = errors.Join(drainErr, fmt.Errorf("draining %s listener: %w", s.name, err))
			s.srv.Close()
		}
	}
	stopLoops()
	loops.Wait()
	if err := errors.Join(serveErr, drainErr); err != nil {
		return err
	}
	log.Info("shut down cleanly")
	return nil
}

// serveAnnounceDemo tells the developer where to click and, when alice was
// just created, her password. The password goes to the terminal once as a
// plain line, never into a structured log line that a collector would keep.
func serveAnnounceDemo(log *slog.Logger, w io.Writer, issuer string, info demo.Info) {
	url := strings.TrimSuffix(issuer, "/") + demo.HomePath
	log.Info("open "+url+" to try the demo", "url", url, "username", info.Username)
	if info.Password != "" {
		fmt.Fprintf(w, "\n  Demo: open %s and sign in as %s with password %s\n  (shown once; `gatehouse --dev users set-password %s --password-stdin` changes it)\n\n",
			url, info.Username, info.Password, info.Username)
	}
}

// serveCheckSchema migrates, or refuses a schema this binary does not match:
// serving an old schema would fail on the first query that needs a newer
// table, far from the cause.
func serveCheckSchema(ctx context.Context, db *sql.Store, migrate bool) error {
	if migrate {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
		return nil
	}
	status, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	var have, need int64
	for _, m := range status {
		need = max(need, m.Version)
		if m.Applied {
			have = max(have, m.Version)
		}
	}
	for _, m := range status {
		if !m.Applied {
			return fmt.Errorf("database schema is at version %d, this binary needs %d: run `gatehouse migrate up` or start with --migrate", have, need)
		}
	}
	return nil
}

type serveListener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

func serveListen(log *slog.Logger, name, addr string, h http.Handler, c config.HTTP) (*serveListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s for the %s listener: %w", addr, name, err)
	}
	log.Info("listening", "listener", name, "addr", ln.Addr().String())
	return &serveListener{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

func closeStore(log *slog.Logger, name string, c io.Closer, errp *error) {
	if err := c.Close(); err != nil {
		log.Error("closing store", "store", name, "error", err)
		if *errp == nil {
			*errp = fmt.Errorf("closing %s store: %w", name, err)
		}
	}
}
