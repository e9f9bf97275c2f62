//! OPA decision-log uploads as pure functions of bytes and configuration: bounded gzip
//! decoding, whole-batch validation, input hashing and masking, and the `decision.sidecar`
//! ledger body.
//!
//! Nothing here does I/O. Every refusal is an [`UploadError`] with a stable `code()`; the
//! gateway maps it to the problem answer (400, 413 or 503). A batch is validated completely
//! before anything is written: one bad event refuses the whole upload with a problem naming
//! every offending event (up to a cap), so a refused upload never leaves a partial trace in
//! the ledger.
//!
//! What an entry keeps (the ledger stores ids and hashes, never raw bodies): decision id,
//! sidecar instance id and OPA version (from `labels`), the uploading credential id, the
//! bundle revisions, the decision path, `input_sha256` (SHA-256 of the RFC 8785 canonical
//! form of the input *as uploaded*), `result_sha256` plus the `allow`/`reasons` read from the
//! result when it has that shape (or the result itself when it is a boolean), OPA's own
//! `erased`/`masked` lists, `requested_by`, `timestamp` and numeric `metrics`. The input itself
//! is kept only when the org's [`InputPolicy`] says so, after removing its mask paths, and
//! never in the entry: it travels as [`StoredInput`] to a side table (`fleet_inputs`) so that
//! retention can delete it later without touching the log (the leaf keeps only the hash).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical;

/// Longest accepted `decision_id`, label value or bundle name, in bytes.
const MAX_ID_BYTES: usize = 256;
/// How many individual problems a refusal lists.
const MAX_DIAGNOSTICS: usize = 20;

/// What of a sidecar decision's input an org keeps, and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputPolicy {
    /// Store the (masked) input beside the entry. Off: only its SHA-256 is recorded.
    #[serde(default)]
    pub store_input: bool,
    /// JSON pointers, OPA-style (`/input/password`), removed before the input is stored.
    #[serde(default)]
    pub mask: Vec<String>,
    /// Stored inputs older than this many days are pruned (none: kept forever). The ledger
    /// entries stay; only the side-table copy of the input goes.
    #[serde(default)]
    pub input_retention_days: Option<u64>,
}

impl InputPolicy {
    /// Checks the mask pointers: each starts with `/input/` and names a field.
    pub fn validate(&self) -> Result<(), String> {
        for pointer in &self.mask {
            if !pointer.starts_with("/input/") || pointer.len() <= "/input/".len() {
                return Err(format!(
                    "fleet mask {pointer:?}: must be a JSON pointer below /input/ (e.g. /input/password)"
                ));
            }
        }
        Ok(())
    }
}

/// One validated upload event, ready to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarDecision {
    pub decision_id: String,
    /// The `decision.sidecar` ledger body.
    pub body: Value,
    /// The masked input to keep beside the entry, when the org's policy stores inputs.
    pub input: Option<StoredInput>,
}

/// A decision input as kept in `fleet_inputs` (after masking).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInput {
    pub input: Value,
    /// The mask pointers that were present and removed.
    pub masked: Vec<String>,
}

/// Who uploaded a batch: the credential (never its secret) and the path partition.
#[derive(Debug, Clone)]
pub struct Uploader<'a> {
    pub credential_id: &'a str,
    pub partition: Option<&'a str>,
}

/// Why a decision-log upload was refused; nothing of it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// The body is not gzip data, or the stream is corrupt (the detail says which).
    InvalidGzip(String),
    /// The body inflates past the configured limit, or has too many events.
    TooLarge(String),
    /// The meter (the server's shared budget of decompressed bytes) refused a byte.
    BudgetExhausted,
    /// The decompressed body is not JSON.
    InvalidJson(String),
    /// The body is not an array of valid events; `code` is that of the first problem
    /// (`missing_decision_id` or `invalid_decision_log`), `diagnostics` one line per event
    /// (up to a cap).
    InvalidBatch {
        code: BatchCode,
        detail: String,
        diagnostics: Vec<String>,
    },
}

