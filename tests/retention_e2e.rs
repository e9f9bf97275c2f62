//! End-to-end tests of decision-input retention: OPA sidecar decisions whose (masked) inputs
//! the org keeps (`[fleet] store_input`) are stored beside the log, never in the entry; pruning
//! — `sck ledger prune-inputs` once, or the server's background task with
//! `[fleet] input_retention_days` — deletes exactly the inputs stored before the cutoff,
//! records one `retention.inputs_pruned` entry per run that deleted any (a run that crashed
//! before its entry gets it from the next run), and leaves a log that still exports and
//! verifies. On SQLite and on PostgreSQL with concurrent pruning runs.
//!
//! "Older" is made testable without sleeping: a cutoff taken between two uploads
//! (`--before`), or rows aged in the database for the background task.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{fresh_postgres_database, get, sck, succeeded, Reply, Server};

/// Every server in this file keeps inputs, masking the password. `Server::start_on` takes no
/// environment, so this is set once for the whole process (every test here wants it).
fn keep_inputs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("SCK_FLEET__STORE_INPUT", "true");
        std::env::set_var("SCK_FLEET__MASK", r#"["/input/password"]"#);
    });
}

fn decision(id: &str) -> Value {
    json!({
        "labels": {"id": "opa-1", "version": "0.60.0"},
        "decision_id": id,
        "bundles": {"gateway": {"revision": "1.0.0"}},
        "path": "sck/gateway/decision",
        "input": {"action": "tools.invoke", "user": id, "password": "hunter2-secret"},
        "result": {"allow": true, "reasons": []},
        "timestamp": "2026-01-01T00:00:00.123456789Z",
    })
}

/// Uploads decisions `ids` as an OPA sidecar of the default org does.
fn upload(url: &str, token: &str, ids: &[String]) {
    let events: Vec<Value> = ids.iter().map(|id| decision(id)).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&serde_json::to_vec(&events).unwrap()).unwrap();
    let body = gz.finish().unwrap();
    let mut response = support::agent()
        .post(format!("{url}/logs"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .send(&body[..])
        .unwrap();
    let reply = Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.body_mut().read_to_vec().unwrap(),
    };
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["appended"], ids.len());
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The kept inputs of the default org, as `sck ledger inputs` prints them.
fn inputs(data_dir: &Path, db: &str) -> Vec<Value> {
    succeeded(sck(
        data_dir,
        &["ledger", "inputs", "--org", "default", "--database-url", db],
    ))
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn decision_ids(rows: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| r["decision_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Runs `sck ledger prune-inputs` and returns how many inputs it reports pruned.
fn prune(data_dir: &Path, db: &str, cutoff: &[&str]) -> u64 {
    let mut args = vec![
        "ledger",
        "prune-inputs",
        "--org",
        "default",
        "--database-url",
        db,
    ];
    args.extend_from_slice(cutoff);
    let text = succeeded(sck(data_dir, &args));
    text.strip_prefix("pruned ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {text}"))
}

/// The default org's entries, from an export that `sck ledger verify` accepts offline with the
/// deployment's key; the database verifies in place too.
fn exported_and_verified(data_dir: &Path, db: &str) -> Vec<Value> {
    let file = support::export_ledger(db, "default", data_dir);
    let file_arg = file.display().to_string();
    let key = sck_ledger::LedgerKey::load_file(&data_dir.join("ledger.key"))
        .unwrap()
        .verifier()
        .to_string();
    let verified = succeeded(sck(
        data_dir,
        &["ledger", "verify", &file_arg, "--key", &key, "--quiet"],
    ));
    assert!(verified.starts_with("OK:"), "{verified}");
    succeeded(sck(
        data_dir,
        &[
            "ledger",
            "verify",
            "--db",
            "--org",
            "default",
            "--database-url",
            db,
            "--quiet",
        ],
    ));
    support::export_entries(&file)
}

fn of_type<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["type"] == kind).collect()
}

/// Now, as RFC 3339 with microseconds (the precision inputs are stored with).
fn now_rfc3339() -> String {
    sck_ledger::entry::format_timestamp(time::OffsetDateTime::now_utc())
}

