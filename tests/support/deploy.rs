//! The deployment files in deploy/, run without a container engine (for `tests/deploy_e2e.rs`
//! and the interop suite's `tests/interop_deploy.rs`): a file's commands are run with the paths
//! it names inside the image or host mapped onto a temporary directory and this build's `sck`
//! ([`PathMap`]), the image's ENTRYPOINT, ENV and HEALTHCHECK read from the Dockerfile
//! ([`image`]), and the two set-ups that write an OPA sidecar's configuration brought up as the
//! files describe them: compose's replicas and opa-config job ([`ComposeUp`]), and the
//! Kubernetes pod's init container and sck container ([`PodUp`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use yaml_serde::Value as Yaml;

use super::cli::{self, run_ok};
use super::http::get;
use super::server::{secret, wait_for_address};
use super::{free_port, repo};

// ---------------------------------------------------------------------------------------------
// Running a command that serves

/// A server process started from a deployment file's command line.
pub struct Running {
    child: Child,
    pub url: String,
    pub stdout: Vec<String>,
    stderr: PathBuf,
}

impl Running {
    /// Spawns `command` (stdout piped, stderr to `stderr`) and waits until it prints its address.
    pub fn start(mut command: Command, stderr: PathBuf) -> Running {
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = command.spawn().expect("the command starts");
        match wait_for_address(&mut child, Duration::from_secs(90)) {
            Ok(started) => Running {
                child,
                url: started.url,
                stdout: started.stdout,
                stderr,
            },
            Err(stdout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no `sck listening on` within 90 s; stdout {stdout:?}; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        }
    }

    /// The secret printed at first start on the line starting with `label`.
    pub fn secret(&self, label: &str) -> String {
        secret(&self.stdout, label)
            .unwrap_or_else(|| panic!("no {label:?} line in {:?}", self.stdout))
    }

    /// The base URL on loopback (the server may listen on 0.0.0.0).
    pub fn loopback_url(&self) -> String {
        self.url.replace("0.0.0.0", "127.0.0.1")
    }

    /// Sends SIGTERM (docker stop, systemctl stop, pod termination) and requires a clean exit.
    pub fn stop(mut self) {
        super::terminate(self.child.id());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "exit after SIGTERM: {exit}; stderr:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/health` and `/ready` (the probes' and the healthcheck's endpoints) answer 200.
pub fn assert_serving(base: &str) {
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
pub struct PathMap(Vec<(String, String)>);

impl PathMap {
    pub fn add(&mut self, from: &str, to: impl AsRef<Path>) {
        let from = from.trim_end_matches('/').to_owned();
        self.0.push((from, to.as_ref().display().to_string()));
        self.0
            .sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    }

    /// `value` with a leading mapped prefix replaced.
    pub fn apply(&self, value: &str) -> String {
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
    pub fn apply_in(&self, script: &str) -> String {
        self.0.iter().fold(script.to_owned(), |s, (from, to)| {
            s.replace(from.as_str(), to)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

/// The instructions of the Dockerfile's last (runtime) stage and the build stage's RUN lines.
pub struct Dockerfile {
    build_runs: Vec<String>,
    runtime: Vec<(String, String)>,
}

impl Dockerfile {
    pub fn read() -> Dockerfile {
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

    pub fn all(&self, keyword: &str) -> Vec<&str> {
        self.runtime
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one `keyword` instruction of the runtime stage.
    pub fn one(&self, keyword: &str) -> &str {
        let all = self.all(keyword);
        assert_eq!(all.len(), 1, "exactly one {keyword} in the runtime stage");
        all[0]
    }

    /// An instruction in exec (JSON array) form.
    pub fn exec_form(text: &str) -> Vec<String> {
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{text:?} is not in exec (JSON array) form: {e}"))
    }

    /// The ENV the runtime stage sets (`K=V` pairs).
    pub fn env(&self) -> BTreeMap<String, String> {
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
    pub fn copies(&self) -> Vec<(String, String, bool)> {
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
pub struct Image {
    /// The data volume's path inside the image.
    pub volume: String,
    /// The EXPOSEd port.
    pub expose: u16,
    pub command: Vec<String>,
    pub healthcheck: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: String,
    pub port: u16,
}

pub fn image(data: &Path) -> Image {
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
            paths.add(&destination, cli::BIN);
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
pub fn container_command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    workdir: &str,
) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env)
        .current_dir(workdir);
    command
}

pub fn yaml(text: &str) -> Yaml {
    let mut value: Yaml = yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    value.apply_merge().unwrap();
    value
}

pub fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

pub fn compose() -> Yaml {
    yaml(&std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap())
}

/// A service's `environment` (map form) with compose interpolation left to the caller.
pub fn compose_env(service: &Yaml) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
        .collect()
}

/// `SOURCE:TARGET` volume strings of a service.
pub fn short_volumes(service: &Yaml) -> Vec<(String, String)> {
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

pub fn deployment() -> Yaml {
    yaml(&std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap())
}

pub fn named<'a>(list: &'a Yaml, name: &str) -> &'a Yaml {
    list.as_sequence()
        .unwrap()
        .iter()
        .find(|item| item["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

pub fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().map(|v| text(v).to_owned()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// compose.yaml brought up

/// compose.yaml's two replicas (on one database and data volume) and its opa-config job, run
/// once: the OPA configuration the job wrote is in `config_text` (at `config_file`, where the
/// `opa` service reads it from the volume).
pub struct ComposeUp {
    pub dir: tempfile::TempDir,
    pub compose: Yaml,
    pub image: Image,
    /// `sck-1`, `sck-2`.
    pub running: Vec<Running>,
    pub database: String,
    pub config_file: PathBuf,
    pub config_text: String,
    script: String,
    job_env: BTreeMap<String, String>,
}

impl ComposeUp {
    pub fn start() -> ComposeUp {
        let compose = compose();
        let services = &compose["services"];
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("sck-data");
        std::fs::create_dir(&volume).unwrap();
        let image = image(&volume);

        // One database and one data volume for both replicas and the job, as in the file.
        let database = super::db::fresh_postgres_database()
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
        let mut script = text(&job["command"][0]).replace("$$", "$");
        assert!(
            !script.contains("${"),
            "no compose interpolation left: {script}"
        );
        for (name, server) in replicas.iter().zip(&running) {
            script = script.replace(&format!("http://{name}:{}", image.expose), &server.url);
        }
        let mut paths = PathMap::default();
        paths.add(&image.volume, &volume);
        let script = paths.apply_in(&script);
        let bin = Path::new(cli::BIN).parent().unwrap().display().to_string();
        let mut job_env = compose_env_for("opa-config", free_port());
        job_env.insert("PATH".into(), format!("{bin}:/usr/bin:/bin"));

        // OPA reads --config-file from the data volume's subpath: the file the job writes.
        let opa = &services["opa"];
        let config_arg = strings(&opa["command"])
            .into_iter()
            .find_map(|a| a.strip_prefix("--config-file=").map(str::to_owned))
            .expect("opa --config-file=");
        let mount = &opa["volumes"][0];
        assert_eq!(text(&mount["source"]), "sck-data");
        assert_eq!(mount["read_only"].as_bool(), Some(true));
        let relative = Path::new(&config_arg)
            .strip_prefix(text(&mount["target"]))
            .expect("the config file is in the mounted directory")
            .to_path_buf();
        let config_file = volume
            .join(text(&mount["volume"]["subpath"]))
            .join(relative);
        let mut up = ComposeUp {
            dir,
            compose: compose.clone(),
            image,
            running,
            database,
            config_file,
            config_text: String::new(),
            script,
            job_env,
        };
        up.run_job();
        up.config_text =
            std::fs::read_to_string(&up.config_file).expect("the job wrote OPA's config");
        up
    }

    /// Runs the opa-config job (again).
    pub fn run_job(&self) -> Output {
        run_ok(
            Command::new("/bin/sh")
                .args(["-c", &self.script])
                .env_clear()
                .envs(&self.job_env)
                .current_dir(&self.image.workdir),
        )
    }

    /// The `opa` service's command line.
    pub fn opa_command(&self) -> Vec<String> {
        strings(&self.compose["services"]["opa"]["command"])
    }
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes pod brought up

/// The Deployment's pod: the init container has written the OPA configuration (`config_text`,
/// at `config_file` in the opa-config emptyDir) from the signer key in the sck-signer Secret,
/// and the sck container serves (`server`). The pod's loopback port 8080 is `image.port` here.
pub struct PodUp {
    pub dir: tempfile::TempDir,
    pub pod: Yaml,
    pub image: Image,
    pub server: Running,
    pub config_file: PathBuf,
    pub config_text: String,
    /// Pod volume names → the directories standing in for them.
    pub volumes: BTreeMap<String, PathBuf>,
}

impl PodUp {
    pub fn start() -> PodUp {
        let pod = deployment()["spec"]["template"]["spec"].clone();
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
        cli::ok(&[
            "bundle",
            "keygen",
            "--out",
            keygen.join("sck-es256.pem").to_str().unwrap(),
        ]);
        std::fs::copy(keygen.join("sck-es256.pem"), signers.join("sck-es256.pem")).unwrap();
        let ledger_key = keygen.join("ledger.key");
        cli::ok(&[
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
        let configmap = yaml(
            &std::fs::read_to_string(repo().join("deploy/kubernetes/configmap.yaml")).unwrap(),
        );
        std::fs::write(
            etc_sck.join("sck.toml"),
            text(&configmap["data"]["sck.toml"]),
        )
        .unwrap();

        // Volumes by name → where they are here.
        let volumes: BTreeMap<String, PathBuf> = [
            ("data", data.clone()),
            ("signer", signers.clone()),
            ("config", etc_sck.clone()),
            ("opa-config", etc_opa.clone()),
            ("tmp", root.to_path_buf()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mounts = |container: &Yaml| mount_map(container, &volumes);

        // The init container: its shell command with the mounts mapped, and the pod's loopback
        // sck port mapped onto the port sck listens on here.
        let container = named(&pod["containers"], "sck");
        let port = named(&container["ports"], "http")["containerPort"]
            .as_u64()
            .unwrap();
        assert_eq!(port, u64::from(image.expose), "the image's port");
        let init = named(&pod["initContainers"], "opa-config");
        let command = strings(&init["command"]);
        assert_eq!(command, ["/bin/sh", "-c"]);
        let script = mounts(init)
            .apply_in(&strings(&init["args"]).concat())
            .replace(
                &format!("http://127.0.0.1:{port}"),
                &format!("http://127.0.0.1:{}", image.port),
            );
        run_ok(Command::new("/bin/sh").args(["-c", &script]).env_clear());
        let config_file = etc_opa.join("config.yaml");
        let config_text = std::fs::read_to_string(&config_file).unwrap();

        // The sck container: the image's ENTRYPOINT with the pod's args, the image's ENV and
        // the pod's env from the Secrets.
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
        let server = Running::start(
            container_command(&argv, &env, &image.workdir),
            root.join("sck.stderr"),
        );
        PodUp {
            pod,
            image,
            server,
            config_file,
            config_text,
            volumes,
            dir,
        }
    }

    /// A container of the pod by name.
    pub fn container(&self, name: &str) -> &Yaml {
        named(&self.pod["containers"], name)
    }

    /// The container's mount paths (and the image's sck) mapped onto what stands in for them.
    pub fn mounts(&self, container: &Yaml) -> PathMap {
        mount_map(container, &self.volumes)
    }
}

fn mount_map(container: &Yaml, volumes: &BTreeMap<String, PathBuf>) -> PathMap {
    let mut paths = PathMap::default();
    for mount in container["volumeMounts"].as_sequence().unwrap() {
        paths.add(text(&mount["mountPath"]), &volumes[text(&mount["name"])]);
    }
    paths.add("/usr/local/bin/sck", cli::BIN);
    paths
}
