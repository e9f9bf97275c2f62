#!/usr/bin/env python3
"""Mixed steady-rate load against a running sck (standard library only); driven by scripts/soak.sh.

Kinds, paced at fixed shares of SOAK_RATE requests/s: gateway-token decisions, X-SCK signed
/verify calls (HMAC), token issue + introspect, sidecar bundle polls with If-None-Match, and an
activation of a new policy version every SOAK_ACTIVATE_EVERY seconds. Every unexpected status or
transport error counts as an error. The server's RSS is sampled every 10 s. Prints a JSON summary
and writes the ledger's verifier keys to the file given as the last argument.
"""

import http.client
import json
import os
import pathlib
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))
import sign_request  # noqa: E402  (the example X-SCK client)

URL, ADMIN, SIDECAR, PID, POLICIES, KEYS_OUT = sys.argv[1:7]
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RATE = float(os.environ.get("SOAK_RATE", "200"))
ACTIVATE_EVERY = float(os.environ.get("SOAK_ACTIVATE_EVERY", "30"))
MAX_GROWTH = float(os.environ.get("SOAK_MAX_RSS_GROWTH", "0.05"))
API = "/api/v1/enforcement"
HOST = urllib.parse.urlsplit(URL).netloc

lock = threading.Lock()
counts = {}
errors = []


def record(kind, status, ok, detail=""):
    with lock:
        counts.setdefault(kind, {}).setdefault(str(status), 0)
        counts[kind][str(status)] += 1
        if not ok and len(errors) < 50:
            errors.append(f"{kind}: {status} {detail[:300]}")
        elif not ok:
            errors.append("...")


class Client:
    """One keep-alive connection; reconnects after a transport error."""

    def __init__(self):
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        headers = dict(headers or {})
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, timeout=30)
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload, response
            except (http.client.HTTPException, OSError) as e:
                self.conn = None
                if attempt == 1:
                    return f"transport:{type(e).__name__}", str(e).encode(), None
        raise AssertionError("unreachable")


def admin(client, path, body):
    status, payload, _ = client.call("POST", API + path, body, {"Authorization": f"Bearer {ADMIN}"})
    if status not in (200, 201):
        raise SystemExit(f"setup {path}: {status} {payload[:300]!r}")
    return json.loads(payload)


def policy_files():
    root = pathlib.Path(POLICIES)
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


setup = Client()
issuer = admin(setup, "/tokens/issuers", {"organizationId": "default", "name": "soak",
                                          "loaCeiling": 4, "scopes": ["mcp:invoke"]})["id"]
ISSUE = {"organizationId": "default", "artifactId": "soak", "artifactType": "agent", "loaLevel": 3,
         "scope": ["mcp:invoke"], "issuerId": issuer, "subject": "agent:soak", "ttlSeconds": 900}
# The decision token is renewed at half its lifetime, so runs longer than its TTL keep deciding.
decide_token = {"token": admin(setup, "/tokens/issue", ISSUE)["token"], "at": time.monotonic()}
decide_token_lock = threading.Lock()
SECRET = admin(setup, "/identities", {"organizationId": "default",
                                      "ansId": "ans://soak.example.com"})["key"]["secret"]
FILES = policy_files()
DECIDE = {"action": "tools.invoke", "resource": {"org": "default", "tool": "search.web"}}


def current_token():
    with decide_token_lock:
        if time.monotonic() - decide_token["at"] >= ISSUE["ttlSeconds"] / 2:
            decide_token.update(token=admin(setup, "/tokens/issue", ISSUE)["token"], at=time.monotonic())
        return decide_token["token"]


def decide(c):
    status, body, _ = c.call("POST", API + "/decide", DECIDE,
                             {"Authorization": f"Bearer {current_token()}"})
    record("decide", status, status == 200, body.decode(errors="replace"))


def verify(c):
    body = json.dumps(DECIDE).encode()
    headers = sign_request.sign(SECRET, "POST", URL + API + "/verify", body,
                                "ans://soak.example.com", "default")
    status, payload, _ = c.call("POST", API + "/verify", body, headers)
    record("verify", status, status == 200, payload.decode(errors="replace"))


# Tokens issued under load live 2 minutes, so the verification cache reaches its steady state
# early in the run.
SHORT_LIVED = dict(ISSUE, ttlSeconds=120)


def token(c):
    status, payload, _ = c.call("POST", API + "/tokens/issue", SHORT_LIVED,
                                {"Authorization": f"Bearer {ADMIN}"})
    record("token.issue", status, status == 201, payload.decode(errors="replace"))
    if status != 201:
        return
    issued = json.loads(payload)["token"]
    status, payload, _ = c.call("POST", API + "/tokens/introspect", {"token": issued},
                                {"Authorization": f"Bearer {ADMIN}"})
    active = status == 200 and json.loads(payload).get("active") is True
    record("token.introspect", status, active, payload.decode(errors="replace"))


