//! The deployment files in deploy/, exercised without a container engine: each test reads a
//! file (Dockerfile, compose.yaml, the Kubernetes Deployment, the systemd unit), maps the paths
//! it names inside the image or host onto a temporary directory and this build's `sck`, and runs
//! the very commands it would run — the image's ENTRYPOINT + CMD with its ENV and HEALTHCHECK,
//! the compose opa-config job's script, the pod's init container and sck container, the unit's
//! ExecStart. The OPA configurations they produce are checked against `sck opa-config` and used
//! the way OPA uses them: fetch the active bundle with the credential, verify it with the pinned
//! key. Schema validation of the same files is scripts/validate-deploy.sh (`make test-deploy`).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{get, repo};
use yaml_serde::Value as Yaml;

const SCK: &str = env!("CARGO_BIN_EXE_sck");

// ---------------------------------------------------------------------------------------------
// Running a command that serves

/// A server process started from a deployment file's command line.
struct Running {
    child: Child,
    url: String,
    stdout: Vec<String>,
    stderr: PathBuf,
}

impl Running {
    /// Spawns `command` (stdout piped, stderr to `stderr`) and waits until it prints its address.
    fn start(mut command: Command, stderr: PathBuf) -> Running {
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = command.spawn().expect("the command starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut stdout = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no `sck listening on` within 90 s; stdout {stdout:?}; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            };
            if let Some(addr) = line.strip_prefix("sck listening on ") {
                let url = addr.trim().to_owned();
                return Running {
                    child,
                    url,
                    stdout,
                    stderr,
                };
            }
            stdout.push(line);
        }
    }

    /// The secret printed at first start on the line starting with `label`.
    fn secret(&self, label: &str) -> String {
        self.stdout
            .iter()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {label:?} line in {:?}", self.stdout))
            .to_owned()
    }

    /// The base URL on loopback (the server may listen on 0.0.0.0).
    fn loopback_url(&self) -> String {
        self.url.replace("0.0.0.0", "127.0.0.1")
    }

    /// Sends SIGTERM (docker stop, systemctl stop, pod termination) and requires a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "exit after SIGTERM: {exit}; stderr:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        std::mem::forget(self);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn sck(args: &[&str]) -> Output {
    run_ok(Command::new(SCK).args(args))
}

/// `/health` and `/ready` (the probes' and the healthcheck's endpoints) answer 200.
fn assert_serving(base: &str) {
    let health = get(&format!("{base}/health"), &[]);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&format!("{base}/ready"), &[]);
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["status"], "ready");
}

// ---------------------------------------------------------------------------------------------
// Paths inside an image or host, mapped onto this machine

/// Container (or host) path prefixes and what stands in for them here, longest first.
#[derive(Default)]
struct PathMap(Vec<(String, String)>);

impl PathMap {
    fn add(&mut self, from: &str, to: impl AsRef<Path>) {
        let from = from.trim_end_matches('/').to_owned();
        self.0.push((from, to.as_ref().display().to_string()));
        self.0
            .sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    }

    /// `value` with a leading mapped prefix replaced.
    fn apply(&self, value: &str) -> String {
        for (from, to) in &self.0 {
            if value == from {
                return to.clone();
            }
            if let Some(rest) = value.strip_prefix(&format!("{from}/")) {
                return format!("{to}/{rest}");
            }
        }
        value.to_owned()
    }

