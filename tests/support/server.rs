//! A running `sck serve`: the real binary on a random loopback port, with a data directory of
//! its own (SQLite in it) or the data directory and database of a deployment it joins as a
//! replica ([`crate::support::db::Deployment`]), the policies of `policies/` to bootstrap, and
//! the secrets it prints at first start. SIGTERM stops it ([`Server::stop`]); dropping it
//! kills it, so no server outlives its test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{cli, db, repo};

/// A running `sck serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The root admin key, printed only by the first start of a deployment.
    pub root_key: Option<String>,
    /// The default org's sidecar token, printed only by the first start of a deployment.
    pub sidecar_token: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// The data directory when the server owns it (kept after [`Server::stop`]).
    dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on SQLite in a fresh directory.
    pub fn start() -> Server {
        Server::start_with_env(&[])
    }

    /// Starts a server on SQLite in a fresh directory, with extra environment variables.
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        Server::in_temp_dir(|_| {}, env)
    }

    /// Starts a server on SQLite after `prepare` has set up its (fresh) data directory.
    pub fn start_prepared(prepare: impl FnOnce(&Path)) -> Server {
        Server::in_temp_dir(prepare, &[])
    }

    /// Starts a server on `database_url`, keeping keys in `data_dir` (shared by replicas).
    pub fn start_on(data_dir: &Path, database_url: &str) -> Server {
        Server::launch(data_dir, database_url, None, &[])
    }

    /// Starts a server on `database_url` with extra environment variables.
    pub fn start_on_with_env(data_dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        Server::launch(data_dir, database_url, None, env)
    }

    /// Starts a server on SQLite in a fresh directory on a free port it also announces as its
    /// `public_url` (for documents that name its own URLs, such as RFC 8414 metadata).
    pub fn start_public(env: &[(&str, &str)]) -> Server {
        let listen = format!("127.0.0.1:{}", super::free_port());
        let public_url = format!("http://{listen}");
        let mut env = env.to_vec();
        env.push(("SCK_PUBLIC_URL", &public_url));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        Server::launch_at(&listen, &path, &db::sqlite_url(&path), Some(dir), &env)
    }

    fn in_temp_dir(prepare: impl FnOnce(&Path), env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        prepare(&path);
        Server::launch(&path, &db::sqlite_url(&path), Some(dir), env)
    }

    fn launch(
        data_dir: &Path,
        database_url: &str,
        dir: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch_at("127.0.0.1:0", data_dir, database_url, dir, env)
    }

    fn launch_at(
        listen: &str,
        data_dir: &Path,
        database_url: &str,
        dir: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command =
            cli::command(&["serve", "--listen", listen, "--database-url", database_url]);
        command
            .env("SCK_DATA_DIR", data_dir)
            .env("SCK_BUNDLES__BOOTSTRAP_POLICIES", repo().join("policies"))
            .envs(env.iter().copied())
            .current_dir(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("sck serve starts");
        let Ok(started) = wait_for_address(&mut child, Duration::from_secs(60)) else {
            panic!("sck serve prints its address within 60 s");
        };
        Server {
            child,
            url: started.url,
            root_key: secret(&started.stdout, "root admin key:"),
            sidecar_token: secret(&started.stdout, "sidecar token"),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.to_owned(),
            dir,
        }
    }

    /// The root admin key (only a deployment's first start prints it).
    pub fn root(&self) -> &str {
        self.root_key
            .as_deref()
            .expect("first start printed the root admin key")
    }

    /// The default org's sidecar token (only a deployment's first start prints it).
    pub fn sidecar(&self) -> &str {
        self.sidecar_token
            .as_deref()
            .expect("first start printed a sidecar token")
    }

    /// The server's process id (to signal it or put resource limits on it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs the `sck` CLI against this server with the root key.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli::remote(&self.url, self.root_key.as_deref().unwrap_or(""), args)
    }

    /// Sends SIGTERM and waits for the exit. The data directory stays, for the test to read
    /// the database afterwards.
    pub fn stop(mut self) -> ExitStatus {
        super::terminate(self.pid());
        let status = self.child.wait().unwrap();
        self.keep_data_dir();
        status
    }

    /// Sends SIGTERM and waits up to `deadline` for the exit (keeping the data directory, as
    /// [`Server::stop`]); `None` (and SIGKILL) if the process is still running then.
    pub fn stop_within(mut self, deadline: Duration) -> Option<ExitStatus> {
        super::terminate(self.pid());
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.keep_data_dir();
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn keep_data_dir(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a starting `sck serve` printed on stdout before `sck listening on ADDRESS`, and that
/// address as a URL.
pub struct Started {
    pub url: String,
    pub stdout: Vec<String>,
}

/// Reads the piped stdout of a starting `sck serve` until it prints its address; `Err` with
/// what it printed if that does not come within `within` (or the process ends first).
pub fn wait_for_address(child: &mut Child, within: Duration) -> Result<Started, Vec<String>> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut stdout = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            return Err(stdout);
        };
        if let Some(addr) = line.strip_prefix("sck listening on ") {
            return Ok(Started {
                url: addr.trim().to_owned(),
                stdout,
            });
        }
        stdout.push(line);
    }
}

/// The secret printed at first start on the line of `stdout` starting with `label` (its last
/// word).
pub fn secret(stdout: &[String], label: &str) -> Option<String> {
    stdout
        .iter()
        .find(|l| l.starts_with(label))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}
