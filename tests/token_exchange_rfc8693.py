#!/usr/bin/env python3
"""An RFC 8693 token exchange made with plain `requests` (pinned by tests/token_exchange_e2e.rs)
exactly as the RFC's §2.3 example makes it: a form-encoded POST to the token endpoint with HTTP
Basic client authentication, grant_type token-exchange, a resource, and the subject token as an
access token. The §2.2.1 response is checked member by member, and PyJWT verifies the issued
token against the JWKS of the RFC 8414 metadata and reads its `act` claim (§4.1).

The endpoints are the metadata's paths on BASE_URL (a test replica announces the deployment's
public URL, not its own port).

usage: token_exchange_rfc8693.py BASE_URL CLIENT_ID CLIENT_SECRET SUBJECT_TOKEN RESOURCE
Prints {"response": ..., "claims": ...} and exits 0; exits 1 with the reason.
"""
import json
import sys
from urllib.parse import urlsplit

import jwt
import requests


def main() -> int:
    base_url, client_id, client_secret, subject_token, resource = sys.argv[1:6]
    metadata = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=10)
    metadata.raise_for_status()
    metadata = metadata.json()
    grant_type = "urn:ietf:params:oauth:grant-type:token-exchange"
    if grant_type not in metadata["grant_types_supported"]:
        print(f"token exchange is not in grant_types_supported: {metadata}", file=sys.stderr)
        return 1
    def endpoint(member: str) -> str:
        return base_url + urlsplit(metadata[member]).path

    answer = requests.post(
        endpoint("token_endpoint"),
        auth=(client_id, client_secret),
        data={
            "grant_type": grant_type,
            "resource": resource,
            "subject_token": subject_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        },
        timeout=10,
    )
    if answer.status_code != 200:
        print(f"exchange refused: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    if answer.headers.get("Cache-Control") != "no-store":
        print("the token response may be cached (RFC 6749 §5.1)", file=sys.stderr)
        return 1
    response = answer.json()
    expected = {
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
    }
    for member, value in expected.items():
        if response.get(member) != value:
            print(f"{member} is {response.get(member)!r}, not {value!r}", file=sys.stderr)
            return 1
    if not isinstance(response.get("expires_in"), int) or response["expires_in"] < 1:
        print(f"expires_in is missing or not positive: {response}", file=sys.stderr)
        return 1
    access_token = response["access_token"]
    signing_key = jwt.PyJWKClient(endpoint("jwks_uri")).get_signing_key_from_jwt(access_token)
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience=resource,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    if "act" not in claims:
        print(f"the delegated token has no act claim: {claims}", file=sys.stderr)
        return 1
    print(json.dumps({"response": response, "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
