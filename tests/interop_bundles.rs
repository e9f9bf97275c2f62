//! Interop case 3, bundles both ways, against a real OPA (`SCK_OPA`):
//!
//! - `opa build` bundles — signed ES256, RS256 and HS256, signed with a `scope` claim, rebuilt
//!   by `opa build --verification-key --scope --exclude-files-verify` with a file outside the
//!   signature, data-only, with `.manifest` roots — verify with `sck bundle verify` and compile
//!   on `sck serve`;
//! - bundles `sck bundle build` signs, and the ones the server publishes, load in
//!   `opa run --bundle --verification-key` and in an OPA polling for them;
//! - tampered variants (a changed, an added and a removed file; a wrong key) of both are refused
//!   by both, for the same reason.
//!
//! Keys are generated per run (tests/interop/fixtures/bundles/ holds only sources).

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{get, API};
use support::interop::{self, KeyKind};
use support::opa::{self, OpaServer};
use support::relay::HttpServer;
use support::release::{self, compile_request, Source};
use support::server::Server;
use support::{cli, repo, sidecar};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/interop/fixtures/bundles").join(name)
}

/// A signing key and what verifies it, as both CLIs take them.
struct Key {
    kind: KeyKind,
    /// `--signing-key`: a PEM file, or the HMAC secret itself.
    signing: String,
    /// `--verification-key`: a public key PEM file, or the HMAC secret itself.
    verification: String,
}

fn key(dir: &Path, kind: KeyKind, name: &str) -> Key {
    let private = dir.join(format!("{name}.pem"));
    let verification = interop::generate_key(kind, &private);
    let (signing, verification) = match kind {
        KeyKind::Hs256 => {
            let secret = std::fs::read_to_string(&private).unwrap();
            (secret.clone(), secret)
        }
        _ => (
            private.display().to_string(),
            verification.display().to_string(),
        ),
    };
    Key {
        kind,
        signing,
        verification,
    }
}

/// `opa build -b . <args>` in `source`, writing `out`.
fn opa_build(source: &Path, out: &Path, args: &[&str]) {
    let mut all = vec!["build", "-b", ".", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    cli::succeeded(opa::cli_in(source, &all));
}

/// `sck bundle verify` of `tarball`: Ok, or the error it printed.
fn sck_verify(tarball: &Path, key: &Key, args: &[&str]) -> Result<(), String> {
    let mut all = vec![
        "bundle",
        "verify",
        tarball.to_str().unwrap(),
        "--verification-key",
        &key.verification,
    ];
    all.extend_from_slice(args);
    let out = cli::run(&all);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn opa_bundle_args<'a>(tarball: &'a str, key: &'a Key, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--bundle",
        tarball,
        "--verification-key",
        &key.verification,
        "--signing-alg",
        key.kind.alg(),
    ];
    all.extend_from_slice(args);
    all
}

/// `opa run --server --bundle tarball --verification-key ...` loads it.
fn opa_loads(tarball: &Path, key: &Key, args: &[&str]) -> OpaServer {
    OpaServer::start(&opa_bundle_args(tarball.to_str().unwrap(), key, args))
}

/// `opa run --server --bundle tarball --verification-key ...` refuses it; OPA's error.
fn opa_refuses(tarball: &Path, key: &Key, args: &[&str]) -> String {
    OpaServer::refuses(&opa_bundle_args(tarball.to_str().unwrap(), key, args))
}

/// The policy fixture answers as written: alice may write, bob may only read.
fn assert_policy_answers(opa: &OpaServer) {
    for (user, action, allowed) in [
        ("alice", "write", true),
        ("bob", "write", false),
        ("bob", "read", true),
    ] {
        let answer = opa
            .data("shop/authz/allow", &json!({"user": user, "action": action}))
            .json();
        assert_eq!(answer["result"], allowed, "{user} {action}: {answer}");
    }
}

/// `sck bundle build source -o out` signed with `key`, plus `args`.
fn sck_build(source: &Path, out: &Path, key: &Key, args: &[&str]) {
    let mut all = vec![
        "bundle",
        "build",
        source.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--signing-key",
        &key.signing,
        "--signing-alg",
        key.kind.alg(),
    ];
    all.extend_from_slice(args);
    cli::ok(&all);
}

