//! End-to-end tests of the OPA sidecar fleet endpoints against the real `sck serve`: a small
//! sidecar-protocol client (OPA-shaped status reports and gzip decision-log batches, including
//! retried batches), the fleet view and its drift flag, the `/metrics` drift gauge, the
//! `decision.sidecar` ledger entries (read from an offline export), and every refusal with
//! proof that nothing partial was recorded.

mod support;

use serde_json::{json, Value};
use sha2::Digest;
use support::db::{self, Deployment};
use support::http::{get_as, gzip, post_oversized, API};
use support::ledger::{exported_entries, of_type};
use support::server::Server;
use support::sidecar::{decision, fleet, post, status_report, upload_logs};
use support::{cli, metrics, orgs, release};

fn sha256_jcs(value: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(value).unwrap();
    hex::encode(sha2::Sha256::digest(bytes))
}

// ---- helpers ----------------------------------------------------------------------------

fn sidecar<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["sidecars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["instanceId"] == id)
        .unwrap_or_else(|| panic!("sidecar {id} not in {view}"))
}

/// The line of the drift gauge of `org` on the `/metrics` page of the server at `url`.
fn drift_gauge(url: &str, org: &str) -> Option<String> {
    metrics::line(&metrics::text(url), "sck_fleet_sidecars_drifted", org)
}

/// `org`'s own sidecar credential (the org is created for it).
fn org_sidecar(url: &str, root: &str, org: &str) -> String {
    orgs::create(url, root, org);
    orgs::credential(url, root, org, "sidecar")
}

// ---- tests ------------------------------------------------------------------------------

