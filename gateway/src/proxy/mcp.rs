//! MCP routes (Streamable HTTP, JSON-RPC 2.0): every request decided before the upstream
//! sees it, list answers filtered per entry, everything else relayed as it arrives.
//!
//! - `POST`: the body is parsed whole ([`sck_wire::jsonrpc`]: a message or a batch; malformed
//!   → 400 with the JSON-RPC error, nothing forwarded). Each request is decided on the route
//!   org's policy (ledgered, with the route, method, tool and arguments' SHA-256); a denied
//!   one is answered by sck with a JSON-RPC error (`-32003`, `data` = reasons + decision id)
//!   and removed from what is forwarded; notifications and client responses pass. If
//!   nothing is left to forward, sck answers alone. Answers to `tools/list`,
//!   `resources/list` and `prompts/list` keep only entries the same token may use (each
//!   decided without a ledger entry: the list request itself was ledgered).
//! - Each request is counted in usage before it is decided (per tool for `tools/call`), its
//!   window's earlier calls in `input.usage`; the forwarded exchange (bytes, error, the tokens
//!   reported in the route's `usage_header`) is charged to its first forwarded request.
//! - `GET` (the server-to-client stream) and `DELETE` (session end) pass after the token
//!   check; `Mcp-Session-Id`, `Mcp-Protocol-Version` and `Last-Event-ID` cross both ways.
//! - SSE answers are cut into events as they arrive ([`sck_wire::sse`]) and each is passed
//!   on at once (rewritten only if it answers a list request); JSON answers that need
//!   filtering are read whole (bounded), others stream untouched.
//!
//! Invariant: a request the policy denied is never forwarded; a call forwarded gets a
//! `proxy.completed` ledger entry with the decisions it carried, the status, the duration
//! and the bytes relayed — also when the client goes away mid-stream (`complete: false`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use sck_enforce::clock::unix_now;
use sck_enforce::decisions::{DecisionService, Principal, RequestFacts};
use sck_enforce::proxy::mcp::{action, arguments_sha256, resource_and_context, Listing};
use sck_enforce::proxy::StoredRoute;
use sck_enforce::usage::{UsageKey, WindowUsage};
use sck_wire::jsonrpc::{self, Message, RpcError};
use sck_wire::principal::VerifiedToken;
use sck_wire::sse;
use serde_json::{json, Value};
use sha2::Digest;

use super::outcome::Outcome;
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::upstream::{copy_response_headers, Outgoing};

/// Caller headers an MCP upstream may see (besides what sck sets itself).
const PASSED: [HeaderName; 5] = [
    header::ACCEPT,
    header::CONTENT_TYPE,
    HeaderName::from_static("mcp-session-id"),
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("last-event-id"),
];

/// Serves one request on an MCP route for the verified `token`.
pub async fn handle(
    state: AppState,
    stored: Arc<StoredRoute>,
    token: VerifiedToken,
    rest: String,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut call = Call {
        state: state.clone(),
        stored,
        token,
        filters: HashMap::new(),
        local: Vec::new(),
        decisions: Vec::new(),
        pending: HashSet::new(),
        answered: Arc::new(AtomicBool::new(false)),
        charged: None,
    };
    let forward = match parts.method {
        Method::POST => match call.decide_body(&parts.uri, &body).await? {
            Decided::Forward(bytes) => bytes,
            Decided::Answer(response) => return Ok(response),
        },
        Method::GET | Method::DELETE => body.clone(),
        _ => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "MCP routes take POST, GET and DELETE",
            ))
        }
    };
    let started = Instant::now();
    let request_bytes = forward.len() as u64;
    let upstream = state
        .upstream()
        .send(
            &state,
            &call.stored,
            Outgoing {
                method: parts.method.clone(),
                rest: &rest,
                query: parts.uri.query(),
                headers: &parts.headers,
                only: Some(&PASSED),
                body: forward,
            },
        )
        .await;
    let outcome = Outcome::start(&state, &call.stored.route, &call.decisions, started)
        .charged(call.charged.take(), request_bytes);
    let response = match upstream {
        Ok(response) => response,
        Err(e) => {
            outcome.failed(e.status.as_u16(), e.code);
            return Err(e);
        }
    };
    call.relay(response, outcome).await
}

enum Decided {
    Forward(Bytes),
    Answer(Response),
}

/// One POST's decisions and what its answer needs.
struct Call {
    state: AppState,
    stored: Arc<StoredRoute>,
    token: VerifiedToken,
    /// List requests forwarded, by id (as JSON text), whose answers are filtered.
    filters: HashMap<String, Listing>,
    /// sck's own answers (denied or malformed requests), merged into the upstream's.
    local: Vec<Value>,
    /// Ids of the allowed decisions forwarded.
    decisions: Vec<String>,
    /// Forwarded requests (ids as JSON text) whose responses have not been relayed yet.
    pending: HashSet<String>,
    /// Set when `pending` empties: the client holds every answer.
    answered: Arc<AtomicBool>,
    /// The usage key the forwarded exchange is charged to: its first forwarded request's.
    charged: Option<UsageKey>,
}

