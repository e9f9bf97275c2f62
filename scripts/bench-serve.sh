#!/usr/bin/env bash
# Bundle service benchmarks (release build, SQLite, loopback):
#  - sidecar fetches/s answered 304 (If-None-Match matches: the common sidecar poll)
#  - sidecar fetches/s answered 200 with a ~1 MiB bundle
#  - activation latency seen by a long-polling client (median and p90 of 20 activations)
#  - the same 304s and 200s from nginx serving the same bundle file as a static file behind a
#    bearer-token check (how OPA bundles are commonly served: OPA itself serves none), in the
#    same run, with server CPU per request of each (perf task-clock, or /proc utime+stime)
# Uses wrk and nginx (installed from Debian's packages when missing) and python3's standard library.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# SCK_BIN: another sck binary (A/B runs).
SCK=${SCK_BIN:-$ROOT/target/release/sck}
[ -x "$SCK" ] || cargo build --release --bin sck
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
. "$ROOT/scripts/lib/sck-server.sh"
start_sck

# A ~1 MiB bundle: the default policies plus incompressible data.
cp -r "$ROOT/policies" src
mkdir -p src/sck/bench
python3 -c '
import json, os
print(json.dumps({"blob": [os.urandom(48).hex() for _ in range(18000)]}))' > src/sck/bench/data.json
release() {
  local id
  id=$(SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN "$SCK" bundle compile src --org default --name gateway --version "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN "$SCK" bundle publish "$id" >/dev/null
  SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN "$SCK" bundle activate "$id" >/dev/null
}
release 2.0.0
curl -s -o bundle.tgz -H "Authorization: Bearer $SIDECAR" "$URL/bundles/default/gateway.tar.gz"
SHA=$(sha256sum bundle.tgz | cut -c1-64)
echo "bundle size: $(stat -c %s bundle.tgz) bytes"

# nginx: the same bundle as a static file, behind the sidecar's token.
. "$ROOT/scripts/lib/nginx.sh"
start_nginx "location /bundles/default/ {
      if (\$http_authorization != \"Bearer $SIDECAR\") { return 401; }
      rewrite ^/bundles/default/(.*)\$ /\$1 break;
    }"
trap 'stop_nginx; stop_sck' EXIT
cp bundle.tgz "$NGINX_WWW/gateway.tar.gz"
chmod 644 "$NGINX_WWW/gateway.tar.gz"
NGX_URL="$NGINX_URL/bundles/default/gateway.tar.gz"
NGX_ETAG=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $SIDECAR" "$NGX_URL" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SIDECAR" -H "If-None-Match: $NGX_ETAG" "$NGX_URL")" = 304 ] ||
  { echo "nginx does not answer 304" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$NGX_URL")" = 401 ] || { echo "nginx serves without the token" >&2; exit 1; }

serve() { # label pid connections url [wrk args...]: one 10 s run, with server CPU per request
  local label=$1 pid=$2 conns=$3 url=$4 n cpu
  shift 4
  echo "== $label, $conns connections, 10 s"
  cpu_ms "$pid" 10 > cpu.txt & local stat=$!
  wrk -t2 -c"$conns" -d10s --latency "$@" "$url" > wrk.out
  wait "$stat" || true
  grep -E "Requests/sec|Transfer/sec|^ +50%|^ +99%|Non-2xx" wrk.out
  n=$(awk '/requests in/ {print $1}' wrk.out)
  cpu=$(cat cpu.txt)
  awk -v ms="$cpu" -v n="$n" 'BEGIN {printf "  server CPU per request: %.1f us\n", ms * 1000 / n}'
}
AUTH="Authorization: Bearer $SIDECAR"
serve "sck: 304 (If-None-Match matches)" "$SERVER" 32 "$URL/bundles/default/gateway.tar.gz" -H "$AUTH" -H "If-None-Match: \"$SHA\""
serve "nginx: 304 (If-None-Match matches)" "$NGINX_WORKER" 32 "$NGX_URL" -H "$AUTH" -H "If-None-Match: $NGX_ETAG"
serve "sck: 200 with the 1 MiB bundle" "$SERVER" 8 "$URL/bundles/default/gateway.tar.gz" -H "$AUTH"
serve "nginx: 200 with the 1 MiB bundle" "$NGINX_WORKER" 8 "$NGX_URL" -H "$AUTH"

echo "== activation latency seen by a long-polling client (20 activations)"
python3 - "$URL" "$ADMIN" "$SIDECAR" "$SCK" <<'PY'
import hashlib, json, os, statistics, subprocess, sys, threading, time, urllib.request
url, admin, sidecar, sck = sys.argv[1:5]
env = dict(os.environ, SCK_SERVER=url, SCK_ADMIN_KEY=admin)
def cli(*args):
    return json.loads(subprocess.check_output([sck, *args], env=env))
def fetch(etag=None, wait=None):
    req = urllib.request.Request(url + "/bundles/default/gateway.tar.gz", headers={"Authorization": "Bearer " + sidecar})
    if etag: req.add_header("If-None-Match", '"%s"' % etag)
    if wait: req.add_header("Prefer", "modes=snapshot,delta;wait=%d" % wait)
    with urllib.request.urlopen(req) as r:
        return hashlib.sha256(r.read()).hexdigest()
samples = []
for i in range(20):
    draft = cli("bundle", "compile", "src", "--org", "default", "--name", "gateway", "--version", "3.%d.0" % i)
    cli("bundle", "publish", draft["id"])
    etag = fetch()
    done = {}
    def poll():
        fetch(etag, 30); done["at"] = time.monotonic()
    t = threading.Thread(target=poll); t.start(); time.sleep(0.2)
    req = urllib.request.Request(url + "/api/v1/enforcement/bundles/activate", method="POST",
        data=json.dumps({"bundleId": draft["id"]}).encode(),
        headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
    start = time.monotonic()
    urllib.request.urlopen(req).read()
    t.join()
    samples.append((done["at"] - start) * 1000)
samples.sort()
print("activation → long poll answered: median %.1f ms, p90 %.1f ms, max %.1f ms (activate request included)" %
      (statistics.median(samples), samples[int(len(samples) * 0.9) - 1], samples[-1]))
PY