#[test]
fn status_reports_drift_and_the_metrics_gauge() {
    let server = Server::start();
    let (url, root) = (server.url.clone(), server.root_key.clone().unwrap());
    let token = server.sidecar_token.clone().unwrap();

    let empty = fleet(&url, &root, "default");
    assert_eq!(empty["summary"]["sidecars"], 0);
    let active = empty["activeBundles"][0]["revision"]
        .as_str()
        .unwrap()
        .to_owned();

    // opa-a runs the active revision, opa-b (reporting on a partition) an old one.
    let a = post(
        &url,
        "/status",
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-a", &active)).unwrap(),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let b = post(
        &url,
        "/status/east",
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-b", "0.0.1")).unwrap(),
    );
    assert_eq!(b.status, 200);
    let view = fleet(&url, &root, "default");
    assert_eq!(view["summary"]["sidecars"], 2);
    assert_eq!(view["summary"]["drifted"], 1);
    let opa_a = sidecar(&view, "opa-a");
    assert_eq!(opa_a["drift"], false, "{opa_a}");
    assert_eq!(opa_a["activeRevisions"]["gateway"], active.as_str());
    assert_eq!(opa_a["opaVersion"], "0.60.0");
    assert_eq!(
        opa_a["bundles"][0]["lastSuccessfulDownload"],
        "2026-01-01T00:00:00Z"
    );
    assert!(opa_a["lastContact"].as_str().unwrap().starts_with("20"));
    let opa_b = sidecar(&view, "opa-b");
    assert_eq!(opa_b["drift"], true);
    assert_eq!(opa_b["partition"], "east");
    assert!(opa_b["driftReasons"][0]
        .as_str()
        .unwrap()
        .contains("runs revision 0.0.1"));
    assert!(
        !view.to_string().contains("go_gc_duration_seconds"),
        "prometheus metrics are not kept"
    );
    let gauge = drift_gauge(&url, "default").expect("drift gauge");
    assert!(gauge.ends_with(" 1"), "{gauge}");

    // The latest report per instance wins: opa-b catches up.
    post(
        &url,
        "/status",
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-b", &active)).unwrap(),
    );
    let view = fleet(&url, &root, "default");
    assert_eq!(view["summary"]["sidecars"], 2);
    assert_eq!(view["summary"]["drifted"], 0);
    assert!(drift_gauge(&url, "default").unwrap().ends_with(" 0"));

    // A new active version makes both drift until they report it; the gauge follows the
    // activation without any new report (background refresh on the activation announcement).
    release::release(&url, &root, "default", "9.0.0");
    let mut gauge = String::new();
    for _ in 0..50 {
        gauge = drift_gauge(&url, "default").unwrap();
        if gauge.ends_with(" 2") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gauge.ends_with(" 2"), "{gauge}");
    let view = fleet(&url, &root, "default");
    assert_eq!(
        sidecar(&view, "opa-a")["bundles"][0]["expectedRevision"],
        "9.0.0"
    );
    post(
        &url,
        "/status",
        Some(&token),
        Some("gzip"),
        &gzip(&serde_json::to_vec(&status_report("opa-a", "9.0.0")).unwrap()),
    );
    let view = fleet(&url, &root, "default");
    assert_eq!(sidecar(&view, "opa-a")["drift"], false);
    assert_eq!(view["summary"]["drifted"], 1);

    // Refusals.
    let report = serde_json::to_vec(&status_report("opa-x", &active)).unwrap();
    post(&url, "/status", None, None, &report).assert_problem(401, "unauthorized");
    post(&url, "/status", Some(&root), None, &report).assert_problem(401, "unauthorized");
    post(&url, "/status", Some(&token), None, b"{not json").assert_problem(400, "invalid_json");
    post(
        &url,
        "/status",
        Some(&token),
        None,
        br#"{"labels":{"version":"x"},"bundles":{}}"#,
    )
    .assert_problem(400, "invalid_status");
    post(&url, "/status", Some(&token), Some("gzip"), &report).assert_problem(400, "invalid_gzip");
    // Another org's sidecar lands in its own org only; another org's admin cannot look.
    let acme_token = org_sidecar(&url, &root, "acme");
    let acme_admin = orgs::credential(&url, &root, "acme", "admin");
    post(
        &url,
        "/status",
        Some(&acme_token),
        None,
        &serde_json::to_vec(&status_report("opa-acme", "1")).unwrap(),
    );
    assert_eq!(fleet(&url, &root, "acme")["summary"]["sidecars"], 1);
    assert_eq!(
        fleet(&url, &acme_admin, "acme")["summary"]["drifted"],
        1,
        "acme has no active bundle"
    );
    let view = fleet(&url, &root, "default");
    assert_eq!(
        view["summary"]["sidecars"], 2,
        "nothing refused was recorded"
    );
    let foreign = get_as(&format!("{url}{API}/fleet?org=default"), &acme_admin);
    foreign.assert_problem(404, "not_found");
    server.stop();
}

