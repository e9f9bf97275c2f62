#!/usr/bin/env bash
# Decision throughput and latency with the ledger on (release build, SQLite, loopback, wrk):
#   /api/v1/enforcement/decide and /v1/data/... at 32 connections, for the default policy and
#   for the OPA vector policy with 1,000 data entries, plus a trivial endpoint (/health) in the
#   same run for the ratio. Every decision is durably in the ledger before its answer.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
[ -x "$SCK" ] || cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
DURATION=${BENCH_SECONDS:-10}
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

post_lua() { # file body
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
LUA
}
post_lua decide_default.lua '{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}'
post_lua decide_big.lua '{"action":"svc517.call","resource":{"org":"big"}}'
post_lua data_default.lua '{"input":{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}}'
post_lua data_big.lua '{"input":{"action":"svc517.call","resource":{"org":"big"}}}'

# Server CPU time per request (perf stat task-clock of the sck process over the run divided by
# the requests wrk completed): robust against other load on the machine, unlike requests/s.
cpu_stat() { command -v perf >/dev/null && perf stat -e task-clock -x, -o "$WORK/cpu.txt" -p "$SERVER" -- sleep "$DURATION" 2>/dev/null; }
run() { # label token script path
  echo "== $1"
  cpu_stat & STAT=$!
  wrk -t2 -c"${CONNECTIONS:-32}" -d"${DURATION}s" --latency ${2:+-H "Authorization: Bearer $2"} ${3:+-s $3} "$URL$4" > wrk.out
  wait "$STAT" || true
  grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors" wrk.out
  local requests cpu_ms
  requests=$(awk '/requests in/ {print $1}' wrk.out)
  cpu_ms=$(awk -F, '/task-clock/ {print $1}' "$WORK/cpu.txt" 2>/dev/null || true)
  [ -n "$cpu_ms" ] && [ -n "$requests" ] && awk -v ms="$cpu_ms" -v n="$requests" 'BEGIN {printf "  server CPU per request: %.1f us\n", ms * 1000 / n}'
  return 0
}
run "trivial endpoint GET /health" "" "" /health
# PROFILE=file.data records a perf profile of the server during the default-policy decide run.
[ -n "${PROFILE:-}" ] && { perf record -F 499 --call-graph dwarf,16384 -o "$PROFILE" -p "$SERVER" -- sleep "$DURATION" 2>/dev/null & PERF=$!; }
run "decide, default policy" "$T_DEFAULT" decide_default.lua /api/v1/enforcement/decide
[ -n "${PROFILE:-}" ] && wait "$PERF"
run "decide, 1,000-entry policy" "$T_BIG" decide_big.lua /api/v1/enforcement/decide
run "OPA Data API, default policy" "$T_DEFAULT" data_default.lua /v1/data/sck/gateway/decision
run "OPA Data API, 1,000-entry policy" "$T_BIG" data_big.lua /v1/data/sck/authz/decision
echo "ledger entries written (org default): $(curl -s "$URL/metrics" | awk '/^sck_decisions_total\{org="default"/ {s+=$2} END {print s}')"
curl -s "$URL/metrics" | awk '
  /^sck_ledger_batch_entries_sum/ {s=$2} /^sck_ledger_batch_entries_count/ {c=$2}
  /^sck_ledger_commit_seconds_sum/ {cs=$2} /^sck_ledger_commit_seconds_count/ {cc=$2}
  END {if (c) printf "ledger: %d commits, %.1f entries per commit, %.2f ms per commit (means)\n", c, s/c, 1000*cs/cc}'