/// The code of a refused batch: what its first problem was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchCode {
    MissingDecisionId,
    InvalidDecisionLog,
}

impl BatchCode {
    fn as_str(self) -> &'static str {
        match self {
            BatchCode::MissingDecisionId => "missing_decision_id",
            BatchCode::InvalidDecisionLog => "invalid_decision_log",
        }
    }
}

impl UploadError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::InvalidGzip(_) => "invalid_gzip",
            UploadError::TooLarge(_) => "payload_too_large",
            UploadError::BudgetExhausted => "decompression_busy",
            UploadError::InvalidJson(_) => "invalid_json",
            UploadError::InvalidBatch { code, .. } => code.as_str(),
        }
    }

    /// The per-event problems of a refused batch (empty otherwise).
    pub fn diagnostics(&self) -> &[String] {
        match self {
            UploadError::InvalidBatch { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }

    fn invalid(detail: impl Into<String>) -> Self {
        UploadError::InvalidBatch {
            code: BatchCode::InvalidDecisionLog,
            detail: detail.into(),
            diagnostics: Vec::new(),
        }
    }
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::InvalidGzip(detail)
            | UploadError::TooLarge(detail)
            | UploadError::InvalidJson(detail)
            | UploadError::InvalidBatch { detail, .. } => f.write_str(detail),
            UploadError::BudgetExhausted => {
                f.write_str("the budget of decompressed bytes in flight is exhausted")
            }
        }
    }
}

impl std::error::Error for UploadError {}

/// Decompresses a gzip body, refusing anything that is not gzip or that inflates beyond
/// `max_bytes` (gzip bombs are cut off after `max_bytes + 1` bytes, never fully inflated).
/// Every decompressed byte is charged to `meter` before it is kept; when the meter refuses
/// (`false`), the upload is refused with [`UploadError::BudgetExhausted`].
pub fn gunzip_bounded(
    body: &[u8],
    max_bytes: u64,
    meter: &mut dyn FnMut(u64) -> bool,
) -> Result<Vec<u8>, UploadError> {
    if body.len() < 2 || body[0] != 0x1f || body[1] != 0x8b {
        return Err(UploadError::InvalidGzip(
            "the body is not gzip data (Content-Encoding: gzip requires a gzip stream)".into(),
        ));
    }
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(body).take(max_bytes.saturating_add(1));
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UploadError::InvalidGzip(format!("corrupt gzip data: {e}"))),
        };
        if !meter(n as u64) {
            return Err(UploadError::BudgetExhausted);
        }
        out.extend_from_slice(&chunk[..n]);
    }
    if out.len() as u64 > max_bytes {
        return Err(UploadError::TooLarge(format!(
            "the decompressed body exceeds {max_bytes} bytes ([fleet] max_decompressed_bytes)"
        )));
    }
    Ok(out)
}