    /// Every mapped path occurring in a shell script replaced.
    fn apply_in(&self, script: &str) -> String {
        self.0.iter().fold(script.to_owned(), |s, (from, to)| {
            s.replace(from.as_str(), to)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

/// The instructions of the Dockerfile's last (runtime) stage and the build stage's RUN lines.
struct Dockerfile {
    build_runs: Vec<String>,
    runtime: Vec<(String, String)>,
}

impl Dockerfile {
    fn read() -> Dockerfile {
        let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        let mut stages: Vec<Vec<(String, String)>> = Vec::new();
        for line in logical {
            let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            if keyword == "FROM" {
                stages.push(Vec::new());
            }
            stages
                .last_mut()
                .expect("FROM first")
                .push((keyword, rest.trim().to_owned()));
        }
        assert!(stages.len() >= 2, "a multi-stage build");
        let runtime = stages.pop().unwrap();
        let build_runs = stages
            .iter()
            .flatten()
            .filter(|(k, _)| k == "RUN")
            .map(|(_, v)| v.clone())
            .collect();
        Dockerfile {
            build_runs,
            runtime,
        }
    }

    fn all(&self, keyword: &str) -> Vec<&str> {
        self.runtime
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one `keyword` instruction of the runtime stage.
    fn one(&self, keyword: &str) -> &str {
        let all = self.all(keyword);
        assert_eq!(all.len(), 1, "exactly one {keyword} in the runtime stage");
        all[0]
    }

    /// An instruction in exec (JSON array) form.
    fn exec_form(text: &str) -> Vec<String> {
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{text:?} is not in exec (JSON array) form: {e}"))
    }

    /// The ENV the runtime stage sets (`K=V` pairs).
    fn env(&self) -> BTreeMap<String, String> {
        self.all("ENV")
            .iter()
            .flat_map(|line| line.split_whitespace())
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("ENV K=V");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect()
    }

    /// What `COPY` puts where: (source, destination, from-stage?).
    fn copies(&self) -> Vec<(String, String, bool)> {
        self.all("COPY")
            .iter()
            .map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let from_stage = words[0].starts_with("--from=");
                let words: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
                assert_eq!(words.len(), 2, "COPY SRC DEST: {line}");
                (words[0].to_owned(), words[1].to_owned(), from_stage)
            })
            .collect()
    }
}

/// The image's ENTRYPOINT + CMD and HEALTHCHECK, with the image's paths mapped onto `data` and
/// this build, the ENV the image sets, and the port it listens on.
struct Image {
    /// The data volume's path inside the image.
    volume: String,
    /// The EXPOSEd port.
    expose: u16,
    command: Vec<String>,
    healthcheck: Vec<String>,
    env: BTreeMap<String, String>,
    workdir: String,
    port: u16,
}

fn image(data: &Path) -> Image {
    let dockerfile = Dockerfile::read();
    assert!(
        dockerfile
            .build_runs
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "the build stage runs cargo build --release --locked: {:?}",
        dockerfile.build_runs
    );
    // A numeric, non-root user (Kubernetes' runAsNonRoot can only check a number).
    let user = dockerfile.one("USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user} is a numeric non-root uid"
    );
    let mut paths = PathMap::default();
    for (source, destination, from_stage) in dockerfile.copies() {
        if from_stage {
            assert!(source.ends_with("/sck"), "the only build artifact is sck");
            paths.add(&destination, SCK);
        } else {
            paths.add(&destination, repo().join(source.trim_end_matches('/')));
        }
    }
    let volume = Dockerfile::exec_form(dockerfile.one("VOLUME"));
    assert_eq!(volume.len(), 1);
    paths.add(&volume[0], data);
    let expose: u16 = dockerfile.one("EXPOSE").parse().unwrap();

    let mut env = dockerfile.env();
    assert_eq!(
        env.get("SCK_DATA_DIR"),
        Some(&volume[0]),
        "the data directory is the volume"
    );
    let listen = env.get("SCK_LISTEN").expect("ENV SCK_LISTEN").clone();
    assert_eq!(
        listen,
        format!("0.0.0.0:{expose}"),
        "listens on all addresses on the EXPOSEd port"
    );
    // `docker run -p` maps the port; here another free port stands in for it.
    let port = free_port();
    for value in env.values_mut() {
        *value = paths.apply(value);
    }
    env.insert("SCK_LISTEN".into(), format!("0.0.0.0:{port}"));

    let mut command = Dockerfile::exec_form(dockerfile.one("ENTRYPOINT"));
    command.extend(Dockerfile::exec_form(dockerfile.one("CMD")));
    let healthcheck = dockerfile.one("HEALTHCHECK");
    let (_, json) = healthcheck
        .split_once(" CMD ")
        .expect("HEALTHCHECK [OPTIONS] CMD [...]");
    Image {
        volume: volume[0].clone(),
        expose,
        command: command.iter().map(|c| paths.apply(c)).collect(),
        healthcheck: Dockerfile::exec_form(json)
            .iter()
            .map(|c| paths.apply(c))
            .collect(),
        env,
        workdir: paths.apply(dockerfile.one("WORKDIR")),
        port,
    }
}

/// `argv` run the way the container runtime runs it: only the image's ENV (plus PATH).
fn container_command(argv: &[String], env: &BTreeMap<String, String>, workdir: &str) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env)
        .current_dir(workdir);
    command
}

#[test]
fn the_image_command_serves_and_its_healthcheck_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("volume");
    std::fs::create_dir(&data).unwrap();
    let image = image(&data);
    let server = Running::start(
        container_command(&image.command, &image.env, &image.workdir),
        dir.path().join("stderr"),
    );
    assert!(
        server.url.ends_with(&format!(":{}", image.port)),
        "{}",
        server.url
    );
    assert_serving(&server.loopback_url());
    // First start on the volume: the root key and sidecar token are printed, keys stored there.
    assert!(server.secret("root admin key:").starts_with("sck_"));
    assert!(data.join("sck.db").is_file() && data.join("signers/sck-es256.pem").is_file());

