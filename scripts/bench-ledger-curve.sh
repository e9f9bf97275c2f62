#!/usr/bin/env bash
# The ledger's cost curve (ledger/benches/cost_curve.rs): grows one org log to SCK_CURVE_MAX
# entries (default here 1e6) on SQLite (WAL, synchronous=FULL) and, unless CURVE_POSTGRES=0, to
# SCK_CURVE_PG_MAX (default SCK_CURVE_MAX) on a throw-away PostgreSQL (scripts/with-postgres.sh),
# recording at 1, 2 and 5 × 10^k entries the append rate, inclusion/consistency proof times,
# export and offline-verify throughput; then draws them (scripts/plot-ledger-curve.py, matplotlib pinned below).
#
# Output: $SCK_CURVE_OUT (default target/ledger-curve)/{sqlite,postgres}.jsonl and
# *-appends.csv, and the PNG at CURVE_PNG (default $SCK_CURVE_OUT/ledger-cost-curve.png).
# The run documented in docs/benchmarks.md (both backends to 10^7, an export at every size; the
# 10^7 export needs ~14 GB of free disk on SQLite, database included):
#   SCK_CURVE_MAX=1e7 CURVE_PNG=docs/ledger-cost-curve.png scripts/bench-ledger-curve.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MATPLOTLIB=matplotlib==3.11.2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export SCK_CURVE_OUT=${SCK_CURVE_OUT:-$CARGO_TARGET_DIR/ledger-curve}
export SCK_CURVE_MAX=${SCK_CURVE_MAX:-1e6}
PNG=${CURVE_PNG:-$SCK_CURVE_OUT/ledger-cost-curve.png}

python3 -c "import matplotlib, sys; sys.exit(matplotlib.__version__ != '${MATPLOTLIB#*==}')" 2>/dev/null \
  || python3 -m pip install -q "$MATPLOTLIB"

mkdir -p "$SCK_CURVE_OUT"
rm -f "$SCK_CURVE_OUT"/*.jsonl "$SCK_CURVE_OUT"/*-appends.csv
df -h "$SCK_CURVE_OUT" | tail -n 1 >&2
cargo bench -p sck-ledger --bench cost_curve --locked
if [ "${CURVE_POSTGRES:-1}" != 0 ]; then
  SCK_CURVE_MAX=${SCK_CURVE_PG_MAX:-$SCK_CURVE_MAX} scripts/with-postgres.sh bash -c \
    'SCK_CURVE_DATABASE_URL=$SCK_TEST_DATABASE_URL cargo bench -p sck-ledger --bench cost_curve --locked'
fi
python3 scripts/plot-ledger-curve.py "$SCK_CURVE_OUT" "$PNG"
