//! End-to-end tests of `sck ledger ...` driving the real binary: key generation, export,
//! offline verification (including tampering named by seq), in-database verification and
//! proofs, on SQLite and — when `SCK_TEST_DATABASE_URL` is set — PostgreSQL.

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use sck_ledger::merkle::{verify_consistency, verify_inclusion, Hash};
use sck_ledger::schema::MIGRATIONS;
use sck_ledger::{Event, EventType, Ledger, LedgerKey, Store, WriterConfig};
use support::cli;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unique_org(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:016x}", rand::thread_rng().gen::<u64>())
}

fn b64_hash(s: &serde_json::Value) -> Hash {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// Appends `n` entries to `org` through the library, checkpointing every 10.
fn fill_log(url: &str, org: &str, key: &LedgerKey, n: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(url, &[MIGRATIONS]).await.unwrap();
        let config = WriterConfig {
            deployment: "acme-prod".into(),
            checkpoint_every: 10,
            ..WriterConfig::default()
        };
        let ledger = Ledger::open(store.clone(), key.clone(), config)
            .await
            .unwrap();
        for i in 0..n {
            let body = serde_json::json!({"decision_id": format!("dec-{i:04}"), "result": true});
            ledger
                .append(org, Event::new(EventType::DecisionAllowed, body).unwrap())
                .await
                .unwrap();
        }
        ledger.shutdown().await.unwrap();
        store.close().await;
    });
}

