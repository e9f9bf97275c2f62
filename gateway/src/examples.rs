//! The copy-paste examples `sck serve --examples` prints at start (what `make run` shows): one
//! group per part (health, bundles, orgs, bundle service, tokens, decisions, X-SCK, ledger),
//! each with the server's real URL.

/// One curl (or sck) example per endpoint, for a server at `url`.
/// `public_url` is the configured authority X-SCK signatures are checked against.
pub fn print(url: &str, public_url: &str, org: &str, bundle: &str) {
    let api = format!("{url}/api/v1/enforcement");
    println!(
        r#"
== try it (set ADMIN and SIDECAR to the secrets printed at first start) ==
# liveness, readiness, Prometheus metrics, bundle signers (public keys)
curl -s {url}/health
curl -s {url}/ready
curl -s {url}/metrics | head
curl -s {api}/signers
# the bundle lifecycle (admin key)
curl -s -H "Authorization: Bearer $ADMIN" "{api}/bundles?organizationId={org}"
curl -s -H "Authorization: Bearer $ADMIN" {api}/bundles/<bundleId>
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/bundles/compile \
  -d '{{"organizationId":"{org}","name":"{bundle}","version":"1.1.0","files":{{"sck/gateway/extra.rego":"package sck.gateway.extra\nx := 1\n"}}}}'
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/bundles/publish -d '{{"bundleId":"<bundleId>"}}'
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/bundles/activate -d '{{"bundleId":"<bundleId>"}}'
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/bundles/revoke \
  -d '{{"bundleId":"<bundleId>","reason":"why","rollbackTo":"<olderBundleId>"}}'
sck bundle compile policies --org {org} --name {bundle} --version 1.2.0 --server {url} --admin-key "$ADMIN"
# orgs and credentials (root key creates orgs; an org's admin key creates its own credentials)
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/orgs -d '{{"organizationId":"org-2"}}'
curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' {api}/credentials -d '{{"organizationId":"org-2","kind":"sidecar"}}'
# the bundle service, as an OPA sidecar polls it (200 with ETag, then 304; long poll with Prefer)
curl -s -D - -o bundle.tar.gz -H "Authorization: Bearer $SIDECAR" {url}/bundles/{org}/{bundle}.tar.gz
curl -s -o /dev/null -w '%{{http_code}}\n' -H "Authorization: Bearer $SIDECAR" -H "If-None-Match: \"$(sha256sum bundle.tar.gz | cut -c1-64)\"" {url}/bundles/{org}/{bundle}.tar.gz
curl -s -o /dev/null -w '%{{http_code}}\n' -H "Authorization: Bearer $SIDECAR" -H "If-None-Match: \"$(sha256sum bundle.tar.gz | cut -c1-64)\"" -H 'Prefer: modes=snapshot,delta;wait=10' {url}/bundles/{org}/{bundle}.tar.gz
curl -s -o old.tar.gz -H "Authorization: Bearer $SIDECAR" {url}/bundles/{org}/sha256/<sha256>.tar.gz
# an OPA sidecar configuration for this server
sck opa-config --org {org} --bundle {bundle} --server {url}
# gateway tokens (admin key): an issuer, a token, its introspection, its revocation
export SCK_SERVER={url} SCK_ADMIN_KEY="$ADMIN"
ISSUER=$(sck issuer create --org {org} --name demo --loa-ceiling 3 --scope mcp:invoke | jq -r .id)
TOKEN=$(sck token issue --org {org} --issuer "$ISSUER" --artifact-id agent-1 --artifact-type agent --loa 3 --scope mcp:invoke --token-only)
sck token introspect "$TOKEN"
# decisions with the token (sck decide exits 0 on allow, 3 on deny; the answer carries the ledger receipt)
sck decide --token "$TOKEN" --action tools.invoke --resource '{{"org":"{org}","tool":"search.web"}}'
curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' {api}/decide \
  -d '{{"action":"tools.invoke","resource":{{"org":"{org}","tool":"search.web"}}}}'
curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/data/sck/gateway/decision \
  -d '{{"input":{{"action":"tools.invoke","resource":{{"org":"{org}","tool":"search.web"}}}}}}'
sck token revoke "$TOKEN"                     # or: sck token revoke --token-id <jti> --org {org}
# X-SCK signed upstream calls: pin an ANS ID (its HMAC secret is shown once), sign a call, send it
SECRET=$(sck identity create --org {org} --ans-id ans://v1.0.0.demo.example.com | jq -r .key.secret)
printf '{{"action":"tools.list","resource":{{"org":"{org}"}}}}' > body.json
sck sign-request --url {api}/verify --public-url {public_url} --body-file body.json --ans-id ans://v1.0.0.demo.example.com --org {org} --key "$SECRET" > xsck.headers
curl -s -H @xsck.headers -H 'Content-Type: application/json' --data-binary @body.json {api}/verify   # the caller verified, then the policy decides
# the ledger (admin key): export, verify offline with the key the server publishes, follow new entries
curl -s -H "Authorization: Bearer $ADMIN" -o {org}.ledger {url}/api/v1/ledger/{org}/export
sck ledger verify {org}.ledger --key "$(curl -s -H "Authorization: Bearer $ADMIN" {url}/api/v1/ledger/{org}/keys | jq -r '.keys[0].verifier')"
sck ledger tail --org {org} --follow           # one JSON entry per line; Ctrl-C stops
"#
    );
}
