//! Interop, bad input: OPA is a peer, not trusted.
//!
//! - Bundles OPA builds and loads itself but sck's reader refuses by its documented stricter
//!   rules (docs/bundles.md, "Stricter than OPA": file digests other than SHA-256/384/512, data after the
//!   end of the archive) are refused with the same code by `sck bundle verify` and by a compile
//!   on `sck serve`.
//! - A real OPA's decision-log upload corrupted in flight (the relay flips the gzip CRC, so the
//!   body still inflates to valid events) is refused with `invalid_gzip` every time OPA sends
//!   it, nothing of it is ledgered, and once the relay stops corrupting, OPA's next upload of
//!   the same chunk lands each decision exactly once.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::interop;
use support::opa::{self, OpaServer};
use support::relay::{uploads, Exchange, LogsMode, Relay};
use support::release::{self, compile_request, Source};
use support::server::Server;
use support::{cli, http};

const WITHIN: Duration = Duration::from_secs(40);
const SECRET: &str = "interop-hmac-secret";

/// A bundle directory: a policy, root data and a manifest with roots, written the way the OPA
/// under test writes manifests (OPA 1.x adds `rego_version`, 0.x drops it), so that `opa build`
/// keeps a signature over it valid.
fn write_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/policy.rego"),
        "package app\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.user in data.app.admins\n",
    )
    .unwrap();
    std::fs::write(dir.join("data.json"), r#"{"app": {"admins": ["alice"]}}"#).unwrap();
    let manifest = match opa::major() {
        0 => json!({"roots": ["app"], "revision": "r1"}),
        _ => json!({"roots": ["app"], "revision": "r1", "rego_version": 1}),
    };
    std::fs::write(dir.join(".manifest"), manifest.to_string()).unwrap();
}

/// MD5 of `bytes` in hex (openssl's; nothing in sck may compute it).
fn md5_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-md5", "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// A `.signatures.json` over the files of `dir` as OPA hashes them, but with MD5 digests,
/// HS256-signed with [`SECRET`].
fn md5_signatures(dir: &Path) -> Vec<u8> {
    let canonical = |name: &str| {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
        // serde_json's maps are sorted and its compact output is OPA's canonical form here.
        serde_json::to_vec(&value).unwrap()
    };
    let files: Vec<_> = [
        (
            "app/policy.rego",
            std::fs::read(dir.join("app/policy.rego")).unwrap(),
        ),
        ("data.json", canonical("data.json")),
        (".manifest", canonical(".manifest")),
    ]
    .into_iter()
    .map(|(name, bytes)| json!({"name": name, "hash": md5_hex(&bytes), "algorithm": "MD5"}))
    .collect();
    let jws = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"files": files, "keyid": "default"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    serde_json::to_vec(&json!({"signatures": [jws]})).unwrap()
}

/// `sck bundle verify` of `tarball` with the HMAC secret: the code in its error.
fn sck_verify_code(tarball: &Path) -> String {
    let file = tarball.display().to_string();
    let (_, said) = cli::fails(&["bundle", "verify", &file, "--verification-key", SECRET]);
    said.trim_end()
        .rsplit_once('[')
        .and_then(|(_, code)| code.strip_suffix(']'))
        .unwrap_or_else(|| panic!("no [code] in {said}"))
        .to_owned()
}

/// A compile of `tarball` on `sck serve`: (status, code).
fn serve_compile(server: &Server, tarball: &Path, version: &str) -> (u16, String) {
    let source = Source::Tarball(std::fs::read(tarball).unwrap());
    let request = compile_request("default", "from-opa", version, &source);
    let reply = release::compile(&server.url, server.root(), &request);
    (reply.status, reply.code())
}

/// OPA itself loads `tarball` (verifying it with the HMAC secret): it answers a query from it.
fn assert_opa_loads(tarball: &Path) {
    let file = tarball.display().to_string();
    let server = OpaServer::start(&[
        "--bundle",
        &file,
        "--verification-key",
        SECRET,
        "--signing-alg",
        "HS256",
    ]);
    let answer = server.data("app/allow", &json!({"user": "alice"})).json();
    assert_eq!(answer["result"], true, "OPA loads {file}: {answer}");
}

