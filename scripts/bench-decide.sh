#!/usr/bin/env bash
# Decision throughput and latency with the ledger on (release build, SQLite, loopback, wrk):
#   /api/v1/enforcement/decide and /v1/data/... at 32 connections, for the default policy and
#   for the OPA vector policy with 1,000 data entries, plus a trivial endpoint (/health) in the
#   same run for the ratio. Every decision is durably in the ledger before its answer.
#
# With SCK_OPA=/path/to/opa it also measures real OPA side by side: one OPA per policy, configured
# by `sck opa-config` to poll this sck's bundle service for the very same bundle, at log level
# error and without decision logs, answering the same input (the one sck evaluates: `input.token`
# as GET /tokens/current shows it). Runs alternate sck /v1/data and OPA /v1/data ROUNDS times
# (default 2: A B A B); the summary prints both rates, their ratio and server CPU per decision.
# SERVER_CPUS=0 CLIENT_CPUS=1 puts sck and each OPA on CPU 0 and wrk on CPU 1 (see
# scripts/lib/sck-server.sh); unset, all of them share every CPU.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# SCK_BIN: another sck binary (a debug build, to check the script itself quickly).
SCK=${SCK_BIN:-$ROOT/target/release/sck}
[ -x "$SCK" ] || cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
DURATION=${BENCH_SECONDS:-10}
# Resolved before start_sck moves into the server's directory, so a relative path works.
[ -n "${SCK_OPA:-}" ] && SCK_OPA=$(readlink -f "$SCK_OPA")
. "$ROOT/scripts/lib/sck-server.sh"
start_sck

api() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/$1" -d "$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# org "big": the OPA vector policy with 1,000 action entries.
python3 - "$ROOT" > big.json <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1]) / "tests/vectors/opa-bundles/src"
actions = {f"svc{i:03d}.call": {"min_loa": i % 4 + 1, "scopes": [f"svc{i:03d}:call", f"svc{i:03d}:*"]} for i in range(1000)}
files = {
  ".manifest": json.dumps({"roots": ["sck"], "metadata": {"sck": {"entrypoint": "sck/authz/decision"}}}),
  "sck/authz/authz.rego": (root / "sck/authz/authz.rego").read_text(),
  "sck/requirements/data.json": json.dumps({"actions": actions, "blocked_subjects": {}}),
}
print(json.dumps({"organizationId": "big", "name": "gateway", "version": "1.0.0", "files": files}))
PY
api orgs '{"organizationId":"big"}' >/dev/null
ID=$(api bundles/compile "$(cat big.json)" | field id)
api bundles/publish "{\"bundleId\":\"$ID\"}" >/dev/null
api bundles/activate "{\"bundleId\":\"$ID\"}" >/dev/null

token() { # org scope loa
  local issuer
  issuer=$(api tokens/issuers "{\"organizationId\":\"$1\",\"name\":\"bench\",\"loaCeiling\":4,\"scopes\":[\"$2\"]}" | field id)
  api tokens/issue "{\"organizationId\":\"$1\",\"artifactId\":\"a\",\"artifactType\":\"agent\",\"loaLevel\":$3,\"scope\":[\"$2\"],\"issuerId\":\"$issuer\",\"subject\":\"agent:bench\",\"ttlSeconds\":900}" | field token
}
T_DEFAULT=$(token default mcp:invoke 3)
T_BIG=$(token big svc517:call 4)

post_lua decide_default.lua '{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}'
post_lua decide_big.lua '{"action":"svc517.call","resource":{"org":"big"}}'
post_lua data_default.lua '{"input":{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}}'
post_lua data_big.lua '{"input":{"action":"svc517.call","resource":{"org":"big"}}}'

