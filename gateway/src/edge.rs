//! The HTTP edge: request heads sck refuses, each with a problem+json body and a stable `code`.
//!
//! Two places refuse a request head, and both answer problem+json:
//!
//! - [`limit_head`], a middleware on every request hyper parsed: sck's own limits, a target
//!   (path and query) of at most [`MAX_URI_BYTES`] (`414 uri_too_long`) and header fields of
//!   at most [`MAX_HEADER_BYTES`] together (`431 header_too_large`). Both are well below
//!   hyper's own limits, so hyper hands such requests on instead of refusing them itself.
//! - [`GuardedListener`], for what hyper refuses while parsing, before any application code
//!   runs, and answers with an empty body it writes itself (hyper has no hook for it): a
//!   control character or other invalid byte in a header (`400 invalid_header`), a malformed
//!   request line (`400 invalid_request_line`), more than 100 header fields or a head beyond
//!   hyper's read buffer (`431 header_too_large`), a target beyond hyper's 64 KiB
//!   (`414 uri_too_long`). Each connection's first request head is read and checked with
//!   `httparse` — the parser hyper itself uses, with hyper's configuration and limits — before
//!   hyper sees a byte of it; a head hyper would refuse is answered here and the connection
//!   closed, one hyper would accept is handed to hyper unchanged.
//!
//! Invariant: the guard refuses only heads hyper would refuse (same parser, same limits; heads
//! past hyper's buffer, which sck's own limit refuses anyway, always), so it never changes what
//! sck accepts; `gateway/tests/parsers_fuzz.rs` checks it against hyper itself. What it does not cover: later requests on a kept-alive
//! connection (their start in the byte stream is known only to hyper, which frames bodies) and
//! refusals hyper makes after parsing (conflicting `Content-Length`/`Transfer-Encoding`) still
//! get hyper's empty answer, and the connection is closed as before.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::api_error::ApiError;

/// Longest request target (path and query, or an absolute URI) sck accepts.
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// Most bytes of header fields (names, values and their separators) sck accepts.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// hyper's limits (`hyper::proto::h1`, which `axum::serve` leaves at their defaults): header
/// fields, the read buffer a head must fit in, and the target length.
const HYPER_MAX_HEADERS: usize = 100;
const HYPER_MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;

fn uri_too_long(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        format!("the request target is longer than {limit} bytes"),
    )
}

fn header_too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "header_too_large",
        format!("the request has {what}"),
    )
}

/// Refuses a request whose target or header fields exceed sck's limits.
pub async fn limit_head(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return uri_too_long(MAX_URI_BYTES).into_response();
    }
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if fields > MAX_HEADER_BYTES {
        return header_too_large(&format!(
            "more than {MAX_HEADER_BYTES} bytes of header fields"
        ))
        .into_response();
    }
    next.run(request).await
}

/// What [`check_head`] found at the start of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a complete head yet: read more.
    Incomplete,
    /// A head hyper accepts.
    Acceptable,
    /// A head hyper would refuse while parsing, with sck's answer.
    Refused(ApiError),
}

/// Checks the request head at the start of `bytes` as hyper's parser will.
pub fn check_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; HYPER_MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let request_line = || {
        ApiError::bad_request(
            "invalid_request_line",
            "the request line is not method, target and HTTP/1.x",
        )
    };
    let parsed = request.parse(bytes);
    // hyper refuses a head once its buffer is full; whether a longer one still fits in the read
    // that fills it is chance, and sck's own limit refuses it anyway.
    let length = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        _ => bytes.len(),
    };
    if length >= HYPER_MAX_HEAD_BYTES && parsed.is_ok() {
        return Head::Refused(header_too_large(&format!(
            "a head of more than {HYPER_MAX_HEAD_BYTES} bytes"
        )));
    }
    match parsed {
        Ok(httparse::Status::Partial) => Head::Incomplete,
        Ok(httparse::Status::Complete(_)) => {
            let (method, target) = (request.method.unwrap_or(""), request.path.unwrap_or(""));
            if target.len() > HYPER_MAX_URI_BYTES {
                Head::Refused(uri_too_long(HYPER_MAX_URI_BYTES))
            } else if Method::from_bytes(method.as_bytes()).is_err() || Uri::try_from(target).is_err()
            {
                Head::Refused(request_line())
            } else {
                Head::Acceptable
            }
        }
        Err(httparse::Error::TooManyHeaders) => Head::Refused(header_too_large(&format!(
            "more than {HYPER_MAX_HEADERS} header fields"
        ))),
        // Once the version is read, the error is in a header line.
        Err(_) if request.version.is_some() => Head::Refused(ApiError::bad_request(
            "invalid_header",
            "a header line is malformed: a name that is not a token, or a value with a control character",
        )),
        Err(_) => Head::Refused(request_line()),
    }
}