/// Unpacks an export, lets `edit` change entries.jsonl lines, and repacks it with `tar`.
fn tamper(export: &Path, out: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(export)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let entries = dir.path().join("entries.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&entries)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    std::fs::write(&entries, lines.join("\n") + "\n").unwrap();
    let st = Command::new("tar")
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(dir.path())
        .args([
            "manifest.json",
            "VERIFY.md",
            "keys.json",
            "checkpoints.txt",
            "consistency.jsonl",
            "entries.jsonl",
        ])
        .status()
        .unwrap();
    assert!(st.success());
}

fn end_to_end(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let db = [("SCK_DATABASE_URL", url), ("SCK_DEPLOYMENT", "acme-prod")];

    // key generate: private key file (0600) + verifier key on stdout
    let vkey = cli::ok(&[
        "ledger",
        "key",
        "generate",
        "--name",
        "ledger.acme.example/gw-1",
        "-o",
        &d("gw.key"),
    ])
    .trim()
    .to_owned();
    assert!(vkey.starts_with("ledger.acme.example/gw-1+"), "{vkey}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d("gw.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = LedgerKey::load_file(Path::new(&d("gw.key"))).unwrap();
    assert_eq!(key.verifier().to_string(), vkey);
    let (code, err) = cli::fails(&[
        "ledger",
        "key",
        "generate",
        "--name",
        "x/y",
        "-o",
        &d("gw.key"),
    ]);
    assert_eq!(code, 1, "{err}");

    let org = unique_org("acme");
    fill_log(url, &org, &key, 45);

    // export (--database-url flag) and verify offline
    let out = cli::ok(&[
        "ledger",
        "export",
        "--org",
        &org,
        "--database-url",
        url,
        "--deployment",
        "acme-prod",
        "-o",
        &d("export.tar.gz"),
    ]);
    assert!(out.contains("exported 45 entries"), "{out}");
    let out = cli::ok(&["ledger", "verify", &d("export.tar.gz"), "--key", &vkey]);
    assert!(out.contains("OK: 45 entries"), "{out}");
    assert!(out.contains("5 checkpoints"), "{out}");

    // a partial export verifies on its own too (start frontier in the manifest)
    cli::succeeded(cli::run_with_env(
        &[
            "ledger",
            "export",
            "--org",
            &org,
            "--from",
            "12",
            "--to",
            "40",
            "-o",
            &d("part.tar.gz"),
        ],
        &db,
    ));
    let out = cli::ok(&["ledger", "verify", &d("part.tar.gz"), "--key", &vkey]);
    assert!(out.contains("OK: 28 entries (seq 12..40)"), "{out}");

    // tampering is named by seq, exit status 2
    tamper(
        Path::new(&d("export.tar.gz")),
        Path::new(&d("bad.tar.gz")),
        |l| {
            l[17] = l[17].replace("dec-0017", "dec-0071");
        },
    );
    let (code, err) = cli::fails(&["ledger", "verify", &d("bad.tar.gz"), "--key", &vkey]);
    assert_eq!(code, 2);
    assert!(err.contains("first bad entry: seq 17"), "{err}");
    tamper(
        Path::new(&d("export.tar.gz")),
        Path::new(&d("bad2.tar.gz")),
        |l| {
            l.remove(8);
        },
    );
    let (_, err) = cli::fails(&["ledger", "verify", &d("bad2.tar.gz"), "--key", &vkey]);
    assert!(err.contains("seq 8"), "{err}");

    // a key we do not trust
    let other = LedgerKey::generate("ledger.acme.example/gw-1")
        .unwrap()
        .verifier()
        .to_string();
    let (code, err) = cli::fails(&["ledger", "verify", &d("export.tar.gz"), "--key", &other]);
    assert_eq!(code, 2);
    assert!(err.contains("seq 0") && err.contains("signature"), "{err}");
    // no key at all, or a malformed one
    let (code, _) = cli::fails(&["ledger", "verify", &d("export.tar.gz")]);
    assert_eq!(code, 1);
    let (code, err) = cli::fails(&["ledger", "verify", &d("export.tar.gz"), "--key", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid key"), "{err}");

    // verify the database in place (env-configured URL)
    let out = cli::succeeded(cli::run_with_env(
        &["ledger", "verify", "--db", "--org", &org, "--key", &vkey],
        &db,
    ));
    assert!(out.contains("OK: 45 entries"), "{out}");
    let out = cli::succeeded(cli::run_with_env(
        &["ledger", "verify", "--db", "--org", &org],
        &db,
    ));
    assert!(out.contains("OK: 45 entries"), "{out}");

    // proofs
    let p: serde_json::Value = serde_json::from_str(&cli::succeeded(cli::run_with_env(
        &["ledger", "proof", "inclusion", "--org", &org, "--seq", "7"],
        &db,
    )))
    .unwrap();
    let proof: Vec<Hash> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    verify_inclusion(
        &b64_hash(&p["leaf_hash"]),
        7,
        45,
        &proof,
        &b64_hash(&p["root"]),
    )
    .unwrap();
    let c: serde_json::Value = serde_json::from_str(&cli::succeeded(cli::run_with_env(
        &[
            "ledger",
            "proof",
            "consistency",
            "--org",
            &org,
            "--from",
            "10",
            "--to",
            "45",
        ],
        &db,
    )))
    .unwrap();
    let proof: Vec<Hash> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    verify_consistency(
        10,
        45,
        &proof,
        &b64_hash(&c["from_root"]),
        &b64_hash(&c["to_root"]),
    )
    .unwrap();
    assert_eq!(c["to_root"], p["root"]);
    let (code, err) = cli::failed(cli::run_with_env(
        &["ledger", "proof", "inclusion", "--org", &org, "--seq", "45"],
        &db,
    ));
    assert_eq!(code, 1);
    assert!(err.starts_with("error: "), "{err}");

    // unknown org
    let (code, err) = cli::failed(cli::run_with_env(
        &[
            "ledger",
            "export",
            "--org",
            "no-such-org",
            "-o",
            &d("x.tar.gz"),
        ],
        &db,
    ));
    assert_eq!(code, 1);
    assert!(err.contains("no ledger log"), "{err}");
}

#[test]
fn ledger_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("data").join("sck.db");
    end_to_end(url.to_str().unwrap());
}

#[test]
fn ledger_cli_on_postgres() {
    let Ok(url) = std::env::var("SCK_TEST_DATABASE_URL") else {
        println!("ledger_cli_on_postgres: skipped: SCK_TEST_DATABASE_URL not set");
        return;
    };
    end_to_end(&url);
}

#[test]
fn default_database_is_created_under_sck_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli::command(&["ledger", "verify", "--db", "--org", "nobody"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no ledger log"),
        "{}",
        text(&out.stderr)
    );
    assert!(dir.path().join("sck-data/sck.db").exists());
}
