//! A recording HTTP relay for the interop suite, put between a real OPA and `sck serve` (OPA's
//! service URL points at it): every request is forwarded unchanged on its own upstream
//! connection (so a held long poll never blocks another request), and every exchange is
//! recorded — method, path, the polling headers, sck's status and content type, and when the
//! request arrived and was answered — so tests can prove *how* OPA got what it got.
//!
//! On demand it misbehaves on decision-log uploads (`POST /logs...`) only: it corrupts the
//! gzip body in flight, or forwards the upload and then loses sck's answer (OPA sees a 502 and
//! uploads the same chunk again). HTTP is hyper's ([`HttpServer`], also for tests that serve
//! a fixed answer); nothing here parses it by hand.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// What the relay does to decision-log uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsMode {
    /// Forward unchanged.
    Pass,
    /// Flip the gzip trailer's CRC-32 before forwarding: the body still inflates to valid
    /// events, so only a reader that checks the CRC refuses it.
    CorruptGzip,
    /// Forward unchanged, then answer OPA 502 instead of sck's answer.
    LoseAnswer,
}

/// One request that passed through, with sck's answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub prefer: Option<String>,
    pub if_none_match: Option<String>,
    /// sck's status (what OPA saw may differ, see `lost`).
    pub status: u16,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    /// sck's answer body for decision-log uploads (empty for other requests).
    pub body: Vec<u8>,
    /// The upload's gzip body was corrupted on the way to sck.
    pub corrupted: bool,
    /// sck's answer was replaced by a 502 on the way back to OPA.
    pub lost: bool,
    pub received: Instant,
    pub answered: Instant,
}

impl Exchange {
    pub fn is_upload(&self) -> bool {
        self.method == "POST" && self.path.starts_with("/logs")
    }

    /// sck's answer as JSON (decision-log uploads).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The decision-log uploads among `exchanges`.
pub fn uploads(exchanges: &[Exchange]) -> Vec<&Exchange> {
    exchanges.iter().filter(|e| e.is_upload()).collect()
}

struct Shared {
    upstream: String,
    mode: Mutex<LogsMode>,
    exchanges: Mutex<Vec<Exchange>>,
    /// Long polls (GET with `Prefer: ...wait=N`) sent upstream and not answered yet.
    held: AtomicUsize,
}

/// What answers a request of an [`HttpServer`].
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// A hyper HTTP/1.1 server on a free loopback port, on its own runtime; stopped when dropped.
pub struct HttpServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpServer {
    pub fn start(handler: Handler) -> HttpServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let answer = handler(request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpServer {
            url,
            runtime: Some(runtime),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A running relay; stopped when dropped.
pub struct Relay {
    /// `http://127.0.0.1:PORT`, the URL to give OPA.
    pub url: String,
    shared: Arc<Shared>,
    _server: HttpServer,
}

impl Relay {
    /// Relays to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Relay {
        let shared = Arc::new(Shared {
            upstream: upstream
                .strip_prefix("http://")
                .expect("an http:// upstream")
                .trim_end_matches('/')
                .to_owned(),
            mode: Mutex::new(LogsMode::Pass),
            exchanges: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
        });
        let relaying = Arc::clone(&shared);
        let server = HttpServer::start(Arc::new(move |request| {
            let shared = Arc::clone(&relaying);
            Box::pin(async move { relay(&shared, request).await })
        }));
        Relay {
            url: server.url.clone(),
            shared,
            _server: server,
        }
    }

    pub fn set_logs_mode(&self, mode: LogsMode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Everything relayed so far, in the order the answers came back.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().clone()
    }

    /// Waits until a long poll is being held upstream (so what changes next reaches OPA through
    /// it), or panics after `within`.
    pub fn wait_until_held(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.shared.held.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "relay: no long poll held within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `done` holds for the exchanges so far, or panics after `within`.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Exchange]) -> bool,
    ) -> Vec<Exchange> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.exchanges();
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "relay: no {what} within {within:?}; saw {:#?}",
                seen.iter()
                    .map(|e| format!("{} {} -> {}", e.method, e.path, e.status))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn header(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn answer(status: u16, headers: &hyper::HeaderMap, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    *response.headers_mut() = headers.clone();
    response
}

async fn relay(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let received = Instant::now();
    let (mut head, body) = request.into_parts();
    let mut body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let path = head
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let upload = head.method == hyper::Method::POST && path.starts_with("/logs");
    let mode = if upload {
        *shared.mode.lock().unwrap()
    } else {
        LogsMode::Pass
    };
    let corrupted = mode == LogsMode::CorruptGzip && body.len() >= 8;
    if corrupted {
        // The gzip trailer is CRC-32 then ISIZE, little-endian, in the last 8 bytes.
        let crc = body.len() - 8;
        for byte in &mut body[crc..crc + 4] {
            *byte ^= 0xff;
        }
    }
    head.uri = path.parse().unwrap();
    let exchange = |status, headers: &hyper::HeaderMap, answer_body: &[u8], lost| Exchange {
        method: head.method.to_string(),
        path: path.clone(),
        prefer: header(&head.headers, "prefer"),
        if_none_match: header(&head.headers, "if-none-match"),
        status,
        content_type: header(headers, "content-type"),
        etag: header(headers, "etag"),
        body: if upload {
            answer_body.to_vec()
        } else {
            Vec::new()
        },
        corrupted,
        lost,
        received,
        answered: Instant::now(),
    };

    let long_poll = head.method == hyper::Method::GET
        && header(&head.headers, "prefer").is_some_and(|p| p.contains("wait="));
    if long_poll {
        shared.held.fetch_add(1, Ordering::SeqCst);
    }
    let forwarded = async {
        let stream = tokio::net::TcpStream::connect(&shared.upstream).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender
            .send_request(Request::from_parts(
                head.clone(),
                Full::new(Bytes::from(body)),
            ))
            .await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes))
    };
    let forwarded = forwarded.await;
    if long_poll {
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
    match forwarded {
        Ok((parts, bytes)) => {
            let lost = mode == LogsMode::LoseAnswer;
            shared.exchanges.lock().unwrap().push(exchange(
                parts.status.as_u16(),
                &parts.headers,
                &bytes,
                lost,
            ));
            if lost {
                return answer(502, &hyper::HeaderMap::new(), Bytes::new());
            }
            answer(parts.status.as_u16(), &parts.headers, bytes)
        }
        Err(e) => {
            let headers = hyper::HeaderMap::new();
            shared.exchanges.lock().unwrap().push(exchange(
                599,
                &headers,
                e.to_string().as_bytes(),
                false,
            ));
            answer(502, &headers, Bytes::new())
        }
    }
}
