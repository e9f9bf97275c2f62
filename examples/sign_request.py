#!/usr/bin/env python3
"""Sign one HTTP call with X-SCK (HMAC-SHA256) and send it to a running sck gateway.

Python standard library only. The string to sign is the spec's ten lines (see
../../shared/spec/gateway.md, "Upstream signatures (X-SCK)"):

    SCK-HMAC-SHA256-V1 / METHOD / authority / path / raw query / timestamp / nonce /
    ANS ID / organization / hex SHA-256 of the body

The authority is the gateway's configured public host[:port] (its `public_url`); pass
--public-url when it differs from the URL you connect to (proxies, tests).

Example:
    examples/sign_request.py --url http://127.0.0.1:8080/api/v1/enforcement/verify \
        --ans-id ans://v1.0.0.agent.example.com --org org-acme --secret "$SECRET" \
        --body '{"action":"bundles.evaluate","resource":{"org":"org-acme"}}'
Exit status 0 on a 2xx answer, 1 otherwise; the answer is printed on stdout.
"""
import argparse
import base64
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def authority_of(url):
    """host[:port] of a URL as written, lowercase, without userinfo."""
    netloc = urllib.parse.urlsplit(url).netloc
    return netloc.rsplit("@", 1)[-1].lower()


def raw_path_and_query(url):
    """Path and raw query exactly as written in the URL ("/" if the path is empty)."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    target = rest[slash:] if slash >= 0 else ""
    target = target.split("#", 1)[0]
    path, _, query = target.partition("?")
    return path or "/", query


def string_to_sign(method, authority, path, query, timestamp, nonce, ans_id, org, body):
    return "\n".join([
        "SCK-HMAC-SHA256-V1",
        method.upper(),
        authority.lower(),
        path,
        query,
        timestamp,
        nonce,
        ans_id,
        org,
        hashlib.sha256(body).hexdigest(),
    ])


def sign(secret, method, url, body, ans_id, org, public_url=None, timestamp=None,
         nonce=None, key_id=None):
    """The X-SCK headers (a dict) for one request."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    path, query = raw_path_and_query(url)
    message = string_to_sign(method, authority_of(public_url or url), path, query,
                             timestamp, nonce, ans_id, org, body)
    tag = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    headers = {
        "X-SCK-Signature": "hmac-sha256=" + tag,
        "X-SCK-Timestamp": timestamp,
        "X-SCK-Nonce": nonce,
        "X-SCK-ANS-ID": ans_id,
        "X-SCK-Organization": org,
    }
    if key_id:
        headers["X-SCK-Key-Id"] = key_id
    return headers


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--public-url", help="the gateway's configured public_url, if not --url")
    p.add_argument("--method", default="POST")
    p.add_argument("--ans-id", required=True)
    p.add_argument("--org", required=True)
    p.add_argument("--secret", help="HMAC secret (or env SCK_XSCK_SECRET)")
    p.add_argument("--key-id")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body", help="body text")
    body.add_argument("--body-file", help="file with the exact body bytes")
    p.add_argument("--print-headers", action="store_true", help="print headers, do not send")
    a = p.parse_args()
    secret = a.secret or os.environ.get("SCK_XSCK_SECRET")
    if not secret:
        p.error("--secret or SCK_XSCK_SECRET is required")
    if a.body_file:
        with open(a.body_file, "rb") as f:
            data = f.read()
    else:
        data = (a.body or "").encode()
    headers = sign(secret, a.method, a.url, data, a.ans_id, a.org, a.public_url,
                   key_id=a.key_id)
    if a.print_headers:
        for k, v in headers.items():
            print(f"{k}: {v}")
        return 0
    headers["Content-Type"] = "application/json"
    request = urllib.request.Request(a.url, data=data, method=a.method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as e:
        print(e.read().decode())
        print(f"HTTP {e.code}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