/// `sck bundle inspect --json` of `tarball`.
fn inspect(tarball: &Path) -> Value {
    serde_json::from_str(&cli::ok(&[
        "bundle",
        "inspect",
        tarball.to_str().unwrap(),
        "--json",
    ]))
    .unwrap()
}

#[test]
fn bundles_opa_builds_verify_with_sck_and_compile_on_sck_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let mut version = 0;
    let mut compiles = |tarball: &Path, name: &str| {
        version += 1;
        let source = Source::Tarball(std::fs::read(tarball).unwrap());
        let request = compile_request("default", name, &format!("{version}.0.0"), &source);
        release::compiled(&server.url, server.root(), &request);
    };

    for kind in KeyKind::ALL {
        let key = key(dir.path(), kind, &format!("{kind:?}"));
        let tarball = dir.path().join(format!("opa-{kind:?}.tar.gz"));
        opa_build(
            &fixture("policy"),
            &tarball,
            &["--signing-key", &key.signing, "--signing-alg", kind.alg()],
        );
        sck_verify(&tarball, &key, &[]).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let manifest = &inspect(&tarball)["manifest"];
        assert_eq!(manifest["roots"], json!(["shop"]), "{manifest}");
        assert_eq!(manifest["revision"], "fixture-1");
        compiles(&tarball, "shop");
    }

    // Signed for a scope (a claim); verified for that scope only, by both.
    let key = key(dir.path(), KeyKind::Es256, "scoped");
    let claims = dir.path().join("claims.json");
    std::fs::write(&claims, r#"{"scope": "write"}"#).unwrap();
    let scoped = dir.path().join("scoped.tar.gz");
    opa_build(
        &fixture("policy"),
        &scoped,
        &[
            "--signing-key",
            &key.signing,
            "--signing-alg",
            "ES256",
            "--claims-file",
            claims.to_str().unwrap(),
        ],
    );
    sck_verify(&scoped, &key, &["--scope", "write"]).unwrap();
    let refused = sck_verify(&scoped, &key, &["--scope", "read"]).unwrap_err();
    assert!(refused.contains("scope mismatch"), "{refused}");
    assert_policy_answers(&opa_loads(&scoped, &key, &["--scope", "write"]));
    let refused = opa_refuses(&scoped, &key, &["--scope", "read"]);
    assert!(refused.contains("scope mismatch"), "{refused}");
    compiles(&scoped, "shop");

    // A signed bundle with one more file outside the signature, rebuilt by `opa build`, which
    // verifies it (scope included) with that file excluded and keeps the signature.
    let unpacked = dir.path().join("unpacked");
    unpack(&scoped, &unpacked);
    std::fs::write(
        unpacked.join("shop/notes.rego"),
        "package shop.notes\n\nimport rego.v1\n\nowner := \"ops\"\n",
    )
    .unwrap();
    let excluded = dir.path().join("excluded.tar.gz");
    opa_build(
        &unpacked,
        &excluded,
        &[
            "--verification-key",
            &key.verification,
            "--signing-alg",
            "ES256",
            "--scope",
            "write",
            "--exclude-files-verify",
            "shop/notes.rego",
        ],
    );
    sck_verify(
        &excluded,
        &key,
        &["--scope", "write", "--exclude-files", "shop/notes.rego"],
    )
    .unwrap();
    let refused = sck_verify(&excluded, &key, &["--scope", "write"]).unwrap_err();
    assert!(refused.contains("shop/notes.rego"), "{refused}");
    let opa = opa_loads(
        &excluded,
        &key,
        &[
            "--scope",
            "write",
            "--exclude-files-verify",
            "shop/notes.rego",
        ],
    );
    assert_eq!(
        opa.data("shop/notes/owner", &json!({})).json()["result"],
        "ops"
    );
    compiles(&excluded, "shop");

    // Data only.
    let data_only = dir.path().join("data-only.tar.gz");
    opa_build(
        &fixture("data-only"),
        &data_only,
        &["--signing-key", &key.signing, "--signing-alg", "ES256"],
    );
    sck_verify(&data_only, &key, &[]).unwrap();
    assert_eq!(inspect(&data_only)["manifest"]["roots"], json!(["config"]));
    compiles(&data_only, "config");
}

