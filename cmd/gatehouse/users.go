package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// claimFlags binds a flag to every standard claim (OIDC Core §5.1).
type claimFlags struct {
	username string
	claims   storage.Claims
}

// stringClaims maps each string claim's flag to its field.
func (c *claimFlags) stringClaims() []struct {
	flag, usage string
	dst         *string
} {
	cl := &c.claims
	return []struct {
		flag, usage string
		dst         *string
	}{
		{"email", "email address", &cl.Email},
		{"name", "full name", &cl.Name},
		{"given-name", "given (first) name", &cl.GivenName},
		{"family-name", "family (last) name", &cl.FamilyName},
		{"middle-name", "middle name", &cl.MiddleName},
		{"nickname", "casual name", &cl.Nickname},
		{"preferred-username", "shorthand name shown to relying parties", &cl.PreferredUsername},
		{"profile", "profile page URL", &cl.Profile},
		{"picture", "picture URL", &cl.Picture},
		{"website", "web page or blog URL", &cl.Website},
		{"gender", "gender", &cl.Gender},
		{"birthdate", "birthday: YYYY-MM-DD, YYYY or 0000-MM-DD", &cl.Birthdate},
		{"zoneinfo", "time zone, e.g. Europe/Paris", &cl.Zoneinfo},
		{"locale", "locale (BCP47), e.g. en-US", &cl.Locale},
		{"phone-number", "phone number (E.164), e.g. +14155550123", &cl.PhoneNumber},
		{"address-formatted", "full mailing address, formatted for display", &cl.Address.Formatted},
		{"address-street", "street address", &cl.Address.StreetAddress},
		{"address-locality", "city or locality", &cl.Address.Locality},
		{"address-region", "state, province or region", &cl.Address.Region},
		{"address-postal-code", "postal code", &cl.Address.PostalCode},
		{"address-country", "country", &cl.Address.Country},
	}
}

func (c *claimFlags) register(f *pflag.FlagSet, usernameUsage string) {
	f.StringVar(&c.username, "username", "", usernameUsage)
	for _, s := range c.stringClaims() {
		f.StringVar(s.dst, s.flag, "", s.usage)
	}
	f.BoolVar(&c.claims.EmailVerified, "email-verified", false, "the email address has been verified")
	f.BoolVar(&c.claims.PhoneNumberVerified, "phone-number-verified", false, "the phone number has been verified")
}

// patch builds a partial update from the flags that were given.
func (c *claimFlags) patch(f *pflag.FlagSet) users.Patch {
	var p users.Patch
	str := func(name string, v string) *string {
		if f.Changed(name) {
			return &v
		}
		return nil
	}
	boolean := func(name string, v bool) *bool {
		if f.Changed(name) {
			return &v
		}
		return nil
	}
	cl, cp := c.claims, &p.Claims
	p.Username = str("username", c.username)
	cp.Email, cp.Name, cp.GivenName = str("email", cl.Email), str("name", cl.Name), str("given-name", cl.GivenName)
	cp.FamilyName, cp.MiddleName = str("family-name", cl.FamilyName), str("middle-name", cl.MiddleName)
	cp.Nickname, cp.PreferredUsername = str("nickname", cl.Nickname), str("preferred-username", cl.PreferredUsername)
	cp.Profile, cp.Picture, cp.Website = str("profile", cl.Profile), str("picture", cl.Picture), str("website", cl.Website)
	cp.Gender, cp.Birthdate = str("gender", cl.Gender), str("birthdate", cl.Birthdate)
	cp.Zoneinfo, cp.Locale = str("zoneinfo", cl.Zoneinfo), str("locale", cl.Locale)
	cp.PhoneNumber = str("phone-number", cl.PhoneNumber)
	cp.EmailVerified = boolean("email-verified", cl.EmailVerified)
	cp.PhoneNumberVerified = boolean("phone-number-verified", cl.PhoneNumberVerified)
	a, ap := cl.Address, &cp.Address
	ap.Formatted, ap.StreetAddress = str("address-formatted", a.Formatted), str("address-street", a.StreetAddress)
	ap.Locality, ap.Region = str("address-locality", a.Locality), str("address-region", a.Region)
	ap.PostalCode, ap.Country = str("address-postal-code", a.PostalCode), str("address-country", a.Country)
	return p
}