etags = {}


def poll(c):
    me = threading.get_ident()
    headers = {"Authorization": f"Bearer {SIDECAR}"}
    if me in etags:
        headers["If-None-Match"] = etags[me]
    status, payload, response = c.call("GET", "/bundles/default/gateway.tar.gz", None, headers)
    if status == 200 and response is not None:
        etags[me] = response.getheader("ETag")
    record("sidecar.poll", status, status in (200, 304), payload[:200].decode(errors="replace"))


version = [0]


def activate(c):
    version[0] += 1
    request = {"organizationId": "default", "name": "gateway", "version": f"9.{version[0]}.0",
               "files": FILES}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    for path, body, want in (("/bundles/compile", request, (200, 201)), ("/bundles/publish", None, (200, 201)),
                             ("/bundles/activate", None, (200, 201))):
        if body is None:
            body = {"bundleId": bundle_id}
        status, payload, _ = c.call("POST", API + path, body, headers)
        record("activation." + path.rsplit("/", 1)[-1], status, status in want,
               payload.decode(errors="replace"))
        if status not in want:
            return
        if path == "/bundles/compile":
            bundle_id = json.loads(payload)["id"]


def paced(action, rate, deadline):
    """Runs `action` `rate` times a second until `deadline`, on a fixed schedule (no catch-up bursts
    beyond one missed slot)."""
    client = Client()
    interval = 1.0 / rate
    next_at = time.monotonic()
    while next_at < deadline:
        try:
            action(client)
        except (Exception, SystemExit) as e:  # a bug in the driver is an error of the run, never a silent stop
            record(action.__name__, "exception", False, repr(e))
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        elif delay < -interval:
            next_at = time.monotonic()


rss = []
split = []


def sample_rss(deadline):
    """RSS every 10 s, with its split: anonymous (heap), file-backed and shared (SQLite's WAL index)."""
    while time.monotonic() < deadline:
        with open(f"/proc/{PID}/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        kb = {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}
        rss.append((time.monotonic() - started, kb["VmRSS"]))
        split.append(kb)
        time.sleep(10)


# Shares of the total request rate; each share is split over two threads so a slow answer never
# stalls a kind. A token round is two requests (issue + introspect).
shares = {decide: 0.40, verify: 0.20, token: 0.20, poll: 0.20}
requests_per_call = {token: 2}
started = time.monotonic()
deadline = started + SECONDS
threads = [threading.Thread(target=sample_rss, args=(deadline,))]
for action, share in shares.items():
    for _ in range(2):
        rate = RATE * share / requests_per_call.get(action, 1) / 2
        threads.append(threading.Thread(target=paced, args=(action, rate, deadline)))
threads.append(threading.Thread(target=paced, args=(activate, 1.0 / ACTIVATE_EVERY, deadline)))
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - started

keys = json.loads(setup.call("GET", "/api/v1/ledger/default/keys", None,
                             {"Authorization": f"Bearer {ADMIN}"})[1])
pathlib.Path(KEYS_OUT).write_text("\n".join(k["verifier"] for k in keys["keys"]) + "\n")

# Flat memory: the median RSS of the last third of the run against the median of the middle
# third (the first third is warm-up: X-SCK nonces are kept 120 s, load tokens live 120 s). The
# medians ride over the allocator's sawtooth. On the 10-minute runs in docs/benchmarks.md the
# metrics recorder without its upkeep (2 MiB a minute) scores about +14%, the fixed server
# -0.1% to +1.3%.
def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


middle = [kb for t, kb in rss if elapsed / 3 <= t < 2 * elapsed / 3] or [rss[0][1]]
late = [kb for t, kb in rss if t >= 2 * elapsed / 3] or [rss[-1][1]]
total = sum(sum(v.values()) for v in counts.values())
summary = {
    "seconds": round(elapsed, 1),
    "requests": total,
    "rate": round(total / elapsed, 1),
    "by_kind": counts,
    "errors": len(errors),
    "first_errors": errors[:10],
    "rss_mib": {"middle_third_median": round(median(middle) / 1024, 1),
                "last_third_median": round(median(late) / 1024, 1),
                "max": round(max(kb for _, kb in rss) / 1024, 1), "samples": len(rss),
                "per_minute": [round(kb / 1024, 1) for t, kb in rss if int(t) % 60 < 10],
                "anon_file_shmem_per_minute": [
                    [round(s[k] / 1024, 1) for k in ("RssAnon", "RssFile", "RssShmem")]
                    for (t, _), s in zip(rss, split) if int(t) % 60 < 10]},
}
growth = median(late) / median(middle) - 1
summary["rss_growth"] = f"{growth:+.1%} (limit {MAX_GROWTH:+.0%})"
print(json.dumps(summary, indent=2))
sys.exit(1 if errors or growth > MAX_GROWTH else 0)
