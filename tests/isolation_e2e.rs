//! End to end: tenant isolation, on SQLite and on PostgreSQL. Org A's admin key (and its
//! sidecar credential) goes after every resource of org B — identities, credentials, issuers
//! and token settings, tokens, token keys, bundles, fleet, retention, ledger. Whatever A is
//! answered, nothing of B changes: B's state read back with B's key is the same before and
//! after each probe, B's sidecar still gets the same bundle, B's signed caller still verifies,
//! and B's ledger has no new entry and passes `sck ledger verify`.
//!
//! Where a refusal could tell A whether something exists in another org, A gets the answer an
//! unknown id gets (the one accepted exception, creating a pin for an ANS ID another org holds,
//! is explained in docs/xsck.md). Names the ledger and the routes use
//! for themselves (`system`, `sha256`) cannot become orgs.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::db::{self, Deployment};
use support::http::{get_as, gzip, post_json, Reply, API};
use support::release::{self, compile_request, Source};
use support::server::Server;
use support::signed::{Call, Key};
use support::{cli, ledger, orgs, sidecar, signed, tokens};

const A: &str = "org-a";
const B: &str = "org-b";
const B_ANS: &str = "ans://b.example.com";
/// The public URL `sck serve` signs for by default.
const PUBLIC: &str = "http://127.0.0.1:8080";

/// Every server in this file keeps decision inputs (so retention has something of B's to
/// delete).
const KEEP_INPUTS: &[(&str, &str)] = &[("SCK_FLEET__STORE_INPUT", "true")];

/// An org's admin key and sidecar credential.
struct Tenant {
    key: String,
    sidecar: String,
}

/// A deployment with orgs A and B, and what B has in it.
struct World {
    d: Server,
    /// The data directory and database of a deployment `d` joined (PostgreSQL).
    _deployment: Option<Deployment>,
    a: Tenant,
    b: Tenant,
    /// A's active bundle.
    a_bundle: String,
    /// B's bundles: 1.0.0 (superseded), 2.0.0 (active), 3.0.0 (a draft).
    b_old: String,
    b_active: String,
    b_draft: String,
    b_digest: String,
    b_secret: String,
    b_key_id: String,
    b_issuer: String,
    b_token: String,
    b_jti: String,
}

/// B's issuer's name, and the decision id B's sidecar uploaded.
const B_ISSUER_NAME: &str = "agents";
const B_DECISION: &str = "dec-b-1";

fn url(d: &Server, path: &str) -> String {
    format!("{}{path}", d.url)
}

fn read(d: &Server, key: &str, path: &str) -> Reply {
    get_as(&url(d, path), key)
}

fn post(d: &Server, key: &str, path: &str, body: Value) -> Reply {
    post_json(&url(d, &format!("{API}{path}")), Some(key), &body)
}

fn ok(reply: Reply, status: u16) -> Value {
    reply.expect(status)
}

/// `(status, code)` of an answer.
fn answer(reply: &Reply) -> (u16, String) {
    (reply.status, reply.code())
}

/// Compiles and publishes `version` of `org`'s bundle `gateway`; activates it if asked.
fn release(d: &Server, org: &str, version: &str, activate: bool) -> String {
    let id = release::published(&d.url, d.root(), org, version, None);
    if activate {
        release::activate(&d.url, d.root(), &id, false);
    }
    id
}

fn tenant(d: &Server, org: &str) -> Tenant {
    Tenant {
        key: orgs::credential(&d.url, d.root(), org, "admin"),
        sidecar: orgs::credential(&d.url, d.root(), org, "sidecar"),
    }
}

/// POSTs an OPA upload (`/status` or `/logs`) with a sidecar credential.
fn upload(d: &Server, token: &str, path: &str, document: &Value) -> Reply {
    let body = gzip(&serde_json::to_vec(document).unwrap());
    sidecar::post(&d.url, path, Some(token), Some("gzip"), &body)
}

fn status_report(instance: &str) -> Value {
    sidecar::status_report(instance, "2.0.0")
}

fn decision_log(id: &str) -> Value {
    json!([sidecar::decision(id, "opa-shared")])
}

