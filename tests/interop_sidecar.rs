//! Interop case 1, the sidecar protocol: a real OPA (`SCK_OPA`), configured only by what
//! `sck opa-config` prints, polls a running `sck serve`. It activates bundles signed by every
//! signer kind; new activations, rollbacks and revocations reach it by long poll (proven by the
//! recording relay: the request that brought each one was sent before the change); its status
//! reports make the fleet view show it in sync, and drifted once it holds a revision that is no
//! longer active; its decision logs land in the ledger exactly once across a lost answer (OPA
//! uploads the same chunk again) and restarts. On PostgreSQL, with OPA polling replica B, an
//! activation on replica A reaches it by long poll too.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::db::Deployment;
use support::interop::{self, KeyKind};
use support::opa::OpaServer;
use support::relay::{uploads, Exchange, LogsMode, Relay};
use support::release::{self, Active};
use support::server::Server;

/// Upper bound for anything OPA does on its own (download, activation, status, upload).
const WITHIN: Duration = Duration::from_secs(40);

/// Waits until the fleet view shows the one sidecar running `revision` of `gateway`, in sync.
fn wait_in_sync(server: &Server, revision: &str) -> Value {
    interop::wait_for_fleet(&server.url, server.root(), WITHIN, |view| {
        interop::sidecar_state(view) == Some((false, Some(revision.to_owned()), true))
    })
}

/// The exchange that delivered the bundle with digest `sha256` to OPA.
fn delivery<'a>(exchanges: &'a [Exchange], sha256: &str) -> Option<&'a Exchange> {
    let etag = format!("\"{sha256}\"");
    exchanges.iter().find(|e| {
        e.method == "GET"
            && e.path == "/bundles/default/gateway.tar.gz"
            && e.status == 200
            && e.etag.as_deref() == Some(etag.as_str())
    })
}

/// The bundle `sha256` reached OPA by long poll: the request that brought it carried
/// `Prefer: wait=N`, was sent before the change at `changed`, and sck marked the answer as a
/// long-poll answer (OPA keeps long polling only then).
fn assert_long_polled(relay: &Relay, sha256: &str, changed: Instant) {
    let exchanges = relay.wait_for("delivery of the new bundle", WITHIN, |seen| {
        delivery(seen, sha256).is_some()
    });
    let delivered = delivery(&exchanges, sha256).unwrap();
    assert!(
        delivered
            .prefer
            .as_deref()
            .is_some_and(|p| p.contains("wait=")),
        "not a long poll: {delivered:?}"
    );
    assert!(
        delivered.received < changed,
        "the request was sent after the change: {delivered:?}"
    );
    assert_eq!(
        delivered.content_type.as_deref(),
        Some("application/vnd.openpolicyagent.bundles"),
        "{delivered:?}"
    );
}

/// Activates `id` once OPA's long poll is held; returns the new active version and when the
/// activation was sent.
fn activate_while_held(
    server: &Server,
    relay: &Relay,
    id: &str,
    rollback: bool,
) -> (Active, Instant) {
    relay.wait_until_held(WITHIN);
    let sent = Instant::now();
    (
        release::activate(&server.url, server.root(), id, rollback),
        sent,
    )
}

