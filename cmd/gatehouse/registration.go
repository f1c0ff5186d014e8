package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// registrationTokenView is a registration token as the CLI shows it.
type registrationTokenView struct {
	// Token is set only when the token was just created.
	Token       string    `json:"token,omitempty"`
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	UsesLeft    int       `json:"uses_left"` // -1: unlimited
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
}

func viewRegistrationToken(t storage.RegistrationToken) registrationTokenView {
	return registrationTokenView{ID: t.ID, Description: t.Description, UsesLeft: t.UsesLeft, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt}
}

func usesLeft(n int) string {
	if n == storage.UnlimitedUses {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// withRegistrationTokens runs f with the initial access token service over
// the configured database.
func withRegistrationTokens(cmd *cobra.Command, app *App, f func(*registration.TokenService) error) error {
	e, err := app.open(cmd.Context())
	if err != nil {
		return err
	}
	defer e.close()
	ring, err := e.keyring()
	if err != nil {
		return err
	}
	return f(registration.NewTokenService(e.db, ring, e.log.With("component", "registration"), nil))
}

// newRegistrationTokenCmd manages the initial access tokens of dynamic
// client registration (RFC 7591 §3), used when registration.policy is
// initial_access_token.
func newRegistrationTokenCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("registration-token", "Manage initial access tokens for dynamic client registration (RFC 7591)")

	var (
		uses        int
		unlimited   bool
		expiresIn   time.Duration
		description string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Issue an initial access token; it is printed once",
		Example: `  gatehouse clients registration-token create --uses 5 --expires-in 72h --description "partner onboarding" -o json
  curl -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
      -d '{"redirect_uris":["https://app.example/cb"]}' https://login.example.com/oauth2/register`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unlimited && cmd.Flags().Changed("uses") {
				return fmt.Errorf("--uses and --unlimited exclude each other: give one")
			}
			n := uses
			if unlimited {
				n = storage.UnlimitedUses
			}
			return withRegistrationTokens(cmd, app, func(s *registration.TokenService) error {
				token, rec, err := s.CreateToken(cmd.Context(), registration.TokenOptions{Uses: n, ExpiresIn: expiresIn, Description: description})
				if err != nil {
					return err
				}
				v := viewRegistrationToken(rec)
				v.Token = token
				if app.json() {
					return app.printJSON(v)
				}
				tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "token:\t%s\nid:\t%s\nuses_left:\t%s\nexpires_at:\t%s\n", token, rec.ID, usesLeft(rec.UsesLeft), fmtTime(rec.ExpiresAt))
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(app.stderr, "The token is shown only now: hand it over safely.")
				return nil
			})
		},
	}
	create.Flags().IntVar(&uses, "uses", 1, "how many clients the token may register")
	create.Flags().BoolVar(&unlimited, "unlimited", false, "no limit on the number of registrations")
	create.Flags().DurationVar(&expiresIn, "expires-in", 24*time.Hour, "lifetime of the token, e.g. 72h (0: never expires)")
	create.Flags().StringVar(&description, "description", "", "what the token is for, shown by list")

	list := &cobra.Command{
		Use:   "list",
		Short: "List unexpired tokens, used up ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistrationTokens(cmd, app, func(s *registration.TokenService) error {
				ts, err := s.ListTokens(cmd.Context())
				if err != nil {
					return err
				}
				return printList(app, ts, viewRegistrationToken, "ID\tUSES_LEFT\tEXPIRES_AT\tCREATED_AT\tDESCRIPTION", func(t storage.RegistrationToken) string {
					return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", t.ID, usesLeft(t.UsesLeft), fmtTime(t.ExpiresAt), fmtTime(t.CreatedAt), dash(t.Description))
				})
			})
		},
	}

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a token (by the ID list shows)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistrationTokens(cmd, app, func(s *registration.TokenService) error {
				if err := s.DeleteToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				return printDone(app, fmt.Sprintf("registration token %s deleted", args[0]), args[0])
			})
		},
	}

	cmd.AddCommand(create, list, del)
	return cmd
}