/// Sets up orgs A and B (B with two bundle versions and a draft, a pin, an issuer, a token, a
/// sidecar report and a kept decision input; A with an active bundle) on `d`.
fn world(d: Server, deployment: Option<Deployment>) -> World {
    for org in [A, B] {
        orgs::create(&d.url, d.root(), org);
    }
    let (a, b) = (tenant(&d, A), tenant(&d, B));
    let a_bundle = release(&d, A, "1.0.0", true);
    let b_old = release(&d, B, "1.0.0", true);
    let b_active = release(&d, B, "2.0.0", true);
    let draft = compile_request(B, "gateway", "3.0.0", &Source::policies());
    let b_draft = release::compiled(&d.url, &b.key, &draft);
    let b_digest = ok(read(&d, &b.key, &format!("{API}/bundles/{b_active}")), 200)["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let (b_secret, b_key_id) = signed::pin_hmac(&d.url, &b.key, B, B_ANS);
    let b_issuer = tokens::create_issuer(&d.url, &b.key, B, B_ISSUER_NAME, 3, &["mcp:invoke"]);
    let request = tokens::request(B, &b_issuer, "agent-b", 2, json!(["mcp:invoke"]));
    let issued = tokens::issue(&d.url, &b.key, &request);
    ok(
        upload(&d, &b.sidecar, "/status", &status_report("opa-shared")),
        200,
    );
    let logged = ok(
        upload(&d, &b.sidecar, "/logs", &decision_log(B_DECISION)),
        200,
    );
    assert_eq!(logged["appended"], 1);
    World {
        a,
        b,
        a_bundle,
        b_old,
        b_active,
        b_draft,
        b_digest,
        b_secret,
        b_key_id,
        b_issuer,
        b_token: issued["token"].as_str().unwrap().to_owned(),
        b_jti: issued["tokenId"].as_str().unwrap().to_owned(),
        d,
        _deployment: deployment,
    }
}

/// B's log: its size and the leaf hash of its last entry.
fn ledger_head(w: &World, key: &str) -> Value {
    let size = ok(
        read(&w.d, key, &format!("/api/v1/ledger/{B}/entries?limit=0")),
        200,
    )["size"]
        .as_u64()
        .unwrap();
    let last = ok(
        read(
            &w.d,
            key,
            &format!("/api/v1/ledger/{B}/entries?from={}&limit=1", size - 1),
        ),
        200,
    );
    json!({"size": size, "head": last["entries"][0]["leaf_hash"]})
}

/// Everything of B an attack must not change, as B (and the root key) read it back.
fn snapshot(w: &World) -> Value {
    let b = &w.b.key;
    let listed = |path: &str| ok(read(&w.d, b, &format!("{API}{path}")), 200);
    let introspected = ok(
        post(&w.d, b, "/tokens/introspect", json!({"token": w.b_token})),
        200,
    );
    let served = sidecar::fetch_bundle(&w.d.url, B, &w.b.sidecar, None, None);
    assert_eq!(served.status, 200);
    let inputs = cli::succeeded(cli::run_in(
        &w.d.data_dir,
        &[
            "ledger",
            "inputs",
            "--org",
            B,
            "--database-url",
            &w.d.database_url,
        ],
    ));
    json!({
        "bundles": listed(&format!("/bundles?organizationId={B}")),
        "identities": listed(&format!("/identities?organizationId={B}")),
        "issuers": listed(&format!("/tokens/issuers?organizationId={B}")),
        "settings": listed(&format!("/tokens/settings?organizationId={B}")),
        "keys": listed("/tokens/keys"),
        "fleet": listed(&format!("/fleet?org={B}")),
        "token": introspected,
        "served": served.header("etag"),
        "inputs": inputs,
        "ledger": ledger_head(w, b),
        "ledger_as_root": ledger_head(w, w.d.root()),
    })
}

/// Runs `attack` (org A's requests against `resource` of B) and checks B is as before.
fn probe(w: &World, resource: &str, attack: impl FnOnce(&World)) {
    let before = snapshot(w);
    attack(w);
    let after = snapshot(w);
    for (part, was) in before.as_object().unwrap() {
        assert_eq!(
            was, &after[part],
            "org A's {resource} requests changed org B's {part}"
        );
    }
}

fn identities(w: &World) {
    let a = &w.a.key;
    // The ANS ID is B's forever: A cannot pin it (the accepted oracle: the same refusal as for
    // an ANS ID A pinned itself, naming no org).
    let taken = post(
        &w.d,
        a,
        "/identities",
        json!({"organizationId": A, "ansId": B_ANS}),
    );
    assert_eq!(answer(&taken), (409, "identity_exists".into()));
    assert!(!String::from_utf8_lossy(&taken.body).contains(B));
    // Rotating or revoking B's pin "in A" is answered as for an ANS ID nobody pinned.
    for (path, extra) in [
        ("/identities/rotate", json!({})),
        ("/identities/rotate", json!({"retireKeyId": w.b_key_id})),
        ("/identities/revoke", json!({"reason": "x"})),
    ] {
        let with = |ans: &str, org: &str| {
            let mut body = extra.clone();
            body["organizationId"] = json!(org);
            body["ansId"] = json!(ans);
            post(&w.d, a, path, body)
        };
        let unknown = with("ans://nobody.example.com", A);
        assert_eq!(answer(&unknown), (404, "not_found".into()), "{path}");
        let foreign = with(B_ANS, A);
        assert_eq!(answer(&foreign), answer(&unknown), "{path}");
        assert_eq!(foreign.json()["detail"], unknown.json()["detail"], "{path}");
        assert_eq!(with(B_ANS, B).status, 403, "{path}");
    }
    let create = post(
        &w.d,
        a,
        "/identities",
        json!({"organizationId": B, "ansId": "ans://new.example.com"}),
    );
    assert_eq!(create.status, 403);
    let listed = read(&w.d, a, &format!("{API}/identities?organizationId={B}"));
    assert_eq!(listed.status, 404);
}

fn credentials(w: &World) {
    let a = &w.a.key;
    for kind in ["admin", "sidecar"] {
        let reply = post(
            &w.d,
            a,
            "/credentials",
            json!({"organizationId": B, "kind": kind}),
        );
        assert_eq!(answer(&reply), (403, "forbidden".into()), "{kind}");
    }
    for org in [B, "org-c"] {
        let reply = post(&w.d, a, "/orgs", json!({"organizationId": org}));
        assert_eq!(answer(&reply), (403, "forbidden".into()), "{org}");
    }
}

fn issuers_and_settings(w: &World) {
    let a = &w.a.key;
    let issuer = json!({"name": B_ISSUER_NAME, "loaCeiling": 4, "scopes": ["mcp:invoke", "admin"]});
    let mut into_b = issuer.clone();
    into_b["organizationId"] = json!(B);
    assert_eq!(post(&w.d, a, "/tokens/issuers", into_b).status, 403);
    // The same name in A's own namespace is A's business.
    let mut own = issuer;
    own["organizationId"] = json!(A);
    assert_eq!(post(&w.d, a, "/tokens/issuers", own).status, 201);
    let settings = post(
        &w.d,
        a,
        "/tokens/settings",
        json!({"organizationId": B, "maxTtlSeconds": 60}),
    );
    assert_eq!(settings.status, 403);
    for path in ["/tokens/issuers", "/tokens/settings"] {
        let reply = read(&w.d, a, &format!("{API}{path}?organizationId={B}"));
        assert_eq!(reply.status, 403, "{path}");
    }
}

fn tokens(w: &World) {
    let a = &w.a.key;
    let issue = |org: &str, issuer: &str| {
        post(
            &w.d,
            a,
            "/tokens/issue",
            json!({"organizationId": org, "artifactId": "x", "artifactType": "agent", "loaLevel": 1,
                   "scope": ["mcp:invoke"], "issuerId": issuer}),
        )
    };
    assert_eq!(answer(&issue(B, &w.b_issuer)), (403, "forbidden".into()));
    // B's issuer is answered as an issuer that does not exist.
    let unknown = issue(A, "iss_doesnotexist");
    assert_eq!(answer(&unknown), (404, "issuer_not_found".into()));
    assert_eq!(answer(&issue(A, &w.b_issuer)), answer(&unknown));
    let seen = ok(
        post(&w.d, a, "/tokens/introspect", json!({"token": w.b_token})),
        200,
    );
    assert_eq!(seen, json!({"active": false}));
    // RFC 7009: 200 whatever the token, and B's token stays active (checked by the snapshot).
    for body in [json!({"token": w.b_token}), json!({"tokenId": w.b_jti})] {
        ok(post(&w.d, a, "/tokens/revoke", body), 200);
    }
    let named = post(
        &w.d,
        a,
        "/tokens/revoke",
        json!({"tokenId": w.b_jti, "organizationId": B}),
    );
    assert_eq!(named.status, 403);
}

fn token_keys(w: &World) {
    let rotated = post_json(
        &url(&w.d, &format!("{API}/tokens/keys/rotate")),
        Some(&w.a.key),
        &json!({}),
    );
    assert_eq!(answer(&rotated), (403, "forbidden".into()));
}

fn bundles(w: &World) {
    let a = &w.a.key;
    let compile = post(
        &w.d,
        a,
        "/bundles/compile",
        compile_request(B, "gateway", "9.0.0", &Source::policies()),
    );
    assert_eq!(compile.status, 403);
    let not_found = (404, "not_found".to_owned());
    for (path, body) in [
        ("/bundles/publish", json!({"bundleId": w.b_draft})),
        (
            "/bundles/activate",
            json!({"bundleId": w.b_old, "rollback": true}),
        ),
        (
            "/bundles/revoke",
            json!({"bundleId": w.b_active, "reason": "x", "rollbackTo": w.b_old}),
        ),
        (
            "/bundles/revoke",
            json!({"bundleId": w.b_active, "reason": "x", "allowNoActive": true}),
        ),
        (
            "/bundles/revoke",
            json!({"bundleId": w.b_old, "reason": "x"}),
        ),
    ] {
        assert_eq!(answer(&post(&w.d, a, path, body)), not_found, "{path}");
    }
    assert_eq!(
        read(&w.d, a, &format!("{API}/bundles/{}", w.b_active)).status,
        404
    );
    // rollbackTo B's version is answered as a rollbackTo nobody has, and changes nothing of A.
    let revoke = |target: &str| {
        post(
            &w.d,
            a,
            "/bundles/revoke",
            json!({"bundleId": w.a_bundle, "reason": "x", "rollbackTo": target}),
        )
    };
    let unknown = revoke("bnd_doesnotexist");
    assert_eq!(answer(&unknown), not_found);
    assert_eq!(answer(&revoke(&w.b_old)), not_found);
    let own = ok(read(&w.d, a, &format!("{API}/bundles/{}", w.a_bundle)), 200);
    assert_eq!(own["status"], "ACTIVE");
    // A's sidecar gets nothing of B's, by name or by digest.
    let fetch = |path: String| read(&w.d, &w.a.sidecar, &path).status;
    assert_eq!(fetch(format!("/bundles/{B}/gateway.tar.gz")), 403);
    assert_eq!(
        fetch(format!("/bundles/{A}/sha256/{}.tar.gz", w.b_digest)),
        404
    );
}

fn fleet(w: &World) {
    let view = read(&w.d, &w.a.key, &format!("{API}/fleet?org={B}"));
    assert_eq!(answer(&view), (404, "not_found".into()));
    // The root key's view of an org nobody created is a 404 too, not an empty fleet.
    let nowhere = read(&w.d, w.d.root(), &format!("{API}/fleet?org=no-such-org"));
    assert_eq!(answer(&nowhere), (404, "not_found".into()));
    // A's sidecar reporting under B's instance id, and uploading B's decision id, writes A's.
    ok(
        upload(&w.d, &w.a.sidecar, "/status", &status_report("opa-shared")),
        200,
    );
    let logged = ok(
        upload(&w.d, &w.a.sidecar, "/logs", &decision_log(B_DECISION)),
        200,
    );
    assert_eq!(logged["appended"], 1, "decision ids are per org");
}

fn retention(w: &World) {
    let now = ledger::now_timestamp();
    let pruned = cli::succeeded(cli::run_in(
        &w.d.data_dir,
        &[
            "ledger",
            "prune-inputs",
            "--org",
            A,
            "--before",
            &now,
            "--database-url",
            &w.d.database_url,
        ],
    ));
    assert!(pruned.starts_with("pruned 1 "), "{pruned}");
}

fn ledger(w: &World) {
    for path in [
        "entries",
        "entries/0",
        "checkpoint",
        "checkpoints",
        "proof/inclusion?seq=0&size=1",
        "proof/consistency?from=1&to=2",
        "export",
    ] {
        let reply = read(&w.d, &w.a.key, &format!("/api/v1/ledger/{B}/{path}"));
        assert_eq!(answer(&reply), (404, "not_found".into()), "{path}");
    }
}

/// B's pinned caller signs a call to `/verify`.
fn signed_call(w: &World) -> Reply {
    let body =
        serde_json::to_vec(&json!({"action": "tools.invoke", "resource": {"org": B}})).unwrap();
    Call::new(PUBLIC, B_ANS, B, body).send(&w.d.url, &Key::Hmac(w.b_secret.clone()))
}

/// B's log, exported with B's key, passes `sck ledger verify` with the published keys.
fn ledger_verifies(w: &World, dir: &Path) {
    let export = ledger::api_export(&w.d.url, &w.b.key, B, dir);
    ledger::verify_export(&export, &ledger::published_keys(&w.d.url, B));
}

/// Every probe, then B's caller, sidecar and ledger still work.
fn org_a_changes_nothing_of_org_b(w: World) {
    probe(&w, "identity", identities);
    probe(&w, "credential", credentials);
    probe(&w, "issuer and token settings", issuers_and_settings);
    probe(&w, "token", tokens);
    probe(&w, "token key", token_keys);
    probe(&w, "bundle", bundles);
    probe(&w, "fleet", fleet);
    probe(&w, "retention", retention);
    probe(&w, "ledger", ledger);
    let verified = signed_call(&w).expect(200);
    assert_eq!(verified["caller"]["org"], B);
    let dir = tempfile::tempdir().unwrap();
    ledger_verifies(&w, dir.path());
}

#[test]
fn on_sqlite_org_a_changes_nothing_of_org_b_whatever_it_answers() {
    org_a_changes_nothing_of_org_b(world(Server::start_with_env(KEEP_INPUTS), None));
}

#[test]
fn on_postgres_org_a_changes_nothing_of_org_b_whatever_it_answers() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let server = deployment.replica_with_env(KEEP_INPUTS);
    org_a_changes_nothing_of_org_b(world(server, Some(deployment)));
}

