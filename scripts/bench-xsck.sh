#!/usr/bin/env bash
# X-SCK verified calls/s through POST /api/v1/enforcement/verify (HMAC-SHA256 and Ed25519)
# against POST /api/v1/enforcement/decide (gateway token) in the same run: release build,
# SQLite, loopback, wrk -t2 -c32, ledger on (each verified call appends upstream.verified and
# the decision; each decide appends the decision).
#
# wrk's Lua cannot compute HMAC or Ed25519, so `sck sign-request --count N` pre-signs N
# requests (same body, fresh nonce each, timestamp = now) and a Lua script sends each one
# exactly once (threads stride through the list); a request that was never pre-signed would be
# a replay, so N is sized well above what the run can send. Every signed call goes through the
# whole pipeline: header parsing, skew, pin lookup (database), signature, nonce claim
# (group-committed database insert), ledger append, policy evaluation, decision ledger append.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
[ -x "$SCK" ] || cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
DURATION=${BENCH_SECONDS:-10}
PRESIGN=${BENCH_PRESIGN:-150000}
. "$ROOT/scripts/lib/sck-server.sh"
start_sck
api() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/$1" -d "$2"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

# The default org's active default policy; upstream callers are evaluated (and, for an ANS ID
# the policy does not list for this org, denied with caller_org_mismatch — same work either way).
BODY='{"action":"bundles.evaluate","resource":{"org":"default"}}'
printf '%s' "$BODY" > body.json
ISSUER=$(api tokens/issuers '{"organizationId":"default","name":"bench","loaCeiling":4,"scopes":["mcp:invoke"]}' | field "['id']")
TOKEN=$(api tokens/issue "{\"organizationId\":\"default\",\"artifactId\":\"a\",\"artifactType\":\"agent\",\"loaLevel\":3,\"scope\":[\"mcp:invoke\"],\"issuerId\":\"$ISSUER\",\"subject\":\"agent:bench\",\"ttlSeconds\":900}" | field "['token']")
SECRET=$(api identities '{"organizationId":"default","ansId":"ans://bench.hmac.example.com"}' | field "['key']['secret']")
python3 -c 'import base64,os; open("ed.seed","w").write(base64.b64encode(os.urandom(32)).decode())'
# Derive the Ed25519 public key with openssl from the seed (PKCS#8 prefix + seed).
python3 - <<'PY'
import base64
seed = base64.b64decode(open("ed.seed").read())
der = bytes.fromhex("302e020100300506032b657004220420") + seed
open("ed.pem", "w").write("-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PRIVATE KEY-----\n")
PY
EDPUB=$(openssl pkey -in ed.pem -pubout -outform DER | tail -c 32 | base64 -w0)
api identities "{\"organizationId\":\"default\",\"ansId\":\"ans://bench.ed25519.example.com\",\"scheme\":\"ed25519\",\"publicKey\":\"$EDPUB\"}" >/dev/null

presign() { # ans key file
  "$SCK" sign-request --url "$URL/api/v1/enforcement/verify" --ans-id "$1" --org default \
    --key "$2" --body-file body.json --count "$PRESIGN" > "$3"
}
cat > signed.lua <<'LUA'
local file, ans = os.getenv("SIGNED"), os.getenv("ANS")
local threads, counter = {}, 0
function setup(thread) thread:set("id", counter); counter = counter + 1; table.insert(threads, thread) end
function init(args)
  lines = {}
  for line in io.lines(file) do lines[#lines + 1] = line end
  step = 2; i = id + 1
  wrk.method = "POST"
  wrk.body = io.open("body.json"):read("*a")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-SCK-ANS-ID"] = ans
  wrk.headers["X-SCK-Organization"] = "default"
end
function request()
  local line = lines[i] or lines[1]
  i = i + step
  local sig, ts, nonce = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)")
  wrk.headers["X-SCK-Signature"] = sig
  wrk.headers["X-SCK-Timestamp"] = ts
  wrk.headers["X-SCK-Nonce"] = nonce
  return wrk.format(nil, "/api/v1/enforcement/verify")
end
LUA
post_lua decide.lua '{"action":"tools.invoke","resource":{"org":"default","tool":"search.web"}}'
run() { # label args...
  echo "== $1"; shift
  wrk -t2 -c32 -d"${DURATION}s" --latency "$@" | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors"
}
run "decide (gateway token, EdDSA JWT)" -H "Authorization: Bearer $TOKEN" -s decide.lua "$URL/api/v1/enforcement/decide"
presign ans://bench.hmac.example.com "$SECRET" hmac.txt
SIGNED=hmac.txt ANS=ans://bench.hmac.example.com run "verify, HMAC-SHA256 (pre-signed, each nonce once)" -s signed.lua "$URL/api/v1/enforcement/verify"
presign ans://bench.ed25519.example.com "ed25519:@ed.seed" ed.txt
SIGNED=ed.txt ANS=ans://bench.ed25519.example.com run "verify, Ed25519 (pre-signed, each nonce once)" -s signed.lua "$URL/api/v1/enforcement/verify"
curl -s "$URL/metrics" | grep -E '^sck_xsck_total' || true
