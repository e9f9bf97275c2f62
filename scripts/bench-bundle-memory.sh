#!/usr/bin/env bash
# Peak memory (max RSS) of `sck bundle build` + sign and `sck bundle verify` on a bundle whose
# data.json is 10 MiB, using the release binary and GNU time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK="$ROOT/target/release/sck"
[ -x "$SCK" ] || cargo build --release --bin sck
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src/big"
python3 - "$WORK/src/big/data.json" <<'PY'
import json, sys
entries, i, size = {}, 0, 0
while size < 10 * 1024 * 1024:
    key = f"svc{i:07d}"
    entries[key] = {"min_loa": i % 4 + 1, "scopes": [f"{key}:call", f"{key}:*"], "owner": f"team-{i % 97}"}
    size += 90
    i += 1
json.dump({"entries": entries}, open(sys.argv[1], "w"))
PY
printf 'package big\n\nimport rego.v1\n\nallow if data.big.entries[input.svc]\n' > "$WORK/src/big/p.rego"
"$SCK" bundle keygen --out "$WORK/key.pem" >/dev/null
peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
echo "data.json: $(du -h "$WORK/src/big/data.json" | cut -f1)"
echo "build+sign peak RSS: $(peak "$SCK" bundle build "$WORK/src" -o "$WORK/b.tar.gz" --signing-key "$WORK/key.pem" --key-id k) KiB"
echo "verify     peak RSS: $(peak "$SCK" bundle verify "$WORK/b.tar.gz" --verification-key "$WORK/key.pem.pub.pem" --key-id k) KiB"
for cmd in build verify; do
  case $cmd in
    build) args=(bundle build "$WORK/src" -o "$WORK/b.tar.gz" --signing-key "$WORK/key.pem" --key-id k) ;;
    verify) args=(bundle verify "$WORK/b.tar.gz" --verification-key "$WORK/key.pem.pub.pem" --key-id k) ;;
  esac
  start=$(date +%s%N); "$SCK" "${args[@]}" >/dev/null; end=$(date +%s%N)
  echo "$cmd wall time (one run, whole process): $(( (end - start) / 1000000 )) ms"
done