    let healthy = run_ok(&mut container_command(
        &image.healthcheck,
        &image.env,
        &image.workdir,
    ));
    let said = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        said.contains(&format!("127.0.0.1:{}/ready answered 200", image.port)),
        "{said}"
    );

    // After `docker stop` the same healthcheck fails, saying why.
    server.stop();
    let down = container_command(&image.healthcheck, &image.env, &image.workdir)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(
        said.contains("unhealthy") && said.contains("/ready"),
        "{said}"
    );
}

/// Answers one HTTP request with `status` and `body`, then closes.
fn one_answer(status: &'static str, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    url
}

#[test]
fn healthcheck_fails_unless_the_answer_is_200() {
    let not_ready = one_answer(
        "503 Service Unavailable",
        r#"{"status":"not_ready","checks":{"database":true,"default_bundle_active":false}}"#,
    );
    let out = Command::new(SCK)
        .args(["healthcheck", "--url", &format!("{not_ready}/ready")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("unhealthy") && said.contains("503") && said.contains("(not_ready)"),
        "{said}"
    );

    let ok = one_answer("200 OK", r#"{"status":"ready"}"#);
    let out = Command::new(SCK)
        .args(["healthcheck", "--url", &format!("{ok}/ready")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let nobody = format!("http://127.0.0.1:{}/ready", free_port());
    let out = Command::new(SCK)
        .args(["healthcheck", "--url", &nobody])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

// ---------------------------------------------------------------------------------------------
// OPA configurations, used the way OPA uses them

fn yaml(text: &str) -> Yaml {
    let mut value: Yaml = yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    value.apply_merge().unwrap();
    value
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

/// Does what the OPA sidecar does with `config` (its `services.sck.url` reached at `base`):
/// downloads the bundle with the configured bearer token and verifies it with the pinned key.
/// Returns the configured service URL.
fn fetch_and_verify_as_opa(config: &Yaml, bundle: &str, token: &str, base: &str) -> String {
    let service = &config["services"]["sck"];
    let configured = text(&service["credentials"]["bearer"]["token"]);
    assert!(configured == token || configured == "${SCK_SIDECAR_TOKEN}");
    let spec = &config["bundles"][bundle];
    assert_eq!(text(&spec["service"]), "sck");
    let key_id = text(&spec["signing"]["keyid"]);
    let key = &config["keys"][key_id];
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, text(&key["key"])).unwrap();

    let url = format!("{base}/{}", text(&spec["resource"]));
    let reply = get(&url, &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(reply.status, 200, "GET {url}");
    let tarball = dir.path().join("bundle.tar.gz");
    std::fs::write(&tarball, &reply.body).unwrap();
    let verified = sck(&[
        "bundle",
        "verify",
        tarball.to_str().unwrap(),
        "--verification-key",
        key_file.to_str().unwrap(),
        "--key-id",
        key_id,
    ]);
    assert!(verified.status.success());
    // Status reports and decision logs go to the same service.
    assert_eq!(text(&config["status"]["service"]), "sck");
    assert_eq!(text(&config["decision_logs"]["service"]), "sck");
    text(&service["url"]).to_owned()
}

/// What `sck opa-config` prints for org `default`'s bundle `gateway` when it asks `server`.
fn opa_config(server: &str, service_url: &str, token: Option<&str>) -> String {
    let mut args = vec![
        "opa-config",
        "--org",
        "default",
        "--bundle",
        "gateway",
        "--server",
        server,
        "--service-url",
        service_url,
        "--status",
        "--decision-logs",
    ];
    if let Some(token) = token {
        args.extend(["--sidecar-token", token]);
    }
    String::from_utf8(sck(&args).stdout).unwrap()
}

// ---------------------------------------------------------------------------------------------
// compose.yaml

fn compose() -> Yaml {
    yaml(&std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap())
}

/// A service's `environment` (map form) with compose interpolation left to the caller.
fn compose_env(service: &Yaml) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
        .collect()
}

/// `SOURCE:TARGET` volume strings of a service.
fn short_volumes(service: &Yaml) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn compose_opa_config_job_writes_what_sck_opa_config_prints_and_opa_can_use_it() {
    let compose = compose();
    let services = &compose["services"];
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("sck-data");
    std::fs::create_dir(&volume).unwrap();
    let image = image(&volume);

    // One database and one data volume for both replicas and the job, as in the file.
    let database = support::fresh_postgres_database()
        .unwrap_or_else(|| volume.join("sck.db").display().to_string());
    let replicas = ["sck-1", "sck-2"];
    for name in replicas.iter().chain(&["opa-config"]) {
        let service = &services[*name];
        assert_eq!(text(&service["image"]), "sck:local", "{name}");
        assert!(
            short_volumes(service).contains(&("sck-data".into(), image.volume.clone())),
            "{name} mounts sck-data at the image's data volume"
        );
        let env = compose_env(service);
        assert!(
            env["SCK_DATABASE_URL"].starts_with("postgres://")
                && env["SCK_DATABASE_URL"].contains("@postgres:5432/"),
            "{name} uses the postgres service"
        );
    }
    assert_eq!(
        text(&services["sck-2"]["depends_on"]["sck-1"]["condition"]),
        "service_healthy",
        "sck-2 starts after sck-1 has bootstrapped"
    );
    let compose_env_for = |name: &str, port: u16| {
        let mut env = image.env.clone();
        for (k, v) in compose_env(&services[name]) {
            env.insert(k, v);
        }
        env.insert("SCK_DATABASE_URL".into(), database.clone());
        env.insert("SCK_LISTEN".into(), format!("127.0.0.1:{port}"));
        env
    };
    let mut running = Vec::new();
    for (i, name) in replicas.iter().enumerate() {
        let env = compose_env_for(name, free_port());
        running.push(Running::start(
            container_command(&image.command, &env, &image.workdir),
            dir.path().join(format!("{name}.stderr")),
        ));
        assert_serving(&running[i].url);
    }

    // The job's script, with compose's `$$` unescaped and the replicas' names resolved.
    let job = &services["opa-config"];
    assert_eq!(
        text(&job["depends_on"]["sck-1"]["condition"]),
        "service_healthy"
    );
    let entrypoint: Vec<&str> = job["entrypoint"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(entrypoint, ["/bin/sh", "-c"]);
    let script = text(&job["command"][0]).replace("$$", "$");
    assert!(
        !script.contains("${"),
        "no compose interpolation left: {script}"
    );
    let mut script = script;
    for (name, server) in replicas.iter().zip(&running) {
        script = script.replace(&format!("http://{name}:{}", image.expose), &server.url);
    }
    let mut paths = PathMap::default();
    paths.add(&image.volume, &volume);
    let script = paths.apply_in(&script);
    let bin = Path::new(SCK).parent().unwrap().display().to_string();
    let mut job_env = compose_env_for("opa-config", free_port());
    job_env.insert("PATH".into(), format!("{bin}:/usr/bin:/bin"));
    let run_job = || {
        run_ok(
            Command::new("/bin/sh")
                .args(["-c", &script])
                .env_clear()
                .envs(&job_env)
                .current_dir(&image.workdir),
        )
    };
    run_job();

    // OPA reads --config-file from the data volume's subpath: the file the job wrote.
    let opa = &services["opa"];
    let args: Vec<&str> = opa["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let config_file = args
        .iter()
        .find_map(|a| a.strip_prefix("--config-file="))
        .expect("opa --config-file=");
    let mount = &opa["volumes"][0];
    assert_eq!(text(&mount["source"]), "sck-data");
    assert_eq!(mount["read_only"].as_bool(), Some(true));
    let relative = Path::new(config_file)
        .strip_prefix(text(&mount["target"]))
        .expect("the config file is in the mounted directory");
    let written = volume
        .join(text(&mount["volume"]["subpath"]))
        .join(relative);
    let config_text = std::fs::read_to_string(&written).expect("the job wrote OPA's config");
    let config = yaml(&config_text);

    // Exactly what `sck opa-config` prints for the job's arguments.
    let token = text(&config["services"]["sck"]["credentials"]["bearer"]["token"]).to_owned();
    assert!(
        token.starts_with("sck_"),
        "a real sidecar credential: {token}"
    );
    assert_eq!(
        config_text,
        opa_config(&running[0].url, &running[1].url, Some(&token))
    );

    // What OPA does with it: the second replica serves the bundle the first one signed, to the
    // credential the job created, and the pinned key verifies it.
    let url = fetch_and_verify_as_opa(&config, "gateway", &token, &running[1].url);
    assert_eq!(url, running[1].url, "the sidecar polls sck-2");

    // Restarting the job changes nothing (no second credential, same file).
    run_job();
    assert_eq!(std::fs::read_to_string(&written).unwrap(), config_text);
    for server in running {
        server.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn deployment() -> Yaml {
    yaml(&std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap())
}

fn named<'a>(list: &'a Yaml, name: &str) -> &'a Yaml {
    list.as_sequence()
        .unwrap()
        .iter()
        .find(|item| item["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().map(|v| text(v).to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn kubernetes_pod_writes_the_sidecar_config_and_serves_on_its_probes() {
    let pod = &deployment()["spec"]["template"]["spec"];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("pvc");
    // Mounted over the data directory's signers/, as in the pod.
    let signers = data.join("signers");
    let etc_sck = root.join("configmap-sck-config");
    let etc_opa = root.join("emptydir-opa-config");
    for d in [&data, &signers, &etc_sck, &etc_opa] {
        std::fs::create_dir(d).unwrap();
    }
    let image = image(&data);

    // The Secrets and the ConfigMap, made as deploy/README.md says.
    let keygen = root.join("keygen");
    std::fs::create_dir(&keygen).unwrap();
    sck(&[
        "bundle",
        "keygen",
        "--out",
        keygen.join("sck-es256.pem").to_str().unwrap(),
    ]);
    std::fs::copy(keygen.join("sck-es256.pem"), signers.join("sck-es256.pem")).unwrap();
    let ledger_key = keygen.join("ledger.key");
    sck(&[
        "ledger",
        "key",
        "generate",
        "--name",
        "sck-k8s-ledger",
        "--output",
        ledger_key.to_str().unwrap(),
    ]);
    let secrets: BTreeMap<&str, String> = [
        ("database-url", data.join("sck.db").display().to_string()),
        (
            "ledger-signing-key",
            std::fs::read_to_string(&ledger_key).unwrap(),
        ),
        ("master-key", "ab".repeat(32)),
    ]
    .into();
    let configmap =
        yaml(&std::fs::read_to_string(repo().join("deploy/kubernetes/configmap.yaml")).unwrap());
    std::fs::write(
        etc_sck.join("sck.toml"),
        text(&configmap["data"]["sck.toml"]),
    )
    .unwrap();

    // Volumes by name → where they are here.
    let volume_dirs: BTreeMap<&str, &Path> = [
        ("data", data.as_path()),
        ("signer", signers.as_path()),
        ("config", etc_sck.as_path()),
        ("opa-config", etc_opa.as_path()),
        ("tmp", root),
    ]
    .into();
    let mounts = |container: &Yaml| {
        let mut paths = PathMap::default();
        for mount in container["volumeMounts"].as_sequence().unwrap() {
            paths.add(text(&mount["mountPath"]), volume_dirs[text(&mount["name"])]);
        }
        paths.add("/usr/local/bin/sck", SCK);
        paths
    };

    // The init container: its shell command with the mounts mapped.
    let init = named(&pod["initContainers"], "opa-config");
    let command = strings(&init["command"]);
    assert_eq!(command, ["/bin/sh", "-c"]);
    let script = mounts(init).apply_in(&strings(&init["args"]).concat());
    run_ok(Command::new("/bin/sh").args(["-c", &script]).env_clear());
    let config_text = std::fs::read_to_string(etc_opa.join("config.yaml")).unwrap();
    let config = yaml(&config_text);

    // The sck container: the image's ENTRYPOINT with the pod's args, the image's ENV and the
    // pod's env from the Secrets.
    let container = named(&pod["containers"], "sck");
    assert_eq!(text(&container["image"]), text(&init["image"]));
    let paths = mounts(container);
    let mut argv = vec![image.command[0].clone()];
    argv.extend(strings(&container["args"]).iter().map(|a| paths.apply(a)));
    let mut env = image.env.clone();
    for var in container["env"].as_sequence().unwrap() {
        let secret = &var["valueFrom"]["secretKeyRef"];
        assert_eq!(text(&secret["name"]), "sck-secrets");
        env.insert(
            text(&var["name"]).to_owned(),
            secrets[text(&secret["key"])].clone(),
        );
    }
    let port = named(&container["ports"], "http")["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(port, u64::from(image.expose), "the image's port");
    let server = Running::start(
        container_command(&argv, &env, &image.workdir),
        root.join("sck.stderr"),
    );
    let base = server.loopback_url();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let http = &container[probe]["httpGet"];
        assert_eq!(text(&http["port"]), "http");
        let reply = get(&format!("{base}{}", text(&http["path"])), &[]);
        assert_eq!(reply.status, 200, "{probe}");
    }
    assert_eq!(
        text(&container["readinessProbe"]["httpGet"]["path"]),
        "/ready"
    );
    // The keys came from the Secrets: nothing generated in their place on the volume.
    assert!(!data.join("ledger.key").exists() && !data.join("master.key").exists());
    assert_eq!(
        std::fs::read_dir(&signers).unwrap().count(),
        1,
        "no signer generated next to the mounted one"
    );

    // The init container wrote what `sck opa-config` prints when it asks the running server.
    assert_eq!(
        config_text,
        opa_config(&base, &format!("http://127.0.0.1:{port}"), None)
    );

    // OPA, with SCK_SIDECAR_TOKEN from the sck-sidecar Secret, polls its own pod's sck.
    let opa = named(&pod["containers"], "opa");
    let token_env = named(&opa["env"], "SCK_SIDECAR_TOKEN");
    assert_eq!(
        text(&token_env["valueFrom"]["secretKeyRef"]["name"]),
        "sck-sidecar"
    );
    assert!(strings(&opa["args"]).contains(&"--config-file=/etc/opa/config.yaml".to_owned()));
    let token = server.secret("sidecar token");
    let url = fetch_and_verify_as_opa(&config, "gateway", &token, &base);
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_exec_start_serves_the_example_configuration() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/sck.service")).unwrap();
    let service: Vec<(&str, &str)> = unit
        .split("\n[")
        .find(|section| section.starts_with("Service]"))
        .expect("[Service]")
        .lines()
        .skip(1)
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split_once('=').unwrap())
        .collect();
    let values = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(values("User"), ["sck"], "not root");
    assert_eq!(values("StateDirectory"), ["sck"]);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&state).unwrap();
    std::fs::create_dir(&etc).unwrap();
    let mut paths = PathMap::default();
    paths.add("/var/lib/sck", &state);
    paths.add("/usr/local/bin/sck", SCK);
    paths.add("/usr/share/sck/policies", repo().join("policies"));
    paths.add("/etc/sck/sck.toml", repo().join("deploy/sck.example.toml"));
    paths.add("/etc/sck/sck.env", etc.join("sck.env"));
    // The operator's sck.env moves the port (the example configuration listens on 8080).
    let port = free_port();
    std::fs::write(
        etc.join("sck.env"),
        format!("SCK_LISTEN=127.0.0.1:{port}\n"),
    )
    .unwrap();

    // Environment= lines, then EnvironmentFile= (whose settings win), as systemd applies them.
    let mut env = BTreeMap::new();
    for assignment in values("Environment") {
        assert!(
            !assignment.contains(['"', ' ']),
            "one plain assignment per line"
        );
        let (k, v) = assignment.split_once('=').unwrap();
        env.insert(k.to_owned(), paths.apply(v));
    }
    for file in values("EnvironmentFile") {
        let file = paths.apply(file.trim_start_matches('-'));
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let (k, v) = line.split_once('=').unwrap();
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let exec_start = values("ExecStart");
    assert_eq!(exec_start.len(), 1);
    let argv: Vec<String> = exec_start[0]
        .split_whitespace()
        .map(|word| paths.apply(word))
        .collect();
    let workdir = paths.apply(values("WorkingDirectory")[0]);
    let server = Running::start(
        container_command(&argv, &env, &workdir),
        dir.path().join("stderr"),
    );
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    assert_serving(&server.url);
    assert!(
        state.join("sck.db").is_file(),
        "the database is in the state directory"
    );
    // `sck healthcheck` finds the port through the same configuration and environment.
    run_ok(&mut container_command(
        &[
            SCK.to_owned(),
            "healthcheck".into(),
            "--config".into(),
            repo().join("deploy/sck.example.toml").display().to_string(),
        ],
        &env,
        &workdir,
    ));
    assert_eq!(values("KillSignal"), ["SIGTERM"]);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// The example configuration

#[test]
fn example_configuration_is_what_sck_config_example_prints() {
    let committed = std::fs::read_to_string(repo().join("deploy/sck.example.toml")).unwrap();
    let printed = String::from_utf8(sck(&["config", "example"]).stdout).unwrap();
    assert!(
        committed == printed,
        "deploy/sck.example.toml differs from `sck config example`; regenerate it with\n  \
         cargo run --bin sck -- config example > deploy/sck.example.toml"
    );
}

#[test]
fn opa_config_from_a_key_file_names_the_signer_and_never_prints_hmac_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shared.secret");
    std::fs::write(&secret, "a-shared-hmac-secret-of-some-length").unwrap();
    let out = Command::new(SCK)
        .args(["opa-config", "--org", "o", "--bundle", "b", "--signer-key"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("set SCK_SIGNER_SECRET"), "{said}");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(!printed.contains("a-shared-hmac-secret"), "{printed}");
    let config = yaml(&printed);
    assert_eq!(text(&config["bundles"]["b"]["signing"]["keyid"]), "shared");
    let key = &config["keys"]["shared"];
    assert_eq!(text(&key["algorithm"]), "HS256");
    // OPA substitutes the variable; `|-` keeps no trailing newline to sign with.
    assert_eq!(text(&key["key"]), "${SCK_SIGNER_SECRET}");

    let key = dir.path().join("release-signer.pem");
    sck(&["bundle", "keygen", "--out", key.to_str().unwrap()]);
    let printed = sck(&[
        "opa-config",
        "--org",
        "o",
        "--bundle",
        "b",
        "--signer-key",
        key.to_str().unwrap(),
    ]);
    let config = yaml(&String::from_utf8(printed.stdout).unwrap());
    assert_eq!(
        text(&config["bundles"]["b"]["signing"]["keyid"]),
        "release-signer"
    );
    let public = std::fs::read_to_string(dir.path().join("release-signer.pem.pub.pem")).unwrap();
    assert_eq!(
        text(&config["keys"]["release-signer"]["key"]).trim(),
        public.trim()
    );
}
