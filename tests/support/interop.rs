//! What the interop targets share on sck's side: `sck opa-config` as a sidecar's only
//! configuration, an OPA sidecar started on it, the decisions it makes and how the ledger and
//! the fleet view record them, and throw-away signing keys made with openssl (no private key
//! is committed). Bundle releases are [`super::release`].

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::Server;
use super::{cli, ledger, release, sidecar};

/// The decision ids of `decision.sidecar` entries in `org`'s ledger, with how often each
/// occurs.
pub fn ledgered_decisions(database_url: &str, dir: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in ledger::exported_entries(database_url, "default", dir) {
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
    cli::succeeded(server.cli(&all))
}

/// `sck opa-config` for a sidecar with `server`'s first-start sidecar token that reaches sck at
/// `service_url` (a relay, another replica), plus `flags` (`--status`, `--decision-logs`).
pub fn sidecar_config(server: &Server, service_url: &str, flags: &[&str]) -> String {
    let mut args = vec![
        "--sidecar-token",
        server.sidecar(),
        "--service-url",
        service_url,
    ];
    args.extend_from_slice(flags);
    opa_config(server, &args)
}

/// Starts OPA on `config` in `dir` and waits until it has activated org `default`'s active
/// `gateway` (as the server at `url` reports it with admin key `key`).
pub fn start_sidecar(dir: &Path, config: &str, url: &str, key: &str) -> super::opa::OpaServer {
    let started = Instant::now();
    let opa = super::opa::OpaServer::configured(dir, config, &[]);
    let active = release::active(url, key, "default");
    opa.wait_for_activation(&active.sha256, started, Duration::from_secs(40));
    opa
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
        let view = sidecar::fleet(url, key, "default");
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
    cli::run_ok(Command::new("openssl").args(args));
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
