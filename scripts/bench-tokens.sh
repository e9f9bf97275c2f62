#!/usr/bin/env bash
# Gateway token benchmarks (release build, SQLite, loopback, wrk):
#  - tokens issued/s over HTTP (POST /api/v1/enforcement/tokens/issue: sign, insert, durable ledger append)
#  - introspections/s over HTTP (POST /api/v1/enforcement/tokens/introspect; cached verification)
#  - verified requests/s over HTTP (GET /api/v1/enforcement/tokens/current with the gateway token)
# then the in-process criterion bench (cached vs uncached verification, issue latency).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
. "$ROOT/scripts/lib/sck-server.sh"
start_sck
export SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN
ISSUER=$("$SCK" issuer create --org default --name bench --loa-ceiling 4 --scope mcp:invoke \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ISSUE_BODY="{\"organizationId\":\"default\",\"artifactId\":\"agent-7\",\"artifactType\":\"mcp-client\",\"loaLevel\":3,\"scope\":[\"mcp:invoke\"],\"issuerId\":\"$ISSUER\"}"
TOKEN=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$ISSUE_BODY" \
  "$URL/api/v1/enforcement/tokens/issue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

post_script() { # $1 = file, $2 = body
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $ADMIN"
LUA
}
post_script issue.lua "$ISSUE_BODY"
post_script introspect.lua "{\"token\":\"$TOKEN\"}"

echo "== tokens issued/s (POST tokens/issue), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s issue.lua "$URL/api/v1/enforcement/tokens/issue" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== introspections/s (POST tokens/introspect, JSON), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s introspect.lua "$URL/api/v1/enforcement/tokens/introspect" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== verified gateway-token requests/s (GET tokens/current), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -H "Authorization: Bearer $TOKEN" "$URL/api/v1/enforcement/tokens/current" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"

echo "== in-process: cached vs uncached verification, issue latency (criterion)"
cd "$ROOT" && cargo bench -p sck-enforce --bench tokens 2>&1 | grep -E "^(verify|issue)|time:|error"
