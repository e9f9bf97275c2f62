#!/usr/bin/env bash
# The 10-minute mixed soak (outside `make test`): `sck serve` on SQLite (release build, loopback)
# under a steady SOAK_RATE requests/s (default 200) for SOAK_SECONDS (default 600) of decisions,
# X-SCK verifications, token issue/introspect, sidecar polls and an activation every 30 s
# (scripts/soak.py). Fails on any error, on RSS growth over SOAK_MAX_RSS_GROWTH (default 5%)
# between the medians of the run's middle and last thirds, or if the exported ledger does not
# pass `sck ledger verify` after a graceful stop.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
[ -x "$SCK" ] || cargo build --release --bin sck
. "$ROOT/scripts/lib/sck-server.sh"
# X-SCK skew 60 s (nonces kept 120 s) so the replay store reaches its steady size within the run.
start_sck SCK_XSCK__MAX_SKEW_SECS="${SOAK_SKEW_SECS:-60}"
status=0
python3 "$ROOT/scripts/soak.py" "$URL" "$ADMIN" "$SIDECAR" "$SERVER" "$ROOT/policies" "$WORK/keys.txt" || status=$?
kill -TERM "$SERVER"; wait "$SERVER" || true
"$SCK" ledger export --org default --database-url "$WORK/sck.db" -o "$WORK/export.tar.gz"
keys=(); while read -r k; do [ -n "$k" ] && keys+=(--key "$k"); done < "$WORK/keys.txt"
if "$SCK" ledger verify "$WORK/export.tar.gz" "${keys[@]}" --quiet; then
  echo "ledger: export verifies"
else
  echo "ledger: export does NOT verify"; status=1
fi
# grep -c exits 1 when it counts zero lines, which is the good case.
echo "server log: $(grep -c " ERROR " "$WORK/serve.err" || true) ERROR lines"
exit "$status"
