package oauth

import "testing"

// TestDiscoveryAdvertisesLogoutPropagation: OpenID Connect Back-Channel
// Logout 1.0 §2.1 and Front-Channel Logout 1.0 §3 metadata (server/logout
// always sends iss and sid), and the RP-Initiated Logout 1.0 §2.1 endpoint.
func TestDiscoveryAdvertisesLogoutPropagation(t *testing.T) {
	p := &Provider{issuer: "https://idp.example", ep: Endpoints{EndSession: "/oauth2/logout"}}
	m := p.metadata()
	for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported",
		"frontchannel_logout_supported", "frontchannel_logout_session_supported"} {
		if m[k] != true {
			t.Errorf("%s = %v, want true", k, m[k])
		}
	}
	if m["end_session_endpoint"] != "https://idp.example/oauth2/logout" {
		t.Errorf("end_session_endpoint = %v", m["end_session_endpoint"])
	}
}