/// Extracts a bundle's files (names as OPA writes them, leading `/` dropped) into `dir`.
fn unpack(tarball: &Path, dir: &Path) {
    for (name, bytes) in entries(tarball) {
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// The files of a bundle tarball, in order.
fn entries(tarball: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(tarball).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (name.trim_start_matches('/').to_owned(), content)
        })
        .filter(|(name, _)| !name.ends_with('/'))
        .collect()
}

/// Writes `files` as a bundle tarball.
fn pack(files: &[(String, Vec<u8>)], out: &Path) {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    std::fs::write(out, builder.into_inner().unwrap().finish().unwrap()).unwrap();
}

/// A tampered variant of a signed bundle, and how each side says why it refuses it.
struct Tampering {
    what: &'static str,
    /// Which file the refusal names, if any.
    file: Option<String>,
    opa_says: &'static str,
    sck_says: &'static str,
}

/// Makes the changed, added and removed variants of `signed` next to it; the wrong-key case
/// verifies the untouched bundle with `wrong`.
fn assert_tampering_refused_alike(signed: &Path, key: &Key, wrong: &Key) {
    let files = entries(signed);
    let data = files
        .iter()
        .position(|(name, _)| name == "data.json")
        .expect("a root data.json");
    let module = files
        .iter()
        .position(|(name, _)| name.ends_with(".rego"))
        .expect("a module");
    let dir = signed.parent().unwrap();
    let stem = signed
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(".tar.gz");
    let variant = |what: &str, files: Vec<(String, Vec<u8>)>| {
        let path = dir.join(format!("{stem}-{what}.tar.gz"));
        pack(&files, &path);
        path
    };

    let mut changed = files.clone();
    changed[data].1 = br#"{"shop": {"roles": {"mallory": ["admin"]}}}"#.to_vec();
    let mut added = files.clone();
    added.push((
        "shop/backdoor.rego".into(),
        b"package shop.backdoor\n\nx := 1\n".to_vec(),
    ));
    let mut removed = files.clone();
    let module_name = removed.remove(module).0;
    let cases = [
        (
            variant("changed", changed),
            key,
            Tampering {
                what: "a changed file",
                file: Some("data.json".into()),
                opa_says: "digest mismatch",
                sck_says: "does not match its signed digest",
            },
        ),
        (
            variant("added", added),
            key,
            Tampering {
                what: "an added file",
                file: Some("shop/backdoor.rego".into()),
                opa_says: "not included in bundle signature",
                sck_says: "is not covered by the signature",
            },
        ),
        (
            variant("removed", removed),
            key,
            Tampering {
                what: "a removed file",
                file: Some(module_name),
                opa_says: "specified in bundle signatures but not found",
                sck_says: "listed in the signature but missing",
            },
        ),
        (
            signed.to_path_buf(),
            wrong,
            Tampering {
                what: "a wrong key",
                file: None,
                opa_says: "failed to verify",
                sck_says: "does not verify with key",
            },
        ),
    ];
    for (tarball, key, expected) in cases {
        let what = format!("{} ({:?}, {})", expected.what, key.kind, signed.display());
        let sck_error = sck_verify(&tarball, key, &[]).expect_err(&what);
        let opa_error = opa_refuses(&tarball, key, &[]);
        assert!(
            sck_error.contains(expected.sck_says) && sck_error.contains("[signature_invalid]"),
            "{what}: sck said {sck_error}"
        );
        assert!(
            opa_error.contains(expected.opa_says),
            "{what}: OPA said {opa_error}"
        );
        if let Some(file) = &expected.file {
            assert!(
                sck_error.contains(file.as_str()) && opa_error.contains(file.as_str()),
                "{what}: both name {file}: sck {sck_error}; OPA {opa_error}"
            );
        }
    }
}

