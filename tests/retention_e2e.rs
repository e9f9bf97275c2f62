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

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::db::{self, Deployment};
use support::http::get_as;
use support::ledger::{now_timestamp as now_rfc3339, of_type};
use support::server::Server;
use support::{cli, ledger, sidecar, wait_until};

/// Every server in this file keeps inputs, masking the password.
const KEEP_INPUTS: [(&str, &str); 2] = [
    ("SCK_FLEET__STORE_INPUT", "true"),
    ("SCK_FLEET__MASK", r#"["/input/password"]"#),
];

/// An OPA decision event whose input names its own id as the user.
fn decision(id: &str) -> Value {
    let mut event = sidecar::decision(id, "opa-1");
    event["input"]["user"] = json!(id);
    event
}

/// Uploads decisions `ids` as an OPA sidecar of the default org does; each is appended.
fn upload(url: &str, token: &str, ids: &[String]) {
    let events: Vec<Value> = ids.iter().map(|id| decision(id)).collect();
    let answer = sidecar::upload_logs(url, token, &events).expect(200);
    assert_eq!(answer["appended"], ids.len());
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// What `sck ledger inputs` prints for the default org (one JSON object a line), with `extra`
/// arguments.
fn inputs_text(data_dir: &Path, db: &str, extra: &[&str]) -> String {
    let mut args = vec!["ledger", "inputs", "--org", "default", "--database-url", db];
    args.extend_from_slice(extra);
    cli::succeeded(cli::run_in(data_dir, &args))
}

/// The kept inputs of the default org, as `sck ledger inputs` prints them.
fn inputs(data_dir: &Path, db: &str) -> Vec<Value> {
    inputs_text(data_dir, db, &[])
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

/// How many inputs a `sck ledger prune-inputs` run reports pruned (`pruned N ...`).
fn pruned_count(text: &str) -> u64 {
    text.strip_prefix("pruned ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {text}"))
}

/// `sck ledger prune-inputs` of the default org with `cutoff`, as a replica of the deployment
/// in `data_dir` runs it (with this file's fleet settings); not started yet.
fn prune_command(data_dir: &Path, db: &str, cutoff: &[&str]) -> Command {
    let mut args = vec![
        "ledger",
        "prune-inputs",
        "--org",
        "default",
        "--database-url",
        db,
    ];
    args.extend_from_slice(cutoff);
    let mut command = cli::command(&args);
    command
        .env("SCK_DATA_DIR", data_dir)
        .current_dir(data_dir)
        .envs(KEEP_INPUTS);
    command
}

/// Runs `sck ledger prune-inputs` and returns how many inputs it reports pruned.
fn prune(data_dir: &Path, db: &str, cutoff: &[&str]) -> u64 {
    let out = cli::run_ok(&mut prune_command(data_dir, db, cutoff));
    pruned_count(&String::from_utf8(out.stdout).unwrap())
}

/// The default org's entries, from an export that `sck ledger verify` accepts offline with the
/// deployment's key; the database verifies in place too.
fn exported_and_verified(data_dir: &Path, db: &str) -> Vec<Value> {
    let file = ledger::export(db, "default", data_dir);
    let key = sck_ledger::LedgerKey::load_file(&data_dir.join("ledger.key"))
        .unwrap()
        .verifier()
        .to_string();
    ledger::verify_export(&file, &[key]);
    ledger::verify_db(db, "default");
    ledger::entries(&file)
}

#[test]
fn pruning_deletes_only_older_inputs_and_the_log_still_verifies() {
    let server = Server::start_with_env(&KEEP_INPUTS);
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
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
    let entry = get_as(
        &format!("{}/api/v1/ledger/default/entries/{seq}", server.url),
        server.root(),
    )
    .json()["entry"]
        .clone();
    assert_eq!(entry["body"]["decision_id"], "old-0");
    assert!(entry["body"].get("input").is_none(), "{entry}");
    assert!(entry["body"]["input_sha256"].is_string(), "{entry}");

    // Pruned while the server runs: the old inputs go, the new ones stay.
    assert_eq!(prune(&data_dir, &db, &["--before", &cutoff]), 3);
    assert_eq!(decision_ids(&inputs(&data_dir, &db)), ["new-0", "new-1"]);
    let one = inputs_text(&data_dir, &db, &["--decision-id", "new-1"]);
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
    let mut env = KEEP_INPUTS.to_vec();
    env.extend([
        ("SCK_FLEET__INPUT_RETENTION_DAYS", "1"),
        ("SCK_FLEET__INPUT_PRUNE_INTERVAL_SECS", "1"),
    ]);
    let server = Server::start_with_env(&env);
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    let token = server.sidecar_token.clone().unwrap();
    upload(&server.url, &token, &ids("aged", 2));
    upload(&server.url, &token, &ids("fresh", 1));
    // Age two inputs past the one-day retention in the database itself.
    let aged = "UPDATE fleet_inputs SET stored_at_us = stored_at_us - 2 * 86400000000 \
                WHERE decision_id LIKE 'aged-%'";
    assert_eq!(db::sqlite_execute(&db, aged, &[]).unwrap(), 2);

    wait_until(
        Duration::from_secs(60),
        "the background task to prune the aged inputs",
        || decision_ids(&inputs(&data_dir, &db)) == ["fresh-0"],
    );
    assert!(server.stop().success());
    let entries = exported_and_verified(&data_dir, &db);
    let runs = of_type(&entries, "retention.inputs_pruned");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["body"]["count"], 2);
    assert_eq!(runs[0]["body"]["actor"], "system");
    assert_eq!(of_type(&entries, "decision.sidecar").len(), 3);
}

#[test]
fn a_run_that_crashed_before_its_entry_is_logged_by_the_next_run() {
    let server = Server::start_with_env(&KEEP_INPUTS);
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    // What a run leaves when it dies after deleting 7 inputs, before its ledger entry: a
    // pending record whose lease has run out.
    let crashed = "INSERT INTO fleet_input_prunes (run_id, org_id, cutoff_us, pruned, actor, \
                   lease_until_unix, state) VALUES ('prn_crashed', 'default', 1767225600000000, 7, \
                   'system', 0, 'pending')";
    assert_eq!(db::sqlite_execute(&db, crashed, &[]).unwrap(), 1);
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
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let (data_dir, db) = (deployment.data_dir(), deployment.database_url.as_str());
    let first = deployment.replica_with_env(&KEEP_INPUTS);
    let second = deployment.replica_with_env(&KEEP_INPUTS);
    // The second replica finds a bootstrapped database: the first one's token serves both.
    let token = first.sidecar_token.clone().unwrap();
    upload(&first.url, &token, &ids("old", 40));
    let cutoff = now_rfc3339();
    upload(&second.url, &token, &ids("new", 3));

    // Two pruning runs at once (as two replicas' tasks would): every old input is deleted
    // exactly once, and the counts the runs ledger add up to what was deleted.
    let runs: Vec<std::process::Child> = (0..2)
        .map(|_| {
            prune_command(data_dir, db, &["--before", &cutoff])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reported: u64 = runs
        .into_iter()
        .map(|child| pruned_count(&cli::succeeded(child.wait_with_output().unwrap())))
        .sum();
    assert_eq!(reported, 40);
    assert_eq!(
        decision_ids(&inputs(data_dir, db)),
        ["new-0", "new-1", "new-2"]
    );
    let one = inputs_text(data_dir, db, &["--decision-id", "new-2"]);
    assert_eq!(one.lines().count(), 1, "{one}");

    assert!(first.stop().success());
    assert!(second.stop().success());
    let entries = exported_and_verified(data_dir, db);
    let logged: u64 = of_type(&entries, "retention.inputs_pruned")
        .iter()
        .map(|e| e["body"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, 40);
    assert_eq!(of_type(&entries, "decision.sidecar").len(), 43);
}