/// Unescapes one JSON-pointer reference token (RFC 6901: `~1` is `/`, `~0` is `~`).
fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Removes every `/input/...` pointer of `mask` from `input`; returns the pointers that
/// existed. Missing paths are ignored, as OPA ignores undefined mask pointers.
pub fn mask_input(input: &mut Value, mask: &[String]) -> Vec<String> {
    let mut removed = Vec::new();
    for pointer in mask {
        let Some(inner) = pointer.strip_prefix("/input") else {
            continue;
        };
        let Some((parent, last)) = inner.rsplit_once('/') else {
            continue;
        };
        let key = unescape_token(last);
        let target = if parent.is_empty() {
            Some(&mut *input)
        } else {
            input.pointer_mut(parent)
        };
        let gone = match target {
            Some(Value::Object(map)) => map.remove(&key).is_some(),
            Some(Value::Array(items)) => match key.parse::<usize>() {
                Ok(i) if i < items.len() => {
                    items.remove(i);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if gone {
            removed.push(pointer.clone());
        }
    }
    removed
}

/// Problems found while validating a batch; the first problem picks the error code.
struct Problems {
    code: Option<BatchCode>,
    list: Vec<String>,
    total: usize,
}

impl Problems {
    fn new() -> Self {
        Problems {
            code: None,
            list: Vec::new(),
            total: 0,
        }
    }

    fn push(&mut self, code: BatchCode, problem: String) {
        self.code.get_or_insert(code);
        self.total += 1;
        if self.list.len() < MAX_DIAGNOSTICS {
            self.list.push(problem);
        }
    }

    fn into_result(self) -> Result<(), UploadError> {
        let Some(code) = self.code else {
            return Ok(());
        };
        let detail = if self.total == 1 {
            format!(
                "decision-log batch refused, nothing was recorded: {}",
                self.list[0]
            )
        } else {
            format!(
                "decision-log batch refused, nothing was recorded: {} problems (first: {})",
                self.total, self.list[0]
            )
        };
        Err(UploadError::InvalidBatch {
            code,
            detail,
            diagnostics: self.list,
        })
    }
}

fn short_string(value: Option<&Value>) -> Result<Option<&str>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Ok(Some(s)),
        Some(Value::String(_)) => Err("is too long"),
        Some(_) => Err("must be a string"),
    }
}

/// Checks that `labels` is an object of short strings with an `id`; returns (id, version).
pub fn check_labels(labels: Option<&Value>) -> Result<(&str, Option<&str>), String> {
    let Some(Value::Object(map)) = labels else {
        return Err("labels must be an object with the OPA instance `id`".into());
    };
    if map.len() > 64 {
        return Err("labels has more than 64 entries".into());
    }
    for (k, v) in map {
        if k.len() > MAX_ID_BYTES {
            return Err("a label name is too long".into());
        }
        short_string(Some(v)).map_err(|e| format!("labels.{k} {e}"))?;
    }
    let id = match map.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.as_str(),
        _ => return Err("labels.id (the OPA instance id) is missing".into()),
    };
    let version = map.get("version").and_then(Value::as_str);
    Ok((id, version))
}

