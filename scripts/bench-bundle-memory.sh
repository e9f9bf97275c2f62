#!/usr/bin/env bash
# Bundles that scale: peak memory (max RSS) and wall time of building, verifying, activating
# and serving a bundle with N MiB of data, for sck and, side by side in the same run, for real
# OPA on the same bundle (release build, SQLite, loopback).
#
#   BENCH_BUNDLE_MIB  data sizes in MiB (default "10"; "10 100" adds the 100 MiB bundle)
#   BENCH_RUNS        runs of every step; the table shows medians (default 3)
#   SCK_OPA           OPA binaries to compare with, space-separated (e.g. /work/shared/bin/opa-0.60)
#   SCK_BIN           the sck binary (default: target/release/sck, built when missing)
#
# The bundle is the OPA vector policy (sck/authz) with a data.json of N MiB of action entries,
# signed ES256. Steps, each measured on its own process:
#   build     sck bundle build --signing-key          | opa build -b --signing-key
#   verify    sck bundle verify                       | (OPA verifies while loading: see load)
#   compile   sck serve: compile API (build, check, tests), server peak
#   publish   sck serve: publish (read, sign), server peak
#   activate  sck serve: activate (re-verification of the stored tarball) until the snapshot
#             for evaluation is compiled and a decision on the new data allows, server peak
#   load      opa run --server --bundle (read, verify, activate) until /health answers 200
#   poll      OPA polling sck serve for the bundle until /health?bundles answers 200: OPA's peak
#             (row "poll") and sck serve's peak while it serves it (row "serve")
#   idle      sck serve's RSS before the first step (included in every server row; the column
#             "above idle" takes it out)
#   evaluate  one decision that needs the new data: sck's decide API, and OPA's Data API
#             after `load` and after `poll` (a check that the bundle works; the time is its
#             latency on a warm process)
# RSS is GNU time's %M for one-shot commands and the kernel's VmHWM (reset between phases
# through /proc/PID/clear_refs) for servers. Ratios: RSS / data size, and sck / OPA.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK=${SCK_BIN:-$ROOT/target/release/sck}
[ -x "$SCK" ] || cargo build --release --bin sck
SIZES=${BENCH_BUNDLE_MIB:-10}
RUNS=${BENCH_RUNS:-3}
OPAS=${SCK_OPA:-}
BENCH=$(mktemp -d)
RESULTS="$BENCH/results.tsv"
: > "$RESULTS"
. "$ROOT/scripts/lib/sck-server.sh"
OPA_PID=
SERVER=
cleanup() { kill_opa; [ -z "$SERVER" ] || stop_sck; rm -rf "$BENCH"; }
trap cleanup EXIT
kill_opa() { [ -z "$OPA_PID" ] || { kill "$OPA_PID" 2>/dev/null || true; wait "$OPA_PID" 2>/dev/null || true; OPA_PID=; }; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$MIB" "$1" "$2" "$3" "$4" >> "$RESULTS"; } # step tool kib ms
# One-shot command: peak RSS and wall time from GNU time.
measure() { # step tool command...
  local step=$1 tool=$2 kib secs
  shift 2
  /usr/bin/time -o "$BENCH/time" -f '%M %e' "$@" >/dev/null 2>"$BENCH/stderr" \
    || { cat "$BENCH/stderr" >&2; echo "$tool $step failed" >&2; exit 1; }
  read -r kib secs < "$BENCH/time"
  record "$step" "$tool" "$kib" "$(python3 -c "print(round($secs * 1000))")"
}
wait_http() { # url seconds [header]
  local deadline=$(( $(date +%s) + $2 ))
  until curl -sf -o /dev/null ${3:+-H "$3"} "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $1" >&2; return 1; }
    sleep 0.05
  done
}
api() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/$1" -d "$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# The Data API input OPA gets: what sck's gateway puts in from a verified token.
opa_input() { echo "{\"input\":{\"action\":\"$PROBE.call\",\"resource\":{\"org\":\"default\"},\"token\":{\"org\":\"default\",\"sub\":\"agent:bench\",\"loa\":4,\"scope\":[\"$PROBE:call\"]}}}"; }
opa_allows() { # port
  curl -sf "http://127.0.0.1:$1/v1/data/sck/authz/decision" -d "$(opa_input)" | grep -q '"allow":true'
}
timed_ms() { local t0; t0=$(now_ms); "$@" >/dev/null; echo $(( $(now_ms) - t0 )); }

