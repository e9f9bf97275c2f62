# Sourced by the benchmark and soak scripts (which set ROOT and SCK first): a throw-away
# `sck serve` on SQLite in a temporary directory on a free loopback port, stopped on exit.
#
#   start_sck [NAME=VALUE ...]   extra environment for the server
#
# Sets WORK (also the new working directory; the server's output is in serve.out and
# serve.err there), URL, SERVER (its pid), ADMIN (the root admin key) and SIDECAR (the default
# org's sidecar token). Rate limits are lifted: the scripts measure throughput, not the limiter.
#
#   cpu_ms PID [SECONDS]   CPU milliseconds PID uses over the next SECONDS (default $DURATION)
#   post_lua FILE BODY     writes a wrk script that POSTs BODY as JSON
#
# SERVER_CPUS and CLIENT_CPUS (taskset CPU lists, e.g. SERVER_CPUS=0 CLIENT_CPUS=1) pin the
# servers and the load generator to CPUs of their own: "${SERVER_PIN[@]}" and "${CLIENT_PIN[@]}"
# prefix their commands (taskset execs the command, so `$!` stays the server's pid). Unset, nothing
# is pinned and they share every CPU, contending for the same ones.
SERVER_PIN=() CLIENT_PIN=()
[ -n "${SERVER_CPUS:-}" ] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && CLIENT_PIN=(taskset -c "$CLIENT_CPUS")

start_sck() {
  SCK=$(readlink -f "$SCK") # the server starts in its own directory: a relative path would not resolve
  WORK=$(mktemp -d)
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  URL="http://127.0.0.1:$port"
  trap stop_sck EXIT
  cd "$WORK"
  "${SERVER_PIN[@]}" env SCK_DATA_DIR="$WORK" SCK_LOG=warn SCK_BUNDLES__BOOTSTRAP_POLICIES="$ROOT/policies" \
    SCK_PUBLIC_URL="$URL" \
    SCK_DECISIONS__SUBJECT_RATE__PER_SECOND=1000000 SCK_DECISIONS__SUBJECT_RATE__BURST=1000000 \
    SCK_DECISIONS__ORG_RATE__PER_SECOND=1000000 SCK_DECISIONS__ORG_RATE__BURST=1000000 \
    "$@" "$SCK" serve --listen "127.0.0.1:$port" --database-url "$WORK/sck.db" \
    > serve.out 2> serve.err &
  SERVER=$!
  for _ in $(seq 150); do grep -q "sck listening" serve.out 2>/dev/null && break; sleep 0.2; done
  grep -q "sck listening" serve.out || { cat serve.err >&2; echo "sck serve did not start" >&2; exit 1; }
  ADMIN=$(awk '/root admin key/ {print $4}' serve.out)
  SIDECAR=$(awk '/sidecar token/ {print $NF}' serve.out)
}

stop_sck() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}

# CPU time of a process over a run: robust against other load on the machine, unlike
# requests/s. perf stat task-clock of all the process's threads; utime+stime from
# /proc/PID/stat where perf is missing or not permitted.
cpu_ms() {
  local seconds=${2:-$DURATION} before after perf_ms=""
  before=$(awk '{print $14 + $15}' "/proc/$1/stat")
  if command -v perf >/dev/null; then
    perf_ms=$(perf stat -e task-clock -x, -p "$1" -- sleep "$seconds" 2>&1 >/dev/null |
      awk -F, '/task-clock/ && $1 ~ /^[0-9.]+$/ {print $1}') || true
  else
    sleep "$seconds"
  fi
  after=$(awk '{print $14 + $15}' "/proc/$1/stat")
  if [ -n "$perf_ms" ]; then echo "$perf_ms"; else
    awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {print t * 1000 / hz}'; fi
}

post_lua() { # file body
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
LUA
}
