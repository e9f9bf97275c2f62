//! Interop case 5, deploy configs: the OPA configuration that deploy/compose.yaml's opa-config
//! job and the Kubernetes pod's init container write (brought up as tests/deploy_e2e.rs does,
//! without a container engine: `support::deploy`) is accepted by a real OPA (`SCK_OPA`) run
//! with the `opa` service's or container's own command line (listen addresses moved to free
//! loopback ports, paths to where the set-up wrote them), which activates the bundle the local
//! sck serves and reports its status, so the fleet view shows it in sync.

mod support;

use std::time::{Duration, Instant};

use support::deploy::{named, strings, text, yaml, ComposeUp, PathMap, PodUp, Running};
use support::opa::OpaServer;
use support::{free_port, http, interop, release};

const WITHIN: Duration = Duration::from_secs(60);

/// `args` with every `--FLAG=HOST:PORT` listen address (`addr_flags`) moved to a free loopback
/// port and every path mapped; returns them and the URL of the first address.
fn opa_args(args: &[String], addr_flags: &[&str], paths: &PathMap) -> (Vec<String>, Vec<String>) {
    let mut urls = Vec::new();
    let mapped = args
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((flag, _)) if addr_flags.contains(&flag) => {
                let addr = format!("127.0.0.1:{}", free_port());
                urls.push(format!("http://{addr}"));
                format!("{flag}={addr}")
            }
            Some((flag, value)) => format!("{flag}={}", paths.apply(value)),
            None => arg.clone(),
        })
        .collect();
    assert_eq!(urls.len(), addr_flags.len(), "{args:?} sets {addr_flags:?}");
    (mapped, urls)
}

/// OPA has activated the bundle `server` serves and reports being in sync with it (`root`:
/// the root admin key the first replica printed).
fn assert_opa_follows(
    opa: &OpaServer,
    health: &str,
    server: &Running,
    root: &str,
    started: Instant,
) {
    let base = server.loopback_url();
    let active = release::active(&base, root, "default");
    opa.wait_for_activation(&active.sha256, started, WITHIN);
    // OPA may activate the bundle before its listener is up: poll the probe.
    let deadline = Instant::now() + WITHIN;
    while !matches!(http::agent().get(health).call(), Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "{health} never answered 200");
        std::thread::sleep(Duration::from_millis(50));
    }
    interop::wait_for_fleet(&base, root, WITHIN, |view| {
        interop::sidecar_state(view) == Some((false, Some(active.revision.clone()), true))
    });
}

#[test]
fn compose_opa_runs_on_the_config_the_job_wrote() {
    let up = ComposeUp::start();
    let mount = &up.compose["services"]["opa"]["volumes"][0];
    let mut paths = PathMap::default();
    paths.add(text(&mount["target"]), up.config_file.parent().unwrap());
    let (args, urls) = opa_args(&up.opa_command(), &["--addr"], &paths);
    let started = Instant::now();
    let opa = OpaServer::command_line(up.dir.path(), &args, &urls[0], &[]);
    // compose publishes the policy API port; its health answers once the bundle is active.
    assert_opa_follows(
        &opa,
        &format!("{}/health?bundles", urls[0]),
        &up.running[1],
        &up.running[0].secret("root admin key:"),
        started,
    );
    // The config names sck-2 as the service: that is the replica OPA polled.
    assert!(yaml(&up.config_text)["services"]["sck"]["url"] == up.running[1].url.as_str());
}

#[test]
fn kubernetes_opa_sidecar_runs_on_the_config_the_init_container_wrote() {
    let up = PodUp::start();
    let container = up.container("opa");
    let (args, urls) = opa_args(
        &strings(&container["args"]),
        &["--addr", "--diagnostic-addr"],
        &up.mounts(container),
    );
    // SCK_SIDECAR_TOKEN comes from the sck-sidecar Secret: a sidecar credential.
    let token_env = named(&container["env"], "SCK_SIDECAR_TOKEN");
    assert_eq!(text(&token_env["name"]), "SCK_SIDECAR_TOKEN");
    let token = up.server.secret("sidecar token");
    let started = Instant::now();
    let opa = OpaServer::command_line(
        up.dir.path(),
        &args,
        &urls[0],
        &[("SCK_SIDECAR_TOKEN", token.as_str())],
    );
    // The readiness probe: its path on the diagnostic port.
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(text(&probe["port"]), "opa-diag");
    assert_opa_follows(
        &opa,
        &format!("{}{}", urls[1], text(&probe["path"])),
        &up.server,
        &up.server.secret("root admin key:"),
        started,
    );
}
