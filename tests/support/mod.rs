//! Shared harness for end-to-end tests: starts the real `sck serve` binary on a random port
//! in a temporary data directory (SQLite, or a fresh PostgreSQL database), reads the secrets it
//! prints at first start, and stops it when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod deploy;
#[cfg(feature = "interop")]
pub mod interop;
pub mod opa;
pub mod pg_instance;
#[cfg(feature = "interop")]
pub mod relay;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running `sck serve`.
pub struct Server {
    child: Child,
    pub url: String,
    pub root_key: Option<String>,
    pub sidecar_token: Option<String>,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// The server's process id (to signal it or put resource limits on it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a server on SQLite in a fresh directory.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        Server::launch(
            &path,
            &path.join("sck.db").display().to_string(),
            Some(dir),
            &[],
        )
    }

    /// Starts a server with extra environment variables.
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        Server::launch(
            &path,
            &path.join("sck.db").display().to_string(),
            Some(dir),
            env,
        )
    }

    /// Starts a server on SQLite after `prepare` has set up its data directory.
    pub fn start_prepared(prepare: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        prepare(&path);
        Server::launch(
            &path,
            &path.join("sck.db").display().to_string(),
            Some(dir),
            &[],
        )
    }

    /// Starts a server on `database_url`, keeping keys in `data_dir` (shared by replicas).
    pub fn start_on(data_dir: &Path, database_url: &str) -> Server {
        Server::launch(data_dir, database_url, None, &[])
    }

    /// Starts a server on `database_url` with extra environment variables.
    pub fn start_on_with_env(data_dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        Server::launch(data_dir, database_url, None, env)
    }

    fn launch(
        data_dir: &Path,
        database_url: &str,
        dir: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sck"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("SCK_DATA_DIR", data_dir)
            .env(
                "SCK_BUNDLES__BOOTSTRAP_POLICIES",
                repo().join("policies").display().to_string(),
            )
            .env("SCK_LOG", "warn")
            .env_remove("SCK_DATABASE_URL")
            .env_remove("SCK_CONFIG")
            .current_dir(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("sck serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut root_key = None;
        let mut sidecar_token = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("sck serve prints its address within 60 s");
            if let Some(rest) = line.strip_prefix("root admin key:") {
                root_key = Some(rest.trim().to_owned());
            } else if line.starts_with("sidecar token") {
                sidecar_token = line.rsplit(' ').next().map(str::to_owned);
            } else if let Some(addr) = line.strip_prefix("sck listening on ") {
                break addr.trim().to_owned();
            }
        };
        Server {
            child,
            url,
            root_key,
            sidecar_token,
            data_dir: data_dir.to_path_buf(),
            _dir: dir,
        }
    }

    /// Runs the `sck` CLI against this server with the root key.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sck"))
            .args(args)
            .env("SCK_SERVER", &self.url)
            .env("SCK_ADMIN_KEY", self.root_key.as_deref().unwrap_or(""))
            .output()
            .unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: the `kill` command delivers SIGTERM.
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// Sends SIGTERM and waits up to `deadline` for the exit; `None` (and SIGKILL) if the
    /// process is still running then.
    pub fn stop_within(mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::mem::forget(self);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `test` against a fresh server on SQLite and, when the suite has PostgreSQL
/// (`SCK_TEST_DATABASE_URL`), against a fresh one on PostgreSQL.
pub fn on_each_backend(test: impl Fn(&Server)) {
    test(&Server::start());
    if let Some(url) = fresh_postgres_database() {
        let dir = tempfile::tempdir().unwrap();
        test(&Server::start_on(dir.path(), &url));
    }
}

/// The number of entries in `org`'s ledger log (read with the root key).
pub fn ledger_size(server: &Server, org: &str) -> u64 {
    let root = server.root_key.as_deref().expect("a root key");
    get(
        &format!("{}/api/v1/ledger/{org}/entries?limit=0", server.url),
        &[("Authorization", &format!("Bearer {root}"))],
    )
    .json()["size"]
        .as_u64()
        .expect("a ledger size")
}

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
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
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
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.expect("request completes");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = agent().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    read(request.call())
}

/// The server's `/metrics` page.
pub fn metrics_text(url: &str) -> String {
    String::from_utf8(get(&format!("{url}/metrics"), &[]).body).unwrap()
}

/// The value of the first sample in `text` whose line starts with `series` (the name, and the
/// label set exactly as the exporter prints it), if any.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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
    let mut request = agent().post(url).header("Content-Type", content_type);
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    read(request.send(body))
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
/// the first answer; like curl, it keeps reading after a failed write (the server may answer
/// and close before reading everything).
pub fn send_raw(authority: &str, request: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The write may fail once the server has answered and closed: that is the case under test.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    // A reset after the answer arrived still leaves the answer in `answer`.
    let _ = stream.read_to_end(&mut answer);
    parse_response(&answer)
}

/// Parses a complete `Connection: close` HTTP/1.1 response (Content-Length or to EOF).
fn parse_response(raw: &[u8]) -> Reply {
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
    assert!(
        headers.get("transfer-encoding").is_none(),
        "chunked answers are not expected here"
    );
    let mut body = raw[head_len..].to_vec();
    if let Some(length) = headers.get("content-length") {
        body.truncate(length.to_str().unwrap().parse().unwrap());
    }
    Reply {
        status: response.code.expect("status code"),
        headers,
        body,
    }
}

/// Runs the `sck` CLI with `data_dir` as its data and working directory.
pub fn sck(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sck"))
        .args(args)
        .env("SCK_DATA_DIR", data_dir)
        .env("SCK_LOG", "warn")
        .env_remove("SCK_CONFIG")
        .env_remove("SCK_DATABASE_URL")
        .current_dir(data_dir)
        .output()
        .unwrap()
}

/// The standard output of a command that succeeded (else a panic showing both outputs).
pub fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exports `org`'s ledger from `database_url` with `sck ledger export` to a new file in `dir`.
pub fn export_ledger(database_url: &str, org: &str, dir: &Path) -> PathBuf {
    let export = dir.join(format!("export-{org}-{}.tar.gz", unique_suffix()));
    let out = Command::new(env!("CARGO_BIN_EXE_sck"))
        .args([
            "ledger",
            "export",
            "--org",
            org,
            "--database-url",
            database_url,
            "-o",
        ])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sck ledger export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    export
}

/// The leaf bytes of every entry of a ledger export, by seq (its `entries.jsonl`).
pub fn export_leaves(export: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(export).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("entries.jsonl") {
            let mut leaves = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut leaves).unwrap();
            return leaves
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
        }
    }
    panic!("no entries.jsonl in {}", export.display())
}

/// Every entry of a ledger export, parsed.
pub fn export_entries(export: &Path) -> Vec<Value> {
    export_leaves(export)
        .iter()
        .map(|leaf| serde_json::from_slice(leaf).unwrap())
        .collect()
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The default policy tree as a compile request's file map.
pub fn policy_files() -> serde_json::Map<String, Value> {
    let tree = sck_bundler::SourceTree::from_dir(&repo().join("policies")).unwrap();
    tree.files()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(String::from_utf8(v.clone()).unwrap()),
            )
        })
        .collect()
}

/// A PostgreSQL URL for a brand-new database, or `None` (with a note) when the suite runs
/// without PostgreSQL.
pub fn fresh_postgres_database() -> Option<String> {
    let Ok(base) = std::env::var("SCK_TEST_DATABASE_URL") else {
        eprintln!("skipped: SCK_TEST_DATABASE_URL not set (make test provides it)");
        return None;
    };
    let name = format!("sck_e2e_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{name}"))
}
