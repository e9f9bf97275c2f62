#!/usr/bin/env bash
# Decision-log ingestion throughput (durable): OPA-shaped gzip uploads to POST /logs in batches
# of 100 and 1,000 events, sequentially from one client (as one OPA sidecar uploads), SQLite,
# loopback. Every upload is answered only after its decision.sidecar entries are committed.
# SCK_BIN overrides the binary (default: the release build); BENCH_EVENTS the events per size.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK=$(realpath -m "${SCK_BIN:-$ROOT/target/release/sck}")
[ -n "${SCK_BIN:-}" ] || (cd "$ROOT" && cargo build --release --bin sck)
EVENTS=${BENCH_EVENTS:-20000}
. "$ROOT/scripts/lib/sck-server.sh"
start_sck
python3 - "$URL" "$SIDECAR" "$EVENTS" <<'PY'
import gzip, json, sys, time, urllib.request
url, token, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def event(i, tag):
    return {"labels": {"id": "bench-opa", "version": "0.60.0"}, "decision_id": f"{tag}-{i}",
            "bundles": {"gateway": {"revision": "1.0.0"}}, "path": "sck/gateway/decision",
            "input": {"action": "tools.invoke", "resource": {"org": "default", "tool": f"t{i % 50}"},
                      "token": {"sub": f"user-{i % 1000}", "loa": 2}},
            "result": {"allow": i % 3 != 0, "reasons": [] if i % 3 else ["loa_too_low"]},
            "requested_by": "127.0.0.1:5000", "timestamp": "2026-01-01T00:00:00.123456789Z",
            "metrics": {"timer_rego_query_eval_ns": 40000 + i % 1000}}
def upload(batch):
    req = urllib.request.Request(url + "/logs", data=gzip.compress(json.dumps(batch).encode()), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Encoding": "gzip", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)
for size in (100, 1000):
    batches = [[event(b * size + i, f"s{size}") for i in range(size)] for b in range(total // size)]
    upload([event(i, f"warm{size}") for i in range(size)])
    start = time.perf_counter(); appended = 0
    for batch in batches:
        appended += upload(batch)["appended"]
    elapsed = time.perf_counter() - start
    retry_start = time.perf_counter()
    for batch in batches[:10]:
        assert upload(batch)["appended"] == 0
    retry = (time.perf_counter() - retry_start) / 10
    print(f"batch {size:>5}: {appended} events in {elapsed:.2f} s = {appended / elapsed:,.0f} events/s durable "
          f"({elapsed / len(batches) * 1000:.1f} ms per upload; retried upload {retry * 1000:.1f} ms)")
PY
