//! Decisions: the input document, evaluation on the org's snapshot, and the ledger entry that
//! must be durable before the answer leaves.
//!
//! The input policies see holds only verified facts: the caller's `action`, `resource` and
//! `context`, plus `token` (from the verified gateway token), `request` and `now` set by the
//! gateway — a caller cannot inject `token` or `caller`. Undefined, an evaluation error, a
//! timeout or no active bundle all deny, with the reason in the response and the ledger.

pub mod rate_limit;
pub mod snapshots;

use std::sync::Arc;

use sck_bundler::decision::{Decision, Outcome};
use sck_ledger::entry::EventType;
use sck_ledger::{Ledger, Receipt};
use sck_wire::principal::{VerifiedCaller, VerifiedToken};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::EnforceResult;
use snapshots::{Snapshot, Snapshots};

/// The request facts recorded with a decision.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFacts {
    pub method: String,
    pub path: String,
    pub body_sha256: String,
    /// A call proxied on a route (`route`, `method`, `tool`, `arguments_sha256`, ...): in the
    /// input as `request.call` and in the ledger entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Value>,
}

/// Who a decision is for: a gateway token's subject or a verified upstream caller.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    Token(&'a VerifiedToken),
    Caller(&'a VerifiedCaller),
}

impl<'a> Principal<'a> {
    /// The org whose policy decides.
    pub fn org(&self) -> &'a str {
        match self {
            Principal::Token(t) => &t.org,
            Principal::Caller(c) => &c.org,
        }
    }

    /// The identity rate limits are kept for.
    pub fn subject(&self) -> &'a str {
        match self {
            Principal::Token(t) => &t.sub,
            Principal::Caller(c) => &c.ans_id,
        }
    }
}

/// What a decision response carries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    pub decision_id: String,
    pub allow: bool,
    pub reasons: Vec<String>,
    /// `evaluated`, `undefined`, `error`, `timeout`, `limit` or `invalid`.
    #[schema(value_type = String)]
    pub outcome: sck_bundler::decision::Outcome,
    pub bundle: Option<BundleRef>,
    pub receipt: ReceiptRef,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BundleRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptRef {
    pub seq: u64,
    pub leaf_hash: String,
}

impl From<&Receipt> for ReceiptRef {
    fn from(r: &Receipt) -> Self {
        ReceiptRef {
            seq: r.seq,
            leaf_hash: hex::encode(r.leaf_hash),
        }
    }
}

impl From<&Snapshot> for BundleRef {
    fn from(s: &Snapshot) -> Self {
        BundleRef {
            name: s.name.clone(),
            version: s.version.clone(),
            sha256: s.sha256.clone(),
        }
    }
}

/// SHA-256 of a JSON document's RFC 8785 canonical form.
fn document_sha256(value: &Value) -> String {
    sck_ledger::canonical::sha256_hex(value).unwrap_or_default()
}

/// Evaluates decisions and ledgers them.
#[derive(Debug, Clone)]
pub struct DecisionService {
    snapshots: Arc<Snapshots>,
    ledger: Ledger,
    limits: Arc<rate_limit::RateLimits>,
}

impl DecisionService {
    /// The per-org compiled policy snapshots.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Takes one request from the org's and the subject's token buckets, or says which limit
    /// refused it and when to retry.
    pub fn check_rate(&self, org: &str, subject: &str) -> Result<(), rate_limit::Limited> {
        self.limits.check(org, subject)
    }

    /// A service for `config`, enforcing bundle `bundle_name` of each org.
    pub fn new(
        config: &crate::config::DecisionConfig,
        registry: crate::registry::Registry,
        bundle_name: String,
        limits: sck_bundler::Limits,
        ledger: Ledger,
    ) -> DecisionService {
        let eval_limits = sck_bundler::decision::EvalLimits {
            time: std::time::Duration::from_millis(config.timeout_ms),
            instructions: config.instruction_limit,
            ..Default::default()
        };
        let mode = if config.interpreter_only {
            sck_bundler::decision::Mode::Interpreter
        } else {
            sck_bundler::decision::Mode::Fastest
        };
        DecisionService {
            snapshots: Arc::new(Snapshots::new(
                registry,
                bundle_name,
                limits,
                eval_limits,
                mode,
            )),
            ledger,
            limits: Arc::new(rate_limit::RateLimits::new(
                config.subject_rate,
                config.org_rate,
            )),
        }
    }

