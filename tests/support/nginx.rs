//! A real nginx (Debian's package, installed with apt when missing and the tests run as root;
//! otherwise the test fails with the reason) run in the foreground on a loopback port, with
//! its own prefix, pid file, logs and temp directories in a temporary directory; stopped when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nginx binary: on `PATH`, in `/usr/sbin`, or installed from Debian's packages.
pub fn binary() -> PathBuf {
    let find = || {
        ["nginx", "/usr/sbin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| {
                Command::new(p)
                    .arg("-v")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
    };
    if let Some(found) = find() {
        return found;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "nginx"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
        || (Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok()
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", "nginx"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success()));
    assert!(
        installed,
        "nginx is not installed and `apt-get install nginx` failed (needs root)"
    );
    find().expect("nginx installed but not runnable")
}

/// nginx's version line (`nginx version: nginx/1.22.1`).
pub fn version(nginx: &Path) -> String {
    let out = Command::new(nginx).arg("-v").output().expect("nginx -v");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

pub struct Nginx {
    child: Child,
    binary: PathBuf,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `server_body` inside `server { listen …; … }` of a minimal `http`
    /// block, and waits until it accepts connections.
    pub fn start(server_body: &str) -> Nginx {
        let nginx = binary();
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let d = dir.path().display();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        let conf = format!(
            "{user}worker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n{server_body}\n  }}\n}}\n",
            // As root the workers would switch to `nobody`, who cannot read the temp dir.
            user = if root { "user root;\n" } else { "" },
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .args(["-c", "nginx.conf", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let mut started = Nginx {
            child,
            binary: nginx,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        super::wait_until(Duration::from_secs(10), "nginx to listen", || {
            if let Ok(Some(status)) = started.child.try_wait() {
                panic!("nginx exited ({status}): {}", started.error_log());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        started
    }

    /// What nginx wrote to its error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Asserts that nginx passed `reply` on as a 200, showing its answer and nginx's error log
    /// when it did not.
    pub fn assert_passed(&self, reply: &super::http::Reply) {
        assert_eq!(reply.status, 200, "{} {}", reply.text(), self.error_log());
    }
}

impl Drop for Nginx {
    /// `nginx -s stop` (TERM to the master, which stops its workers; killing the master
    /// alone would leave them serving the port), then the master is reaped.
    fn drop(&mut self) {
        let stopped = Command::new(&self.binary)
            .arg("-p")
            .arg(self.dir.path())
            .args(["-c", "nginx.conf", "-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