# A source tree with N MiB of data: the vector policy, and action entries in the shape of its
# requirements (keys written unsorted, as a person would, so canonicalization has work to do).
make_source() { # dir mib
  mkdir -p "$1/sck/authz" "$1/sck/requirements"
  cp "$ROOT/tests/vectors/opa-bundles/src/sck/authz/authz.rego" "$1/sck/authz/"
  echo '{"roots": ["sck"], "metadata": {"sck": {"entrypoint": "sck/authz/decision"}}}' > "$1/.manifest"
  python3 - "$1/sck/requirements/data.json" "$2" <<'PY'
import json, sys
path, mib = sys.argv[1], int(sys.argv[2])
actions, i, size = {}, 0, 0
while size < mib * 1024 * 1024:
    key = f"svc{i:07d}"
    entry = {"scopes": [f"{key}:call", f"{key}:*"], "min_loa": i % 4 + 1, "owner": f"team-{i % 97}"}
    actions[f"{key}.call"] = entry
    size += len(json.dumps(f"{key}.call")) + len(json.dumps(entry)) + 4
    i += 1
json.dump({"actions": actions, "blocked_subjects": {}}, open(path, "w"))
print(i)
PY
}

"$SCK" bundle keygen --out "$BENCH/key.pem" >/dev/null
KEY="$BENCH/key.pem" PUB="$BENCH/key.pem.pub.pem"

for MIB in $SIZES; do
  SRC="$BENCH/src-$MIB"
  ENTRIES=$(make_source "$SRC" "$MIB")
  PROBE=$(printf 'svc%07d' $(( ENTRIES - 1 )))
  DATA_BYTES=$(stat -c %s "$SRC/sck/requirements/data.json")
  echo "== $MIB MiB: data.json $DATA_BYTES bytes, $ENTRIES entries" >&2
  printf '%s\tdata\t-\t%s\t0\n' "$MIB" "$DATA_BYTES" >> "$RESULTS"
  for run in $(seq "$RUNS"); do
    echo "   run $run/$RUNS" >&2
    measure build sck "$SCK" bundle build "$SRC" -o "$BENCH/sck.tar.gz" --signing-key "$KEY" --key-id k
    measure verify sck "$SCK" bundle verify "$BENCH/sck.tar.gz" --verification-key "$PUB" --key-id k
    for opa in $OPAS; do
      tool=$(basename "$opa")
      measure build "$tool" "$opa" build -b "$SRC" -o "$BENCH/opa.tar.gz" --signing-key "$KEY" --signing-alg ES256
      port=$(free_port)
      t0=$(now_ms)
      "$opa" run --server --addr "127.0.0.1:$port" --log-level error --disable-telemetry --bundle "$BENCH/sck.tar.gz" \
        --verification-key "$PUB" --verification-key-id k --signing-alg ES256 >/dev/null 2>&1 &
      OPA_PID=$!
      wait_http "http://127.0.0.1:$port/health" 600
      record load "$tool" "$(hwm_kib "$OPA_PID")" $(( $(now_ms) - t0 ))
      opa_allows "$port" || { echo "$tool: the loaded bundle does not allow $PROBE" >&2; exit 1; }
      record evaluate "$tool" 0 "$(timed_ms opa_allows "$port")"
      kill_opa
    done

    start_sck SCK_HTTP__MAX_BODY_BYTES=$(( (MIB * 3 + 16) << 20 )) SCK_HTTP__REQUEST_TIMEOUT_SECS=600
    trap cleanup EXIT
    # The server's RSS before the bundle arrives (bootstrap policy, runtime, allocator): the
    # server rows include it.
    record idle sck "$(rss_kib "$SERVER")" 0
    issuer=$(api tokens/issuers "{\"organizationId\":\"default\",\"name\":\"bench\",\"loaCeiling\":4,\"scopes\":[\"$PROBE:call\"]}" | field id)
    TOKEN=$(api tokens/issue "{\"organizationId\":\"default\",\"artifactId\":\"a\",\"artifactType\":\"agent\",\"loaLevel\":4,\"scope\":[\"$PROBE:call\"],\"issuerId\":\"$issuer\",\"subject\":\"agent:bench\",\"ttlSeconds\":3600}" | field token)
    sck_allows() {
      curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$URL/api/v1/enforcement/decide" \
        -d "{\"action\":\"$PROBE.call\",\"resource\":{\"org\":\"default\"}}" | grep -q '"allow":true'
    }
    cli() { SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN "$SCK" bundle "$@"; }
    reset_hwm "$SERVER"; t0=$(now_ms)
    id=$(cli compile "$SRC" --org default --name gateway --version 2.0.0 | field id)
    record compile sck "$(hwm_kib "$SERVER")" $(( $(now_ms) - t0 ))
    reset_hwm "$SERVER"; t0=$(now_ms)
    cli publish "$id" >/dev/null
    record publish sck "$(hwm_kib "$SERVER")" $(( $(now_ms) - t0 ))
    reset_hwm "$SERVER"; t0=$(now_ms)
    cli activate "$id" >/dev/null
    deadline=$(( $(date +%s) + 600 ))
    until sck_allows; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "sck never allowed $PROBE after activation" >&2; exit 1; }
      sleep 0.05
    done
    record activate sck "$(hwm_kib "$SERVER")" $(( $(now_ms) - t0 ))
    record evaluate sck 0 "$(timed_ms sck_allows)"
    for opa in $OPAS; do
      tool=$(basename "$opa")
      port=$(free_port)
      SCK_SERVER=$URL SCK_ADMIN_KEY=$ADMIN "$SCK" opa-config --org default --bundle gateway --sidecar-token "$SIDECAR" > "$BENCH/opa.yaml"
      reset_hwm "$SERVER"; t0=$(now_ms)
      "$opa" run --server --addr "127.0.0.1:$port" --log-level error --disable-telemetry --config-file "$BENCH/opa.yaml" >/dev/null 2>&1 &
      OPA_PID=$!
      wait_http "http://127.0.0.1:$port/health?bundles" 600
      ms=$(( $(now_ms) - t0 ))
      record poll "$tool" "$(hwm_kib "$OPA_PID")" "$ms"
      record serve "sck→$tool" "$(hwm_kib "$SERVER")" "$ms"
      opa_allows "$port" || { echo "$tool: the bundle polled from sck does not allow $PROBE" >&2; exit 1; }
      record evaluate "$tool (polled)" 0 "$(timed_ms opa_allows "$port")"
      kill_opa
    done
    stop_sck
    SERVER=
    cd "$BENCH"
  done