#[test]
fn names_the_ledger_and_routes_use_cannot_become_orgs() {
    let server = Server::start();
    let root = server.root();
    let api = |path: &str| format!("{}{API}{path}", server.url);
    for name in ["system", "System", "sha256"] {
        let reply = post_json(&api("/orgs"), Some(root), &json!({"organizationId": name}));
        assert_eq!(answer(&reply), (400, "reserved_name".into()), "{name}");
        // Nothing was created: the org has no credentials to give.
        let key = post_json(
            &api("/credentials"),
            Some(root),
            &json!({"organizationId": name, "kind": "admin"}),
        );
        assert_eq!(key.status, 404, "{name}");
    }
    let (_, said) = cli::failed(cli::run_in(
        &server.data_dir,
        &[
            "admin",
            "create-org",
            "system",
            "--database-url",
            &server.database_url,
        ],
    ));
    assert!(said.contains("reserved"));
}

#[test]
fn a_first_start_refuses_a_reserved_default_org() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli::command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db::sqlite_url(dir.path()),
    ])
    .env("SCK_DATA_DIR", dir.path())
    .env("SCK_BUNDLES__DEFAULT_ORG", "system")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reserved"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("root admin key"));
}

/// What docs/serve.md says of a deployment that created an org `system` before the name was
/// reserved: it keeps working, and its log is the deployment-wide `system` log.
#[test]
fn an_org_named_system_from_before_keeps_its_keys_and_shares_the_system_log() {
    let server = Server::start();
    let root = server.root();
    db::sqlite_execute(
        &server.database_url,
        "INSERT INTO orgs (id, created_at) VALUES ('system', '2026-01-01T00:00:00Z')",
        &[],
    )
    .unwrap();
    let api = |path: &str| format!("{}{API}{path}", server.url);
    let created = post_json(
        &api("/orgs"),
        Some(root),
        &json!({"organizationId": "system"}),
    );
    assert_eq!(answer(&created), (400, "reserved_name".into()));
    let key = post_json(
        &api("/credentials"),
        Some(root),
        &json!({"organizationId": "system", "kind": "admin"}),
    );
    let key = ok(key, 201)["secret"].as_str().unwrap().to_owned();
    let log = get_as(
        &format!("{}/api/v1/ledger/system/entries", server.url),
        &key,
    );
    let kinds: Vec<Value> = ok(log, 200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["body"]["scope"].clone())
        .collect();
    assert!(
        kinds.contains(&json!("root")),
        "the root key's creation: {kinds:?}"
    );
}