#[test]
fn bundles_sck_builds_load_in_opa_and_tampering_is_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KeyKind::ALL {
        let key = key(dir.path(), kind, &format!("{kind:?}"));
        let wrong = self::key(dir.path(), kind, &format!("{kind:?}-wrong"));
        let built = dir.path().join(format!("sck-{kind:?}.tar.gz"));
        sck_build(&fixture("policy"), &built, &key, &[]);
        assert_policy_answers(&opa_loads(&built, &key, &[]));
        assert_tampering_refused_alike(&built, &key, &wrong);

        let by_opa = dir.path().join(format!("opa-{kind:?}.tar.gz"));
        opa_build(
            &fixture("policy"),
            &by_opa,
            &["--signing-key", &key.signing, "--signing-alg", kind.alg()],
        );
        assert_tampering_refused_alike(&by_opa, &key, &wrong);
    }

    // Data only, built by sck.
    let key = key(dir.path(), KeyKind::Es256, "data");
    let data_only = dir.path().join("sck-data-only.tar.gz");
    sck_build(&fixture("data-only"), &data_only, &key, &[]);
    let opa = opa_loads(&data_only, &key, &[]);
    assert_eq!(
        opa.data("config/limits/burst", &json!({})).json()["result"],
        50
    );
}

/// Serves `tarball` at every path (the way a plain bundle server or CDN would), for an OPA
/// polling it.
fn serve_file(tarball: Vec<u8>) -> HttpServer {
    let body = hyper::body::Bytes::from(tarball);
    HttpServer::start(Arc::new(move |_request| {
        let mut response = hyper::Response::new(http_body_util::Full::new(body.clone()));
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/gzip"),
        );
        Box::pin(std::future::ready(response))
    }))
}

/// An OPA configured to poll `url/bundle.tar.gz` for bundle `name`, verifying with `key`.
fn polling_opa(dir: &Path, url: &str, key: &Key, key_id: &str) -> OpaServer {
    let indented: String = match key.kind {
        KeyKind::Hs256 => format!("      {}\n", key.verification),
        _ => std::fs::read_to_string(&key.verification)
            .unwrap()
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect(),
    };
    let config = format!(
        "services:\n  files:\n    url: {url}\nbundles:\n  b:\n    service: files\n    resource: bundle.tar.gz\n    \
         polling:\n      min_delay_seconds: 1\n      max_delay_seconds: 2\n    signing:\n      keyid: {key_id}\n\
         keys:\n  {key_id}:\n    algorithm: {}\n    key: |-\n{indented}",
        key.kind.alg()
    );
    let opa = OpaServer::configured(dir, &config, &[]);
    opa.wait_healthy("?bundles", Duration::from_secs(60));
    opa
}

#[test]
fn bundles_sck_builds_and_publishes_load_in_a_polling_opa() {
    let dir = tempfile::tempdir().unwrap();
    // `sck bundle build` output, served as a file.
    for kind in KeyKind::ALL {
        let key = key(dir.path(), kind, &format!("{kind:?}"));
        let built = dir.path().join(format!("sck-{kind:?}.tar.gz"));
        sck_build(&fixture("policy"), &built, &key, &["--key-id", "release"]);
        let files = serve_file(std::fs::read(&built).unwrap());
        let opa_dir = tempfile::tempdir().unwrap();
        assert_policy_answers(&polling_opa(opa_dir.path(), &files.url, &key, "release"));
    }

    // What the server publishes: fetched by a sidecar, loaded with the signer's public key.
    let server = Server::start();
    let signers = get(&format!("{}{API}/signers", server.url), &[]).json();
    let signer = &signers["signers"][0];
    let public = dir.path().join("signer.pub");
    std::fs::write(&public, signer["publicKey"].as_str().unwrap()).unwrap();
    let published = sidecar::fetch_bundle(&server.url, "default", server.sidecar(), None, None);
    assert_eq!(published.status, 200);
    let tarball = dir.path().join("published.tar.gz");
    std::fs::write(&tarball, &published.body).unwrap();
    let key = Key {
        kind: KeyKind::Es256,
        signing: String::new(),
        verification: public.display().to_string(),
    };
    let opa = opa_loads(
        &tarball,
        &key,
        &["--verification-key-id", signer["id"].as_str().unwrap()],
    );
    let decision = opa
        .data("sck/gateway/decision", &json!({"action": "tools.invoke"}))
        .json();
    assert_eq!(decision["result"]["allow"], false, "{decision}");
}
