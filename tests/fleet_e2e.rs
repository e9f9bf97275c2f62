//! End-to-end tests of the OPA sidecar fleet endpoints against the real `sck serve`: a small
//! sidecar-protocol client (OPA-shaped status reports and gzip decision-log batches, including
//! retried batches), the fleet view and its drift flag, the `/metrics` drift gauge, the
//! `decision.sidecar` ledger entries (read from an offline export), and every refusal with
//! proof that nothing partial was recorded.

mod support;

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::Digest;
use support::{fresh_postgres_database, get, policy_files, post_json, Reply, Server};

const API: &str = "/api/v1/enforcement";

// ---- the sidecar-protocol client --------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// POSTs `body` as OPA does (optionally with `Content-Encoding: gzip`).
fn post(url: &str, token: Option<&str>, encoding: Option<&str>, body: &[u8]) -> Reply {
    let mut request = support::agent()
        .post(url)
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    let mut response = request.send(body).expect("request completes");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_vec().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// Uploads a decision-log chunk the way OPA's decision_logs plugin does.
fn upload_logs(url: &str, token: &str, events: &[Value]) -> Reply {
    let body = gzip(&serde_json::to_vec(events).unwrap());
    post(&format!("{url}/logs"), Some(token), Some("gzip"), &body)
}

/// An OPA status report for instance `id` running `revision` of bundle `gateway`.
fn status_report(id: &str, revision: &str) -> Value {
    json!({
        "labels": {"id": id, "version": "0.60.0", "app": "checkout"},
        "bundles": {"gateway": {
            "name": "gateway",
            "active_revision": revision,
            "last_request": "2026-01-01T00:00:10Z",
            "last_successful_request": "2026-01-01T00:00:10Z",
            "last_successful_download": "2026-01-01T00:00:00Z",
            "last_successful_activation": "2026-01-01T00:00:00Z",
            "metrics": {"timer_bundle_request_ns": 1234},
            "type": "snapshot",
            "size": 4096
        }},
        "plugins": {"bundle": {"state": "OK"}, "decision_logs": {"state": "OK"}, "status": {"state": "OK"}},
        "metrics": {"prometheus": {"go_gc_duration_seconds": {"name": "go_gc_duration_seconds", "type": "SUMMARY", "metric": []}}}
    })
}

/// One OPA decision-log event (shape of OPA 0.60's EventV1).
fn decision(id: &str, instance: &str) -> Value {
    json!({
        "labels": {"id": instance, "version": "0.60.0", "app": "checkout"},
        "decision_id": id,
        "bundles": {"gateway": {"revision": "1.0.0"}},
        "path": "sck/gateway/decision",
        "input": {"action": "tools.invoke", "user": "bob", "password": "hunter2-secret"},
        "result": {"allow": true, "reasons": []},
        "requested_by": "127.0.0.1:50312",
        "timestamp": "2026-01-01T00:00:00.123456789Z",
        "metrics": {"timer_rego_query_eval_ns": 51234, "timer_server_handler_ns": 90000},
        "req_id": 7
    })
}

fn sha256_jcs(value: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(value).unwrap();
    hex::encode(sha2::Sha256::digest(bytes))
}

// ---- helpers ----------------------------------------------------------------------------

fn fleet(url: &str, key: &str, org: &str) -> Value {
    let reply = get(
        &format!("{url}{API}/fleet?org={org}"),
        &[("Authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

fn sidecar<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["sidecars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["instanceId"] == id)
        .unwrap_or_else(|| panic!("sidecar {id} not in {view}"))
}

fn metric_line(url: &str, name: &str, org: &str) -> Option<String> {
    let text = String::from_utf8(get(&format!("{url}/metrics"), &[]).body).unwrap();
    text.lines()
        .find(|l| {
            l.starts_with(name)
                && l.contains(&format!("org=\"{org}\""))
                && !l.starts_with(&format!("{name}_"))
        })
        .map(str::to_owned)
}

fn release(url: &str, key: &str, org: &str, version: &str) {
    let compiled = post_json(
        &format!("{url}{API}/bundles/compile"),
        Some(key),
        &json!({"organizationId": org, "name": "gateway", "version": version, "files": policy_files()}),
    );
    assert_eq!(
        compiled.status,
        201,
        "{}",
        String::from_utf8_lossy(&compiled.body)
    );
    let id = compiled.json()["id"].as_str().unwrap().to_owned();
    let published = post_json(
        &format!("{url}{API}/bundles/publish"),
        Some(key),
        &json!({"bundleId": id}),
    );
    assert_eq!(
        published.status,
        200,
        "{}",
        String::from_utf8_lossy(&published.body)
    );
    let activated = post_json(
        &format!("{url}{API}/bundles/activate"),
        Some(key),
        &json!({"bundleId": id}),
    );
    assert_eq!(
        activated.status,
        200,
        "{}",
        String::from_utf8_lossy(&activated.body)
    );
}

fn create(url: &str, root: &str, org: &str, kind: &str) -> String {
    if kind == "sidecar" {
        let created = post_json(
            &format!("{url}{API}/orgs"),
            Some(root),
            &json!({"organizationId": org}),
        );
        assert!(
            created.status == 201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
    }
    let credential = post_json(
        &format!("{url}{API}/credentials"),
        Some(root),
        &json!({"organizationId": org, "kind": kind}),
    );
    assert_eq!(
        credential.status,
        201,
        "{}",
        String::from_utf8_lossy(&credential.body)
    );
    credential.json()["secret"].as_str().unwrap().to_owned()
}

fn export(data_dir: &Path, org: &str) -> Vec<Value> {
    let db = data_dir.join("sck.db").display().to_string();
    support::export_entries(&support::export_ledger(&db, org, data_dir))
}

fn sidecar_entries(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["type"] == "decision.sidecar")
        .collect()
}

fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(
        reply.code(),
        code,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
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
        &format!("{url}/status"),
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-a", &active)).unwrap(),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let b = post(
        &format!("{url}/status/east"),
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
    let gauge = metric_line(&url, "sck_fleet_sidecars_drifted", "default").expect("drift gauge");
    assert!(gauge.ends_with(" 1"), "{gauge}");

    // The latest report per instance wins: opa-b catches up.
    post(
        &format!("{url}/status"),
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-b", &active)).unwrap(),
    );
    let view = fleet(&url, &root, "default");
    assert_eq!(view["summary"]["sidecars"], 2);
    assert_eq!(view["summary"]["drifted"], 0);
    assert!(metric_line(&url, "sck_fleet_sidecars_drifted", "default")
        .unwrap()
        .ends_with(" 0"));

    // A new active version makes both drift until they report it; the gauge follows the
    // activation without any new report (background refresh on the activation announcement).
    release(&url, &root, "default", "9.0.0");
    let mut gauge = String::new();
    for _ in 0..50 {
        gauge = metric_line(&url, "sck_fleet_sidecars_drifted", "default").unwrap();
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
        &format!("{url}/status"),
        Some(&token),
        Some("gzip"),
        &gzip(&serde_json::to_vec(&status_report("opa-a", "9.0.0")).unwrap()),
    );
    let view = fleet(&url, &root, "default");
    assert_eq!(sidecar(&view, "opa-a")["drift"], false);
    assert_eq!(view["summary"]["drifted"], 1);

    // Refusals.
    let report = serde_json::to_vec(&status_report("opa-x", &active)).unwrap();
    assert_refused(
        &post(&format!("{url}/status"), None, None, &report),
        401,
        "unauthorized",
    );
    assert_refused(
        &post(&format!("{url}/status"), Some(&root), None, &report),
        401,
        "unauthorized",
    );
    assert_refused(
        &post(&format!("{url}/status"), Some(&token), None, b"{not json"),
        400,
        "invalid_json",
    );
    assert_refused(
        &post(
            &format!("{url}/status"),
            Some(&token),
            None,
            br#"{"labels":{"version":"x"},"bundles":{}}"#,
        ),
        400,
        "invalid_status",
    );
    assert_refused(
        &post(
            &format!("{url}/status"),
            Some(&token),
            Some("gzip"),
            &report,
        ),
        400,
        "invalid_gzip",
    );
    // Another org's sidecar lands in its own org only; another org's admin cannot look.
    let acme_token = create(&url, &root, "acme", "sidecar");
    let acme_admin = create(&url, &root, "acme", "admin");
    post(
        &format!("{url}/status"),
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
    let foreign = get(
        &format!("{url}{API}/fleet?org=default"),
        &[("Authorization", &format!("Bearer {acme_admin}"))],
    );
    assert_refused(&foreign, 404, "not_found");
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
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
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
    let partition = post(
        &format!("{url}/logs/east"),
        Some(&token),
        Some("gzip"),
        &body,
    );
    assert_eq!(
        partition.status,
        200,
        "{}",
        String::from_utf8_lossy(&partition.body)
    );

    // Refusals: each carries ids that must never reach the ledger.
    let refused = |tag: &str| decision(&format!("refused-{tag}"), "opa-a");
    let good = gzip(&serde_json::to_vec(&[refused("auth")]).unwrap());
    assert_refused(
        &post(&format!("{url}/logs"), None, Some("gzip"), &good),
        401,
        "unauthorized",
    );
    assert_refused(
        &post(&format!("{url}/logs"), Some(&root), Some("gzip"), &good),
        401,
        "unauthorized",
    );
    assert_refused(
        &post(
            &format!("{url}/logs"),
            Some("sck_sidecar_forged"),
            Some("gzip"),
            &good,
        ),
        401,
        "unauthorized",
    );
    let plain = serde_json::to_vec(&[refused("plain")]).unwrap();
    assert_refused(
        &post(&format!("{url}/logs"), Some(&token), None, &plain),
        415,
        "gzip_required",
    );
    assert_refused(
        &post(&format!("{url}/logs"), Some(&token), Some("gzip"), &plain),
        400,
        "invalid_gzip",
    );
    let mut truncated = gzip(&serde_json::to_vec(&[refused("truncated")]).unwrap());
    truncated.truncate(truncated.len() / 2);
    assert_refused(
        &post(
            &format!("{url}/logs"),
            Some(&token),
            Some("gzip"),
            &truncated,
        ),
        400,
        "invalid_gzip",
    );
    // A gzip bomb: 40 MiB of whitespace after a valid event compresses to ~40 KiB.
    let mut bomb_json = serde_json::to_vec(&[refused("bomb")]).unwrap();
    bomb_json.pop();
    bomb_json.extend(std::iter::repeat_n(b' ', 40 << 20));
    bomb_json.push(b']');
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 1 << 20);
    assert_refused(
        &post(&format!("{url}/logs"), Some(&token), Some("gzip"), &bomb),
        413,
        "payload_too_large",
    );
    // A compressed body over http.max_body_bytes (8 MiB) is refused before it is read.
    let bearer = format!("Bearer {token}");
    assert_refused(
        &support::post_oversized(
            &format!("{url}/logs"),
            &[("Authorization", &bearer), ("Content-Encoding", "gzip")],
            &vec![0x1f_u8; 9 << 20],
        ),
        413,
        "payload_too_large",
    );
    assert_refused(
        &post(
            &format!("{url}/logs"),
            Some(&token),
            Some("gzip"),
            &gzip(b"[{\"decision_id\": "),
        ),
        400,
        "invalid_json",
    );
    assert_refused(
        &post(
            &format!("{url}/logs"),
            Some(&token),
            Some("gzip"),
            &gzip(&serde_json::to_vec(&refused("object")).unwrap()),
        ),
        400,
        "invalid_decision_log",
    );
    let mut wrong_type = refused("wrongtype");
    wrong_type["bundles"] = json!({"gateway": 5});
    assert_refused(
        &upload_logs(&url, &token, &[refused("shape-ok"), wrong_type]),
        400,
        "invalid_decision_log",
    );
    let mut no_id = refused("noid");
    no_id.as_object_mut().unwrap().remove("decision_id");
    let mixed = upload_logs(
        &url,
        &token,
        &[refused("before-missing"), no_id, refused("after-missing")],
    );
    assert_refused(&mixed, 400, "missing_decision_id");
    assert!(mixed.json()["diagnostics"][0]
        .as_str()
        .unwrap()
        .starts_with("event 1"));

    // Another org's sidecar writes to its own ledger only, whatever its payload claims.
    let acme_token = create(&url, &root, "acme", "sidecar");
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
    let data_dir = server.data_dir.clone();
    assert!(server.stop().success());

    let entries = export(&data_dir, "default");
    let sidecar = sidecar_entries(&entries);
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

    let acme = export(&data_dir, "acme");
    let acme_ids: Vec<&str> = sidecar_entries(&acme)
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
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let data_dir = server.data_dir.clone();
    assert!(server.stop().success());
    let entries = export(&data_dir, "default");
    let entry = sidecar_entries(&entries)[0];
    // Kept beside the entry (prunable, see retention_e2e.rs), never in it.
    assert!(entry["body"].get("input").is_none(), "{entry}");
    let kept = std::process::Command::new(env!("CARGO_BIN_EXE_sck"))
        .args(["ledger", "inputs", "--org", "default", "--database-url"])
        .arg(data_dir.join("sck.db"))
        .output()
        .unwrap();
    let kept: Value = serde_json::from_slice(&kept.stdout).unwrap();
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
    let Some(database_url) = fresh_postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(dir.path(), &database_url);
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
        &format!("{}/status", server.url),
        Some(&token),
        None,
        &serde_json::to_vec(&status_report("opa-pg", "x")).unwrap(),
    );
    assert_eq!(status.status, 200);
    let view = fleet(&server.url, server.root_key.as_deref().unwrap(), "default");
    assert_eq!(sidecar(&view, "opa-pg")["drift"], true);
    server.stop();
}

#[test]
fn opa_config_enables_status_and_decision_logs() {
    let server = Server::start();
    let out = server.cli(&[
        "opa-config",
        "--org",
        "default",
        "--bundle",
        "gateway",
        "--sidecar-token",
        "T",
        "--status",
        "--decision-logs",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: Value = yaml_serde::from_slice(&out.stdout).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sck.db").display().to_string();
    let server = Server::start_on(dir.path(), &db);
    let token = server.sidecar_token.clone().unwrap();
    let url = server.url.clone();
    assert_eq!(
        upload_logs(&url, &token, &[decision("crash-appended", "opa-a")]).json()["appended"],
        1
    );
    assert!(server.stop().success());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{db}")).await.unwrap();
        sqlx::query("UPDATE fleet_decisions SET state = 'claimed', claimed_at_unix = 0 WHERE decision_id = 'crash-appended'")
            .execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO fleet_decisions (org_id, decision_id, state, claim_id, log_size_at_claim, claimed_at_unix) \
                     VALUES ('default', 'crash-claimed', 'claimed', 'clm_dead', 0, 0)")
            .execute(&pool).await.unwrap();
        // A fresh claim of a live request elsewhere: a retry must not take it over.
        sqlx::query("INSERT INTO fleet_decisions (org_id, decision_id, state, claim_id, log_size_at_claim, claimed_at_unix) \
                     VALUES ('default', 'in-flight', 'claimed', 'clm_live', 0, 9999999999)")
            .execute(&pool).await.unwrap();
        pool.close().await;
    });

    let server = Server::start_on(dir.path(), &db);
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
    assert_refused(&busy, 503, "ingest_in_progress");
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
    let entries = export(dir.path(), "default");
    let mut ids: Vec<&str> = sidecar_entries(&entries)
        .iter()
        .map(|e| e["body"]["decision_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["crash-appended", "crash-claimed"]);
}
