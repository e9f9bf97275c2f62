#!/usr/bin/env bash
# Peak memory (VmHWM) of `sck serve` under 16 concurrent compile uploads, each a gzip tarball
# of about 250 KiB that inflates to just under 256 MiB ([bundles] max_decompressed_bytes): a
# data.json of whitespace around `{}`, so every upload that is admitted compiles. Prints the
# answers by status and code, the peak RSS, and the slowest `/health` seen meanwhile.
#
#   scripts/bench-upload-memory.sh [NAME=VALUE ...]   extra server environment, e.g.
#   SCK_BUNDLES__MAX_CONCURRENT_COMPILES=16 to leave only the decompression budget in front.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCK=${SCK:-"$ROOT/target/release/sck"}
[ -x "$SCK" ] || cargo build --release --bin sck
. "$ROOT/scripts/lib/sck-server.sh"
start_sck "$@"
python3 - "$URL" "$ADMIN" "$SERVER" <<'PY'
import base64, collections, gzip, io, json, sys, tarfile, threading, time, urllib.request, urllib.error

url, admin, pid = sys.argv[1], sys.argv[2], sys.argv[3]
size = 256 * 1024 * 1024 - 64 * 1024  # tar headers and padding stay under the limit
data = b"{}" + b" " * (size - 2)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for name, content in [("pad/data.json", data), ("pad/p.rego", b"package pad\n\nallow if input.ok\n")]:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
payload = base64.b64encode(gzip.compress(raw.getvalue(), 9)).decode()
del data, raw

def peak_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

answers = collections.Counter()
def compile_one(i):
    body = json.dumps({"organizationId": "default", "name": "pad", "version": f"1.0.{i}",
                       "tarball": payload}).encode()
    request = urllib.request.Request(f"{url}/api/v1/enforcement/bundles/compile", data=body,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {admin}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            answers[(r.status, "created")] += 1
    except urllib.error.HTTPError as e:
        answers[(e.code, json.loads(e.read() or b"{}").get("code", "-"))] += 1

health = []
done = threading.Event()
def probe_health():
    while not done.is_set():
        started = time.monotonic()
        urllib.request.urlopen(f"{url}/health", timeout=60).read()
        health.append(time.monotonic() - started)
        time.sleep(0.05)

print(f"upload: {len(payload)} bytes of base64, inflating to {size} bytes")
print(f"peak RSS before: {peak_kib()} KiB")
prober = threading.Thread(target=probe_health)
prober.start()
threads = [threading.Thread(target=compile_one, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
done.set(); prober.join()
for (status, code), n in sorted(answers.items()):
    print(f"  {n:2d} x {status} {code}")
print(f"peak RSS after 16 concurrent uploads: {peak_kib()} KiB")
print(f"slowest /health meanwhile: {max(health) * 1000:.0f} ms over {len(health)} probes")
PY
