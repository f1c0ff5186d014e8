package oauth

import (
	"encoding/json"
	"slices"

	"github.com/ory/fosite"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// ClaimRequest is one member of the claims request parameter (OIDC Core
// §5.5.1): null or an object with essential, value and values.
type ClaimRequest struct {
	Essential bool  `json:"essential,omitempty"`
	Value     any   `json:"value,omitempty"`
	Values    []any `json:"values,omitempty"`
}

// claimsRequest is the claims request parameter (OIDC Core §5.5).
type claimsRequest struct {
	UserInfo map[string]*ClaimRequest `json:"userinfo,omitempty"`
	IDToken  map[string]*ClaimRequest `json:"id_token,omitempty"`
}

// parseClaimsRequest parses the claims parameter: a JSON object whose
// userinfo and id_token members are objects of claim requests (OIDC Core
// §5.5); anything else is invalid_request. Other top-level members are
// ignored, as §5.5 allows extensions.
func parseClaimsRequest(raw string) (claimsRequest, error) {
	var cr claimsRequest
	if raw == "" {
		return cr, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil || top == nil {
		return cr, fosite.ErrInvalidRequest.WithHint("The claims parameter must be a JSON object (OIDC Core §5.5).")
	}
	for _, m := range []struct {
		name string
		dst  *map[string]*ClaimRequest
	}{{"userinfo", &cr.UserInfo}, {"id_token", &cr.IDToken}} {
		b, ok := top[m.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(b, m.dst); err != nil {
			return claimsRequest{}, fosite.ErrInvalidRequest.WithHintf("The claims parameter's %s member must be an object of claim requests (OIDC Core §5.5.1).", m.name)
		}
	}
	return cr, nil
}

// acrRequest returns the acr values asked for with the claims parameter
// (ID token first, then userinfo; OIDC Core §5.5.1.1) and whether the
// request is essential.
func (cr claimsRequest) acrRequest() (values []string, essential, ok bool) {
	for _, m := range []map[string]*ClaimRequest{cr.IDToken, cr.UserInfo} {
		c, present := m["acr"]
		if !present {
			continue
		}
		if c == nil {
			return nil, false, true
		}
		if s, isStr := c.Value.(string); isStr && s != "" {
			values = append(values, s)
		}
		for _, v := range c.Values {
			if s, isStr := v.(string); isStr && s != "" {
				values = append(values, s)
			}
		}
		return values, c.Essential, true
	}
	return nil, false, false
}

// subValue returns the sub value asked for in the ID token (OIDC Core
// §5.5.1: the response must be for that user only).
func (cr claimsRequest) subValue() string {
	if c := cr.IDToken["sub"]; c != nil {
		s, _ := c.Value.(string)
		return s
	}
	return ""
}

// userClaimNames are the standard user claims (OIDC Core §5.1) by the scope
// that releases them (§5.4). Only these may be requested individually.
var userClaimNames = map[string][]string{
	"profile": {"name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// requestedUserClaims returns the standard user claims of m, sorted, that
// the client may have: those of a scope it is registered for. A client
// cannot reach, one claim at a time, what its scopes do not allow.
func requestedUserClaims(m map[string]*ClaimRequest, clientScopes fosite.Arguments) []string {
	var out []string
	for scope, names := range userClaimNames {
		if !clientScopes.Has(scope) {
			continue
		}
		for _, n := range names {
			if _, ok := m[n]; ok {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// userClaim returns one standard claim of u, and false when the user has
// none (OIDC Core §5.5: claims not available are left out, without error).
func userClaim(u storage.User, name string) (any, bool) {
	c := u.Claims
	str := func(v string) (any, bool) { return v, v != "" }
	switch name {
	case "name":
		return str(c.Name)
	case "given_name":
		return str(c.GivenName)
	case "family_name":
		return str(c.FamilyName)
	case "middle_name":
		return str(c.MiddleName)
	case "nickname":
		return str(c.Nickname)
	case "preferred_username":
		return str(c.PreferredUsername)
	case "profile":
		return str(c.Profile)
	case "picture":
		return str(c.Picture)
	case "website":
		return str(c.Website)
	case "gender":
		return str(c.Gender)
	case "birthdate":
		return str(c.Birthdate)
	case "zoneinfo":
		return str(c.Zoneinfo)
	case "locale":
		return str(c.Locale)
	case "updated_at":
		return u.UpdatedAt.Unix(), !u.UpdatedAt.IsZero()
	case "email":
		return str(c.Email)
	case "email_verified":
		return c.EmailVerified, c.Email != ""
	case "address":
		return c.Address, !c.Address.IsZero()
	case "phone_number":
		return str(c.PhoneNumber)
	case "phone_number_verified":
		return c.PhoneNumberVerified, c.PhoneNumber != ""
	}
	return nil, false
}

// userClaims maps a user's claims by granted scope (OIDC Core §5.4) plus
// the claims requested individually (§5.5).
func userClaims(u storage.User, scopes fosite.Arguments, requested []string) map[string]any {
	out := map[string]any{"sub": u.ID}
	add := func(name string) {
		if v, ok := userClaim(u, name); ok {
			out[name] = v
		}
	}
	for scope, names := range userClaimNames {
		if scopes.Has(scope) {
			for _, n := range names {
				add(n)
			}
		}
	}
	for _, n := range requested {
		add(n)
	}
	return out
}
