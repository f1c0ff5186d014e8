#!/usr/bin/env bash
# signin-bench.sh: CPU per full sign-in without argon2id and its side
# effects (docs/performance.md, "Eighth pass"). It runs BenchmarkSignIn on
# PostgreSQL + Redis (the load test's six requests through the real server,
# with the tests' cheap 1 MiB password hash), takes a CPU profile of the
# test process, and samples the CPU time of every postgres and
# redis-server process from /proc meanwhile (the test's database
# connections come and go, so each process is followed until it ends).
#
#   .ci/signin-bench.sh [ITERATIONS]      # default 2000; needs go, bc
#
# The server's share is the profile's samples under net/http's connection
# handler, without argon2id; the collector's share is for the whole process
# (relying party included). PostgreSQL's figure includes creating and
# migrating the test's database once (about 0.2 s in all; subtract
# 0.2 s / ITERATIONS).
set -euo pipefail

N="${1:-2000}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$REPO" && go test -c -o "$TMP/e2e.test" ./server/e2e/)

declare -A first last name
# snap records the CPU ticks of every postgres and redis-server process; a
# process first seen by a snap with argument 0 started during the run.
snap() {
	local p s comm rest
	for p in /proc/[0-9]*; do
		s=$(cat "$p/stat" 2>/dev/null) || continue
		comm=${s#*(}
		comm=${comm%%)*}
		[ "$comm" = postgres ] || [ "$comm" = redis-server ] || continue
		rest=${s##*) } # from the state on: utime and stime are the 12th and 13th
		p=${p#/proc/}
		last[$p]=$(awk '{print $12 + $13}' <<<"$rest")
		name[$p]=$comm
		[ -n "${first[$p]+x}" ] || first[$p]=$(($1 ? last[$p] : 0))
	done
}
snap 1 # processes already running: their ticks so far do not count

(cd "$REPO/server/e2e" && CI=true "$TMP/e2e.test" -test.run '^$' -test.bench 'SignIn/postgres' \
	-test.benchtime "${N}x" -test.cpuprofile "$TMP/cpu.prof" >"$TMP/bench.txt") &
BENCH=$!
while kill -0 "$BENCH" 2>/dev/null; do
	snap 0
	sleep 0.1
done
wait "$BENCH"
snap 0
grep Benchmark "$TMP/bench.txt"

pg=0 rd=0
for p in "${!last[@]}"; do
	d=$((last[$p] - ${first[$p]}))
	case "${name[$p]}" in postgres) pg=$((pg + d)) ;; redis-server) rd=$((rd + d)) ;; esac
done
# seconds of profile samples, with pprof's filters ($@)
samples() {
	go tool pprof -top -nodecount=1000000 -nodefraction=0 -edgefraction=0 "$@" "$TMP/e2e.test" "$TMP/cpu.prof" 2>/dev/null |
		awk '/Showing nodes/ { v = $5; sub(/,$/, "", v); if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 } else sub(/s$/, "", v); print v; exit }'
}
srv=$(samples -focus='net/http.\(\*conn\).serve' -ignore='argon2')
gc=$(samples -focus='gcBgMarkWorker|gcAssist|bgsweep|bgscavenge')
hz=$(getconf CLK_TCK)
ms() { echo "scale=3; ($1) * 1000 / $N" | bc -l; }
echo "per sign-in, ms: server handlers $(ms "${srv:-0}"), garbage collection (whole test process) $(ms "${gc:-0}"), PostgreSQL $(ms "$pg / $hz"), Redis $(ms "$rd / $hz")"
