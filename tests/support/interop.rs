//! What the interop targets share on sck's side: the bundle lifecycle driven through the REST
//! API as an operator drives it, `sck opa-config` as a sidecar's only configuration, the fleet
//! view, and throw-away signing keys made with openssl (no private key is committed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{get, post_json, Server};

pub const API: &str = "/api/v1/enforcement";

fn ok(reply: super::Reply, status: u16, what: &str) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// A version made active by [`release`] (or [`activate`]).
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

/// Compiles `files` into a draft of bundle `gateway`; returns its id.
pub fn compile(url: &str, key: &str, org: &str, version: &str, files: Value) -> String {
    let answer = ok(
        post_json(
            &format!("{url}{API}/bundles/compile"),
            Some(key),
            &json!({"organizationId": org, "name": "gateway", "version": version, "files": files}),
        ),
        201,
        "compile",
    );
    answer["id"].as_str().unwrap().to_owned()
}

/// Publishes draft `id`, signed by `signer` (the default signer when `None`).
pub fn publish(url: &str, key: &str, id: &str, signer: Option<&str>) {
    let mut body = json!({"bundleId": id});
    if let Some(signer) = signer {
        body["signerId"] = json!(signer);
    }
    ok(
        post_json(&format!("{url}{API}/bundles/publish"), Some(key), &body),
        200,
        "publish",
    );
}

/// Activates published version `id` (a downgrade needs `rollback`).
pub fn activate(url: &str, key: &str, id: &str, rollback: bool) -> Active {
    let answer = ok(
        post_json(
            &format!("{url}{API}/bundles/activate"),
            Some(key),
            &json!({"bundleId": id, "rollback": rollback}),
        ),
        200,
        "activate",
    );
    Active::from_record(&answer["bundle"])
}