#[test]
fn pruning_deletes_only_older_inputs_and_the_log_still_verifies() {
    keep_inputs();
    let server = Server::start();
    let data_dir = server.data_dir.clone();
    let db = data_dir.join("sck.db").display().to_string();
    let token = server.sidecar_token.clone().unwrap();
    upload(&server.url, &token, &ids("old", 3));
    // Every old input was stored before the answer above; every new one after this instant.
    let cutoff = now_rfc3339();
    upload(&server.url, &token, &ids("new", 2));

    let kept = inputs(&data_dir, &db);
    assert_eq!(
        decision_ids(&kept),
        ["new-0", "new-1", "old-0", "old-1", "old-2"]
    );
    let old0 = kept.iter().find(|r| r["decision_id"] == "old-0").unwrap();
    assert_eq!(
        old0["input"],
        json!({"action": "tools.invoke", "user": "old-0"})
    );
    assert_eq!(old0["masked"], json!(["/input/password"]));
    // The entry holds the hash only; `seq` points at it.
    let seq = old0["seq"].as_u64().unwrap();
    let entry = get(
        &format!("{}/api/v1/ledger/default/entries/{seq}", server.url),
        &[(
            "Authorization",
            &format!("Bearer {}", server.root_key.as_deref().unwrap()),
        )],
    )
    .json()["entry"]
        .clone();
    assert_eq!(entry["body"]["decision_id"], "old-0");
    assert!(entry["body"].get("input").is_none(), "{entry}");
    assert!(entry["body"]["input_sha256"].is_string(), "{entry}");

    // Pruned while the server runs: the old inputs go, the new ones stay.
    assert_eq!(prune(&data_dir, &db, &["--before", &cutoff]), 3);
    assert_eq!(decision_ids(&inputs(&data_dir, &db)), ["new-0", "new-1"]);
    let one = succeeded(sck(
        &data_dir,
        &[
            "ledger",
            "inputs",
            "--org",
            "default",
            "--database-url",
            &db,
            "--decision-id",
            "new-1",
        ],
    ));
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.contains("\"decision_id\":\"new-1\""), "{one}");
    // Nothing left to prune: no second entry.
    assert_eq!(prune(&data_dir, &db, &["--before", &cutoff]), 0);
    // A relative cutoff (a day ago) prunes nothing that was stored just now.
    assert_eq!(prune(&data_dir, &db, &["--older-than", "1"]), 0);

    assert!(server.stop().success());
    let entries = exported_and_verified(&data_dir, &db);
    let runs = of_type(&entries, "retention.inputs_pruned");
    assert_eq!(runs.len(), 1, "one entry per run that deleted something");
    assert_eq!(runs[0]["body"]["count"], 3);
    assert_eq!(runs[0]["body"]["cutoff"], cutoff);
    assert_eq!(runs[0]["body"]["actor"], "cli");
    // Every decision is still in the log, with its input hash and without its input.
    let sidecar = of_type(&entries, "decision.sidecar");
    assert_eq!(sidecar.len(), 5);
    assert!(sidecar
        .iter()
        .all(|e| e["body"]["input_sha256"].is_string() && e["body"].get("input").is_none()));
    assert!(!serde_json::to_string(&entries)
        .unwrap()
        .contains("hunter2-secret"));
}

#[test]
fn the_server_prunes_expired_inputs_by_itself() {
    keep_inputs();
    let server = Server::start_with_env(&[
        ("SCK_FLEET__INPUT_RETENTION_DAYS", "1"),
        ("SCK_FLEET__INPUT_PRUNE_INTERVAL_SECS", "1"),
    ]);
    let data_dir = server.data_dir.clone();
    let db = data_dir.join("sck.db").display().to_string();
    let token = server.sidecar_token.clone().unwrap();
    upload(&server.url, &token, &ids("aged", 2));
    upload(&server.url, &token, &ids("fresh", 1));
    // Age two inputs past the one-day retention in the database itself.
    let aged = "UPDATE fleet_inputs SET stored_at_us = stored_at_us - 2 * 86400000000 \
                WHERE decision_id LIKE 'aged-%'";
    assert_eq!(sqlite(&db, aged), 2);

    let deadline = Instant::now() + Duration::from_secs(60);
    while decision_ids(&inputs(&data_dir, &db)) != ["fresh-0"] {
        assert!(
            Instant::now() < deadline,
            "the background task did not prune: {:?}",
            inputs(&data_dir, &db)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.stop().success());
    let entries = exported_and_verified(&data_dir, &db);
    let runs = of_type(&entries, "retention.inputs_pruned");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["body"]["count"], 2);
    assert_eq!(runs[0]["body"]["actor"], "system");
    assert_eq!(of_type(&entries, "decision.sidecar").len(), 3);
}

