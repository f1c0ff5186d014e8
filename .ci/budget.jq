# budget.jq: the harness's ceiling per scenario, from a sitting's JSON results
# (.ci/loadtest.sh writes budget.md with it; docs/performance.md, "Ninth pass").
#
#   jq -s -r -f .ci/budget.jq RESULTS/*.json
#
# budget: for each scenario at the highest concurrency, the anchor's and
# gh-pg's median rates, the load generator's CPU per iteration while it
# drives gh-pg, and the highest ratio to the anchor any server could reach
# on the machine's CPUs when it cost nothing itself.
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def r2: . * 100 | round / 100;
(map(.concurrency) | max) as $c
| map(select(.concurrency == $c and .ok > 0))
| group_by(.scenario)
| map(. as $runs
  | ($runs | map(select(.label == "nop") | .rps) | median) as $nop
  | ($runs | map(select(.label == "gh-pg") | .rps) | median) as $gh
  | ($runs | map(select(.label == "gh-pg") | .client_cpu_s / .iterations * 1000) | median) as $cli
  | ($runs[0].cpus) as $cpus
  | select($nop != null and $gh != null and $cli != null)
  | "| \($runs[0].scenario) | \($nop | round) | \($gh | round) | \($gh / $nop | r2)× | \($cli * 1000 | round) | \($cpus * 1000 / $cli / $nop | r2)× |")
| ["| scenario (c=\($c)) | anchor rps | gh-pg rps | gh-pg ÷ anchor | load generator µs per iteration (driving gh-pg) | ceiling: ratio of a server that costs nothing |", "|---|---|---|---|---|---|"] + .
| .[]
