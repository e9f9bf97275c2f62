#!/usr/bin/env bash
# Bundle service benchmarks (release build, SQLite, loopback):
#  - sidecar fetches/s answered 304 (If-None-Match matches: the common sidecar poll)
#  - sidecar fetches/s answered 200 with a ~1 MiB bundle
#  - activation latency seen by a long-polling client (median and p90 of 20 activations)
# Uses wrk (installed from Debian's packages when missing) and python3's standard library.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
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

echo "== 304 (If-None-Match matches), 32 connections, 10 s"
wrk -t2 -c32 -d10s --latency -H "Authorization: Bearer $SIDECAR" -H "If-None-Match: \"$SHA\"" \
  "$URL/bundles/default/gateway.tar.gz" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
echo "== 200 with the 1 MiB bundle, 8 connections, 10 s"
wrk -t2 -c8 -d10s --latency -H "Authorization: Bearer $SIDECAR" \
  "$URL/bundles/default/gateway.tar.gz" | grep -E "Requests/sec|Transfer/sec|Latency|50%|99%"

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
