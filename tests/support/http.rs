//! HTTP as the tests speak it: one client that never turns a status into an error, answers
//! read whole ([`Reply`]), requests of any method and headers, bodies a server must refuse as
//! too large and raw bytes on a socket (what an HTTP client will not send), and the
//! assertions on problem answers. HTTP is ureq's and httparse's; nothing here parses it by hand.

use std::time::Duration;

use serde_json::Value;

/// The enforcement API's path prefix.
pub const API: &str = "/api/v1/enforcement";

/// A plain HTTP client that never turns statuses into errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

/// An HTTP answer, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    /// The body as text (for failure messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The problem `code` of an error answer.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// The JSON body of an answer with `status` (else a panic showing the body).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }

    /// Asserts a refusal: `status`, an `application/problem+json` body whose `status` member
    /// agrees and whose `code` is `code`. Returns the problem.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "{}",
            self.text()
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let problem = self.json();
        assert_eq!(problem["status"], status, "{problem}");
        problem
    }
}

/// `Bearer {secret}`, the `Authorization` value of every credential sck takes.
pub fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Option<Reply> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .ok()?;
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// `method url` with `headers` and `body`; `None` when no whole answer came back (connection
/// refused or cut: a killed server).
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Reply> {
    let mut request = ureq::http::Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = agent().run(request.body(body.to_vec()).unwrap()).ok()?;
    read(response)
}

/// `method url` with `headers` and `body`, answered.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    try_request(method, url, headers, body).expect("request completes")
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, headers, b"")
}

/// `GET url` with `secret` as the bearer credential.
pub fn get_as(url: &str, secret: &str) -> Reply {
    get(url, &[("Authorization", &bearer(secret))])
}

pub fn post_json(url: &str, key: Option<&str>, body: &Value) -> Reply {
    post_raw(
        url,
        key,
        "application/json",
        &serde_json::to_vec(body).unwrap(),
    )
}

pub fn post_raw(url: &str, key: Option<&str>, content_type: &str, body: &[u8]) -> Reply {
    let auth = key.map(bearer);
    let mut headers = vec![("Content-Type", content_type)];
    headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
    request("POST", url, &headers, body)
}

/// `body` gzipped (OPA's uploads, tarballs).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// `base` (an object) with the members of `patch` set.
pub fn merged(base: &Value, patch: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in patch.as_object().expect("a patch object") {
        out[k] = v.clone();
    }
    out
}

/// POSTs a body the server is expected to refuse as too large, over a raw socket.
///
/// A server may answer 413 and close before it has read the whole body; an HTTP client that
/// stops at the first failed write (a broken pipe) then never sees the answer. Like curl, this
/// keeps going after a failed write and reads whatever the server answered.
pub fn post_oversized(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    send_raw(authority, &request)
}

/// Sends `request` byte for byte on a new connection to `authority` (`host:port`) and parses
/// the first answer, which must not be chunked; like curl, it keeps reading after a failed
/// write (the server may answer and close before reading everything).
pub fn send_raw(authority: &str, request: &[u8]) -> Reply {
    let answer = exchange_raw(authority, request);
    let reply = parse_response(&answer);
    assert!(
        reply.headers.get("transfer-encoding").is_none(),
        "chunked answers are not expected here"
    );
    reply
}

/// Sends `request` byte for byte on a new connection to `authority` and returns everything
/// the server sent back before it closed.
pub fn exchange_raw(authority: &str, request: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // The write may fail once the server has answered and closed: that is the case under test.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    // A reset after the answer arrived still leaves the answer in `answer`.
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Parses a complete `Connection: close` HTTP/1.1 response (Content-Length, chunked or to
/// EOF).
pub fn parse_response(raw: &[u8]) -> Reply {
    let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut parsed_headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "incomplete HTTP response ({other:?}): {:?}",
            String::from_utf8_lossy(raw)
        ),
    };
    let mut headers = ureq::http::HeaderMap::new();
    for h in response.headers.iter() {
        headers.append(
            ureq::http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            ureq::http::HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let mut body = raw[head_len..].to_vec();
    if chunked {
        body = dechunk(&body);
    } else if let Some(length) = headers.get("content-length") {
        body.truncate(length.to_str().unwrap().parse().unwrap());
    }
    Reply {
        status: response.code.expect("status code"),
        headers,
        body,
    }
}

/// The payload of a chunked body (RFC 9112 §7.1; trailers ignored).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match httparse::parse_chunk_size(raw) {
            Ok(httparse::Status::Complete((_, 0))) => break,
            Ok(httparse::Status::Complete((start, size))) => {
                let end = start + size as usize;
                out.extend_from_slice(&raw[start..end]);
                // The chunk's data is followed by CRLF.
                raw = &raw[end + 2..];
            }
            other => panic!("malformed chunked body ({other:?})"),
        }
    }
    out
}
