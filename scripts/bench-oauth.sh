#!/usr/bin/env bash
# OAuth 2 token endpoint benchmark (release build, SQLite, loopback, wrk), beside the admin
# issue API it shares TokenService::issue with:
#  - client_credentials tokens/s and p99 (POST /oauth2/token, client_secret_basic)
#  - admin-issued tokens/s and p99 (POST /api/v1/enforcement/tokens/issue)
# then, for each, where the time goes: server CPU per token (perf task-clock of the sck
# process), the durable commits (fdatasync/fsync calls per token, perf tracepoints), and the
# same load with the database on tmpfs (/dev/shm), where a commit costs no disk flush, so the
# difference is what the flushes cost.
#
#   BENCH_SECONDS (10)  BENCH_CONNECTIONS (16)
#   SCK=path/to/sck     measure that binary instead of building the release one
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
if [ -z "${SCK:-}" ]; then
  SCK="$ROOT/target/release/sck"
  cargo build --release --bin sck
fi
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
. "$ROOT/scripts/lib/sck-server.sh"

json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Writes the wrk scripts for the running server: oauth.lua and issue.lua.
prepare() {
  export SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN
  local created id secret issuer
  created=$("$SCK" client create --org default --name bench --loa-ceiling 2 --scope mcp:invoke)
  id=$(echo "$created" | json_field 'd["client"]["clientId"]')
  secret=$(echo "$created" | json_field 'd["secret"]["clientSecret"]')
  issuer=$("$SCK" issuer create --org default --name bench --loa-ceiling 4 --scope mcp:invoke \
    | json_field 'd["id"]')
  cat > oauth.lua <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=mcp%3Ainvoke"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
LUA
  cat > issue.lua <<LUA
wrk.method = "POST"
wrk.body = '{"organizationId":"default","artifactId":"agent-7","artifactType":"mcp-client","loaLevel":3,"scope":["mcp:invoke"],"issuerId":"$issuer"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $ADMIN"
LUA
}

issued_total() {
  curl -s "$URL/metrics" | awk '/^sck_tokens_issued_total/ {n += $2} END {print n + 0}'
}

# $1 = label, $2 = lua script, $3 = path; with perf present, server CPU and durable commits.
run() {
  local before after flushes="" cpu_ms=""
  before=$(issued_total)
  echo "== $1, $CONNECTIONS connections, ${SECONDS_EACH} s"
  if command -v perf >/dev/null && perf stat -e 'syscalls:sys_enter_fdatasync' true 2>/dev/null; then
    perf stat -x, -e 'task-clock,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync' -p "$SERVER" \
      -o perf.out -- sleep "$((SECONDS_EACH + 1))" &
    local perf_pid=$!
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$2" "$URL$3" \
      | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
    wait "$perf_pid"
    flushes=$(awk -F, '/sys_enter_f/ {n += $1} END {print n + 0}' perf.out)
    cpu_ms=$(awk -F, '/task-clock/ {print $1}' perf.out)
  else
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$2" "$URL$3" \
      | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
  fi
  after=$(issued_total)
  local issued=$((after - before))
  echo "   tokens issued: $issued"
  if [ -n "$flushes" ] && [ "$issued" -gt 0 ]; then
    python3 -c "print(f'   server CPU {$cpu_ms / $issued * 1000:.0f} µs per token; fdatasync+fsync: $flushes, {$flushes / $issued:.2f} per token')"
  fi
}

echo "#### database on disk ($(df --output=source "$(dirname "$(mktemp -u)")" | tail -1))"
start_sck
prepare
run "client_credentials tokens/s (POST /oauth2/token)" oauth.lua /oauth2/token
run "admin-issued tokens/s (POST tokens/issue)" issue.lua /api/v1/enforcement/tokens/issue
stop_sck
trap - EXIT
cd "$ROOT"

echo "#### database on tmpfs (TMPDIR=/dev/shm): the same work without disk flushes"
TMPDIR=/dev/shm start_sck
prepare
run "client_credentials tokens/s (POST /oauth2/token), tmpfs" oauth.lua /oauth2/token
run "admin-issued tokens/s (POST tokens/issue), tmpfs" issue.lua /api/v1/enforcement/tokens/issue
