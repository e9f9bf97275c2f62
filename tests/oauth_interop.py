#!/usr/bin/env python3
"""A standard OAuth 2 client against sck: Authlib (pinned by tests/oauth_e2e.rs) discovers the
token endpoint from the RFC 8414 metadata at ISSUER_URL, validates that metadata, obtains a
token by client_credentials with client_secret_basic, and PyJWT verifies it against the JWKS
the metadata names.

usage: oauth_interop.py ISSUER_URL CLIENT_ID CLIENT_SECRET SCOPE AUDIENCE
Prints {"metadata": ..., "token": {...}, "claims": {...}} and exits 0; exits 1 with the reason.
"""
import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata


def verified_claims(metadata, access_token, audience):
    """The claims of `access_token` once PyJWT has verified it against the metadata's JWKS."""
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(access_token)
    return jwt.decode(
        access_token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


def main() -> int:
    issuer_url, client_id, client_secret, scope, audience = sys.argv[1:6]
    answer = requests.get(f"{issuer_url}/.well-known/oauth-authorization-server", timeout=10)
    answer.raise_for_status()
    metadata = AuthorizationServerMetadata(answer.json())
    # Every RFC 8414 check Authlib has but one: sck has no authorization endpoint, so it
    # supports no response type, and Authlib insists on at least one. (Plain http on loopback
    # is allowed by AUTHLIB_INSECURE_TRANSPORT, which the test sets.)
    for key in metadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()
    session = OAuth2Session(
        client_id,
        client_secret,
        scope=scope,
        token_endpoint_auth_method="client_secret_basic",
    )
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    claims = verified_claims(metadata, token["access_token"], audience)
    print(json.dumps({"metadata": dict(metadata), "token": dict(token), "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