# Server CPU time per request: `cpu_ms` (scripts/lib/sck-server.sh) over the run, divided by the
# requests wrk completed.
run() { # label token script path [base-url] [server-pid]: prints the run, sets RPS and CPU_US
  local base=${5:-$URL} pid=${6:-$SERVER} requests cpu
  echo "== $1"
  cpu_ms "$pid" > "$WORK/cpu.txt" & STAT=$!
  "${CLIENT_PIN[@]}" wrk -t2 -c"${CONNECTIONS:-32}" -d"${DURATION}s" --latency ${2:+-H "Authorization: Bearer $2"} ${3:+-s $3} "$base$4" > wrk.out
  wait "$STAT" || true
  grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors" wrk.out
  requests=$(awk '/requests in/ {print $1}' wrk.out)
  cpu=$(cat "$WORK/cpu.txt" 2>/dev/null || true)
  RPS=$(awk '/Requests\/sec/ {print $2}' wrk.out)
  CPU_US=""
  [ -n "$cpu" ] && [ -n "$requests" ] && CPU_US=$(awk -v ms="$cpu" -v n="$requests" 'BEGIN {printf "%.1f", ms * 1000 / n}')
  [ -n "$CPU_US" ] && echo "  server CPU per request: $CPU_US us"
  return 0
}
run "trivial endpoint GET /health" "" "" /health
# PROFILE=file.data records a perf profile of the server during the default-policy decide run
# and prints its split by part (scripts/profile-parts.py) in microseconds of CPU per decision.
[ -n "${PROFILE:-}" ] && { perf record -F 499 --call-graph dwarf,16384 -o "$PROFILE" -p "$SERVER" -- sleep "$DURATION" 2>/dev/null & PERF=$!; }
run "decide, default policy" "$T_DEFAULT" decide_default.lua /api/v1/enforcement/decide
if [ -n "${PROFILE:-}" ]; then
  wait "$PERF" || true
  echo "== CPU per decision by part (perf profile of the run above; perf adds its own overhead)"
  perf script -i "$PROFILE" --no-inline 2>/dev/null | "$ROOT/scripts/profile-parts.py" --per-request-us "$CPU_US"