/// A JSON-RPC error answer as an HTTP response.
fn rpc_answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl Call {
    fn principal(&self) -> Principal<'_> {
        Principal::Token(&self.token)
    }

    /// What a call of `method` is counted as: per tool for `tools/call`.
    fn usage_key(&self, method: &str, params: Option<&Value>) -> UsageKey {
        let tool = if method == "tools/call" {
            jsonrpc::param_str(params, "name").unwrap_or_default()
        } else {
            ""
        };
        let route = &self.stored.route;
        UsageKey::new(&route.org, &route.id, &self.token.sub, tool)
    }

    /// The input of a call of `method`, with `usage` (its window's earlier calls).
    fn input(
        &self,
        method: &str,
        params: Option<&Value>,
        facts: &RequestFacts,
        usage: WindowUsage,
    ) -> Value {
        let route = &self.stored.route;
        let (resource, context) = resource_and_context(route, method, params);
        let request =
            json!({"action": action(route, method), "resource": resource, "context": context});
        let mut input = DecisionService::input(request, self.principal(), facts, unix_now());
        input["usage"] = json!(usage);
        input
    }

    /// Decides every request of a POST body; what to forward, or sck's whole answer.
    async fn decide_body(
        &mut self,
        uri: &axum::http::Uri,
        body: &[u8],
    ) -> Result<Decided, ApiError> {
        let parsed = match jsonrpc::parse_body(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Ok(Decided::Answer(rpc_answer(
                    StatusCode::BAD_REQUEST,
                    &e.to_response(),
                )))
            }
        };
        let decisions = self.state.decisions();
        let route = self.stored.route.clone();
        let body_sha256 = hex::encode(sha2::Sha256::digest(body));
        let mut forward = Vec::new();
        for (message, raw) in parsed.messages {
            let Message::Request { id, method, params } = message else {
                forward.push(raw);
                continue;
            };
            if let Err(limited) = decisions.check_rate(&route.org, &self.token.sub) {
                return Ok(Decided::Answer(crate::respond::rate_limited(limited)));
            }
            let mut call = json!({"route": route.id, "method": method});
            if let Some(target) = ["name", "uri"]
                .iter()
                .find_map(|f| jsonrpc::param_str(params.as_ref(), f))
            {
                call["target"] = json!(target);
            }
            if matches!(method.as_str(), "tools/call" | "prompts/get") {
                call["arguments_sha256"] = json!(arguments_sha256(params.as_ref()));
            }
            let facts = RequestFacts {
                method: "POST".into(),
                path: uri.path().to_owned(),
                body_sha256: body_sha256.clone(),
                call: Some(call),
            };
            let key = self.usage_key(&method, params.as_ref());
            let usage = self.state.usage().begin(&key);
            let input = self.input(&method, params.as_ref(), &facts, usage);
            let (decision, _) = decisions
                .decide(input, self.principal(), &facts, None)
                .await?;
            if decision.allow {
                self.charged.get_or_insert(key);
                if let Some(listing) = Listing::of(&method) {
                    self.filters.insert(id.to_string(), listing);
                }
                self.decisions.push(decision.decision_id);
                self.pending.insert(id.to_string());
                forward.push(raw);
            } else {
                self.state.usage().denied(&key);
                self.local.push(
                    RpcError {
                        id,
                        code: jsonrpc::POLICY_DENIED,
                        message: format!("denied by policy: {}", decision.reasons.join(", ")),
                        data: Some(
                            json!({"decision_id": decision.decision_id, "reasons": decision.reasons,
                                          "receipt": decision.receipt}),
                        ),
                    }
                    .to_response(),
                );
            }
        }
        if forward.is_empty() {
            let answer = if parsed.batch {
                Value::Array(std::mem::take(&mut self.local))
            } else {
                self.local.pop().unwrap_or(Value::Null)
            };
            return Ok(Decided::Answer(rpc_answer(StatusCode::OK, &answer)));
        }
        let out = if parsed.batch {
            Value::Array(forward)
        } else {
            forward.remove(0)
        };
        Ok(Decided::Forward(Bytes::from(out.to_string())))
    }

    /// Keeps only the entries of a list answer this token may use.
    fn filter(&self, message: &mut Value) {
        let Some(listing) = message
            .get("id")
            .and_then(|id| self.filters.get(&id.to_string()))
        else {
            return;
        };
        let Some(entries) = jsonrpc::result_mut(message)
            .and_then(|r| r.get_mut(listing.field()))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        let facts = RequestFacts {
            method: "POST".into(),
            path: self.stored.route.prefix.clone(),
            body_sha256: String::new(),
            call: None,
        };
        entries.retain(|entry| {
            let (method, params) = listing.call_for(entry);
            let usage = self
                .state
                .usage()
                .peek(&self.usage_key(method, Some(&params)));
            let input = self.input(method, Some(&params), &facts, usage);
            self.state
                .decisions()
                .permits(&self.stored.route.org, input)
        });
    }

    /// Answers with the upstream's response: filtered where needed, sck's own errors merged.
    async fn relay(
        mut self,
        response: axum::http::Response<hyper::body::Incoming>,
        mut outcome: Outcome,
    ) -> Result<Response, ApiError> {
        self.answered = outcome.answered();
        let (parts, body) = response.into_parts();
        outcome.status = parts.status.as_u16();
        outcome.report(&self.stored.route, &parts.headers);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut builder = Response::builder()
            .status(parts.status)
            .extension(crate::api_error::Relayed);
        if let Some(headers) = builder.headers_mut() {
            copy_response_headers(&parts.headers, headers);
        }
        let sse = content_type.starts_with("text/event-stream");
        let json = content_type.starts_with("application/json");
        if !self.local.is_empty() && !sse && !json {
            // Only notifications and responses went up (202): the answer is sck's errors.
            outcome.finish(0);
            let mut response = rpc_answer(StatusCode::OK, &Value::Array(self.local));
            copy_session(&parts.headers, response.headers_mut());
            return Ok(response);
        }
        if json && (!self.filters.is_empty() || !self.local.is_empty()) {
            let max = self.state.config().http.max_body_bytes;
            let bytes = http_body_util::Limited::new(body, max)
                .collect()
                .await
                .map_err(|_| upstream_invalid("the upstream's answer is unreadable or too large"))?
                .to_bytes();
            let mut answer: Value = serde_json::from_slice(&bytes)
                .map_err(|_| upstream_invalid("the upstream's answer is not JSON"))?;
            match &mut answer {
                Value::Array(messages) => messages.iter_mut().for_each(|m| self.filter(m)),
                single => self.filter(single),
            }
            if !self.local.is_empty() {
                // sck's answers to the calls it denied join the upstream's, whatever its shape.
                let mut all = match answer {
                    Value::Array(messages) => messages,
                    single => vec![single],
                };
                all.extend(self.local.iter().cloned());
                answer = Value::Array(all);
            }
            let text = answer.to_string();
            outcome.finish(text.len() as u64);
            if let Some(headers) = builder.headers_mut() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            return builder
                .body(Body::from(text))
                .map_err(|e| ApiError::internal("response", e));
        }
        let stream = body
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let relayed: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>> =
            if sse && (!self.pending.is_empty() || !self.local.is_empty()) {
                Box::pin(self.rewrite_events(stream))
            } else {
                Box::pin(stream)
            };
        builder
            .body(Body::from_stream(outcome.meter(relayed)))
            .map_err(|e| ApiError::internal("response", e))
    }

    /// The SSE stream with sck's errors first and list answers filtered, event by event (and
    /// the responses counted, for the outcome).
    fn rewrite_events(
        self,
        upstream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let max_event = self.state.config().proxy.max_event_bytes;
        let first: Vec<Result<Bytes, std::io::Error>> = self
            .local
            .iter()
            .map(|e| Ok(Bytes::from(sse::Event::with_data(&e.to_string()).raw)))
            .collect();
        let state = (upstream, sse::Splitter::new(max_event), self, false);
        let rest = futures_util::stream::unfold(
            state,
            |(mut upstream, mut splitter, mut call, done)| async move {
                if done {
                    return None;
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        let out = match splitter.push(&chunk) {
                            Ok(events) => Ok(Bytes::from(
                                events
                                    .into_iter()
                                    .flat_map(|e| call.rewrite_event(e))
                                    .collect::<Vec<u8>>(),
                            )),
                            Err(_) => Err(std::io::Error::other("upstream event too large")),
                        };
                        let failed = out.is_err();
                        Some((out, (upstream, splitter, call, failed)))
                    }
                    Some(Err(e)) => Some((Err(e), (upstream, splitter, call, true))),
                    None => {
                        let tail = std::mem::replace(&mut splitter, sse::Splitter::new(0)).finish();
                        Some((Ok(Bytes::from(tail)), (upstream, splitter, call, true)))
                    }
                }
            },
        );
        futures_util::stream::iter(first).chain(rest)
    }

    /// One event as relayed: a list answer filtered, anything else as it came; marks the
    /// answer whole once every forwarded request has its response.
    fn rewrite_event(&mut self, event: sse::Event) -> Vec<u8> {
        let Some(mut message) = event
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            return event.raw;
        };
        let is_response = message.get("result").is_some() || message.get("error").is_some();
        let Some(id) = message
            .get("id")
            .filter(|_| is_response)
            .map(Value::to_string)
        else {
            return event.raw;
        };
        if self.pending.remove(&id) && self.pending.is_empty() {
            self.answered.store(true, Ordering::Relaxed);
        }
        if !self.filters.contains_key(&id) {
            return event.raw;
        }
        self.filter(&mut message);
        event.with_replaced_data(&message.to_string())
    }
}

fn upstream_invalid(detail: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "upstream_invalid", detail)
}

fn copy_session(from: &axum::http::HeaderMap, into: &mut axum::http::HeaderMap) {
    if let Some(id) = from.get("mcp-session-id") {
        into.insert(HeaderName::from_static("mcp-session-id"), id.clone());
    }
}
