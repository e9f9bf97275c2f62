//! A private PostgreSQL server for fault tests: `initdb` into a temporary directory, `pg_ctl`
//! start on a free loopback port (its unix socket in the same directory), stop and start again
//! on demand, and stop and delete everything when dropped.
//!
//! Binaries are found like `scripts/with-postgres.sh` finds them (`initdb` on `PATH`, else
//! `/usr/lib/postgresql/*/bin`). PostgreSQL refuses to run as root, so as root (CI) every
//! PostgreSQL command runs as the `postgres` user, created if missing. Missing binaries are a
//! test failure with instructions, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cli::run_ok;
use super::free_port;

/// A PostgreSQL server owned by one test.
pub struct PgInstance {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
}

/// The directory holding `initdb` and `pg_ctl`, or `None`.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("initdb"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(initdb) = on_path {
        let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return resolved.parent().map(Path::to_path_buf);
    }
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    // Prefer the newest major version.
    installed.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    installed.pop()
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run `id -u`");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl PgInstance {
    /// Creates a cluster (user `sck`, trust authentication), starts it and creates database `sck`.
    pub fn start() -> PgInstance {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in \
                 /usr/lib/postgresql/*/bin: install PostgreSQL, or run the suite with \
                 `make test` (scripts/with-postgres.sh installs it)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("sck-faults-pg.")
            .tempdir()
            .unwrap();
        let as_root = running_as_root();
        if as_root {
            let exists = Command::new("id").arg("postgres").output().unwrap();
            if !exists.status.success() {
                run_ok(Command::new("useradd").args(["--system", "--no-create-home", "postgres"]));
            }
            run_ok(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path()),
            );
        }
        let pg = PgInstance {
            bin,
            dir,
            port: free_port(),
            as_root,
        };
        run_ok(pg.command("initdb").arg("-D").arg(pg.data()).args([
            "-U",
            "sck",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        pg.start_server();
        run_ok(pg.command("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "sck",
            "sck",
        ]));
        pg
    }

    /// The URL of database `sck` over TCP.
    pub fn url(&self) -> String {
        format!("postgres://sck@127.0.0.1:{}/sck", self.port)
    }

    /// Kills the server the way a crash or an operator's `pg_ctl stop -m immediate` does: every
    /// connection is cut and the next start runs crash recovery. Returns once it is down.
    pub fn stop(&self) {
        run_ok(self.command("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    /// Starts the server again on the same port and data; returns once it accepts connections.
    pub fn start_again(&self) {
        self.start_server();
    }

    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c max_connections=100 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        run_ok(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A PostgreSQL command, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