    /// Starts the snapshot watcher and the rate-limiter housekeeping.
    pub fn spawn_background(&self, hub: crate::activations::ActivationHub) {
        self.snapshots.clone().spawn_watcher(hub);
        let limits = self.limits.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                limits.prune();
            }
        });
    }

    /// The input document for a decide or verify request: the caller's `action`, `resource`
    /// and `context` (moved out of `body`, not copied), and the verified facts (`token` or `caller`, `request`, `now`).
    pub fn input(body: Value, principal: Principal<'_>, request: &RequestFacts, now: i64) -> Value {
        let mut fields = match body {
            Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        let mut take =
            |name: &str, absent: fn() -> Value| fields.remove(name).unwrap_or_else(absent);
        let mut input = json!({
            "action": take("action", || Value::Null),
            "resource": take("resource", || json!({})),
            "context": take("context", || json!({})),
            "request": request,
            "now": now,
        });
        match principal {
            Principal::Token(t) => input["token"] = json!(t),
            Principal::Caller(c) => input["caller"] = json!(c),
        }
        input
    }

    /// Whether `org`'s active policy allows `input`, without a ledger entry: for filtering the
    /// entries of an answer whose request was itself decided and ledgered. No active bundle,
    /// or any failure, is a deny.
    pub fn permits(&self, org: &str, input: Value) -> bool {
        self.snapshots
            .get(org)
            .is_some_and(|s| s.evaluator.decide(input).allow)
    }

    /// Evaluates `input` on `org`'s active policy (the decision rule, or `rule` for the Data
    /// API), records the decision durably, and returns it with its receipt.
    pub async fn decide(
        &self,
        input: Value,
        principal: Principal<'_>,
        request: &RequestFacts,
        rule: Option<&str>,
    ) -> EnforceResult<(DecisionRecord, Option<Value>)> {
        let org = principal.org();
        let decision_id = uuid::Uuid::new_v4().to_string();
        // Hashed before evaluation, which takes the input by value (no copy of it is made).
        let input_sha256 = document_sha256(&input);
        let snapshot = self.snapshots.get(org);
        let evaluated = Evaluated::of(snapshot.as_deref(), rule, input);
        let bundle = snapshot.as_deref().map(BundleRef::from);
        let kind = if evaluated.allow {
            EventType::DecisionAllowed
        } else {
            EventType::DecisionDenied
        };
        let mut body = json!({
            "decision_id": decision_id,
            "bundle": bundle.as_ref().map(|b| json!({"org": org, "name": b.name, "version": b.version, "sha256": b.sha256})),
            "entrypoint": evaluated.entrypoint,
            "result": {"allow": evaluated.allow, "reasons": evaluated.reasons},
            "outcome": evaluated.outcome,
            "result_sha256": evaluated.result.as_ref().map(document_sha256),
            "token": match principal {
                Principal::Token(t) => json!({"jti": t.jti, "sub": t.sub, "loa": t.loa}),
                Principal::Caller(_) => Value::Null,
            },
            "caller": match principal {
                Principal::Caller(c) => json!({"ans_id": c.ans_id, "key_id": c.key_id, "scheme": c.scheme}),
                Principal::Token(_) => Value::Null,
            },
            "request": {"method": request.method, "path": request.path},
            "input_sha256": input_sha256,
        });
        if let Some(call) = &request.call {
            body["call"] = call.clone();
        }
        let receipt = crate::events::record(&self.ledger, org, kind, body).await?;
        metrics::counter!("sck_decisions_total", "org" => org.to_owned(), "result" => if evaluated.allow { "allow" } else { "deny" })
            .increment(1);
        Ok((
            DecisionRecord {
                decision_id,
                allow: evaluated.allow,
                reasons: evaluated.reasons,
                outcome: evaluated.outcome,
                bundle,
                receipt: ReceiptRef::from(&receipt),
            },
            evaluated.result,
        ))
    }
}

/// What evaluating one input gave: the decision, the Data API's rule result, and the rule
/// that ran (none without an active bundle).
struct Evaluated {
    allow: bool,
    reasons: Vec<String>,
    outcome: Outcome,
    result: Option<Value>,
    entrypoint: Option<String>,
}

impl Evaluated {
    /// No active bundle denies (`no_active_bundle`); the decision rule answers a decision;
    /// another rule (Data API) allows only when it evaluated to an allowing decision, and an
    /// undefined rule denies (`policy_undefined`).
    fn of(snapshot: Option<&Snapshot>, rule: Option<&str>, input: Value) -> Evaluated {
        let denied = |reasons, outcome, entrypoint| Evaluated {
            allow: false,
            reasons,
            outcome,
            result: None,
            entrypoint,
        };
        let Some(s) = snapshot else {
            return denied(
                vec!["no_active_bundle".to_owned()],
                Outcome::Undefined,
                None,
            );
        };
        let Some(rule) = rule else {
            let d = s.evaluator.decide(input);
            return Evaluated {
                allow: d.allow,
                reasons: d.reasons,
                outcome: d.outcome,
                result: None,
                entrypoint: Some(s.evaluator.entrypoint().to_owned()),
            };
        };
        match s.evaluator.evaluate_rule(rule, input) {
            Ok(Some(value)) => {
                let d = Decision::from_result(&value);
                Evaluated {
                    allow: d.outcome == Outcome::Evaluated && d.allow,
                    reasons: d.reasons,
                    outcome: d.outcome,
                    result: Some(value),
                    entrypoint: Some(rule.to_owned()),
                }
            }
            Ok(None) => denied(
                vec!["policy_undefined".into()],
                Outcome::Undefined,
                Some(rule.to_owned()),
            ),
            Err(refused) => denied(refused.reasons, refused.outcome, Some(rule.to_owned())),
        }
    }
}