done

python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
data = {mib: int(kib) for mib, step, _, kib, _ in rows if step == "data"}
runs = collections.defaultdict(list)
for mib, step, tool, kib, ms in rows:
    if step != "data":
        runs[(mib, step, tool)].append((int(kib), int(ms)))
def median(values):
    return statistics.median(values)
sck = {}
for (mib, step, tool), samples in runs.items():
    if tool == "sck" or tool.startswith("sck→"):
        sck[(mib, step)] = median(k for k, _ in samples)
# OPA's counterpart of each sck step.
peer = {"build": "build", "load": "activate", "poll": "serve"}
idle = {mib: median(k for k, _ in runs[(mib, "idle", "sck")]) for mib in data if (mib, "idle", "sck") in runs}
server_steps = {"compile", "publish", "activate", "serve"}
print("| data | step | tool | peak RSS | × data | × data above idle | sck / OPA | time (median) |")
print("|---|---|---|---|---|---|---|---|")
for (mib, step, tool), samples in runs.items():
    kib = median(k for k, _ in samples)
    ms = median(m for _, m in samples)
    size = data[mib]
    rss = f"{kib / 1024:.0f} MiB" if kib else "—"
    ratio = f"{kib * 1024 / size:.1f}×" if kib else "—"
    vs = "—"
    if tool != "sck" and not tool.startswith("sck→") and step in peer and kib:
        ours = sck.get((mib, peer[step]))
        if ours:
            vs = f"{ours / kib:.2f} ({peer[step]})"
    above = "—"
    if step in server_steps and kib and mib in idle:
        above = f"{(kib - idle[mib]) * 1024 / size:.1f}×"
    time = "—" if step == "idle" else f"{ms / 1000:.2f} s"
    print(f"| {size / 1048576:.0f} MiB | {step} | {tool} | {rss} | {ratio} | {above} | {vs} | {time} |")
PY