fi
run "decide, 1,000-entry policy" "$T_BIG" decide_big.lua /api/v1/enforcement/decide
run "OPA Data API, default policy" "$T_DEFAULT" data_default.lua /v1/data/sck/gateway/decision
run "OPA Data API, 1,000-entry policy" "$T_BIG" data_big.lua /v1/data/sck/authz/decision
# ---- real OPA side by side (SCK_OPA) --------------------------------------------------------
SUMMARY=()
if [ -n "${SCK_OPA:-}" ]; then
  OPA_VERSION=$("$SCK_OPA" version | awk '/^Version:/ {print $2}')
  OPA_PIDS=()
  trap 'kill "${OPA_PIDS[@]}" 2>/dev/null || true; stop_sck' EXIT
  start_opa() { # org sidecar-token: an OPA polling org's bundle "gateway"; sets OPA_URL, OPA_PID
    local port dir="$WORK/opa-$1"
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$SCK" opa-config --org "$1" --bundle gateway --server "$URL" --sidecar-token "$2" > "$dir/config.yaml"
    "${SERVER_PIN[@]}" "$SCK_OPA" run --server --addr "127.0.0.1:$port" --config-file "$dir/config.yaml" \
      --log-level error --disable-telemetry > "$dir/opa.out" 2>&1 &
    OPA_PID=$!
    OPA_PIDS+=("$OPA_PID")
    OPA_URL="http://127.0.0.1:$port"
    for _ in $(seq 300); do curl -sf "$OPA_URL/health?bundles" >/dev/null && return 0; sleep 0.1; done
    cat "$dir/opa.out" >&2; echo "OPA did not activate org $1's bundle" >&2; exit 1
  }
  opa_input() { # token data-api-body path: the input sck evaluates for that request
    python3 - "$1" "$2" "$3" "$URL" <<'PY'
import json, sys, time, urllib.request
token, body, path, url = sys.argv[1], json.loads(sys.argv[2])["input"], sys.argv[3], sys.argv[4]
request = urllib.request.Request(url + "/api/v1/enforcement/tokens/current",
                                 headers={"Authorization": "Bearer " + token})
verified = json.load(urllib.request.urlopen(request))
print(json.dumps({"input": {"action": body["action"], "resource": body["resource"], "context": {},
    "token": verified, "request": {"method": "POST", "path": path}, "now": int(time.time())}}))
PY
  }
  result() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"], sort_keys=True))'; }
  side_by_side() { # label token sck-script org sidecar-token path
    local body input sck_answer opa_answer i sck_rps=() sck_cpu=() opa_rps=() opa_cpu=()
    body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$3")
    input=$(opa_input "$2" "$body" "$6")
    post_lua "opa_$4.lua" "$input"
    start_opa "$4" "$5"
    sck_answer=$(curl -sf -H "Authorization: Bearer $2" "$URL$6" -d "$body" | result)
    opa_answer=$(curl -sf "$OPA_URL$6" -d "$input" | result)
    [ "$sck_answer" = "$opa_answer" ] || { echo "$1: sck answers $sck_answer, OPA $opa_answer" >&2; exit 1; }
    echo "== $1: sck and OPA $OPA_VERSION both answer $sck_answer"
    for i in $(seq "${ROUNDS:-2}"); do
      run "$1, sck /v1/data (round $i)" "$2" "$3" "$6"
      sck_rps+=("$RPS"); sck_cpu+=("$CPU_US")
      run "$1, OPA $OPA_VERSION /v1/data (round $i)" "" "opa_$4.lua" "$6" "$OPA_URL" "$OPA_PID"
      opa_rps+=("$RPS"); opa_cpu+=("$CPU_US")
    done
    kill "$OPA_PID"
    SUMMARY+=("$(awk -v label="$1" -v sr="${sck_rps[*]}" -v sc="${sck_cpu[*]}" -v orr="${opa_rps[*]}" -v oc="${opa_cpu[*]}" '
      function mean(list,   n, a, i, s) { n = split(list, a, " "); for (i = 1; i <= n; i++) s += a[i]; return n ? s / n : 0 }
      BEGIN { printf "%-20s OPA %7.0f/s [%s]  sck %7.0f/s [%s]  sck/OPA %.2f  CPU per decision: OPA %.1f us, sck %.1f us",
        label, mean(orr), orr, mean(sr), sr, mean(orr) ? mean(sr) / mean(orr) : 0, mean(oc), mean(sc) }')")
  }
  BIG_SIDECAR=$(api credentials '{"organizationId":"big","kind":"sidecar"}' | field secret)
  side_by_side "default policy" "$T_DEFAULT" data_default.lua default "$SIDECAR" /v1/data/sck/gateway/decision
  side_by_side "1,000-entry policy" "$T_BIG" data_big.lua big "$BIG_SIDECAR" /v1/data/sck/authz/decision
fi

echo "ledger entries written (org default): $(curl -s "$URL/metrics" | awk '/^sck_decisions_total\{org="default"/ {s+=$2} END {print s}')"
curl -s "$URL/metrics" | awk '
  /^sck_ledger_batch_entries_sum/ {s=$2} /^sck_ledger_batch_entries_count/ {c=$2}
  /^sck_ledger_commit_seconds_sum/ {cs=$2} /^sck_ledger_commit_seconds_count/ {cc=$2}
  END {if (c) printf "ledger: %d commits, %.1f entries per commit, %.2f ms per commit (means)\n", c, s/c, 1000*cs/cc}'
if [ "${#SUMMARY[@]}" -gt 0 ]; then
  echo "== side by side: OPA $OPA_VERSION vs sck /v1/data, same bundle and input, wrk -t2 -c${CONNECTIONS:-32}, ${DURATION} s per run, A B x ${ROUNDS:-2}"
  printf '%s\n' "${SUMMARY[@]}"
fi
