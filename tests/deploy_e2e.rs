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
use std::io::{Read, Write};

use support::cli::{self, run_ok};
use support::deploy::{
    assert_serving, container_command, image, named, strings, text, yaml, ComposeUp, PathMap,
    PodUp, Running,
};
use support::http::get;
use support::{free_port, repo};
use yaml_serde::Value as Yaml;

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
    let out = cli::run(&["healthcheck", "--url", &format!("{not_ready}/ready")]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("unhealthy") && said.contains("503") && said.contains("(not_ready)"),
        "{said}"
    );

    let ok = one_answer("200 OK", r#"{"status":"ready"}"#);
    let out = cli::run(&["healthcheck", "--url", &format!("{ok}/ready")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let nobody = format!("http://127.0.0.1:{}/ready", free_port());
    let out = cli::run(&["healthcheck", "--url", &nobody]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

// ---------------------------------------------------------------------------------------------
// OPA configurations, used the way OPA uses them

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
    cli::ok(&[
        "bundle",
        "verify",
        tarball.to_str().unwrap(),
        "--verification-key",
        key_file.to_str().unwrap(),
        "--key-id",
        key_id,
    ]);
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
    cli::ok(&args)
}

// ---------------------------------------------------------------------------------------------
// compose.yaml

#[test]
fn compose_opa_config_job_writes_what_sck_opa_config_prints_and_opa_can_use_it() {
    let up = ComposeUp::start();
    let config = yaml(&up.config_text);

    // Exactly what `sck opa-config` prints for the job's arguments.
    let token = text(&config["services"]["sck"]["credentials"]["bearer"]["token"]).to_owned();
    assert!(
        token.starts_with("sck_"),
        "a real sidecar credential: {token}"
    );
    assert_eq!(
        up.config_text,
        opa_config(&up.running[0].url, &up.running[1].url, Some(&token))
    );

    // What OPA does with it: the second replica serves the bundle the first one signed, to the
    // credential the job created, and the pinned key verifies it.
    let url = fetch_and_verify_as_opa(&config, "gateway", &token, &up.running[1].url);
    assert_eq!(url, up.running[1].url, "the sidecar polls sck-2");

    // Restarting the job changes nothing (no second credential, same file).
    up.run_job();
    assert_eq!(
        std::fs::read_to_string(&up.config_file).unwrap(),
        up.config_text
    );
    for server in up.running {
        server.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_pod_writes_the_sidecar_config_and_serves_on_its_probes() {
    let up = PodUp::start();
    let container = up.container("sck");
    let base = up.server.loopback_url();
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
    let data = &up.volumes["data"];
    assert!(!data.join("ledger.key").exists() && !data.join("master.key").exists());
    assert_eq!(
        std::fs::read_dir(&up.volumes["signer"]).unwrap().count(),
        1,
        "no signer generated next to the mounted one"
    );

    // The init container wrote what `sck opa-config` prints when it asks the running server
    // (the pod's loopback port 8080 is the port sck listens on here).
    let service_url = format!("http://127.0.0.1:{}", up.image.port);
    assert_eq!(up.config_text, opa_config(&base, &service_url, None));
    let config = yaml(&up.config_text);

    // OPA, with SCK_SIDECAR_TOKEN from the sck-sidecar Secret, polls its own pod's sck.
    let opa = up.container("opa");
    let token_env = named(&opa["env"], "SCK_SIDECAR_TOKEN");
    assert_eq!(
        text(&token_env["valueFrom"]["secretKeyRef"]["name"]),
        "sck-sidecar"
    );
    assert!(strings(&opa["args"]).contains(&"--config-file=/etc/opa/config.yaml".to_owned()));
    let token = up.server.secret("sidecar token");
    let url = fetch_and_verify_as_opa(&config, "gateway", &token, &base);
    assert_eq!(url, service_url);
    up.server.stop();
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
    paths.add("/usr/local/bin/sck", cli::BIN);
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
            cli::BIN.to_owned(),
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
    let printed = cli::ok(&["config", "example"]);
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
    let opa_config = |signer_key: &std::path::Path| {
        cli::run(&[
            "opa-config",
            "--org",
            "o",
            "--bundle",
            "b",
            "--signer-key",
            signer_key.to_str().unwrap(),
        ])
    };
    let out = opa_config(&secret);
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
    cli::ok(&["bundle", "keygen", "--out", key.to_str().unwrap()]);
    let printed = cli::succeeded(opa_config(&key));
    let config = yaml(&printed);
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
