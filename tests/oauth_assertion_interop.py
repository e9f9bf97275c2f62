#!/usr/bin/env python3
"""private_key_jwt (RFC 7523) with a standard OAuth 2 client against sck: for RS256 (Authlib's
default) and ES256, a key pair is generated with `cryptography`, its public half registered as
a PEM key of a new service account through sck's admin API, the token endpoint discovered from
the RFC 8414 metadata at ISSUER_URL (which must list private_key_jwt and the algorithm), a
token obtained by Authlib's PrivateKeyJWT client authentication, and verified by PyJWT against
the JWKS the metadata names.

usage: oauth_assertion_interop.py ISSUER_URL ADMIN_KEY SCOPE
Prints {"RS256": {"client_id", "token", "claims"}, "ES256": {...}} and exits 0; exits 1 with
the reason.
"""
import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey
from oauth_interop import verified_claims  # this directory: PyJWT against the JWKS

KEYS = {
    "RS256": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAKey),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), ECKey),
}


def pem(key, private):
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def register(issuer_url, admin_key, name, public_pem, scope):
    answer = requests.post(
        f"{issuer_url}/api/v1/enforcement/clients",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={
            "organizationId": "default",
            "name": name,
            "loaCeiling": 2,
            "scopes": [scope],
            "keys": [{"pem": public_pem}],
        },
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["client"]["clientId"]


def main() -> int:
    issuer_url, admin_key, scope = sys.argv[1:4]
    answer = requests.get(f"{issuer_url}/.well-known/oauth-authorization-server", timeout=10)
    answer.raise_for_status()
    metadata = answer.json()
    if "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]:
        raise SystemExit("metadata does not list private_key_jwt")
    token_endpoint = metadata["token_endpoint"]
    report = {}
    for alg, (generate, key_type) in KEYS.items():
        if alg not in metadata["token_endpoint_auth_signing_alg_values_supported"]:
            raise SystemExit(f"metadata does not list {alg}")
        private = generate()
        client_id = register(issuer_url, admin_key, f"authlib-{alg.lower()}", pem(private, False), scope)
        session = OAuth2Session(
            client_id,
            key_type.import_key(pem(private, True)),
            scope=scope,
            token_endpoint_auth_method="private_key_jwt",
        )
        # Authlib's assertions live an hour by default; sck accepts at most five minutes.
        session.register_client_auth_method(
            PrivateKeyJWT(token_endpoint, alg=alg, claims={"exp": int(time.time()) + 120})
        )
        token = session.fetch_token(token_endpoint, grant_type="client_credentials")
        claims = verified_claims(metadata, token["access_token"], "urn:sck:enforcement")
        report[alg] = {"client_id": client_id, "token": dict(token), "claims": claims}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
