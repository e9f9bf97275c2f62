#!/usr/bin/env python3
"""Splits a perf profile of the sck server into the parts of a decision.

Usage: perf script -i decide.perf --no-inline | scripts/profile-parts.py [--per-request-us N]

Each sample is charged to one part: its stack is read from the leaf towards the root and the
first frame that names a part decides (so malloc called by regorus is evaluation, and a kernel
`tcp_sendmsg` called by hyper is HTTP). With `--per-request-us` (the server CPU per request the
bench measured) every share is also printed in microseconds per request.
"""
import re
import sys
from collections import Counter

# (part, pattern on a frame's symbol), tried in order for each frame from the leaf up.
PARTS = [
    ("ledger: SQLite (statements, WAL writes, fsync)", r"sqlite3|libsqlite3|sqlx_sqlite|sqlx_core|flume"),
    ("ledger: seal, canonical JSON, hashing", r"sck_ledger::entry|sck_wire::canonical|sck_ledger::canonical|sck_ledger::merkle"),
    ("ledger: writer task and hand-offs", r"sck_ledger::"),
    ("input: body, document, hashes, regorus conversion",
     r"DecisionService::input|document_sha256|<regorus::value::Value as core::convert::From<serde_json|regorus::value::ValueVisitor|serde_json::value::de|sck_bundler::decision::parse_input|respond::facts"),
    ("evaluation (regorus VM)", r"regorus::|sck_bundler::decision::scope"),
    ("gateway token", r"sck_enforce::tokens|sck_wire::token|jsonwebtoken|GatewayToken"),
    ("metrics", r"metrics_exporter_prometheus|metrics_util|metrics::|sck_gateway::server::track"),
    ("tracing", r"tracing_subscriber|tracing_core|tracing::|sharded_slab"),
    ("response: JSON and headers", r"serde_json::ser|into_response|IntoResponse|DecisionAnswer"),
    ("handler: request and ledger-body JSON values, ids, answer",
     r"sck_gateway::respond|sck_enforce::decisions|sck_gateway::routes::decide|sck_enforce::events|sck_bundler::decision"),
    # Kernel frames name no part: a sample in the kernel is charged to the syscall that entered
    # it, so loopback TCP (which also runs the receiving side and wakes it) counts as sockets.
    ("HTTP: kernel sockets and epoll (loopback)", r"__GI___writev|__libc_recv|__libc_send|__libc_read|__libc_write|epoll_wait|tokio::runtime::io::|mio::"),
    ("HTTP: hyper, axum, tower", r"hyper::|hyper_util|axum::|tower::|tower_http|tower_service|http::header|sck_gateway::edge|tokio::net"),
    ("scheduling: tokio, futex, wake-ups", r"tokio::runtime|tokio::sync|futex|std::thread::functions::park|sched_yield"),
]
COMPILED = [(name, re.compile(p)) for name, p in PARTS]


def samples(lines):
    """Yields each sample's frames (symbols), leaf first."""
    frames = []
    in_sample = False
    for line in lines:
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        if not line.startswith((" ", "\t")):
            in_sample = True  # the sample's header line: comm pid time event
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            frames.append(parts[1])
    if in_sample:
        yield frames


def main():
    per_request = None
    if "--per-request-us" in sys.argv:
        per_request = float(sys.argv[sys.argv.index("--per-request-us") + 1])
    counts = Counter()
    for frames in samples(sys.stdin):
        part = "other"
        for frame in frames:
            hit = next((name for name, rx in COMPILED if rx.search(frame)), None)
            if hit:
                part = hit
                break
        counts[part] += 1
    total = sum(counts.values())
    if total == 0:
        sys.exit("no samples")
    print(f"{'part':48} {'share':>7}" + (f" {'us/request':>11}" if per_request else ""))
    for part, n in counts.most_common():
        share = n / total
        extra = f" {share * per_request:11.1f}" if per_request else ""
        print(f"{part:48} {share:7.1%}{extra}")
    print(f"{'samples':48} {total:7}")


if __name__ == "__main__":
    main()
