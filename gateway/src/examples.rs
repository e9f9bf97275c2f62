//! The copy-paste examples `sck serve --examples` prints at start (what `make run` shows).

/// One curl (or sck) example per endpoint, for a server at `url`.
pub fn print(url: &str, org: &str, bundle: &str) {
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
"#
    );
}