#[test]
fn decision_logs_become_ledger_entries_exactly_once() {
    let server = Server::start();
    let (url, root) = (server.url.clone(), server.root_key.clone().unwrap());
    let token = server.sidecar_token.clone().unwrap();

    let batch: Vec<Value> = (0..3)
        .map(|i| decision(&format!("dec-{i}"), "opa-a"))
        .collect();
    let first = upload_logs(&url, &token, &batch);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.json(),
        json!({"received": 3, "appended": 3, "duplicates": 0})
    );
    // OPA retries the same chunk (e.g. it never saw our 200): nothing is appended again.
    let retry = upload_logs(&url, &token, &batch);
    assert_eq!(
        retry.json(),
        json!({"received": 3, "appended": 0, "duplicates": 3})
    );
    // A chunk overlapping a previous one, and repeating an id inside itself.
    let overlap = vec![
        batch[2].clone(),
        decision("dec-3", "opa-a"),
        decision("dec-3", "opa-a"),
    ];
    assert_eq!(
        upload_logs(&url, &token, &overlap).json(),
        json!({"received": 2, "appended": 1, "duplicates": 1})
    );
    // On a partition path too.
    let body = gzip(&serde_json::to_vec(&[decision("dec-4", "opa-b")]).unwrap());
    let partition = post(&url, "/logs/east", Some(&token), Some("gzip"), &body);
    assert_eq!(partition.status, 200, "{}", partition.text());

    // Refusals: each carries ids that must never reach the ledger.
    let refused = |tag: &str| decision(&format!("refused-{tag}"), "opa-a");
    let good = gzip(&serde_json::to_vec(&[refused("auth")]).unwrap());
    post(&url, "/logs", None, Some("gzip"), &good).assert_problem(401, "unauthorized");
    post(&url, "/logs", Some(&root), Some("gzip"), &good).assert_problem(401, "unauthorized");
    post(
        &url,
        "/logs",
        Some("sck_sidecar_forged"),
        Some("gzip"),
        &good,
    )
    .assert_problem(401, "unauthorized");
    let plain = serde_json::to_vec(&[refused("plain")]).unwrap();
    post(&url, "/logs", Some(&token), None, &plain).assert_problem(415, "gzip_required");
    post(&url, "/logs", Some(&token), Some("gzip"), &plain).assert_problem(400, "invalid_gzip");
    let mut truncated = gzip(&serde_json::to_vec(&[refused("truncated")]).unwrap());
    truncated.truncate(truncated.len() / 2);
    post(&url, "/logs", Some(&token), Some("gzip"), &truncated).assert_problem(400, "invalid_gzip");
    // A gzip bomb: 40 MiB of whitespace after a valid event compresses to ~40 KiB.
    let mut bomb_json = serde_json::to_vec(&[refused("bomb")]).unwrap();
    bomb_json.pop();
    bomb_json.extend(std::iter::repeat_n(b' ', 40 << 20));
    bomb_json.push(b']');
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 1 << 20);
    post(&url, "/logs", Some(&token), Some("gzip"), &bomb).assert_problem(413, "payload_too_large");
    // A compressed body over http.max_body_bytes (8 MiB) is refused before it is read.
    let bearer = format!("Bearer {token}");
    post_oversized(
        &format!("{url}/logs"),
        &[("Authorization", &bearer), ("Content-Encoding", "gzip")],
        &vec![0x1f_u8; 9 << 20],
    )
    .assert_problem(413, "payload_too_large");
    post(
        &url,
        "/logs",
        Some(&token),
        Some("gzip"),
        &gzip(b"[{\"decision_id\": "),
    )
    .assert_problem(400, "invalid_json");
    post(
        &url,
        "/logs",
        Some(&token),
        Some("gzip"),
        &gzip(&serde_json::to_vec(&refused("object")).unwrap()),
    )
    .assert_problem(400, "invalid_decision_log");
    let mut wrong_type = refused("wrongtype");
    wrong_type["bundles"] = json!({"gateway": 5});
    upload_logs(&url, &token, &[refused("shape-ok"), wrong_type])
        .assert_problem(400, "invalid_decision_log");
    let mut no_id = refused("noid");
    no_id.as_object_mut().unwrap().remove("decision_id");
    let mixed = upload_logs(
        &url,
        &token,
        &[refused("before-missing"), no_id, refused("after-missing")],
    );
    mixed.assert_problem(400, "missing_decision_id");
    assert!(mixed.json()["diagnostics"][0]
        .as_str()
        .unwrap()
        .starts_with("event 1"));

    // Another org's sidecar writes to its own ledger only, whatever its payload claims.
    let acme_token = org_sidecar(&url, &root, "acme");
    let mut acme_event = decision("acme-1", "opa-acme");
    acme_event["labels"]["org"] = json!("default");
    assert_eq!(
        upload_logs(&url, &acme_token, &[acme_event]).json()["appended"],
        1
    );
    // The same decision id in another org is a different decision.
    assert_eq!(
        upload_logs(&url, &acme_token, &[decision("dec-0", "opa-acme")]).json()["appended"],
        1
    );
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());

    let entries = exported_entries(&db, "default", &data_dir);
    let sidecar = of_type(&entries, "decision.sidecar");
    let mut ids: Vec<&str> = sidecar
        .iter()
        .map(|e| e["body"]["decision_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["dec-0", "dec-1", "dec-2", "dec-3", "dec-4"],
        "each decision exactly once"
    );
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains("refused-"),
        "nothing of a refused upload is in the ledger"
    );
    assert!(!all.contains("acme-1"));
    assert!(
        !all.contains("hunter2-secret"),
        "inputs are hashed, not stored, by default"
    );
    assert!(
        !all.contains(server_secret_prefix()),
        "no credential secret in the ledger"
    );
    let entry = sidecar
        .iter()
        .find(|e| e["body"]["decision_id"] == "dec-0")
        .unwrap();
    let body = &entry["body"];
    assert_eq!(entry["org"], "default");
    assert_eq!(
        body["input_sha256"],
        sha256_jcs(&decision("dec-0", "opa-a")["input"])
    );
    assert_eq!(
        body["result_sha256"],
        sha256_jcs(&json!({"allow": true, "reasons": []}))
    );
    assert_eq!(body["allow"], true);
    assert_eq!(body["bundles"]["gateway"]["revision"], "1.0.0");
    assert_eq!(body["sidecar"]["instance_id"], "opa-a");
    assert_eq!(body["sidecar"]["opa_version"], "0.60.0");
    assert!(
        body["sidecar"]["credential_id"]
            .as_str()
            .unwrap()
            .starts_with("crd_")
            || !body["sidecar"]["credential_id"].is_null()
    );
    assert_eq!(body["path"], "sck/gateway/decision");
    assert_eq!(body["timestamp"], "2026-01-01T00:00:00.123456789Z");
    assert_eq!(body["metrics"]["timer_rego_query_eval_ns"], 51234);
    assert!(body.get("input").is_none());
    let dec4 = sidecar
        .iter()
        .find(|e| e["body"]["decision_id"] == "dec-4")
        .unwrap();
    assert_eq!(dec4["body"]["sidecar"]["partition"], "east");

    let acme = exported_entries(&db, "acme", &data_dir);
    let acme_ids: Vec<&str> = of_type(&acme, "decision.sidecar")
        .iter()
        .map(|e| e["body"]["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(acme_ids, ["acme-1", "dec-0"]);
}

/// Sidecar secrets share this prefix; none may ever appear in a ledger entry.
fn server_secret_prefix() -> &'static str {
    "sck_sidecar_"
}