/// Runs `sql` on the SQLite database `db`.
fn sqlite(db: &str, sql: &'static str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
            .await
            .unwrap();
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected()
    })
}

#[test]
fn a_run_that_crashed_before_its_entry_is_logged_by_the_next_run() {
    keep_inputs();
    let server = Server::start();
    let data_dir = server.data_dir.clone();
    let db = data_dir.join("sck.db").display().to_string();
    // What a run leaves when it dies after deleting 7 inputs, before its ledger entry: a
    // pending record whose lease has run out.
    let crashed = "INSERT INTO fleet_input_prunes (run_id, org_id, cutoff_us, pruned, actor, \
                   lease_until_unix, state) VALUES ('prn_crashed', 'default', 1767225600000000, 7, \
                   'system', 0, 'pending')";
    assert_eq!(sqlite(&db, crashed), 1);
    // The next run (on any replica, here the CLI) records it, once.
    assert_eq!(prune(&data_dir, &db, &["--older-than", "30"]), 0);
    assert_eq!(prune(&data_dir, &db, &["--older-than", "30"]), 0);
    assert!(server.stop().success());
    let entries = exported_and_verified(&data_dir, &db);
    let runs = of_type(&entries, "retention.inputs_pruned");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["body"]["run_id"], "prn_crashed");
    assert_eq!(runs[0]["body"]["count"], 7);
    assert_eq!(runs[0]["body"]["cutoff"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(runs[0]["body"]["actor"], "system");
}

#[test]
fn postgres_replicas_prune_concurrently_without_double_counting() {
    keep_inputs();
    let Some(db) = fresh_postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let first = Server::start_on(&data_dir, &db);
    let second = Server::start_on(&data_dir, &db);
    // The second replica finds a bootstrapped database: the first one's token serves both.
    let token = first.sidecar_token.clone().unwrap();
    upload(&first.url, &token, &ids("old", 40));
    let cutoff = now_rfc3339();
    upload(&second.url, &token, &ids("new", 3));

    // Two pruning runs at once (as two replicas' tasks would): every old input is deleted
    // exactly once, and the counts the runs ledger add up to what was deleted.
    let runs: Vec<std::process::Child> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_sck"))
                .args([
                    "ledger",
                    "prune-inputs",
                    "--org",
                    "default",
                    "--database-url",
                ])
                .arg(&db)
                .args(["--before", &cutoff])
                .env("SCK_DATA_DIR", &data_dir)
                .env("SCK_LOG", "warn")
                .env_remove("SCK_CONFIG")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reported: u64 = runs
        .into_iter()
        .map(|child| {
            let text = succeeded(child.wait_with_output().unwrap());
            text.split(' ').nth(1).unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(reported, 40);
    assert_eq!(
        decision_ids(&inputs(&data_dir, &db)),
        ["new-0", "new-1", "new-2"]
    );
    let one = succeeded(sck(
        &data_dir,
        &[
            "ledger",
            "inputs",
            "--org",
            "default",
            "--database-url",
            &db,
            "--decision-id",
            "new-2",
        ],
    ));
    assert_eq!(one.lines().count(), 1, "{one}");

    assert!(first.stop().success());
    assert!(second.stop().success());
    let entries = exported_and_verified(&data_dir, &db);
    let logged: u64 = of_type(&entries, "retention.inputs_pruned")
        .iter()
        .map(|e| e["body"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, 40);
    assert_eq!(of_type(&entries, "decision.sidecar").len(), 43);
}
