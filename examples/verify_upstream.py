#!/usr/bin/env python3
"""An upstream service that accepts only calls forwarded by an sck gateway.

sck signs every request it forwards on an `mcp` or `http` route with X-SCK
(`SCK-ED25519-V1`) as its own identity. This server verifies that signature from the spec
alone (../../shared/spec/gateway.md, "Upstream signatures (X-SCK)"; no sck code), with the
gateway's public key pinned at start, and answers:

    200 {"verified": true, "ans_id": ..., "organization": ..., "method": ..., "path": ...}
    401 {"verified": false, "error": "<which check failed>"}

The checks, cheapest first: each X-SCK header exactly once; the timestamp within 300 s of
now; the ANS ID the pinned one; the Ed25519 signature over the ten-line string (the
authority is this server's host:port as the request's Host names it); then the nonce, once
per 600 s.

Get the gateway's key from `GET /api/v1/enforcement/gateway/signer` (admin key):

    examples/verify_upstream.py --port 9000 \
        --public-key "$(curl -s -H "Authorization: Bearer $ADMIN" \
            http://127.0.0.1:8080/api/v1/enforcement/gateway/signer | jq -r .publicKey)" \
        --ans-id "ans://gateway.example"

Needs the `cryptography` package (Ed25519); everything else is the standard library.
"""
import argparse
import base64
import calendar
import hashlib
import http.server
import json
import sys
import threading
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SKEW_SECONDS = 300
NONCE_SECONDS = 600
HEADERS = ["x-sck-signature", "x-sck-timestamp", "x-sck-ans-id", "x-sck-organization",
           "x-sck-nonce"]


class Refused(Exception):
    """A check that failed; its text is the answer's `error`."""


def unix_seconds(timestamp):
    if timestamp.isdigit():
        return int(timestamp)
    try:
        return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError as e:
        raise Refused("x-sck-timestamp is neither unix seconds nor RFC 3339 UTC") from e


class Verifier:
    def __init__(self, public_key, ans_id):
        self.key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        self.ans_id = ans_id
        self.nonces = {}
        self.lock = threading.Lock()

    def verify(self, method, target, headers, body):
        values = {}
        for name in HEADERS:
            got = headers.get_all(name) or []
            if len(got) != 1:
                raise Refused(f"{name} must be sent exactly once")
            values[name] = got[0]
        hosts = headers.get_all("host") or []
        if len(hosts) != 1:
            raise Refused("host must be sent exactly once")
        if abs(time.time() - unix_seconds(values["x-sck-timestamp"])) > SKEW_SECONDS:
            raise Refused("timestamp outside the allowed skew")
        if values["x-sck-ans-id"] != self.ans_id:
            raise Refused("not the pinned gateway identity")
        scheme, _, signature = values["x-sck-signature"].partition("=")
        if scheme != "ed25519":
            raise Refused("not an ed25519 signature")
        path, _, query = target.partition("?")
        message = "\n".join([
            "SCK-ED25519-V1",
            method.upper(),
            hosts[0].lower(),
            path or "/",
            query,
            values["x-sck-timestamp"],
            values["x-sck-nonce"],
            values["x-sck-ans-id"],
            values["x-sck-organization"],
            hashlib.sha256(body).hexdigest(),
        ])
        try:
            self.key.verify(base64.b64decode(signature, validate=True), message.encode())
        except (InvalidSignature, ValueError) as e:
            raise Refused("signature does not verify") from e
        with self.lock:
            now = time.time()
            self.nonces = {n: t for n, t in self.nonces.items() if now - t < NONCE_SECONDS}
            if values["x-sck-nonce"] in self.nonces:
                raise Refused("nonce replayed")
            self.nonces[values["x-sck-nonce"]] = now
        return values


def handler_for(verifier):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, document):
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                values = verifier.verify(self.command, self.path, self.headers, body)
            except Refused as e:
                self.answer(401, {"verified": False, "error": str(e)})
                return
            self.answer(200, {
                "verified": True,
                "ans_id": values["x-sck-ans-id"],
                "organization": values["x-sck-organization"],
                "method": self.command,
                "path": urllib.parse.urlsplit(self.path).path,
            })

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--public-key", required=True,
                        help="the gateway's Ed25519 public key, base64 (its publicKey)")
    parser.add_argument("--ans-id", required=True, help="the gateway's ANS ID (its ansId)")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler_for(Verifier(args.public_key, args.ans_id)))
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
