//! The `proxy.completed` ledger entry of a forwarded call: the decisions it carried, the
//! route, the upstream status, the duration, the bytes relayed to the client and whether the
//! answer ended normally (or, for MCP, every forwarded request got its response), the
//! upstream failed (with its problem code) or the client left before that.
//!
//! Invariant: recorded exactly once per forwarded call that carried a decision, when its
//! [`Outcome`] is dropped — after the last byte, on an upstream failure, or when the client
//! disconnects and the response body is dropped mid-stream (`complete: false`). The same
//! drop charges the exchange to the usage key it was [`Outcome::charged`] to (bytes each way,
//! error or not, the tokens the upstream reported in the route's `usage_header`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::json;

use crate::state::AppState;
use sck_enforce::proxy::route::Route;
use sck_enforce::usage::{Exchange, Reported, UsageKey};

/// One forwarded call's outcome, recorded when dropped.
pub struct Outcome {
    state: AppState,
    org: String,
    route: String,
    decisions: Vec<String>,
    started: Instant,
    pub status: u16,
    bytes: u64,
    complete: bool,
    /// Set by a relay that knows its answer is whole before the stream ends (an MCP client
    /// may close an SSE answer as soon as it holds every response it waited for).
    answered: Arc<AtomicBool>,
    error: Option<&'static str>,
    /// Who the exchange is charged to in usage, and the request bytes forwarded.
    usage: Option<(UsageKey, u64)>,
    reported: Reported,
}

impl Outcome {
    pub fn start(
        state: &AppState,
        route: &Route,
        decisions: &[String],
        started: Instant,
    ) -> Outcome {
        Outcome {
            state: state.clone(),
            org: route.org.clone(),
            route: route.id.clone(),
            decisions: decisions.to_vec(),
            started,
            status: 0,
            bytes: 0,
            complete: false,
            answered: Arc::new(AtomicBool::new(false)),
            error: None,
            usage: None,
            reported: Reported::Absent,
        }
    }

    /// Charges the exchange, which forwarded `request_bytes`, to `key`'s usage.
    pub fn charged(mut self, key: Option<UsageKey>, request_bytes: u64) -> Outcome {
        self.usage = key.map(|k| (k, request_bytes));
        self
    }

    /// Reads the tokens the upstream reported in `route`'s usage header, if it has one.
    pub fn report(&mut self, route: &Route, headers: &axum::http::HeaderMap) {
        if let Some(name) = &route.usage_header {
            self.reported = Reported::parse(headers.get_all(name).iter().map(|v| v.as_bytes()));
        }
    }

    /// The flag a relay sets once the client holds the whole answer.
    pub fn answered(&self) -> Arc<AtomicBool> {
        self.answered.clone()
    }

    /// The upstream failed before answering: sck answered `status` with problem `code`.
    pub fn failed(mut self, status: u16, code: &'static str) {
        self.status = status;
        self.error = Some(code);
    }

    /// The answer (of `bytes` bytes) was handed over whole.
    pub fn finish(mut self, bytes: u64) {
        self.bytes = bytes;
        self.complete = true;
    }

    /// The relayed stream ended: complete unless the upstream failed mid-way.
    fn ended(&mut self) {
        self.complete = self.error.is_none();
    }

    /// `stream`, counting what it relays; the outcome is recorded when it ends or is dropped.
    pub fn meter<E: Send + 'static>(
        self,
        stream: impl Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static {
        futures_util::stream::unfold((stream, self), |(mut stream, mut outcome)| async move {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    outcome.bytes += chunk.len() as u64;
                    Some((Ok(chunk), (stream, outcome)))
                }
                Some(Err(e)) => {
                    outcome.error = Some("upstream_stream_failed");
                    Some((Err(e), (stream, outcome)))
                }
                None => {
                    outcome.ended();
                    None
                }
            }
        })
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some((key, request_bytes)) = self.usage.take() {
            let exchange = Exchange {
                request_bytes,
                response_bytes: self.bytes,
                failed: self.status >= 500 || self.error.is_some(),
                reported: self.reported,
            };
            self.state.usage().exchanged(&key, &exchange);
        }
        if self.decisions.is_empty() {
            return;
        }
        let body = json!({
            "decisions": std::mem::take(&mut self.decisions),
            "route": self.route,
            "status": self.status,
            "duration_ms": self.started.elapsed().as_millis() as u64,
            "bytes": self.bytes,
            "complete": self.complete || self.answered.load(Ordering::Relaxed),
            "error": self.error,
        });
        let state = self.state.clone();
        let org = std::mem::take(&mut self.org);
        let record = async move {
            if let Err(e) = state.routes().record_outcome(&org, body).await {
                tracing::error!(error = %e.detail, "recording a proxied call's outcome failed");
            }
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(record);
        }
    }
}
