package users

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Limits on user input.
const (
	MaxUsernameLen    = 64
	MinPasswordLen    = 8 // NIST SP 800-63B §5.1.1.2
	MaxPasswordLen    = 1024
	maxClaimLen       = 512
	maxURLClaimLen    = 2048
	maxEmailLen       = 254 // RFC 5321 §4.5.3.1.3 path limit less the brackets
	maxAddressLineLen = 1024
)

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]*$`)
	// OIDC Core §5.1: birthdate is YYYY-MM-DD, YYYY (year only) or 0000-MM-DD (year omitted).
	yearRE = regexp.MustCompile(`^[0-9]{4}$`)
	// OIDC Core §5.1: zoneinfo is a tz database name such as Europe/Paris.
	zoneinfoRE = regexp.MustCompile(`^(UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)+)$`)
	// OIDC Core §5.1: locale is a BCP47 tag (en-US; en_US is tolerated).
	localeRE = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$`)
	// OIDC Core §5.1: E.164 is RECOMMENDED, with an optional RFC 3966 extension.
	phoneRE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}(;ext=[0-9]{1,10})?$`)
)

// ValidateUsername checks a username: 1 to 64 characters, letters, digits
// and . _ @ + -, starting with a letter or digit.
func ValidateUsername(u string) error {
	switch {
	case u == "":
		return invalid("username", "is required")
	case len(u) > MaxUsernameLen:
		return invalid("username", "is longer than %d characters", MaxUsernameLen)
	case !usernameRE.MatchString(u):
		return invalid("username", "%q may only contain letters, digits and . _ @ + - and must start with a letter or digit", u)
	}
	return nil
}

// ValidateEmail checks a bare email address (no display name).
func ValidateEmail(e string) error {
	if len(e) > maxEmailLen {
		return invalid("email", "is longer than %d characters", maxEmailLen)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return invalid("email", "%q is not an email address such as alice@example.com", e)
	}
	return nil
}

// ValidatePassword applies the password policy: at least 8 characters
// (NIST SP 800-63B), at most 1024 bytes, not only spaces.
func ValidatePassword(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return invalid("password", "must be at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return invalid("password", "must be at most %d bytes", MaxPasswordLen)
	case strings.TrimSpace(pw) == "":
		return invalid("password", "must not be only whitespace")
	case !utf8.ValidString(pw):
		return invalid("password", "must be valid UTF-8")
	}
	return nil
}

// ValidateClaims checks the standard claims' formats (OIDC Core §5.1).
func ValidateClaims(c storage.Claims) error {
	text := map[string]string{
		"name": c.Name, "given_name": c.GivenName, "family_name": c.FamilyName,
		"middle_name": c.MiddleName, "nickname": c.Nickname, "preferred_username": c.PreferredUsername,
		"gender": c.Gender,
	}
	for _, k := range []string{"name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "gender"} {
		if err := plainText(k, text[k], maxClaimLen); err != nil {
			return err
		}
	}
	for _, f := range []struct{ k, v string }{{"profile", c.Profile}, {"picture", c.Picture}, {"website", c.Website}} {
		if err := webURL(f.k, f.v); err != nil {
			return err
		}
	}
	if c.Email != "" {
		if err := ValidateEmail(c.Email); err != nil {
			return err
		}
	} else if c.EmailVerified {
		return invalid("email_verified", "is set but there is no email")
	}
	if c.Birthdate != "" && !validBirthdate(c.Birthdate) {
		return invalid("birthdate", "%q must be YYYY-MM-DD, YYYY or 0000-MM-DD", c.Birthdate)
	}
	if c.Zoneinfo != "" && !zoneinfoRE.MatchString(c.Zoneinfo) {
		return invalid("zoneinfo", "%q must be a time zone name such as Europe/Paris", c.Zoneinfo)
	}
	if c.Locale != "" && !localeRE.MatchString(c.Locale) {
		return invalid("locale", "%q must be a BCP47 language tag such as en-US", c.Locale)
	}
	if c.PhoneNumber != "" {
		if !phoneRE.MatchString(c.PhoneNumber) {
			return invalid("phone_number", "%q must be in E.164 format such as +14155550123", c.PhoneNumber)
		}
	} else if c.PhoneNumberVerified {
		return invalid("phone_number_verified", "is set but there is no phone number")
	}
	a := c.Address
	for _, f := range []struct{ k, v string }{
		{"address.street_address", a.StreetAddress}, {"address.formatted", a.Formatted},
	} {
		// These two may span lines (OIDC Core §5.1.1).
		if err := multiline(f.k, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ k, v string }{
		{"address.locality", a.Locality}, {"address.region", a.Region},
		{"address.postal_code", a.PostalCode}, {"address.country", a.Country},
	} {
		if err := plainText(f.k, f.v, maxClaimLen); err != nil {
			return err
		}
	}
	return nil
}

func plainText(key, v string, maxLen int) error {
	if len(v) > maxLen {
		return invalid(key, "is longer than %d bytes", maxLen)
	}
	if !utf8.ValidString(v) {
		return invalid(key, "is not valid UTF-8")
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return invalid(key, "must not contain control characters")
	}
	return nil
}

func multiline(key, v string) error {
	if len(v) > maxAddressLineLen {
		return invalid(key, "is longer than %d bytes", maxAddressLineLen)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' }) >= 0 {
		return invalid(key, "must not contain control characters other than line breaks")
	}
	return nil
}

func webURL(key, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > maxURLClaimLen {
		return invalid(key, "is longer than %d bytes", maxURLClaimLen)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid(key, "%q must be an absolute http(s) URL", v)
	}
	return nil
}

func validBirthdate(s string) bool {
	if yearRE.MatchString(s) {
		return true
	}
	if strings.HasPrefix(s, "0000-") {
		// Year omitted: check month and day against a leap year so 02-29 passes.
		s = "2000" + s[4:]
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// ValidationError is a bad input value; Field names it as in OIDC Core §5.1
// (or "username", "password").
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + " " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
