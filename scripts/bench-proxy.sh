#!/usr/bin/env bash
# The enforcement point's overhead: the same requests sent straight to an upstream and through an
# sck `kind = "http"` route in the same run, A B A B (`ROUNDS`, default 2), wrk -t2 -c32 for
# `BENCH_SECONDS` (default 10) each, for a small JSON answer and for a 1 MiB answer sck relays as
# a stream. Release build, SQLite, loopback; the upstream is nginx (Debian's package) serving
# static files with one worker, so it is rarely the bottleneck.
#
# Through sck every request is: gateway token verified, rate limits, an `http.get` decision on
# the default policy appended durably to the ledger (group commit), the request forwarded
# (hop-by-hop headers stripped, X-SCK signed as the gateway), the answer streamed back, the
# `proxy.completed` entry appended, and the call counted in usage. Prints per run req/s, p50 and
# p99, then per payload the added p50/p99 (proxied - direct, medians over rounds) and the
# throughput ratio (proxied / direct), and sck's CPU per proxied request (/proc utime+stime);
# and, for reference, POST /decide alone with the same token and action.
# PROFILE=file.data records a perf profile (DWARF call graphs) of the server during the first
# round's proxied small-JSON run and prints its top functions by self time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK=${SCK:-$ROOT/target/release/sck}
[ -x "$SCK" ] || cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
DURATION=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-2}
. "$ROOT/scripts/lib/sck-server.sh"
start_sck
api() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/$1" -d "$2"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

# The upstream: nginx serving small.json and big.bin (1 MiB).
. "$ROOT/scripts/lib/nginx.sh"
start_nginx
trap 'stop_nginx; stop_sck' EXIT
printf '{"ok":true,"items":[1,2,3],"note":"a small JSON answer"}' > "$NGINX_WWW/small.json"
head -c 1048576 /dev/urandom > "$NGINX_WWW/big.bin"
chmod 644 "$NGINX_WWW"/*
UPORT=$NGINX_PORT

api routes "{\"organizationId\":\"default\",\"id\":\"bench\",\"prefix\":\"/bench\",\"upstream\":\"http://127.0.0.1:$UPORT/\",\"kind\":\"http\"}" >/dev/null
ISSUER=$(api tokens/issuers '{"organizationId":"default","name":"bench","loaCeiling":4,"scopes":["http:read"]}' | field "['id']")
TOKEN=$(api tokens/issue "{\"organizationId\":\"default\",\"artifactId\":\"a\",\"artifactType\":\"agent\",\"loaLevel\":2,\"scope\":[\"http:read\"],\"issuerId\":\"$ISSUER\",\"subject\":\"agent:bench\",\"ttlSeconds\":3600}" | field "['token']")
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$URL/bench/small.json" || { echo "the route does not answer" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
RESULTS=$WORK/results.tsv
run() { # label kind(direct|proxied) url [wrk args...]
  local label=$1 kind=$2 url=$3; shift 3
  local before after out
  before=$(cpu_ticks)
  out=$(wrk -t2 -c32 -d"${DURATION}s" --latency "$@" "$url")
  after=$(cpu_ticks)
  OUT=$out python3 - "$label" "$kind" "$before" "$after" "$(getconf CLK_TCK)" >> "$RESULTS" <<'PY'
import os, re, sys
label, kind, before, after, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out = os.environ["OUT"]
def ms(text):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errors = re.search(r"Socket errors: (.*)", out)
cpu_us = (after - before) / tck * 1e6 / max(total, 1)
print(f"{label}\t{kind}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{cpu_us:.1f}\t{bad.group(1) if bad else 0}\t{errors.group(1) if errors else ''}")
PY
  tail -1 "$RESULTS" | awk -F'\t' '{printf "== %-12s %-8s %8s req/s  p50 %7s ms  p99 %7s ms  sck CPU/req %6s us  non-2xx %s %s\n", $1, $2, $3, $4, $5, $6, $7, $8}'
}
AUTH=(-H "Authorization: Bearer $TOKEN")
# For reference, in the same run: the decision alone (POST /decide with the same token and the
# action the route decides), durably ledgered, nothing forwarded.
post_lua decide.lua '{"action":"http.get","resource":{"org":"default","route":"bench","path":"/small.json"}}'
for round in $(seq "$ROUNDS"); do
  for payload in small.json big.bin; do
    run "$payload" direct "http://127.0.0.1:$UPORT/$payload"
    PERF=
    if [ -n "${PROFILE:-}" ] && [ "$round" = 1 ] && [ "$payload" = small.json ]; then
      perf record -F 499 --call-graph dwarf,16384 -o "$PROFILE" -p "$SERVER" -- sleep "$DURATION" 2>/dev/null & PERF=$!
    fi
    run "$payload" proxied "$URL/bench/$payload" "${AUTH[@]}"
    [ -z "$PERF" ] || wait "$PERF"
  done
  run decide-only decide "$URL/api/v1/enforcement/decide" "${AUTH[@]}" -s decide.lua
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("\npayload       direct req/s  proxied req/s  ratio   added p50   added p99   sck CPU/proxied req")
for payload in dict.fromkeys(r[0] for r in rows if r[1] != "decide"):
    def med(kind, col):
        return statistics.median(float(r[col]) for r in rows if r[0] == payload and r[1] == kind)
    print(f"{payload:12}  {med('direct', 2):12.0f}  {med('proxied', 2):13.0f}  {med('proxied', 2) / med('direct', 2):5.2f}"
          f"   {med('proxied', 3) - med('direct', 3):6.2f} ms   {med('proxied', 4) - med('direct', 4):6.2f} ms   {med('proxied', 5):8.1f} us")
decide = [r for r in rows if r[1] == "decide"]
if decide:
    print(f"decide only   {statistics.median(float(r[2]) for r in decide):12.0f} req/s  p50 "
          f"{statistics.median(float(r[3]) for r in decide):.2f} ms  sck CPU/decision "
          f"{statistics.median(float(r[5]) for r in decide):.1f} us")
PY
if [ -n "${PROFILE:-}" ]; then
  echo; echo "== top functions by self time, proxied small JSON ($PROFILE)"
  perf report -i "$PROFILE" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -40
fi
echo
curl -s "$URL/metrics" | grep -E '^sck_decisions_total|^sck_usage_calls_total|^sck_ledger_batch_entries_(sum|count)' || true
