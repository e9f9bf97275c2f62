#!/usr/bin/env bash
# A/B of two sck builds on one decision workload, interleaved: both servers run at once (SQLite,
# each its own data directory) and wrk loads one at a time, A B A B ... ROUNDS times, so slow
# drifts of the machine fall on both alike. Prints server CPU per decision (`cpu_ms` of the
# loaded server over the requests wrk completed), decisions/s and wrk's p99 latency for every
# run, then the medians and the B/A ratios.
#
#   SCK_A=old/sck SCK_B=new/sck [ROUNDS=6] [BENCH_SECONDS=5] [CONNECTIONS=32] [API=decide|data] \
#     scripts/bench-decide-ab.sh
#
# The workload is bench-decide.sh's "decide, default policy" (POST /api/v1/enforcement/decide,
# every decision durably in the ledger before its answer), or with API=data its "OPA Data API,
# default policy" (POST /v1/data/sck/gateway/decision, the request the OPA comparison sends).
# SERVER_CPUS=0 CLIENT_CPUS=1 pins both servers to CPU 0 and wrk to CPU 1 (scripts/lib/sck-server.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${SCK_A:?SCK_A=path to the A build}" "${SCK_B:?SCK_B=path to the B build}"
SCK_A=$(readlink -f "$SCK_A") SCK_B=$(readlink -f "$SCK_B")
ROUNDS=${ROUNDS:-6}
DURATION=${BENCH_SECONDS:-5}
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
. "$ROOT/scripts/lib/sck-server.sh"

declare -A URLS PIDS TOKENS WORKS
for side in A B; do
  bin_var="SCK_$side"; SCK=${!bin_var}
  start_sck
  trap - EXIT
  URLS[$side]=$URL PIDS[$side]=$SERVER WORKS[$side]=$WORK
  issuer=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/tokens/issuers" \
    -d '{"organizationId":"default","name":"bench","loaCeiling":4,"scopes":["mcp:invoke"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  TOKENS[$side]=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/tokens/issue" \
    -d "{\"organizationId\":\"default\",\"artifactId\":\"a\",\"artifactType\":\"agent\",\"loaLevel\":3,\"scope\":[\"mcp:invoke\"],\"issuerId\":\"$issuer\",\"subject\":\"agent:bench\",\"ttlSeconds\":3600}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
done
trap 'kill ${PIDS[A]} ${PIDS[B]} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf ${WORKS[A]} ${WORKS[B]}' EXIT
cd "${WORKS[A]}"
REQUEST='{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}'
case ${API:-decide} in
  decide) ROUTE=/api/v1/enforcement/decide BODY=$REQUEST ;;
  data) ROUTE=/v1/data/sck/gateway/decision BODY="{\"input\":$REQUEST}" ;;
  *) echo "API must be decide or data" >&2; exit 2 ;;
esac
post_lua decide.lua "$BODY"

: > runs.txt
for r in $(seq "$ROUNDS"); do
  for side in A B; do
    pid=${PIDS[$side]}
    cpu_ms "$pid" > cpu.txt & STAT=$!
    "${CLIENT_PIN[@]}" wrk --latency -t2 -c"${CONNECTIONS:-32}" -d"${DURATION}s" -H "Authorization: Bearer ${TOKENS[$side]}" -s decide.lua \
      "${URLS[$side]}$ROUTE" > wrk.out
    wait "$STAT" || true
    grep -q "Non-2xx" wrk.out && { echo "non-2xx answers from $side:" >&2; cat wrk.out >&2; exit 1; }
    n=$(awk '/requests in/ {print $1}' wrk.out)
    ms=$(cat cpu.txt)
    rps=$(awk '/Requests\/sec/ {print $2}' wrk.out)
    us=$(awk -v ms="$ms" -v n="$n" 'BEGIN {printf "%.1f", ms * 1000 / n}')
    p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v}' wrk.out)
    echo "round $r $side: $rps decisions/s, $us us CPU/decision, p99 $p99 ms"
    echo "$side $rps $us $p99" >> runs.txt
  done
done
python3 - runs.txt <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
med = {s: [statistics.median(float(r[i]) for r in runs if r[0] == s) for i in (1, 2, 3)] for s in "AB"}
for s in "AB":
    print(f"{s}: median {med[s][0]:,.0f} decisions/s, {med[s][1]:.1f} us CPU/decision, p99 {med[s][2]:.2f} ms")
print(f"B/A: decisions/s {med['B'][0] / med['A'][0]:.3f}, CPU/decision {med['B'][1] / med['A'][1]:.3f}, "
      f"p99 {med['B'][2] / med['A'][2]:.3f}")
PY