#[test]
fn bundles_opa_accepts_but_sck_refuses_are_refused_alike_by_verify_and_compile() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();

    // MD5 file digests: `opa build` verifies the signed directory with the key and writes the
    // bundle with that signature; OPA loads it.
    let md5_dir = dir.path().join("md5");
    write_source(&md5_dir);
    std::fs::write(md5_dir.join(".signatures.json"), md5_signatures(&md5_dir)).unwrap();
    let md5 = dir.path().join("md5.tar.gz");
    cli::succeeded(opa::cli_in(
        &md5_dir,
        &[
            "build",
            "-b",
            ".",
            "--verification-key",
            SECRET,
            "--signing-alg",
            "HS256",
            "-o",
            md5.to_str().unwrap(),
        ],
    ));
    assert_opa_loads(&md5);
    assert_eq!(sck_verify_code(&md5), "signature_invalid");
    assert_eq!(
        serve_compile(&server, &md5, "1.0.0"),
        (422, "signature_invalid".into())
    );

    // Data after the end of the archive: an OPA-signed bundle with bytes appended after the
    // gzip stream, and one whose tar stream goes on after its end-of-archive blocks.
    let plain_dir = dir.path().join("plain");
    write_source(&plain_dir);
    let signed = dir.path().join("signed.tar.gz");
    cli::succeeded(opa::cli_in(
        &plain_dir,
        &[
            "build",
            "-b",
            ".",
            "--signing-key",
            SECRET,
            "--signing-alg",
            "HS256",
            "-o",
            signed.to_str().unwrap(),
        ],
    ));
    let bytes = std::fs::read(&signed).unwrap();
    let after_gzip = dir.path().join("after-gzip.tar.gz");
    std::fs::write(
        &after_gzip,
        [bytes.as_slice(), b"trailing bytes".as_slice()].concat(),
    )
    .unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(bytes.as_slice()),
        &mut tar,
    )
    .unwrap();
    tar.extend_from_slice(b"hidden after the end-of-archive blocks");
    let after_tar = dir.path().join("after-tar.tar.gz");
    std::fs::write(&after_tar, http::gzip(&tar)).unwrap();
    for (n, tarball) in [after_gzip, after_tar].iter().enumerate() {
        assert_opa_loads(tarball);
        assert_eq!(
            sck_verify_code(tarball),
            "bundle_invalid",
            "{}",
            tarball.display()
        );
        assert_eq!(
            serve_compile(&server, tarball, &format!("{}.0.0", n + 2)),
            (422, "bundle_invalid".into()),
            "{}",
            tarball.display()
        );
    }
    // The untouched OPA build is fine for both.
    let signed_file = signed.display().to_string();
    cli::ok(&[
        "bundle",
        "verify",
        &signed_file,
        "--verification-key",
        SECRET,
    ]);
    assert_eq!(serve_compile(&server, &signed, "4.0.0").0, 201);
}

#[test]
fn a_decision_log_upload_corrupted_in_flight_is_refused_and_nothing_of_it_is_ledgered() {
    let server = Server::start();
    let relay = Relay::start(&server.url);
    relay.set_logs_mode(LogsMode::CorruptGzip);
    let config = interop::sidecar_config(&server, &relay.url, &["--decision-logs"]);
    let dir = tempfile::tempdir().unwrap();
    let opa = interop::start_sidecar(dir.path(), &config, &server.url, server.root());
    let made = interop::decide(&opa, 3, "corrupted");

    // OPA sends the chunk, sck refuses it, OPA sends it again: refused again.
    let seen = relay.wait_for("two corrupted uploads", WITHIN, |seen| {
        uploads(seen).iter().filter(|e| e.corrupted).count() >= 2
    });
    for upload in uploads(&seen) {
        assert!(upload.corrupted);
        assert_eq!(
            (upload.status, upload.json()["code"].as_str()),
            (400, Some("invalid_gzip")),
            "{}",
            String::from_utf8_lossy(&upload.body)
        );
    }
    let database = &server.database_url;
    assert!(
        interop::ledgered_decisions(database, &server.data_dir).is_empty(),
        "nothing of a refused upload is ledgered"
    );

    // Clean again: OPA's next upload of the same chunk lands, each decision once.
    relay.set_logs_mode(LogsMode::Pass);
    let appended = |seen: &[Exchange]| -> u64 {
        uploads(seen)
            .iter()
            .filter(|e| !e.corrupted && e.status == 200)
            .map(|e| e.json()["appended"].as_u64().unwrap_or(0))
            .sum()
    };
    let seen = relay.wait_for("clean uploads of all three", WITHIN, |seen| {
        appended(seen) >= 3
    });
    assert_eq!(appended(&seen), 3, "{seen:#?}");
    let ledgered = interop::ledgered_decisions(database, &server.data_dir);
    assert_eq!(
        ledgered,
        made.into_iter().map(|id| (id, 1)).collect(),
        "each decision once"
    );
}
