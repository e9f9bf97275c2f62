//! The OPA sidecar protocol from the sidecar's side, as OPA 0.60 speaks it: fetching the
//! active bundle (ETags and long polls), status reports and gzip decision-log uploads with
//! OPA's shapes, and the fleet view an operator reads back. A real OPA is [`super::opa`].

use serde_json::{json, Value};

use super::http::{bearer, get, get_as, gzip, request, Reply, API};

/// `GET /bundles/{org}/gateway.tar.gz` as a sidecar polls it: with `If-None-Match` for
/// `etag` (a digest, quoted here) and a long poll of `wait` seconds.
pub fn fetch_bundle(
    url: &str,
    org: &str,
    token: &str,
    etag: Option<&str>,
    wait: Option<u64>,
) -> Reply {
    let auth = bearer(token);
    let inm = etag.map(|e| format!("\"{e}\""));
    let prefer = wait.map(|w| format!("modes=snapshot,delta;wait={w}"));
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(v) = &inm {
        headers.push(("If-None-Match", v.as_str()));
    }
    if let Some(v) = &prefer {
        headers.push(("Prefer", v.as_str()));
    }
    get(&format!("{url}/bundles/{org}/gateway.tar.gz"), &headers)
}

/// POSTs `body` to `path` (`/status`, `/logs`, a partition under them) as OPA does: JSON,
/// with the sidecar `token` if any and `Content-Encoding: encoding` if any.
pub fn post(
    url: &str,
    path: &str,
    token: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
) -> Reply {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
    headers.extend(encoding.map(|e| ("Content-Encoding", e)));
    request("POST", &format!("{url}{path}"), &headers, body)
}

/// Uploads `events` as one gzip decision-log chunk, the way OPA's decision_logs plugin does.
pub fn upload_logs(url: &str, token: &str, events: &[Value]) -> Reply {
    let body = gzip(&serde_json::to_vec(events).unwrap());
    post(url, "/logs", Some(token), Some("gzip"), &body)
}

/// Sends `report` to `/status`, as OPA's status plugin does.
pub fn report_status(url: &str, token: &str, report: &Value) -> Reply {
    post(
        url,
        "/status",
        Some(token),
        None,
        &serde_json::to_vec(report).unwrap(),
    )
}

/// An OPA status report for instance `id` running `revision` of bundle `gateway`.
pub fn status_report(id: &str, revision: &str) -> Value {
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

/// One OPA decision-log event (the shape of OPA 0.60's EventV1) of instance `instance`; its
/// input carries a password that must never be stored.
pub fn decision(id: &str, instance: &str) -> Value {
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

/// The fleet view of `org`, which must answer 200.
pub fn fleet(url: &str, key: &str, org: &str) -> Value {
    get_as(&format!("{url}{API}/fleet?org={org}"), key).expect(200)
}
