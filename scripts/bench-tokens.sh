#!/usr/bin/env bash
# Gateway token benchmarks (release build, SQLite, loopback, wrk):
#  - tokens issued/s over HTTP (POST /api/v1/enforcement/tokens/issue: sign, insert, durable ledger append)
#  - introspections/s over HTTP (POST /api/v1/enforcement/tokens/introspect; cached verification)
#  - verified requests/s over HTTP (GET /api/v1/enforcement/tokens/current with the gateway token)
#  - OAuth 2 tokens/s over HTTP (POST /oauth2/token): client_credentials, and RFC 8693 token
#    exchange of the first service account's token by a second one (both client_secret_basic)
# then the in-process criterion bench (cached vs uncached verification, issue latency).
# SCK_BIN=<binary> measures that build instead (nothing built) and skips the criterion bench,
# so two builds can be run alternately for an A/B.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="${SCK_BIN:-$ROOT/target/release/sck}"
[ -n "${SCK_BIN:-}" ] || cargo build --release --bin sck
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

# Two service accounts: the agent whose token is exchanged and the sub-agent exchanging it.
client() { # $1 = name: prints "client_id secret"
  "$SCK" client create --org default --name "$1" --loa-ceiling 3 --scope mcp:invoke \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["client"]["clientId"], d["secret"]["clientSecret"])'
}
read -r AGENT_ID AGENT_SECRET <<<"$(client bench-agent)"
read -r SUB_ID SUB_SECRET <<<"$(client bench-sub-agent)"
basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }
form_script() { # $1 = file, $2 = Basic credentials, $3 = form body
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '$3'
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $2"
LUA
}
form_script client-credentials.lua "$(basic "$AGENT_ID" "$AGENT_SECRET")" "grant_type=client_credentials"
SUBJECT=$(curl -s -u "$AGENT_ID:$AGENT_SECRET" -d grant_type=client_credentials "$URL/oauth2/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
form_script exchange.lua "$(basic "$SUB_ID" "$SUB_SECRET")" \
  "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=$SUBJECT&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"

echo "== tokens issued/s (POST tokens/issue), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s issue.lua "$URL/api/v1/enforcement/tokens/issue" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== introspections/s (POST tokens/introspect, JSON), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s introspect.lua "$URL/api/v1/enforcement/tokens/introspect" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== verified gateway-token requests/s (GET tokens/current), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -H "Authorization: Bearer $TOKEN" "$URL/api/v1/enforcement/tokens/current" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"

echo "== client_credentials tokens/s (POST /oauth2/token), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s client-credentials.lua "$URL/oauth2/token" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== token exchanges/s (POST /oauth2/token, RFC 8693), 16 connections, 10 s"
wrk -t2 -c16 -d10s --latency -s exchange.lua "$URL/oauth2/token" \
  | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"

[ -z "${SCK_BIN:-}" ] || exit 0
echo "== in-process: cached vs uncached verification, issue latency (criterion)"
cd "$ROOT" && cargo bench -p sck-enforce --bench tokens 2>&1 | grep -E "^(verify|issue)|time:|error"