// readPassword reads a password from stdin: everything up to the end, less
// one trailing newline. Passwords are never taken as flags: those show in
// the process list and shell history.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, users.MaxPasswordLen+2))
	if err != nil {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", errors.New("no password on stdin: pipe it in, e.g. printf '%s' \"$PW\" | gatehouse users ... --password-stdin")
	}
	return pw, nil
}

// userView is a user as printed: never the password hash.
type userView struct {
	ID          string         `json:"id"`
	Username    string         `json:"username"`
	Disabled    bool           `json:"disabled"`
	HasPassword bool           `json:"has_password"`
	Claims      storage.Claims `json:"claims"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

func viewUser(u storage.User) userView {
	return userView{u.ID, u.Username, u.Disabled, u.PasswordHash != "", u.Claims, u.CreatedAt, u.UpdatedAt}
}

func printUser(app *App, u storage.User) error {
	if app.json() {
		return app.printJSON(viewUser(u))
	}
	tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	c := u.Claims
	row("id", u.ID)
	row("username", u.Username)
	row("disabled", fmt.Sprint(u.Disabled))
	row("has_password", fmt.Sprint(u.PasswordHash != ""))
	row("email", c.Email)
	if c.Email != "" {
		row("email_verified", fmt.Sprint(c.EmailVerified))
	}
	for _, kv := range [][2]string{
		{"name", c.Name}, {"given_name", c.GivenName}, {"family_name", c.FamilyName}, {"middle_name", c.MiddleName},
		{"nickname", c.Nickname}, {"preferred_username", c.PreferredUsername}, {"profile", c.Profile},
		{"picture", c.Picture}, {"website", c.Website}, {"gender", c.Gender}, {"birthdate", c.Birthdate},
		{"zoneinfo", c.Zoneinfo}, {"locale", c.Locale}, {"phone_number", c.PhoneNumber},
	} {
		row(kv[0], kv[1])
	}
	if c.PhoneNumber != "" {
		row("phone_number_verified", fmt.Sprint(c.PhoneNumberVerified))
	}
	a := c.Address
	for _, kv := range [][2]string{
		{"address.formatted", strings.ReplaceAll(a.Formatted, "\n", ", ")},
		{"address.street_address", strings.ReplaceAll(a.StreetAddress, "\n", ", ")},
		{"address.locality", a.Locality}, {"address.region", a.Region},
		{"address.postal_code", a.PostalCode}, {"address.country", a.Country},
	} {
		row(kv[0], kv[1])
	}
	row("created_at", fmtTime(u.CreatedAt))
	row("updated_at", fmtTime(u.UpdatedAt))
	return tw.Flush()
}

// withUsers runs f with a user service over the configured database.
func withUsers(cmd *cobra.Command, app *App, f func(*users.Service) error) error {
	e, err := app.open(cmd.Context())
	if err != nil {
		return err
	}
	defer e.close()
	return f(users.New(e.db, e.hasher(), e.log.With("component", "users")))
}

func newUsersCmd(app *App) *cobra.Command {
	cmd := newGroupCmd("users", "Manage users")
	refNote := "USER is a user ID, a username or an email address."

	var (
		createFlags   claimFlags
		createPwStdin bool
		createDisable bool
	)
	create := &cobra.Command{
		Use:   "create --username NAME [claims...] [--password-stdin]",
		Short: "Create a user",
		Example: `  echo "$PW" | gatehouse users create --username alice --email alice@example.com \
      --name "Alice Liddell" --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := users.NewUser{Username: createFlags.username, Claims: createFlags.claims, Disabled: createDisable}
			if createPwStdin {
				pw, err := readPassword(app.stdin)
				if err != nil {
					return err
				}
				in.Password = pw
			}
			return withUsers(cmd, app, func(s *users.Service) error {
				u, err := s.Create(cmd.Context(), in)
				if err != nil {
					return err
				}
				return printUser(app, u)
			})
		},
	}
	createFlags.register(create.Flags(), "sign-in name (required): letters, digits and . _ @ + -")
	create.Flags().BoolVar(&createPwStdin, "password-stdin", false, "read the password from stdin (without it the user cannot sign in with a password)")
	create.Flags().BoolVar(&createDisable, "disabled", false, "create the user disabled")
	_ = create.MarkFlagRequired("username")

	var (
		limit int
		after string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List users, ordered by ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUsers(cmd, app, func(s *users.Service) error {
				us, err := s.List(cmd.Context(), storage.Page{After: after, Limit: limit})
				if err != nil {
					return err
				}
				return printList(app, us, viewUser, "ID\tUSERNAME\tEMAIL\tNAME\tDISABLED", func(u storage.User) string {
					return fmt.Sprintf("%s\t%s\t%s\t%s\t%v", u.ID, u.Username, dash(u.Claims.Email), dash(u.Claims.Name), u.Disabled)
				})
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", storage.DefaultPageLimit, "page size")
	list.Flags().StringVar(&after, "after", "", "list users after this ID (the last ID of the previous page)")

	get := &cobra.Command{
		Use:   "get USER",
		Short: "Show a user. " + refNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUsers(cmd, app, func(s *users.Service) error {
				u, err := s.Find(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printUser(app, u)
			})
		},
	}

	var updateFlags claimFlags
	update := &cobra.Command{
		Use:   "update USER [--claim value...]",
		Short: "Change a user's username or claims; only the flags given change. " + refNote,
		Long: `Change a user's username or claims. Only the flags given change; an empty
value clears a claim. A new email or phone number is marked unverified unless
--email-verified / --phone-number-verified is given too. ` + refNote,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := updateFlags.patch(cmd.Flags())
			return withUsers(cmd, app, func(s *users.Service) error {
				u, err := s.Find(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if u, err = s.Update(cmd.Context(), u.ID, p); err != nil {
					return err
				}
				return printUser(app, u)
			})
		},
	}
	updateFlags.register(update.Flags(), "new sign-in name")

	setPassword := &cobra.Command{
		Use:   "set-password USER --password-stdin",
		Short: "Set a user's password, read from stdin. " + refNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(app.stdin)
			if err != nil {
				return err
			}
			return withUsers(cmd, app, func(s *users.Service) error {
				u, err := s.Find(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if err := s.SetPassword(cmd.Context(), u.ID, pw); err != nil {
					return err
				}
				return printDone(app, fmt.Sprintf("password of user %q set", u.Username), u.ID)
			})
		},
	}
	// Accepted for symmetry with create; stdin is the only source anyway.
	setPassword.Flags().Bool("password-stdin", true, "read the password from stdin (always)")

	action := func(use, short, done string, f func(*users.Service, *cobra.Command, storage.User) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " USER",
			Short: short + " " + refNote,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withUsers(cmd, app, func(s *users.Service) error {
					u, err := s.Find(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					if err := f(s, cmd, u); err != nil {
						return err
					}
					return printDone(app, fmt.Sprintf("user %q %s", u.Username, done), u.ID)
				})
			},
		}
	}
	disable := action("disable", "Stop a user from signing in.", "disabled", func(s *users.Service, cmd *cobra.Command, u storage.User) error {
		_, err := s.Disable(cmd.Context(), u.ID)
		return err
	})
	enable := action("enable", "Let a disabled user sign in again.", "enabled", func(s *users.Service, cmd *cobra.Command, u storage.User) error {
		_, err := s.Enable(cmd.Context(), u.ID)
		return err
	})
	del := action("delete", "Delete a user.", "deleted", func(s *users.Service, cmd *cobra.Command, u storage.User) error {
		return s.Delete(cmd.Context(), u.ID)
	})

	cmd.AddCommand(create, list, get, update, setPassword, disable, enable, del)
	return cmd
}

// printDone reports a completed action: a sentence, or {"id":..,"result":..} as JSON.
func printDone(app *App, msg, id string) error {
	if app.json() {
		return app.printJSON(map[string]string{"id": id, "result": msg})
	}
	_, err := fmt.Fprintln(app.stdout, msg)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
