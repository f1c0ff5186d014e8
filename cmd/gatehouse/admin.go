package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/keys"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := struct {
				Version  string `json:"version"`
				Revision string `json:"revision,omitempty"`
				Go       string `json:"go"`
			}{Version: version, Go: runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v.Revision = s.Value
					}
				}
			}
			if app.json() {
				return app.printJSON(v)
			}
			rev := ""
			if v.Revision != "" {
				rev = " " + v.Revision
			}
			_, err := fmt.Fprintf(app.stdout, "gatehouse %s%s (%s)\n", v.Version, rev, v.Go)
			return err
		},
	}
}

func newConfigCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("config", "Inspect the configuration")
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and list every problem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path := app.configPath
			if path == "" {
				path = app.getenv("GATEHOUSE_CONFIG")
			}
			cfg, err := config.Load(path, app.getenv, app.dev)
			if err != nil {
				return err
			}
			// Problems name keys and lengths, never secret values.
			var problems []string
			if err := cfg.Validate(); err != nil {
				problems = strings.Split(err.Error(), "\n")
			}
			if app.json() {
				if err := app.printJSON(map[string]any{"ok": len(problems) == 0, "problems": problems}); err != nil {
					return err
				}
			} else if len(problems) == 0 {
				fmt.Fprintln(app.stdout, "configuration OK")
			} else {
				fmt.Fprintf(app.stderr, "configuration has %d problem(s):\n", len(problems))
				for _, p := range problems {
					fmt.Fprintf(app.stderr, "  - %s\n", p)
				}
			}
			if len(problems) > 0 {
				return problemsError{n: len(problems)}
			}
			return nil
		},
	})
	return cmd
}

func newMigrateCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("migrate", "Manage the database schema")
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := app.openUnchecked(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			if err := e.db.Migrate(cmd.Context()); err != nil {
				return err
			}
			return printMigrations(cmd.Context(), app, e)
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "List the migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := app.openUnchecked(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			return printMigrations(cmd.Context(), app, e)
		},
	})
	return cmd
}

func printMigrations(ctx context.Context, app *App, e *env) error {
	st, err := e.db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if app.json() {
		type row struct {
			Version   int64      `json:"version"`
			Name      string     `json:"name"`
			Applied   bool       `json:"applied"`
			AppliedAt *time.Time `json:"applied_at,omitempty"`
		}
		rows := make([]row, 0, len(st))
		for _, m := range st {
			r := row{Version: m.Version, Name: m.Name, Applied: m.Applied}
			if !m.AppliedAt.IsZero() {
				r.AppliedAt = &m.AppliedAt
			}
			rows = append(rows, r)
		}
		return app.printJSON(rows)
	}
	tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	for _, m := range st {
		state, at := "pending", "-"
		if m.Applied {
			state, at = "applied", fmtTime(m.AppliedAt)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
	}
	return tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newKeysCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("keys", "Inspect and rotate the signing keys")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the signing keys and their states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, m, err := openKeys(cmd, app)
			if err != nil {
				return err
			}
			defer e.close()
			return printKeys(app, m.List())
		},
	})
	var force bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Promote the next keys to active and retire the active ones",
		Long: `Promote, for every algorithm, the next key to active, retire the active key
and publish a new next key. Without --force, rotation is refused while the next
key has been published for less than keys.publish_ahead: relying parties may
not have fetched it yet (OIDC Core §10.1.1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, m, err := openKeys(cmd, app)
			if err != nil {
				return err
			}
			defer e.close()
			if err := m.Rotate(cmd.Context(), force); err != nil {
				if !force {
					return fmt.Errorf("%w: rerun with --force to rotate anyway (only for a compromised key)", err)
				}
				return err
			}
			if !app.json() {
				fmt.Fprintln(app.stdout, "keys rotated")
			}
			return printKeys(app, m.List())
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next keys were published too recently (for a compromised key)")
	cmd.AddCommand(rotate)
	return cmd
}

func openKeys(cmd *cobra.Command, app *App) (*env, *keys.Manager, error) {
	e, err := app.open(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	ring, err := e.keyring()
	if err != nil {
		e.close()
		return nil, nil, err
	}
	c := e.cfg
	m, err := keys.New(cmd.Context(), e.db, ring, keys.Config{
		Algorithms:     c.Keys.Algorithms,
		RotationPeriod: c.Keys.RotationPeriod,
		PublishAhead:   c.Keys.PublishAhead,
		// As serve does: a retired key stays published while its tokens may be presented.
		RetireAfter: max(keys.DefaultRetireAfter, c.Tokens.AccessTokenLifetime, c.Tokens.IDTokenLifetime),
		JWKSMaxAge:  c.Keys.JWKSMaxAge,
		RSABits:     c.Keys.RSABits,
		Logger:      e.log.With("component", "keys"),
	})
	if err != nil {
		e.close()
		return nil, nil, err
	}
	return e, m, nil
}

func printKeys(app *App, ks []keys.KeyInfo) error {
	if app.json() {
		type row struct {
			KID        string     `json:"kid"`
			Algorithm  string     `json:"alg"`
			State      string     `json:"state"`
			CreatedAt  time.Time  `json:"created_at"`
			ActivateAt *time.Time `json:"activate_at,omitempty"`
			RetiredAt  *time.Time `json:"retired_at,omitempty"`
			DeleteAt   *time.Time `json:"delete_at,omitempty"`
		}
		opt := func(t time.Time) *time.Time {
			if t.IsZero() {
				return nil
			}
			return &t
		}
		rows := make([]row, 0, len(ks))
		for _, k := range ks {
			rows = append(rows, row{k.KID, k.Algorithm, string(k.State), k.CreatedAt, opt(k.ActivateAt), opt(k.RetiredAt), opt(k.DeleteAt)})
		}
		return app.printJSON(rows)
	}
	tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATE AT\tRETIRED AT\tDELETE AT")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.State,
			fmtTime(k.CreatedAt), fmtTime(k.ActivateAt), fmtTime(k.RetiredAt), fmtTime(k.DeleteAt))
	}
	return tw.Flush()
}
