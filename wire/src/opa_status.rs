//! OPA status reports and drift, as pure functions.
//!
//! Invariant: a report is kept only whole and validated; any malformed part refuses it with
//! [`StatusRefused`] (code `invalid_status`), and what is kept is bounded (bundles, errors and
//! texts capped).
//!
//! A report (`POST /status`) is OPA's status plugin payload: `labels` (with the instance `id`
//! and OPA `version`), `bundles.<name>` (`active_revision`, `last_request`,
//! `last_successful_request|download|activation`, `code`, `message`, `errors`, `http_code`,
//! `type`, `size`), `discovery`, `plugins.<name>.state` and `metrics`. sck keeps a bounded
//! summary of the latest report per org and instance (prometheus metrics are dropped).
//!
//! **Drift.** A sidecar's bundle is matched to the org's registry by name: the key under
//! `bundles` in OPA's configuration is the bundle name (`sck opa-config` writes it so). The
//! bundle is *in sync* when the reported `active_revision` equals the manifest `revision` of
//! the org's active version of that name (sck sets `revision` to the version unless a compile
//! request names one). A sidecar drifts when any reported bundle is out of sync, reports a
//! bundle the org has no active version of, or reports no bundle at all. OPA's status does not
//! carry the bundle digest, so two versions sharing one revision string are indistinguishable.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::opa_logs::check_labels;

/// Most bundles kept per report, and errors kept per bundle.
const MAX_BUNDLES: usize = 64;
const MAX_ERRORS: usize = 20;
/// Longest kept message or error text, in bytes.
const MAX_TEXT: usize = 2048;

/// Why a status report was refused (code `invalid_status`); the detail names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRefused(pub String);

impl StatusRefused {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "invalid_status"
    }
}

impl std::fmt::Display for StatusRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status report refused: {}", self.0)
    }
}

impl std::error::Error for StatusRefused {}

/// The validated part of a status report that sck keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub instance_id: String,
    pub opa_version: Option<String>,
    pub labels: Value,
    /// Bundle name -> summary (see [`summarize_bundle`]).
    pub bundles: Map<String, Value>,
    /// Plugin name -> state.
    pub plugins: Map<String, Value>,
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn string_field(map: &Map<String, Value>, field: &str, at: &str) -> Result<Option<String>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(truncate(s))),
        Some(_) => Err(format!("{at}.{field} must be a string")),
    }
}

/// The kept fields of one `bundles.<name>` object.
fn summarize_bundle(name: &str, value: &Value) -> Result<Value, String> {
    let at = format!("bundles.{name}");
    let Value::Object(map) = value else {
        return Err(format!("{at} must be an object"));
    };
    let mut out = Map::new();
    for field in [
        "active_revision",
        "last_request",
        "last_successful_request",
        "last_successful_download",
        "last_successful_activation",
        "code",
        "message",
        "type",
    ] {
        if let Some(s) = string_field(map, field, &at)? {
            out.insert(field.into(), Value::String(s));
        }
    }
    for field in ["http_code", "size"] {
        match map.get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(field.into(), v.clone());
            }
            // Some OPA versions report http_code as a string.
            Some(Value::String(s)) if s.len() <= 8 => {
                out.insert(field.into(), Value::String(s.clone()));
            }
            Some(_) => return Err(format!("{at}.{field} must be a number")),
        }
    }
    match map.get("errors") {
        None | Some(Value::Null) => {}
        Some(Value::Array(errors)) => {
            let kept: Vec<Value> = errors
                .iter()
                .take(MAX_ERRORS)
                .map(|e| match e {
                    Value::String(s) => Value::String(truncate(s)),
                    other => Value::String(truncate(&other.to_string())),
                })
                .collect();
            out.insert("errors".into(), Value::Array(kept));
        }
        Some(_) => return Err(format!("{at}.errors must be an array")),
    }
    Ok(Value::Object(out))
}

/// Validates a status report body (already parsed JSON).
pub fn parse_status(value: &Value) -> Result<StatusReport, StatusRefused> {
    let invalid = StatusRefused;
    let Value::Object(map) = value else {
        return Err(invalid("a status report is a JSON object".into()));
    };
    let (instance_id, opa_version) = check_labels(map.get("labels")).map_err(invalid)?;
    let mut bundles = Map::new();
    match map.get("bundles") {
        None | Some(Value::Null) => {}
        Some(Value::Object(reported)) => {
            if reported.len() > MAX_BUNDLES {
                return Err(invalid(format!("more than {MAX_BUNDLES} bundles")));
            }
            for (name, b) in reported {
                if name.len() > 256 {
                    return Err(invalid("a bundle name is too long".into()));
                }
                bundles.insert(name.clone(), summarize_bundle(name, b).map_err(invalid)?);
            }
        }
        Some(_) => return Err(invalid("bundles must be an object".into())),
    }
    // OPA before 0.11 reported a single `bundle`.
    if let Some(single) = map.get("bundle").filter(|v| !v.is_null()) {
        let name = single
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("bundle.name must be a string".into()))?;
        bundles.insert(
            name.to_owned(),
            summarize_bundle(name, single).map_err(invalid)?,
        );
    }
    let mut plugins = Map::new();
    match map.get("plugins") {
        None | Some(Value::Null) => {}
        Some(Value::Object(reported)) => {
            for (name, p) in reported.iter().take(MAX_BUNDLES) {
                let state = p.get("state").and_then(Value::as_str).unwrap_or("");
                plugins.insert(truncate(name), Value::String(truncate(state)));
            }
        }
        Some(_) => return Err(invalid("plugins must be an object".into())),
    }
    Ok(StatusReport {
        instance_id: instance_id.to_owned(),
        opa_version: opa_version.map(str::to_owned),
        labels: map.get("labels").cloned().unwrap_or(Value::Null),
        bundles,
        plugins,
    })
}

