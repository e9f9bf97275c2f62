#!/usr/bin/env bash
# Sign one HTTP call with X-SCK using openssl and send it with curl.
#
#   examples/sign_request.sh URL ANS_ID ORG BODY_FILE
#
# Key: SCK_XSCK_SECRET=<HMAC secret from `sck identity create`>   (hmac-sha256), or
#      SCK_XSCK_ED25519_KEY=<PEM private key file>                  (ed25519, OpenSSL 3).
# SCK_PUBLIC_URL: the gateway's configured public_url when it differs from URL (its host[:port]
# is the signed authority). METHOD (default POST), SCK_XSCK_KEY_ID (optional).
# Prints the answer; exits non-zero unless it is 2xx.
set -euo pipefail
URL=$1 ANS_ID=$2 ORG=$3 BODY_FILE=$4
METHOD=${METHOD:-POST}
authority() { local r=${1#*://}; r=${r%%/*}; r=${r%%\?*}; r=${r##*@}; printf '%s' "$r" | tr 'A-Z' 'a-z'; }
AUTHORITY=$(authority "${SCK_PUBLIC_URL:-$URL}")
REST=${URL#*://}
if [[ $REST == */* ]]; then TARGET=/${REST#*/}; else TARGET=/; fi
TARGET=${TARGET%%#*}
PATH_PART=${TARGET%%\?*}
if [[ $TARGET == *\?* ]]; then QUERY=${TARGET#*\?}; else QUERY=; fi
TIMESTAMP=$(date +%s)
NONCE=$(openssl rand -hex 16)
BODY_SHA=$(openssl dgst -sha256 -r "$BODY_FILE" | cut -d' ' -f1)
if [[ -n ${SCK_XSCK_ED25519_KEY:-} ]]; then LABEL=SCK-ED25519-V1; else LABEL=SCK-HMAC-SHA256-V1; fi
MSG=$(mktemp); trap 'rm -f "$MSG"' EXIT
printf '%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s' "$LABEL" "${METHOD^^}" "$AUTHORITY" "$PATH_PART" \
  "$QUERY" "$TIMESTAMP" "$NONCE" "$ANS_ID" "$ORG" "$BODY_SHA" > "$MSG"
if [[ -n ${SCK_XSCK_ED25519_KEY:-} ]]; then
  SIG="ed25519=$(openssl pkeyutl -sign -inkey "$SCK_XSCK_ED25519_KEY" -rawin -in "$MSG" | openssl base64 -A)"
else
  SIG="hmac-sha256=$(openssl dgst -sha256 -mac HMAC -macopt "key:$SCK_XSCK_SECRET" -r "$MSG" | cut -d' ' -f1)"
fi
KEY_ID_HEADER=()
[[ -n ${SCK_XSCK_KEY_ID:-} ]] && KEY_ID_HEADER=(-H "X-SCK-Key-Id: $SCK_XSCK_KEY_ID")
curl -sS --fail-with-body -X "$METHOD" "$URL" --data-binary "@$BODY_FILE" \
  -H 'Content-Type: application/json' \
  -H "X-SCK-Signature: $SIG" -H "X-SCK-Timestamp: $TIMESTAMP" -H "X-SCK-Nonce: $NONCE" \
  -H "X-SCK-ANS-ID: $ANS_ID" -H "X-SCK-Organization: $ORG" "${KEY_ID_HEADER[@]}"
echo
