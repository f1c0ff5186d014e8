#!/usr/bin/env bash
# signin-cpu.sh: CPU per full sign-in without the argon2id hash, split into
# the server process, its garbage collector, PostgreSQL and Redis
# (docs/performance.md, "Fourth pass").
#
#   KEEP=1 TARGETS=gh-pg SCENARIOS=authcode CONCURRENCY=1 REPEATS=1 DURATION=1s .ci/loadtest.sh   # once: databases, config, clients
#   .ci/signin-cpu.sh [BINARY] [SECONDS]    # default: the loadtest's binary, 15 s profile
#
# It runs oidcload's authcode at c=32 with the ES256 client against gh-pg,
# takes a CPU profile from the admin listener meanwhile, and reads the CPU
# time of every postgres and redis-server process from /proc over the same
# window. Needs go (pprof), jq, bc and curl. GOGC and other Go variables in
# the environment reach the server.
set -euo pipefail

WORK="${WORK:-${TMPDIR:-/tmp}/oidcload-anchors}"
BIN="${1:-$WORK/bin/gatehouse}"
DUR="${2:-15}"
GH="$WORK/gh"
[ -f "$GH/gh-pg.yaml" ] || { echo "no $GH/gh-pg.yaml: run the KEEP=1 loadtest line above first" >&2; exit 2; }
TMP="$(mktemp -d)"

"$BIN" -c "$GH/gh-pg.yaml" serve >"$TMP/server.log" 2>&1 &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:9120/.well-known/openid-configuration >/dev/null && break; sleep 0.2; done

# ticks prints the CPU ticks (user + system) of PostgreSQL's and Redis's processes.
ticks() {
	local pg=0 rd=0 p
	for p in $(pgrep -x postgres); do pg=$((pg + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
	for p in $(pgrep -x redis-server); do rd=$((rd + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
	echo "$pg $rd"
}
(
	sleep 3
	ticks >"$TMP/t0"
	curl -fs -H "Authorization: Bearer $(cat "$GH/admin-token")" \
		"http://127.0.0.1:9121/debug/pprof/profile?seconds=$DUR" -o "$TMP/cpu.prof"
	ticks >"$TMP/t1"
) &
PROF=$!
"$WORK/bin/oidcload" -issuer http://127.0.0.1:9120 -scenario authcode -c 32 -d "$((DUR + 5))s" -warmup 1s \
	-server-pid "$SPID" -label signin-cpu -username bench-user -password bench-password-0123 \
	-redirect-uri http://127.0.0.1:9199/cb -client-id bench-web-ES256 \
	-client-secret "$(jq -r .client_secret "$GH/gh-pg-web-ES256.json")" 2>&1 | tail -1 | tee "$TMP/run.txt"
wait "$PROF"

rps=$(grep -o 'rps=[0-9.]*' "$TMP/run.txt" | cut -d= -f2)
n=$(echo "$rps * $DUR" | bc -l)
# seconds of samples in the profile, without the stacks matching $1
samples() {
	go tool pprof -top -nodecount=1000000 -nodefraction=0 ${1:+-ignore="$1"} "$BIN" "$TMP/cpu.prof" 2>/dev/null |
		awk 'NR > 6 && $1 ~ /s$/ { v = $1; if (v ~ /ms$/) { sub(/ms$/, "", v); t += v / 1000 } else { sub(/s$/, "", v); t += v } } END { print t + 0 }'
}
all=$(samples "")
ex=$(samples 'argon2')
exgc=$(samples 'argon2|gcBgMarkWorker|gcAssist|bgsweep|bgscavenge')
read -r p0 r0 <"$TMP/t0"
read -r p1 r1 <"$TMP/t1"
hz=$(getconf CLK_TCK)
ms() { echo "scale=2; ($1) * 1000 / $n" | bc -l; }
echo "sign-ins in the profile: $(printf %.0f "$n")"
echo "per sign-in, ms: server $(ms "$all") (argon2id $(ms "$all - $ex")); without argon2id: server $(ms "$ex") (GC $(ms "$ex - $exgc")), PostgreSQL $(ms "($p1 - $p0) / $hz"), Redis $(ms "($r1 - $r0) / $hz"); total $(ms "$ex + ($p1 - $p0 + $r1 - $r0) / $hz")"
