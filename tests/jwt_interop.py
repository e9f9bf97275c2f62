#!/usr/bin/env python3
"""Verifies an sck gateway token with PyJWT, an independent JWT library, against the served JWKS.

usage: jwt_interop.py JWKS_URL TOKEN ISSUER AUDIENCE
Prints {"kid": ..., "claims": {...}} and exits 0 when the token verifies (EdDSA, typ at+jwt,
iss, aud, exp/nbf checked by PyJWT); exits 1 with the reason otherwise.
"""
import json
import sys
import urllib.request

import jwt


def main() -> int:
    jwks_url, token, issuer, audience = sys.argv[1:5]
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        print(f"wrong typ: {header.get('typ')!r}", file=sys.stderr)
        return 1
    with urllib.request.urlopen(jwks_url) as response:
        jwks = jwt.PyJWKSet.from_dict(json.load(response))
    matches = [key for key in jwks.keys if key.key_id == header.get("kid")]
    if not matches:
        print(f"kid {header.get('kid')!r} not in the JWKS", file=sys.stderr)
        return 1
    try:
        claims = jwt.decode(
            token,
            matches[0].key,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
        )
    except jwt.PyJWTError as error:
        print(f"PyJWT refused the token: {error!r}", file=sys.stderr)
        return 1
    print(json.dumps({"kid": header["kid"], "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
