//! `sck serve`: opens storage and the ledger, bootstraps an empty deployment, and runs the axum
//! server with request ids, head and body limits (refused heads answered as problem+json, see
//! [`crate::edge`]), timeouts, structured logs, metrics and graceful shutdown (final ledger
//! checkpoints are signed on the way out). Shutdown is bounded whatever is running: requests
//! get `[http] shutdown_grace_secs`, then their connections are dropped (a dropped compile
//! starts no further Rego test), and blocking work still running gets [`BLOCKING_WORK_GRACE`]
//! before the process exits without it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sck_enforce::config::Config;
use sck_enforce::{bootstrap, Services};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::routes;
use crate::state::AppState;
use crate::upstream::Upstream;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How often histogram samples are folded into their buckets (see [`metrics_handle`]).
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long blocking work still running when `serve` returns (a compile's Rego test, which
/// stops at its own time limit) may delay the exit. By then connections are closed, the
/// ledger has signed its final checkpoints and nothing waits for that work's result.
pub const BLOCKING_WORK_GRACE: Duration = Duration::from_secs(1);

/// The process-wide Prometheus recorder (installed once, shared by every server in a process).
///
/// The recorder buffers every histogram sample until its upkeep folds them into the fixed
/// buckets; `build_recorder` does not schedule that, so without the upkeep thread started here
/// memory grows with every request until someone scrapes `/metrics`.
pub fn metrics_handle() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("sck_ledger_batch_entries".into()),
            &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
            ],
        )
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(METRICS_UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        })
        .map_err(|e| format!("metrics upkeep thread: {e}"))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Counts requests and observes latency per matched route.
async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("sck_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("sck_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config().http.request_timeout_secs);
    let max_body_bytes = state.config().http.max_body_bytes;
    // Long polls hold requests open on purpose: they are bounded by their own `wait` cap.
    let api = Router::new()
        .merge(routes::bundles::router())
        .merge(routes::credentials::router())
        .merge(routes::ops::router())
        .merge(routes::tokens::router())
        .merge(routes::decide::router())
        .merge(routes::fleet::router())
        .merge(routes::identities::router())
        .merge(routes::gateway_routes::router())
        .merge(routes::usage::router())
        .merge(routes::forward_auth::router())
        .merge(routes::oauth::router())
        .merge(routes::verify::router(&state))
        .merge(routes::ledger::router())
        .merge(crate::openapi::router())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ));
    Router::new()
        .merge(api)
        .merge(routes::bundle_service::router())
        // Anything else is a gateway route's (or a 404): see `proxy::dispatch`.
        .fallback(crate::proxy::dispatch)
        .layer(axum::middleware::from_fn(track))
        .layer(axum::middleware::from_fn(crate::edge::limit_head))
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        // Outside the body limit, so its 413 (sent before the body is read) gets a problem body.
        .layer(axum::middleware::from_fn(
            crate::api_error::problem_for_bare_errors,
        ))
        .layer(axum::middleware::from_fn(crate::api_error::log_causes))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Opens the services and the metrics recorder into the state handlers share (nothing
/// started: see `sck_enforce::Services::spawn_background`). The upstream client comes first,
/// so a bad `[proxy] upstream_ca_file` fails the start before storage is touched.
pub async fn open(config: Config) -> Result<AppState, String> {
    let upstream = Upstream::new(&config).map_err(|e| e.to_string())?;
    let services = Services::open(config).await?;
    Ok(AppState::new(services, metrics_handle()?, upstream))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (before the
/// server announces itself), so a signal sent right after start-up is never lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    Ok(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("shutdown signal received");
    })
}

/// Under a file-size limit (`RLIMIT_FSIZE`, e.g. systemd's `LimitFSIZE=`) a write past the limit
/// raises SIGXFSZ, whose default action kills the process. With the signal caught, such a write
/// just fails (`EFBIG`) and the database reports it like a full disk: writes fail closed with
/// 503 and reads go on (PostgreSQL ignores SIGXFSZ for the same reason).
fn survive_file_size_limit() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    // The handler stays installed for the life of the process after the stream is dropped.
    signal(SignalKind::from_raw(libc::SIGXFSZ))
        .map(drop)
        .map_err(|e| format!("SIGXFSZ handler: {e}"))
}

/// Runs the server until SIGINT/SIGTERM, then drains and signs final checkpoints. With
/// `examples`, prints a copy-paste example for every endpoint once listening.
pub async fn serve(config: Config, examples: bool) -> Result<(), String> {
    survive_file_size_limit()?;
    let state = open(config).await?;
    bootstrap::run(state.config(), state.lifecycle())
        .await
        .map_err(|e| format!("bootstrap: {e}"))?;
    state.spawn_background().await?;
    let listener = tokio::net::TcpListener::bind(state.config().listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", state.config().listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let signal = shutdown_signal()?;
    println!("sck listening on http://{addr}");
    if examples {
        let bundles = &state.config().bundles;
        crate::examples::print(
            &format!("http://{addr}"),
            &state.config().public_url,
            &bundles.default_org,
            &bundles.default_bundle,
        );
    }
    tracing::info!(%addr, "listening");
    let grace = Duration::from_secs(state.config().http.shutdown_grace_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = crate::edge::GuardedListener(listener);
    // The peer address (`ConnectInfo`) is what service-account source allowlists check.
    let service = app(state.clone()).into_make_service_with_connect_info::<crate::edge::PeerAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let mut stopping = stop_rx;
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(|e| format!("server: {e}"))?,
        _ = deadline => tracing::warn!("grace period over; closing remaining connections"),
    }
    state.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