/// The org's active version of one bundle name, as drift compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRevision {
    pub name: String,
    pub version: String,
    pub revision: String,
    pub sha256: String,
}

/// A sidecar's drift verdict with one reason per out-of-sync bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub drift: bool,
    pub reasons: Vec<String>,
    /// Per reported bundle: its summary plus `expected_revision`, `expected_version`, `in_sync`.
    pub bundles: Vec<Value>,
}

/// Compares the bundles a sidecar reported with the org's active versions.
pub fn drift(reported: &Map<String, Value>, active: &BTreeMap<String, ActiveRevision>) -> Drift {
    let mut reasons = Vec::new();
    let mut bundles = Vec::new();
    if reported.is_empty() {
        reasons.push("the sidecar reports no bundle".to_owned());
    }
    for (name, summary) in reported {
        let running = summary.get("active_revision").and_then(Value::as_str);
        let expected = active.get(name);
        let in_sync = match (running, expected) {
            (Some(r), Some(e)) => r == e.revision,
            _ => false,
        };
        if !in_sync {
            reasons.push(match (running, expected) {
                (_, None) => format!("{name}: the org has no active version of this bundle"),
                (None, Some(e)) => format!(
                    "{name}: no active revision reported (expected {})",
                    e.revision
                ),
                (Some(r), Some(e)) => format!(
                    "{name}: runs revision {r}, the active version {} has revision {}",
                    e.version, e.revision
                ),
            });
        }
        let mut entry = json!({
            "name": name,
            "inSync": in_sync,
            "expectedRevision": expected.map(|e| e.revision.clone()),
            "expectedVersion": expected.map(|e| e.version.clone()),
        });
        if let (Value::Object(out), Value::Object(fields)) = (&mut entry, summary) {
            for (k, v) in fields {
                out.insert(camel(k), v.clone());
            }
        }
        bundles.push(entry);
    }
    Drift {
        drift: !reasons.is_empty(),
        reasons,
        bundles,
    }
}

/// `last_successful_download` -> `lastSuccessfulDownload`.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(revision: &str) -> Value {
        json!({
            "labels": {"id": "opa-1", "version": "0.60.0", "app": "x"},
            "bundles": {"gateway": {
                "name": "gateway",
                "active_revision": revision,
                "last_successful_download": "2026-01-01T00:00:00Z",
                "last_successful_activation": "2026-01-01T00:00:00Z",
                "metrics": {"timer_bundle_request_ns": 5},
                "http_code": 200
            }},
            "plugins": {"bundle": {"state": "OK"}},
            "metrics": {"prometheus": {"huge": {}}}
        })
    }

    fn active(revision: &str) -> BTreeMap<String, ActiveRevision> {
        BTreeMap::from([(
            "gateway".to_owned(),
            ActiveRevision {
                name: "gateway".into(),
                version: revision.into(),
                revision: revision.into(),
                sha256: "ab".into(),
            },
        )])
    }

    #[test]
    fn reports_are_summarized_and_compared() {
        let parsed = parse_status(&report("1.0.0")).unwrap();
        assert_eq!(parsed.instance_id, "opa-1");
        assert_eq!(parsed.opa_version.as_deref(), Some("0.60.0"));
        assert!(parsed.bundles["gateway"].get("metrics").is_none());
        let ok = drift(&parsed.bundles, &active("1.0.0"));
        assert!(!ok.drift, "{:?}", ok.reasons);
        assert_eq!(
            ok.bundles[0]["lastSuccessfulDownload"],
            "2026-01-01T00:00:00Z"
        );
        let bad = drift(&parsed.bundles, &active("2.0.0"));
        assert!(bad.drift);
        assert!(bad.reasons[0].contains("runs revision 1.0.0"));
        assert!(drift(&parsed.bundles, &BTreeMap::new()).drift);
        assert!(drift(&Map::new(), &active("1.0.0")).drift);
    }

    #[test]
    fn malformed_reports_are_refused() {
        for bad in [
            json!([]),
            json!({"bundles": {}}),
            json!({"labels": {"id": "x"}, "bundles": []}),
            json!({"labels": {"id": "x"}, "bundles": {"b": {"active_revision": 3}}}),
            json!({"labels": {"id": 7}}),
        ] {
            assert_eq!(
                parse_status(&bad).unwrap_err().code(),
                "invalid_status",
                "{bad}"
            );
        }
    }
}
