#!/usr/bin/env bash
# The walls between crates, checked on the resolved dependency graph (Cargo.lock), not on
# conventions: a crate whose normal dependencies (on any target) include a runtime,
# database or HTTP crate fails the check, naming the path that pulls it in.
#
# Usage: scripts/check-walls.sh   (run by `make test` and `make lint`; exit status 1 on a breach)
set -euo pipefail
cd "$(dirname "$0")/.."

# crate -> crates it must never depend on, directly or transitively.
declare -A FORBIDDEN=(
  [sck-wire]="tokio sqlx sqlx-core axum axum-core hyper hyper-util tower tower-http http http-body reqwest ureq mio"
  # Services: storage and a runtime, but no HTTP server, client or router.
  [sck-enforce]="axum axum-core hyper hyper-util tower tower-http http http-body utoipa-axum httparse reqwest ureq sck-gateway"
)

status=0
for crate in "${!FORBIDDEN[@]}"; do
  deps=$(cargo tree --locked -p "$crate" -e normal --target all --prefix none --format '{p}' |
    awk '{print $1}' | sort -u)
  for bad in ${FORBIDDEN[$crate]}; do
    if grep -qxF "$bad" <<<"$deps"; then
      echo "check-walls: $crate must not depend on $bad; it comes in through:" >&2
      cargo tree --locked -p "$crate" -e normal --target all -i "$bad" >&2 || true
      status=1
    fi
  done
  [ "$status" -eq 0 ] && echo "check-walls: $crate depends on none of: ${FORBIDDEN[$crate]}"
done
exit "$status"