/// Revokes `id` with the given extra fields (`rollbackTo` or `allowNoActive`); returns the
/// version activated in its place, if any.
pub fn revoke(url: &str, key: &str, id: &str, extra: Value) -> Option<Active> {
    let mut body = json!({"bundleId": id, "reason": "interop test"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let answer = ok(
        post_json(&format!("{url}{API}/bundles/revoke"), Some(key), &body),
        200,
        "revoke",
    );
    answer
        .get("rolledBackTo")
        .filter(|r| !r.is_null())
        .map(Active::from_record)
}

/// compile (`policies/`) → publish (by `signer`), for org `default`; returns the bundle id.
pub fn published(url: &str, key: &str, version: &str, signer: Option<&str>) -> String {
    let id = compile(
        url,
        key,
        "default",
        version,
        Value::Object(super::policy_files()),
    );
    publish(url, key, &id, signer);
    id
}

/// [`published`], then activated.
pub fn release(url: &str, key: &str, version: &str, signer: Option<&str>) -> Active {
    activate(url, key, &published(url, key, version, signer), false)
}

/// The active version of org `default`'s bundle `gateway`.
pub fn active(url: &str, key: &str) -> Active {
    let list = ok(
        get(
            &format!("{url}{API}/bundles?organizationId=default&name=gateway&status=ACTIVE"),
            &[("Authorization", &format!("Bearer {key}"))],
        ),
        200,
        "list",
    );
    Active::from_record(&list["bundles"][0])
}

/// The decision ids of `decision.sidecar` entries in `org`'s ledger, with how often each
/// occurs.
pub fn ledgered_decisions(database_url: &str, dir: &Path) -> BTreeMap<String, usize> {
    let export = super::export_ledger(database_url, "default", dir);
    let mut counts = BTreeMap::new();
    for entry in super::export_entries(&export) {
        if entry["type"] == "decision.sidecar" {
            let id = entry["body"]["decision_id"].as_str().unwrap().to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// Asks OPA for `count` decisions; returns their decision ids.
pub fn decide(opa: &super::opa::OpaServer, count: usize, tag: &str) -> Vec<String> {
    (0..count)
        .map(|i| {
            let answer = opa
                .data(
                    "sck/gateway/decision",
                    &json!({"action": "tools.invoke", "resource": {"org": "default", "tool": format!("{tag}-{i}")}}),
                )
                .json();
            assert_eq!(answer["result"]["allow"], false);
            answer["decision_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// What `sck opa-config --org default --bundle gateway <args>` prints, asked of `server`.
pub fn opa_config(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["opa-config", "--org", "default", "--bundle", "gateway"];
    all.extend_from_slice(args);
    let out = server.cli(&all);
    assert!(
        out.status.success(),
        "sck opa-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sck opa-config` for a sidecar with `server`'s first-start sidecar token that reaches sck at
/// `service_url` (a relay, another replica), plus `flags` (`--status`, `--decision-logs`).
pub fn sidecar_config(server: &Server, service_url: &str, flags: &[&str]) -> String {
    let token = server
        .sidecar_token
        .clone()
        .expect("first start printed a sidecar token");
    let mut args = vec!["--sidecar-token", &token, "--service-url", service_url];
    args.extend_from_slice(flags);
    opa_config(server, &args)
}

/// Starts OPA on `config` in `dir` and waits until it has activated org `default`'s active
/// `gateway` (as the server at `url` reports it with admin key `key`).
pub fn start_sidecar(dir: &Path, config: &str, url: &str, key: &str) -> super::opa::OpaServer {
    let started = Instant::now();
    let opa = super::opa::OpaServer::configured(dir, config, &[]);
    opa.wait_for_activation(&active(url, key).sha256, started, Duration::from_secs(40));
    opa
}

/// The fleet view of org `default`.
pub fn fleet(url: &str, key: &str) -> Value {
    ok(
        get(
            &format!("{url}{API}/fleet?org=default"),
            &[("Authorization", &format!("Bearer {key}"))],
        ),
        200,
        "fleet",
    )
}

/// Polls the fleet view until `done` holds for it, or panics after `within`.
pub fn wait_for_fleet(
    url: &str,
    key: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let view = fleet(url, key);
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "fleet view never matched: {view:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one sidecar of a fleet view's bundle `gateway`: (drift, reported revision, in sync).
pub fn sidecar_state(view: &Value) -> Option<(bool, Option<String>, bool)> {
    let [sidecar] = view["sidecars"].as_array()?.as_slice() else {
        return None;
    };
    let bundle = sidecar["bundles"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == "gateway")?;
    Some((
        sidecar["drift"].as_bool()?,
        bundle["activeRevision"].as_str().map(str::to_owned),
        bundle["inSync"].as_bool()?,
    ))
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The signing key kinds OPA and sck share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Es256,
    Rs256,
    Hs256,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Es256, KeyKind::Rs256, KeyKind::Hs256];

    pub fn alg(self) -> &'static str {
        match self {
            KeyKind::Es256 => "ES256",
            KeyKind::Rs256 => "RS256",
            KeyKind::Hs256 => "HS256",
        }
    }
}

/// A fresh key of `kind` at `private` (PKCS#8 PEM, or for HS256 a one-line secret without a
/// newline); returns the verification material's path: the SPKI public key next to it as
/// `<stem>.pub` (which a signers directory ignores), or the secret file itself.
pub fn generate_key(kind: KeyKind, private: &Path) -> std::path::PathBuf {
    let out = private.display().to_string();
    match kind {
        KeyKind::Es256 => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &out,
        ]),
        KeyKind::Rs256 => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &out,
        ]),
        KeyKind::Hs256 => {
            let secret: [u8; 32] = rand::random();
            std::fs::write(private, hex::encode(secret)).unwrap();
            return private.to_path_buf();
        }
    }
    let public = private.with_extension("pub");
    openssl(&[
        "pkey",
        "-in",
        &out,
        "-pubout",
        "-out",
        &public.display().to_string(),
    ]);
    public
}