/// Checks one event's shape; returns its decision id or the problem and its code.
fn check_event(event: &Value) -> Result<&str, (BatchCode, String)> {
    let shape = |m: String| (BatchCode::InvalidDecisionLog, m);
    let Value::Object(map) = event else {
        return Err(shape("is not a JSON object".into()));
    };
    let decision_id = match map.get("decision_id") {
        None | Some(Value::Null) => {
            return Err((BatchCode::MissingDecisionId, "has no decision_id".into()))
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err((
                BatchCode::MissingDecisionId,
                "has an empty decision_id".into(),
            ))
        }
        Some(Value::String(s)) if s.len() > MAX_ID_BYTES => {
            return Err(shape("decision_id is too long".into()))
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(shape("decision_id must be a string".into())),
    };
    check_labels(map.get("labels")).map_err(shape)?;
    match map.get("timestamp") {
        Some(Value::String(ts))
            if time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .is_ok() => {}
        _ => return Err(shape("timestamp must be an RFC 3339 string".into())),
    }
    for field in ["path", "query", "requested_by"] {
        if !matches!(
            map.get(field),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return Err(shape(format!("{field} must be a string")));
        }
    }
    match map.get("bundles") {
        None | Some(Value::Null) => {}
        Some(Value::Object(bundles)) => {
            for (name, b) in bundles {
                if name.len() > MAX_ID_BYTES {
                    return Err(shape("a bundle name is too long".into()));
                }
                match b {
                    Value::Object(b) if short_string(b.get("revision")).is_ok() => {}
                    _ => {
                        return Err(shape(format!(
                            "bundles.{name} must be an object with a string revision"
                        )))
                    }
                }
            }
        }
        Some(_) => return Err(shape("bundles must be an object".into())),
    }
    if !matches!(
        map.get("metrics"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        return Err(shape("metrics must be an object".into()));
    }
    for field in ["erased", "masked"] {
        match map.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return Err(shape(format!("{field} must be an array of strings"))),
        }
    }
    if !matches!(
        map.get("req_id"),
        None | Some(Value::Null) | Some(Value::Number(_))
    ) {
        return Err(shape("req_id must be a number".into()));
    }
    Ok(decision_id)
}

/// `allow` and `reasons` as the result states them (a boolean, or an object with those keys).
fn verdict(result: Option<&Value>) -> (Value, Value) {
    match result {
        Some(Value::Bool(b)) => (Value::Bool(*b), Value::Null),
        Some(Value::Object(map)) => {
            let allow = map.get("allow").filter(|v| v.is_boolean()).cloned();
            let reasons = map
                .get("reasons")
                .filter(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
                .cloned();
            (allow.unwrap_or(Value::Null), reasons.unwrap_or(Value::Null))
        }
        _ => (Value::Null, Value::Null),
    }
}

/// The `decision.sidecar` ledger body of one (already checked) event.
fn ledger_body(
    map: &Map<String, Value>,
    decision_id: &str,
    uploader: &Uploader<'_>,
) -> Result<Value, String> {
    let labels = map.get("labels").cloned().unwrap_or(Value::Null);
    let instance_id = labels.get("id").cloned().unwrap_or(Value::Null);
    let opa_version = labels.get("version").cloned().unwrap_or(Value::Null);
    let input = map.get("input");
    let input_sha256 = match input {
        Some(input) => Value::String(canonical::sha256_hex(input)?),
        None => Value::Null,
    };
    let result = map.get("result");
    let result_sha256 = match result {
        Some(result) => Value::String(canonical::sha256_hex(result)?),
        None => Value::Null,
    };
    let (allow, reasons) = verdict(result);
    let bundles: BTreeMap<String, Value> = map
        .get("bundles")
        .and_then(Value::as_object)
        .map(|b| {
            b.iter()
                .map(|(name, v)| {
                    let revision = v.get("revision").cloned().unwrap_or(Value::Null);
                    (name.clone(), json!({ "revision": revision }))
                })
                .collect()
        })
        .unwrap_or_default();
    let metrics: Map<String, Value> = map
        .get("metrics")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let query_sha256 = match map.get("query").and_then(Value::as_str) {
        Some(q) => Value::String(hex::encode(Sha256::digest(q.as_bytes()))),
        None => Value::Null,
    };
    Ok(json!({
        "decision_id": decision_id,
        "source": "opa",
        "sidecar": {
            "instance_id": instance_id,
            "opa_version": opa_version,
            "credential_id": uploader.credential_id,
            "partition": uploader.partition,
        },
        "labels": labels,
        "bundles": bundles,
        "path": map.get("path").cloned().unwrap_or(Value::Null),
        "query_sha256": query_sha256,
        "allow": allow,
        "reasons": reasons,
        "result_sha256": result_sha256,
        "input_sha256": input_sha256,
        "opa_erased": map.get("erased").cloned().unwrap_or(Value::Null),
        "opa_masked": map.get("masked").cloned().unwrap_or(Value::Null),
        "requested_by": map.get("requested_by").cloned().unwrap_or(Value::Null),
        "req_id": map.get("req_id").cloned().unwrap_or(Value::Null),
        "timestamp": map.get("timestamp").cloned().unwrap_or(Value::Null),
        "metrics": metrics,
    }))
}

/// The masked copy of an event's input the org's policy keeps, if any.
fn stored_input(map: &Map<String, Value>, policy: &InputPolicy) -> Option<StoredInput> {
    let input = map.get("input").filter(|_| policy.store_input)?;
    let mut stored = input.clone();
    let masked = mask_input(&mut stored, &policy.mask);
    Some(StoredInput {
        input: stored,
        masked,
    })
}

/// Parses and validates a whole (decompressed) upload; every event must pass before any is
/// returned. Repeated decision ids inside one batch collapse to their first occurrence.
pub fn parse_batch(
    json: &[u8],
    uploader: &Uploader<'_>,
    policy: &InputPolicy,
    max_events: usize,
) -> Result<Vec<SidecarDecision>, UploadError> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| UploadError::InvalidJson(format!("the decision-log body is not JSON: {e}")))?;
    let Value::Array(events) = value else {
        return Err(UploadError::invalid(
            "a decision-log upload is a JSON array of events",
        ));
    };
    if events.len() > max_events {
        return Err(UploadError::TooLarge(format!(
            "{} events in one upload; at most {max_events} ([fleet] max_events_per_batch)",
            events.len()
        )));
    }
    let mut problems = Problems::new();
    for (i, event) in events.iter().enumerate() {
        if let Err((code, problem)) = check_event(event) {
            problems.push(code, format!("event {i} {problem}"));
        }
    }
    problems.into_result()?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(events.len());
    for event in &events {
        let (Value::Object(map), Some(Value::String(id))) = (event, event.get("decision_id"))
        else {
            continue; // unreachable: checked above
        };
        if !seen.insert(id.as_str()) {
            continue;
        }
        let body = ledger_body(map, id, uploader).map_err(UploadError::invalid)?;
        out.push(SidecarDecision {
            decision_id: id.clone(),
            body,
            input: stored_input(map, policy),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn uploader() -> Uploader<'static> {
        Uploader {
            credential_id: "crd_1",
            partition: None,
        }
    }

    fn event(id: &str) -> Value {
        json!({
            "labels": {"id": "opa-1", "version": "0.60.0"},
            "decision_id": id,
            "bundles": {"gateway": {"revision": "1.0.0"}},
            "path": "sck/gateway/decision",
            "input": {"user": "bob", "password": "hunter2", "nested": {"a/b": 1}},
            "result": {"allow": false, "reasons": ["loa_too_low"]},
            "requested_by": "127.0.0.1:1234",
            "timestamp": "2026-01-01T00:00:00.123456789Z",
            "metrics": {"timer_rego_query_eval_ns": 1234, "bad": "x"}
        })
    }

    fn ample() -> impl FnMut(u64) -> bool {
        |_| true
    }

    #[test]
    fn gunzip_refuses_plain_and_bombs() {
        assert_eq!(
            gunzip_bounded(b"[]", 10, &mut ample()).unwrap_err().code(),
            "invalid_gzip"
        );
        let bomb = gz(&vec![b' '; 10_000]);
        assert_eq!(
            gunzip_bounded(&bomb, 1000, &mut ample())
                .unwrap_err()
                .code(),
            "payload_too_large"
        );
        assert_eq!(
            gunzip_bounded(&bomb, 10_000, &mut ample()).unwrap().len(),
            10_000
        );
        let mut truncated = gz(b"[1,2,3]");
        truncated.truncate(truncated.len() - 6);
        assert_eq!(
            gunzip_bounded(&truncated, 100, &mut ample())
                .unwrap_err()
                .code(),
            "invalid_gzip"
        );
    }

    #[test]
    fn gunzip_charges_every_byte_to_the_meter_and_stops_when_it_refuses() {
        let body = gz(&vec![b' '; 10_000]);
        let mut charged = 0u64;
        let out = gunzip_bounded(&body, 10_000, &mut |n| {
            charged += n;
            true
        })
        .unwrap();
        assert_eq!((out.len(), charged), (10_000, 10_000));
        let mut left = 5_000u64;
        let mut budget = |n: u64| match left.checked_sub(n) {
            Some(rest) => {
                left = rest;
                true
            }
            None => false,
        };
        assert_eq!(
            gunzip_bounded(&body, 10_000, &mut budget),
            Err(UploadError::BudgetExhausted)
        );
    }

    #[test]
    fn a_valid_event_becomes_a_hashed_entry() {
        let batch = serde_json::to_vec(&json!([event("d1"), event("d1"), event("d2")])).unwrap();
        let out = parse_batch(&batch, &uploader(), &InputPolicy::default(), 10).unwrap();
        assert_eq!(out.len(), 2, "repeated ids collapse");
        let body = &out[0].body;
        assert_eq!(body["allow"], false);
        assert_eq!(body["reasons"], json!(["loa_too_low"]));
        assert_eq!(body["sidecar"]["instance_id"], "opa-1");
        assert_eq!(body["bundles"]["gateway"]["revision"], "1.0.0");
        assert!(body.get("input").is_none());
        assert_eq!(out[0].input, None);
        assert!(!body.to_string().contains("hunter2"));
        let expected = canonical::sha256_hex(&event("d1")["input"]).unwrap();
        assert_eq!(body["input_sha256"], expected);
        assert!(body["metrics"].get("bad").is_none());
    }

    #[test]
    fn stored_inputs_are_masked() {
        let policy = InputPolicy {
            store_input: true,
            mask: vec![
                "/input/password".into(),
                "/input/nested/a~1b".into(),
                "/input/absent".into(),
            ],
            input_retention_days: None,
        };
        policy.validate().unwrap();
        let batch = serde_json::to_vec(&json!([event("d1")])).unwrap();
        let out = parse_batch(&batch, &uploader(), &policy, 10).unwrap();
        let body = &out[0].body;
        let stored = out[0].input.as_ref().unwrap();
        assert_eq!(stored.input, json!({"user": "bob", "nested": {}}));
        assert_eq!(stored.masked, ["/input/password", "/input/nested/a~1b"]);
        // The entry itself never holds the input: only its hash, so it can be pruned later.
        assert!(body.get("input").is_none() && body.get("input_masked").is_none());
        // The hash is of the input as uploaded, so a holder of the original can match it.
        assert_eq!(
            body["input_sha256"],
            canonical::sha256_hex(&event("d1")["input"]).unwrap()
        );
        assert!(InputPolicy {
            store_input: true,
            mask: vec!["/password".into()],
            input_retention_days: None,
        }
        .validate()
        .is_err());
    }

    #[test]
    fn one_bad_event_refuses_the_batch() {
        let mut bad = event("d2");
        bad.as_object_mut().unwrap().remove("decision_id");
        let batch = serde_json::to_vec(&json!([event("d1"), bad])).unwrap();
        let err = parse_batch(&batch, &uploader(), &InputPolicy::default(), 10).unwrap_err();
        assert_eq!(err.code(), "missing_decision_id");
        assert!(err.diagnostics()[0].starts_with("event 1"), "{err:?}");

        for (mutate, code) in [
            (json!({"decision_id": 5}), "invalid_decision_log"),
            (json!({"timestamp": "yesterday"}), "invalid_decision_log"),
            (json!({"labels": {"version": "x"}}), "invalid_decision_log"),
            (
                json!({"bundles": {"gateway": "1.0.0"}}),
                "invalid_decision_log",
            ),
            (json!({"path": 3}), "invalid_decision_log"),
        ] {
            let mut e = event("d3");
            for (k, v) in mutate.as_object().unwrap() {
                e[k] = v.clone();
            }
            let batch = serde_json::to_vec(&json!([e])).unwrap();
            let err = parse_batch(&batch, &uploader(), &InputPolicy::default(), 10).unwrap_err();
            assert_eq!(err.code(), code, "{mutate}");
        }
        let err = parse_batch(b"{\"a\":1}", &uploader(), &InputPolicy::default(), 10).unwrap_err();
        assert_eq!(err.code(), "invalid_decision_log");
        let err = parse_batch(b"[{", &uploader(), &InputPolicy::default(), 10).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let batch = serde_json::to_vec(&json!([event("a"), event("b")])).unwrap();
        let err = parse_batch(&batch, &uploader(), &InputPolicy::default(), 1).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
    }
}