#[test]
fn configured_orgs_keep_masked_inputs() {
    let server = Server::start_with_env(&[
        ("SCK_FLEET__STORE_INPUT", "true"),
        ("SCK_FLEET__MASK", r#"["/input/password"]"#),
    ]);
    let token = server.sidecar_token.clone().unwrap();
    let reply = upload_logs(&server.url, &token, &[decision("masked-1", "opa-a")]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());
    let entries = exported_entries(&db, "default", &data_dir);
    let entry = of_type(&entries, "decision.sidecar")[0];
    // Kept beside the entry (prunable, see retention_e2e.rs), never in it.
    assert!(entry["body"].get("input").is_none(), "{entry}");
    let kept = cli::ok(&[
        "ledger",
        "inputs",
        "--org",
        "default",
        "--database-url",
        &db,
    ]);
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(
        kept["input"],
        json!({"action": "tools.invoke", "user": "bob"})
    );
    assert_eq!(kept["masked"], json!(["/input/password"]));
    assert_eq!(kept["seq"], entry["seq"]);
    assert_eq!(
        entry["body"]["input_sha256"],
        sha256_jcs(&decision("masked-1", "opa-a")["input"])
    );
    assert!(!serde_json::to_string(&entries)
        .unwrap()
        .contains("hunter2-secret"));
}

#[test]
fn postgres_ingestion_is_idempotent() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let server = deployment.replica();
    let token = server.sidecar_token.clone().unwrap();
    let batch: Vec<Value> = (0..250)
        .map(|i| decision(&format!("pg-{i}"), "opa-pg"))
        .collect();
    assert_eq!(
        upload_logs(&server.url, &token, &batch).json()["appended"],
        250
    );
    assert_eq!(
        upload_logs(&server.url, &token, &batch).json()["duplicates"],
        250
    );
    let status = post(
        &server.url,
        "/status",
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-pg", "x")).unwrap(),
    );
    assert_eq!(status.status, 200);
    let view = fleet(&server.url, server.root(), "default");
    assert_eq!(sidecar(&view, "opa-pg")["drift"], true);
    server.stop();
}

