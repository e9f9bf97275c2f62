//! Real OPA for the interop suite (`make test-interop`): finds the binary, runs its CLI, and
//! runs `opa run --server` on a free loopback port until dropped.
//!
//! The binary comes from `SCK_OPA` (a path) or `opa` on `PATH`. The interop targets need the
//! `interop` feature, which `make test-interop` enables only after it has found an OPA, so
//! `make test` never needs one; a missing binary here is a hard failure, never a skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The OPA binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SCK_OPA").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SCK_OPA={} is not a file: point it at an OPA binary",
            path.display()
        );
        return std::fs::canonicalize(path).unwrap();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("opa"))
                .find(|candidate| candidate.is_file())
        })
        .expect("the interop suite needs a real OPA: set SCK_OPA=/path/to/opa or put opa on PATH")
}

/// Runs `opa <args>` in `dir` and returns its output.
pub fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("opa runs")
}

/// Runs `opa <args>` and returns its output.
pub fn cli(args: &[&str]) -> Output {
    cli_in(&std::env::temp_dir(), args)
}

/// OPA's version, such as `0.60.0`.
pub fn version() -> String {
    let out = cli(&["version"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("opa version prints `Version: x.y.z`")
        .trim()
        .to_owned()
}

/// OPA's major version (0 or 1): Rego v0 is the default before 1.0, Rego v1 from 1.0 on.
pub fn major() -> u32 {
    version()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("numeric major version")
}

pub use super::free_port;

/// A running `opa run --server`; killed when dropped.
pub struct OpaServer {
    child: Mutex<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// OPA's stderr lines, each with the moment this process read it.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    /// The threads reading OPA's stdout and stderr into `log` (they end when OPA exits).
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl OpaServer {
    /// Starts `opa run --server --addr 127.0.0.1:PORT --log-format json <args>` in `dir` and
    /// waits until `GET /health` answers 200 (with `health_query`, e.g. `?bundles`, appended).
    pub fn start_in(dir: &Path, args: &[&str], health_query: &str) -> OpaServer {
        let server = OpaServer::spawn(dir, args, &[]);
        server.wait_healthy(health_query, Duration::from_secs(60));
        server
    }

    /// Starts OPA with `config` (YAML, e.g. what `sck opa-config` prints) as its only
    /// configuration, written to `dir/config.yaml`, with `env` added to its environment (OPA
    /// substitutes `${NAME}` in the file). Waits until `GET /health` answers, not for bundles.
    pub fn configured(dir: &Path, config: &str, env: &[(&str, &str)]) -> OpaServer {
        let file = dir.join("config.yaml");
        std::fs::write(&file, config).unwrap();
        let file = file.display().to_string();
        let server = OpaServer::spawn(dir, &["--config-file", &file, "--disable-telemetry"], env);
        server.wait_healthy("", Duration::from_secs(60));
        server
    }

    /// Runs `opa <args>` exactly (a deployment file's command line) in `dir`, serving at `url`
    /// (the `--addr` in `args`); does not wait for it.
    pub fn command_line(dir: &Path, args: &[String], url: &str, env: &[(&str, &str)]) -> OpaServer {
        OpaServer::spawn_exactly(dir, args, url.to_owned(), env)
    }

    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> OpaServer {
        let addr = format!("127.0.0.1:{}", free_port());
        let all: Vec<String> = ["run", "--server", "--addr", &addr, "--log-format", "json"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect();
        OpaServer::spawn_exactly(dir, &all, format!("http://{addr}"), env)
    }

    fn spawn_exactly(dir: &Path, args: &[String], url: String, env: &[(&str, &str)]) -> OpaServer {
        let mut child = Command::new(binary())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("opa run starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        // OPA logs on stderr; a start-up failure (`error: load error: ...`) goes to stdout.
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let readers = [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ]
        .into_iter()
        .map(|stream| {
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push((Instant::now(), line));
                }
            })
        })
        .collect();
        OpaServer {
            child: Mutex::new(child),
            url,
            log,
            readers: Mutex::new(readers),
        }
    }

    /// Runs `opa run --server <args>` expecting OPA to refuse to start (a bundle it will not
    /// load); returns its output. Panics if it serves instead, or is still running after 60 s.
    pub fn refuses(args: &[&str]) -> String {
        let server = OpaServer::spawn(&std::env::temp_dir(), args, &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = server.child.lock().unwrap().try_wait() {
                break;
            }
            let health = super::http::agent()
                .get(&format!("{}/health", server.url))
                .call();
            assert!(
                !matches!(&health, Ok(r) if r.status() == 200),
                "OPA started with {args:?}; log:\n{}",
                server.log().join("\n")
            );
            assert!(
                Instant::now() < deadline,
                "OPA neither refused nor served {args:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.exited_log()
    }

    /// Everything OPA wrote, once it has exited (after the readers reached the end).
    fn exited_log(&self) -> String {
        for reader in self.readers.lock().unwrap().drain(..) {
            let _ = reader.join();
        }
        self.log().join("\n")
    }

    /// Stops OPA with SIGTERM, as a container runtime does (OPA then flushes its buffered
    /// decision logs), and waits for it to exit.
    pub fn stop(self) -> std::process::ExitStatus {
        let mut child = self.child.lock().unwrap();
        super::terminate(child.id());
        child.wait().unwrap()
    }

    /// Waits until OPA logs, at `since` or later, a line containing every one of `needles`;
    /// returns when that line was read.
    pub fn wait_for_log(&self, needles: &[&str], since: Instant, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|(at, line)| {
                (*at >= since && needles.iter().all(|n| line.contains(n))).then_some(*at)
            });
            if let Some(at) = found {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "OPA did not log {needles:?} within {within:?}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until OPA has activated, at `since` or later, the bundle whose tarball has SHA-256
    /// `sha256` (its bundle plugin logs the new ETag, which sck sets to that digest); returns
    /// when that was logged.
    pub fn wait_for_activation(&self, sha256: &str, since: Instant, within: Duration) -> Instant {
        self.wait_for_log(&["Etag updated to", sha256], since, within)
    }

    /// The manifest revision OPA holds for bundle `name` (`data.system.bundles`), if any. Each
    /// call is a decision OPA logs; its id is returned too.
    pub fn bundle_revision(&self, name: &str) -> (Option<String>, String) {
        let answer = super::http::get(
            &format!(
                "{}/v1/data/system/bundles/{name}/manifest/revision",
                self.url
            ),
            &[],
        )
        .expect(200);
        (
            answer["result"].as_str().map(str::to_owned),
            answer["decision_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// Like [`OpaServer::start_in`] in a temporary directory's parent (for `--bundle FILE` runs).
    pub fn start(args: &[&str]) -> OpaServer {
        OpaServer::start_in(&std::env::temp_dir(), args, "")
    }

    /// Waits until `GET /health{query}` answers 200, or panics with OPA's log (at once if OPA
    /// has exited).
    pub fn wait_healthy(&self, query: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let answer = super::http::agent()
                .get(&format!("{}/health{query}", self.url))
                .call();
            if matches!(&answer, Ok(r) if r.status() == 200) {
                return;
            }
            let exited = self.child.lock().unwrap().try_wait();
            if let Ok(Some(exit)) = exited {
                panic!("OPA exited ({exit}); log:\n{}", self.exited_log());
            }
            assert!(
                Instant::now() < deadline,
                "OPA not healthy ({query}) within {within:?}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything OPA has written to stderr so far (JSON log lines).
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// `POST /v1/data/{path}` with `{"input": input}`; the whole answer.
    pub fn data(&self, path: &str, input: &serde_json::Value) -> super::http::Reply {
        super::http::post_json(
            &format!("{}/v1/data/{path}", self.url),
            None,
            &serde_json::json!({ "input": input }),
        )
    }
}

impl Drop for OpaServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}
