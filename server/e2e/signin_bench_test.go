package e2e

import (
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// BenchmarkSignIn is the full browser sign-in of oidcload's authcode
// scenario through the real server over each backend: a browser without a
// session follows the authorization request to the login page, submits the
// password, answers the consent page (prompt=consent, which oidcload sends
// with offline_access: OIDC Core §11), comes back with a code, and the
// relying party redeems it with PKCE and checks the ES256 ID token: the six
// requests of the load test. One iteration is one sign-in, client included.
//
// The password hash is the test harness's cheap one (1 MiB, one pass), so
// what is measured is the rest of the sign-in without argon2id's 19 MiB:
// neither its collections nor the caches it evicts, which inflate
// everything else in `.ci/signin-cpu.sh` (docs/performance.md, "Eighth
// pass"). For the server's share, take a CPU profile and keep the server's
// stacks:
//
//	go test -run '^$' -bench SignIn/postgres -benchtime 2000x -cpuprofile cpu.prof ./server/e2e/
//	go tool pprof -top -focus 'net/http.\(\*conn\).serve' cpu.prof
func BenchmarkSignIn(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := start(b, be.open(b), nil)
			_, pw := e.user("bench")
			md := webClient()
			md.IDTokenSignedResponseAlg = "ES256"
			md = e.client(md)
			conf := e.rp(md, strings.Fields(fullScope)...)
			consent := oauth2.SetAuthURLParam("prompt", "consent")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				tok, idt := e.codeFlow(e.browser(), conf, "bench", pw, consent)
				if idt == nil || tok.RefreshToken == "" {
					b.Fatalf("sign-in without an ID token or refresh token: %+v", tok)
				}
			}
		})
	}
}
