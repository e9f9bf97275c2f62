//! Bundle releases as an operator makes them over the lifecycle API: compile a [`Source`] (a
//! policy tree's files or a tarball) into a draft, publish it (signed by the default or a named
//! signer), activate it (a downgrade only as a rollback), revoke it. [`release`] is the whole
//! path for the common case, bundle `gateway` from `policies/`. Each step must succeed; a test
//! that expects a refusal sends [`compile_request`] (or its own body) itself.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::http::{get_as, post_json, Reply, API};
use super::repo;

/// What a compile request compiles.
pub enum Source {
    /// A file map (path → text), as the `files` field takes it.
    Files(Value),
    /// A bundle tarball's bytes (sent base64 in the `tarball` field).
    Tarball(Vec<u8>),
}

impl Source {
    /// The default policy tree, `policies/`.
    pub fn policies() -> Source {
        Source::Files(Value::Object(policy_files()))
    }
}

impl From<Map<String, Value>> for Source {
    fn from(files: Map<String, Value>) -> Source {
        Source::Files(Value::Object(files))
    }
}

/// The policy tree in `dir` as a compile request's file map.
pub fn files(dir: &Path) -> Map<String, Value> {
    let tree = sck_bundler::SourceTree::from_dir(dir).unwrap();
    tree.files()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(String::from_utf8(v.to_vec()).unwrap()),
            )
        })
        .collect()
}

/// The default policy tree as a compile request's file map.
pub fn policy_files() -> Map<String, Value> {
    files(&repo().join("policies"))
}

/// A bundle tarball of `files` (name → bytes), as `sck bundle build` writes one unsigned.
pub fn tarball(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let files: Vec<_> = files
        .iter()
        .map(|(name, bytes)| sck_bundler::BundleFile::new(*name, bytes.clone()))
        .collect();
    sck_bundler::tarball::write_tarball(&files).unwrap()
}

/// The body of a compile request for `org`'s bundle `name` at `version`.
pub fn compile_request(org: &str, name: &str, version: &str, source: &Source) -> Value {
    let mut body = json!({"organizationId": org, "name": name, "version": version});
    match source {
        Source::Files(files) => body["files"] = files.clone(),
        Source::Tarball(bytes) => {
            body["tarball"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
    body
}

/// `POST /bundles/compile` with `request`, answered.
pub fn compile(url: &str, key: &str, request: &Value) -> Reply {
    post_json(&format!("{url}{API}/bundles/compile"), Some(key), request)
}

/// `POST /bundles/compile` of `policies/` as `org`'s bundle `gateway` at `version`, answered.
pub fn compile_policies(url: &str, key: &str, org: &str, version: &str) -> Reply {
    compile(
        url,
        key,
        &compile_request(org, "gateway", version, &Source::policies()),
    )
}

/// Compiles `request` into a draft; its id.
pub fn compiled(url: &str, key: &str, request: &Value) -> String {
    compile(url, key, request).expect(201)["id"]
        .as_str()
        .expect("a bundle id")
        .to_owned()
}

/// Publishes draft `id`, signed by `signer` (the default signer when `None`); the published
/// version's record.
pub fn publish(url: &str, key: &str, id: &str, signer: Option<&str>) -> Value {
    let mut body = json!({"bundleId": id});
    if let Some(signer) = signer {
        body["signerId"] = json!(signer);
    }
    let record = post_json(&format!("{url}{API}/bundles/publish"), Some(key), &body).expect(200);
    assert_eq!(record["status"], "PUBLISHED", "{record}");
    record
}

/// A version made active by [`activate`] (or [`release`]).
#[derive(Debug, Clone)]
pub struct Active {
    pub id: String,
    pub version: String,
    pub revision: String,
    /// The tarball's SHA-256: the ETag sck serves and OPA logs on activation.
    pub sha256: String,
}

impl Active {
    fn from_record(record: &Value) -> Active {
        let field = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
        Active {
            id: field("id"),
            version: field("version"),
            revision: field("revision"),
            sha256: field("sha256"),
        }
    }
}

/// Activates published version `id` (a downgrade needs `rollback`).
pub fn activate(url: &str, key: &str, id: &str, rollback: bool) -> Active {
    let answer = post_json(
        &format!("{url}{API}/bundles/activate"),
        Some(key),
        &json!({"bundleId": id, "rollback": rollback}),
    )
    .expect(200);
    Active::from_record(&answer["bundle"])
}

/// Revokes with `request` (`bundleId`, `reason` and `rollbackTo` or `allowNoActive`); the
/// version activated in its place, if any.
pub fn revoke(url: &str, key: &str, request: &Value) -> Option<Active> {
    let answer = post_json(&format!("{url}{API}/bundles/revoke"), Some(key), request).expect(200);
    answer
        .get("rolledBackTo")
        .filter(|r| !r.is_null())
        .map(Active::from_record)
}

/// compile (`policies/` as `org`'s bundle `gateway`) → publish (by `signer`); the bundle id.
pub fn published(url: &str, key: &str, org: &str, version: &str, signer: Option<&str>) -> String {
    let id = compiled(
        url,
        key,
        &compile_request(org, "gateway", version, &Source::policies()),
    );
    publish(url, key, &id, signer);
    id
}

/// compile → publish → activate `policies/` as `org`'s bundle `gateway` at `version`.
pub fn release(url: &str, key: &str, org: &str, version: &str) -> Active {
    activate(url, key, &published(url, key, org, version, None), false)
}

/// compile → publish → activate `source` as `org`'s bundle `gateway` at `version`.
pub fn release_source(url: &str, key: &str, org: &str, version: &str, source: &Source) -> Active {
    let id = compiled(url, key, &compile_request(org, "gateway", version, source));
    publish(url, key, &id, None);
    activate(url, key, &id, false)
}

/// The active version of `org`'s bundle `gateway`.
pub fn active(url: &str, key: &str, org: &str) -> Active {
    let list = get_as(
        &format!("{url}{API}/bundles?organizationId={org}&name=gateway&status=ACTIVE"),
        key,
    )
    .expect(200);
    Active::from_record(&list["bundles"][0])
}