/// Publishes versions `N.0.0` for each N of `numbers` on `api` and activates each once OPA's
/// long poll through `relay` is held: each reaches OPA by that long poll. Prints the median time
/// from the activation request to OPA's log of the new bundle (`what`), and returns them.
fn activate_new_versions(
    api: &Server,
    relay: &Relay,
    opa: &OpaServer,
    numbers: std::ops::RangeInclusive<u32>,
    what: &str,
) -> Vec<Active> {
    let mut activated = Vec::new();
    let mut latencies = Vec::new();
    for n in numbers {
        let id = release::published(&api.url, api.root(), "default", &format!("{n}.0.0"), None);
        let (active, sent) = activate_while_held(api, relay, &id, false);
        latencies.push(opa.wait_for_activation(&active.sha256, sent, WITHIN) - sent);
        assert_long_polled(relay, &active.sha256, sent);
        activated.push(active);
    }
    eprintln!(
        "{what}, OPA {}, by long poll: median {:?} over {} runs {latencies:?}",
        support::opa::version(),
        median(latencies.clone()),
        latencies.len()
    );
    activated
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn opa_activates_bundles_signed_by_each_signer_kind() {
    let server = Server::start_prepared(|dir| {
        let signers = dir.join("signers");
        std::fs::create_dir_all(&signers).unwrap();
        interop::generate_key(KeyKind::Rs256, &signers.join("rsa-prod.pem"));
        interop::generate_key(KeyKind::Hs256, &signers.join("hmac-prod.secret"));
    });
    let (root, token) = (server.root(), server.sidecar());
    let signers = server.data_dir.join("signers");
    let secret = std::fs::read_to_string(signers.join("hmac-prod.secret")).unwrap();
    for (n, kind) in KeyKind::ALL.into_iter().enumerate() {
        let version = format!("{}.0.0", n + 2);
        // ES256 and HS256 as the server describes its signers; RS256 from the key file, as the
        // Kubernetes init container does.
        let (signer, how) = match kind {
            KeyKind::Es256 => ("sck-es256", vec!["--signer", "sck-es256"]),
            KeyKind::Rs256 => ("rsa-prod", vec!["--signer-key"]),
            KeyKind::Hs256 => ("hmac-prod", vec!["--signer", "hmac-prod"]),
        };
        let key_file = signers.join("rsa-prod.pem").display().to_string();
        let mut args = how;
        if kind == KeyKind::Rs256 {
            args.push(&key_file);
        }
        args.extend(["--sidecar-token", token]);
        let config = interop::opa_config(&server, &args);
        assert!(
            !config.contains(secret.as_str()),
            "the HMAC secret is never printed"
        );
        let started = Instant::now();
        let id = release::published(&server.url, root, "default", &version, Some(signer));
        let active = release::activate(&server.url, root, &id, false);
        let env = [("SCK_SIGNER_SECRET", secret.as_str())];
        let dir = tempfile::tempdir().unwrap();
        let opa = OpaServer::configured(dir.path(), &config, &env);
        opa.wait_for_activation(&active.sha256, started, WITHIN);
        opa.wait_healthy("?bundles", WITHIN);
        assert_eq!(
            opa.bundle_revision("gateway").0.as_deref(),
            Some(version.as_str()),
            "{kind:?}"
        );
        // It evaluates what it verified: the default policy denies a request without a token.
        let decision = opa.data("sck/gateway/decision", &json!({"action": "tools.invoke"}));
        assert_eq!(decision.json()["result"]["allow"], false, "{kind:?}");
        opa.stop();
    }

    // The HS256 signature is really checked: with another secret OPA refuses the bundle.
    let config = interop::opa_config(
        &server,
        &["--signer", "hmac-prod", "--sidecar-token", token],
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let opa = OpaServer::configured(
        dir.path(),
        &config,
        &[("SCK_SIGNER_SECRET", "not-the-signer-secret")],
    );
    opa.wait_for_log(
        &["\"level\":\"error\"", "Bundle load failed"],
        started,
        WITHIN,
    );
    assert_eq!(opa.bundle_revision("gateway").0, None);
}

#[test]
fn activations_rollbacks_and_revocations_reach_opa_by_long_poll_and_the_fleet_view() {
    let server = Server::start_prepared(|dir| {
        let signers = dir.join("signers");
        std::fs::create_dir_all(&signers).unwrap();
        interop::generate_key(KeyKind::Rs256, &signers.join("untrusted.pem"));
    });
    let root = server.root();
    let relay = Relay::start(&server.url);
    let config = interop::sidecar_config(&server, &relay.url, &["--status"]);
    let dir = tempfile::tempdir().unwrap();
    let opa = interop::start_sidecar(dir.path(), &config, &server.url, root);
    let first = release::active(&server.url, root, "default");
    wait_in_sync(&server, &first.revision);

    let mut versions = vec![first];
    versions.extend(activate_new_versions(
        &server,
        &relay,
        &opa,
        2..=6,
        "activation -> OPA activated the new revision",
    ));
    wait_in_sync(&server, "6.0.0");

    // A rollback to 5.0.0.
    let (back, sent) = activate_while_held(&server, &relay, &versions[4].id, true);
    assert_eq!(back.version, "5.0.0");
    opa.wait_for_activation(&back.sha256, sent, WITHIN);
    assert_long_polled(&relay, &back.sha256, sent);
    wait_in_sync(&server, "5.0.0");

    // Revoking the active 5.0.0 with a rollback to 3.0.0.
    relay.wait_until_held(WITHIN);
    let sent = Instant::now();
    let to = release::revoke(
        &server.url,
        root,
        &json!({"bundleId": back.id, "reason": "interop test", "rollbackTo": versions[2].id}),
    )
    .expect("rolled back");
    assert_eq!(to.sha256, versions[2].sha256);
    opa.wait_for_activation(&to.sha256, sent, WITHIN);
    assert_long_polled(&relay, &to.sha256, sent);
    wait_in_sync(&server, "3.0.0");
    assert_eq!(opa.bundle_revision("gateway").0.as_deref(), Some("3.0.0"));

    // Drift: the active version is one OPA cannot verify (signed by a key it does not pin).
    // OPA downloads it, refuses it and keeps 3.0.0, which is no longer active.
    let id = release::published(&server.url, root, "default", "7.0.0", Some("untrusted"));
    let (untrusted, sent) = activate_while_held(&server, &relay, &id, false);
    assert_long_polled(&relay, &untrusted.sha256, sent);
    opa.wait_for_log(&["\"level\":\"error\"", "Bundle load failed"], sent, WITHIN);
    let view = interop::wait_for_fleet(&server.url, root, WITHIN, |view| {
        interop::sidecar_state(view) == Some((true, Some("3.0.0".into()), false))
    });
    let sidecar = &view["sidecars"][0];
    let reasons = sidecar["driftReasons"].to_string();
    assert!(
        reasons.contains("runs revision 3.0.0, the active version 7.0.0"),
        "{sidecar:#}"
    );
    assert_eq!(opa.bundle_revision("gateway").0.as_deref(), Some("3.0.0"));

    // A version it can verify brings it back in sync.
    let sent = Instant::now();
    let good = release::release(&server.url, root, "default", "8.0.0");
    opa.wait_for_activation(&good.sha256, sent, WITHIN);
    wait_in_sync(&server, "8.0.0");
}

/// The sum of `field` (`appended`, `duplicates`) over sck's answers to the uploads whose answer
/// was lost (`lost`) or reached OPA.
fn answered(exchanges: &[Exchange], lost: bool, field: &str) -> u64 {
    uploads(exchanges)
        .iter()
        .filter(|e| e.lost == lost && e.status == 200)
        .map(|e| e.json()[field].as_u64().unwrap_or(0))
        .sum()
}

fn decision_logs_land_exactly_once(server: &Server) {
    let relay = Relay::start(&server.url);
    let config = interop::sidecar_config(server, &relay.url, &["--decision-logs"]);
    let dir = tempfile::tempdir().unwrap();
    let opa = interop::start_sidecar(dir.path(), &config, &server.url, server.root());

    // sck's answer to the first upload is lost: OPA uploads the same chunk again, sck answers
    // that its decisions are duplicates.
    relay.set_logs_mode(LogsMode::LoseAnswer);
    let mut made = interop::decide(&opa, 3, "lost");
    // (However OPA chunks them: every decision appended once by uploads OPA never heard
    // back from, then every one a duplicate once the answers get through.)
    let seen = relay.wait_for("all three appended by lost uploads", WITHIN, |seen| {
        answered(seen, true, "appended") >= 3
    });
    assert_eq!(answered(&seen, true, "appended"), 3, "{seen:#?}");
    relay.set_logs_mode(LogsMode::Pass);
    let seen = relay.wait_for("all three uploaded again", WITHIN, |seen| {
        answered(seen, false, "duplicates") >= 3
    });
    assert_eq!(
        (
            answered(&seen, false, "appended"),
            answered(&seen, false, "duplicates")
        ),
        (0, 3),
        "{seen:#?}"
    );

    // Restarts: OPA flushes its buffer when stopped, a new instance logs under its own id.
    made.extend(interop::decide(&opa, 4, "before-restart"));
    assert!(opa.stop().success());
    // The new instance decides once it has activated the bundle (`/health` alone answers
    // before that, and an undefined decision has no `allow`).
    let opa = interop::start_sidecar(dir.path(), &config, &server.url, server.root());
    made.extend(interop::decide(&opa, 2, "after-restart"));
    assert!(opa.stop().success());

    let ledgered = interop::ledgered_decisions(&server.database_url, &server.data_dir);
    let expected: BTreeMap<String, usize> = made.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(expected.len(), 9, "OPA gave every decision its own id");
    assert_eq!(
        ledgered, expected,
        "each decision OPA made is ledgered exactly once"
    );
}

#[test]
fn decision_logs_land_exactly_once_across_reuploads_and_restarts() {
    decision_logs_land_exactly_once(&Server::start());
}

#[test]
fn decision_logs_land_exactly_once_on_postgres() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    decision_logs_land_exactly_once(&deployment.replica());
}

/// Two replicas on one PostgreSQL: OPA polls replica B, the activation happens on replica A,
/// and B's held long poll answers it (woken by A's notification).
#[test]
fn on_postgres_an_activation_on_replica_a_reaches_opa_polling_replica_b_by_long_poll() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let a = deployment.replica();
    let b = deployment.replica();
    let root = a.root();
    assert!(
        b.root_key.is_none(),
        "replica B found the database bootstrapped"
    );
    let relay = Relay::start(&b.url);
    // Asked of replica A, pointed at replica B (through the relay), as compose.yaml does.
    let config = interop::sidecar_config(&a, &relay.url, &["--status"]);
    let opa_dir = tempfile::tempdir().unwrap();
    let opa = interop::start_sidecar(opa_dir.path(), &config, &a.url, root);
    activate_new_versions(
        &a,
        &relay,
        &opa,
        2..=4,
        "activation on replica A -> OPA polling replica B",
    );
    // Replica B's fleet view (status reports went to B) agrees with A's registry.
    let view = interop::wait_for_fleet(&b.url, root, WITHIN, |view| {
        interop::sidecar_state(view) == Some((false, Some("4.0.0".into()), true))
    });
    assert_eq!(view["activeBundles"][0]["version"], "4.0.0");
}
