#!/usr/bin/env bash
# The PostgreSQL rerun of docs/benchmarks.md's ledger cost curve: the cost-curve bench to 10^6
# entries without exports, sampling the server's WAL and buffer-write statistics every 5 s.
# Run from the repository root: scripts/with-postgres.sh docs/ledger-cost-curve/postgres-rerun/sample.sh
# Output: target/ledger-curve-diag/{pgdiag.jsonl,pgstats.csv,pgsettings.txt}.
set -u
OUT=${OUT:-target/ledger-curve-diag}
mkdir -p "$OUT"
q() { psql "$SCK_TEST_DATABASE_URL" -At -F, -c "$1" 2>/dev/null; }
echo "unix_time,log_size,wal_bytes,wal_fpi,checkpoints,buffers_backend,buffers_checkpoint,entries_and_nodes_bytes" > "$OUT/pgstats.csv"
( while sleep 5; do
    q "select extract(epoch from now())::int, (select size from ledger_logs where org='curve'), w.wal_bytes, w.wal_fpi, b.checkpoints_timed + b.checkpoints_req, b.buffers_backend, b.buffers_checkpoint, pg_total_relation_size('ledger_entries') + pg_total_relation_size('ledger_nodes') from pg_stat_wal w, pg_stat_bgwriter b" >> "$OUT/pgstats.csv"
  done ) &
SAMPLER=$!
q "show shared_buffers; show max_wal_size; show checkpoint_timeout" > "$OUT/pgsettings.txt"
SCK_CURVE_DATABASE_URL=$SCK_TEST_DATABASE_URL SCK_CURVE_MAX=1e6 SCK_CURVE_EXPORT_MAX=0 \
  SCK_CURVE_PROOFS=200 SCK_CURVE_LABEL=pgdiag SCK_CURVE_OUT="$OUT" \
  cargo bench -p sck-ledger --bench cost_curve --locked
kill "$SAMPLER"