/// `error` as a complete HTTP/1.1 response that closes the connection.
fn refusal(error: &ApiError) -> Vec<u8> {
    let body = error.problem_body();
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// A TCP listener whose connections check their first request head (see the module docs).
#[derive(Debug)]
pub struct GuardedListener(pub TcpListener);

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, std::net::SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (GuardedStream::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

/// The peer address of a guarded connection, as handlers read it (`ConnectInfo<PeerAddr>`;
/// service-account source allowlists check it).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[derive(Debug)]
enum Phase {
    /// Reading the first head into the buffer until [`check_head`] decides.
    Checking(Vec<u8>),
    /// Handing hyper the checked bytes from the offset on, then passing through.
    Replaying(Vec<u8>, usize),
    Passing,
    /// Writing the refusal from the offset on; hyper then reads end of stream.
    Refusing(Vec<u8>, usize),
    Refused,
}

/// A connection whose first request head is checked before hyper reads it.
#[derive(Debug)]
pub struct GuardedStream {
    io: TcpStream,
    phase: Phase,
}

impl GuardedStream {
    fn new(io: TcpStream) -> Self {
        GuardedStream {
            io,
            phase: Phase::Checking(Vec::new()),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Checking(head) => {
                    let mut chunk = [0u8; 8192];
                    let mut read = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
                    let mut head = std::mem::take(head);
                    if read.filled().is_empty() {
                        // End of stream: hyper sees what came and handles it as before.
                        this.phase = Phase::Replaying(head, 0);
                        continue;
                    }
                    head.extend_from_slice(read.filled());
                    this.phase = match check_head(&head) {
                        Head::Incomplete => Phase::Checking(head),
                        Head::Acceptable => Phase::Replaying(head, 0),
                        Head::Refused(error) => {
                            tracing::debug!(
                                code = error.code,
                                "request head refused before parsing"
                            );
                            metrics::counter!("sck_http_requests_total", "route" => "unparsed", "method" => "-", "status" => error.status.as_u16().to_string())
                                .increment(1);
                            Phase::Refusing(refusal(&error), 0)
                        }
                    };
                }
                Phase::Replaying(head, at) => {
                    let n = out.remaining().min(head.len() - *at);
                    out.put_slice(&head[*at..*at + n]);
                    *at += n;
                    if *at == head.len() {
                        this.phase = Phase::Passing;
                    }
                    return Poll::Ready(Ok(()));
                }
                Phase::Passing => return Pin::new(&mut this.io).poll_read(cx, out),
                Phase::Refusing(response, at) => {
                    while *at < response.len() {
                        *at += ready!(Pin::new(&mut this.io).poll_write(cx, &response[*at..]))?;
                    }
                    ready!(Pin::new(&mut this.io).poll_flush(cx))?;
                    this.phase = Phase::Refused;
                }
                Phase::Refused => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(head: &[u8]) -> Option<&'static str> {
        match check_head(head) {
            Head::Refused(error) => Some(error.code),
            _ => None,
        }
    }

    #[test]
    fn heads_hyper_would_refuse_are_refused_with_their_code() {
        let ok = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(check_head(ok), Head::Acceptable);
        assert_eq!(check_head(&ok[..20]), Head::Incomplete);
        assert_eq!(check_head(b""), Head::Incomplete);
        // obs-text is valid on the wire (sck refuses it later where it matters).
        assert_eq!(
            check_head(b"GET / HTTP/1.1\r\nX: \xe9\r\n\r\n"),
            Head::Acceptable
        );
        assert_eq!(
            code(b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"),
            Some("invalid_header")
        );
        assert_eq!(
            code(b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n"),
            Some("invalid_header")
        );
        assert_eq!(
            code(b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n"),
            Some("invalid_header")
        );
        assert_eq!(
            code(b"G\x01T / HTTP/1.1\r\n\r\n"),
            Some("invalid_request_line")
        );
        assert_eq!(
            code(b"GET / HTTP/2.0\r\n\r\n"),
            Some("invalid_request_line")
        );
        assert_eq!(
            code(b"GET /a\x7f HTTP/1.1\r\n\r\n"),
            Some("invalid_request_line")
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(101));
        assert_eq!(code(many.as_bytes()), Some("header_too_large"));
        let hundred = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100));
        assert_eq!(check_head(hundred.as_bytes()), Head::Acceptable);
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(HYPER_MAX_HEAD_BYTES));
        assert_eq!(code(huge.as_bytes()), Some("header_too_large"));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(HYPER_MAX_URI_BYTES));
        assert_eq!(code(long.as_bytes()), Some("uri_too_long"));
    }

    #[test]
    fn refusals_are_complete_problem_responses() {
        let Head::Refused(error) = check_head(b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n") else {
            panic!("refused");
        };
        let bytes = refusal(&error);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(&bytes).unwrap() else {
            panic!("a complete head");
        };
        assert_eq!(response.code, Some(400));
        let header = |name: &str| {
            let found = response.headers.iter().find(|h| h.name == name).unwrap();
            std::str::from_utf8(found.value).unwrap().to_owned()
        };
        assert_eq!(header("content-type"), "application/problem+json");
        assert_eq!(header("content-length"), (bytes.len() - head).to_string());
        let problem: serde_json::Value = serde_json::from_slice(&bytes[head..]).unwrap();
        assert_eq!(problem["code"], "invalid_header");
        assert_eq!(problem["status"], 400);
    }
}