#[test]
fn opa_config_enables_status_and_decision_logs() {
    let server = Server::start();
    let out = cli::succeeded(server.cli(&[
        "opa-config",
        "--org",
        "default",
        "--bundle",
        "gateway",
        "--sidecar-token",
        "T",
        "--status",
        "--decision-logs",
    ]));
    let yaml: Value = yaml_serde::from_str(&out).unwrap();
    assert_eq!(yaml["status"]["service"], "sck");
    assert_eq!(yaml["decision_logs"]["service"], "sck");
    assert_eq!(yaml["bundles"]["gateway"]["service"], "sck");
    server.stop();
}

/// The two crash windows of ingestion, reproduced by editing the claims table while the server
/// is down: a claim whose entry was appended but never marked committed (crash after the
/// append), and a claim with no entry (crash before the append). A retry after the lease
/// recovers both: the first is found in the log and not appended again, the second is appended.
#[test]
fn abandoned_claims_are_recovered_without_duplicates() {
    let deployment = Deployment::sqlite();
    let db = &deployment.database_url;
    let server = deployment.replica();
    let token = server.sidecar().to_owned();
    let url = server.url.clone();
    assert_eq!(
        upload_logs(&url, &token, &[decision("crash-appended", "opa-a")]).json()["appended"],
        1
    );
    assert!(server.stop().success());

    for sql in [
        "UPDATE fleet_decisions SET state = 'claimed', claimed_at_unix = 0 WHERE decision_id = 'crash-appended'",
        "INSERT INTO fleet_decisions (org_id, decision_id, state, claim_id, log_size_at_claim, claimed_at_unix) \
         VALUES ('default', 'crash-claimed', 'claimed', 'clm_dead', 0, 0)",
        // A fresh claim of a live request elsewhere: a retry must not take it over.
        "INSERT INTO fleet_decisions (org_id, decision_id, state, claim_id, log_size_at_claim, claimed_at_unix) \
         VALUES ('default', 'in-flight', 'claimed', 'clm_live', 0, 9999999999)",
    ] {
        db::sqlite_execute(db, sql, &[]).unwrap();
    }

    let server = deployment.replica();
    let retry = upload_logs(
        &server.url,
        &token,
        &[
            decision("crash-appended", "opa-a"),
            decision("crash-claimed", "opa-a"),
        ],
    );
    assert_eq!(
        retry.json(),
        json!({"received": 2, "appended": 1, "duplicates": 1})
    );
    let busy = upload_logs(&server.url, &token, &[decision("in-flight", "opa-a")]);
    busy.assert_problem(503, "ingest_in_progress");
    assert_eq!(
        upload_logs(
            &server.url,
            &token,
            &[
                decision("crash-appended", "opa-a"),
                decision("crash-claimed", "opa-a")
            ]
        )
        .json(),
        json!({"received": 2, "appended": 0, "duplicates": 2})
    );
    assert!(server.stop().success());
    let entries = exported_entries(db, "default", deployment.data_dir());
    let mut ids: Vec<&str> = of_type(&entries, "decision.sidecar")
        .iter()
        .map(|e| e["body"]["decision_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["crash-appended", "crash-claimed"]);
}
