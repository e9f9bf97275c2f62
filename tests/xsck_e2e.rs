//! End to end: X-SCK signed upstream calls through a running `sck serve` — identity pins,
//! `POST /api/v1/enforcement/verify` with HMAC and Ed25519, every "must fail" case of
//! `x-sck.md` with its code, the example clients, replay across two PostgreSQL replicas, and
//! the X-SCK layer mounted on a custom route.

mod support;

use std::io::{Read, Write};
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};
use support::db::Deployment;
use support::http::{get_as, post_json, post_oversized, API};
use support::server::Server;
use support::signed::{pin_hmac, send, Call, Key, VERIFY};
use support::{cli, ledger, orgs, release, repo, unix_now as now};

const PUBLIC: &str = "https://gateway.example.com";
const ANS: &str = "ans://v1.0.0.agent.example.com";
const ORG: &str = "org-acme";

fn body() -> Vec<u8> {
    serde_json::to_vec(&json!({"action": "bundles.evaluate", "resource": {"org": ORG}})).unwrap()
}

/// A call of [`ANS`] for [`ORG`] to the gateway at [`PUBLIC`], posting [`body`].
fn signed_call() -> Call {
    Call::new(PUBLIC, ANS, ORG, body())
}

/// Creates `org` and activates `policies/` as its gateway bundle.
fn release(server: &Server, org: &str) {
    orgs::create(&server.url, server.root(), org);
    release::release(&server.url, server.root(), org, "1.0.0");
}

/// Pins `ans` to `org` with an HMAC key; returns (secret, key id).
fn pin(server: &Server, org: &str, ans: &str) -> (String, String) {
    pin_hmac(&server.url, server.root(), org, ans)
}

fn server() -> Server {
    Server::start_with_env(&[("SCK_PUBLIC_URL", PUBLIC)])
}

#[test]
fn signed_calls_verify_decide_and_every_must_fail_case_has_its_code() {
    let server = server();
    release(&server, ORG);
    let (secret, key_id) = pin(&server, ORG, ANS);
    let key = Key::Hmac(secret.clone());
    let url = server.url.clone();

    // Accepted: decision with the verified caller and a ledger receipt.
    let call = signed_call();
    let ok = call.send(&url, &key);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let answer = ok.json();
    assert_eq!(answer["allow"], true, "{answer}");
    assert_eq!(answer["caller"]["ans_id"], ANS);
    assert_eq!(answer["caller"]["key_id"], key_id.as_str());
    assert_eq!(answer["caller"]["scheme"], "hmac-sha256");
    assert!(answer["receipt"]["seq"].is_u64());

    // The same nonce twice.
    assert_eq!(call.send(&url, &key).code(), "replayed_nonce");

    // RFC 3339 timestamps are accepted; with the Key-Id header too.
    let mut c = signed_call();
    c.timestamp = time::OffsetDateTime::from_unix_timestamp(now())
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    c.extra.push(("X-SCK-Key-Id".into(), key_id.clone()));
    assert_eq!(c.send(&url, &key).status, 200);

    // One changed byte in body, path, query, authority, timestamp, nonce, ANS ID, org.
    let expect = |c: Call, code: &str| {
        let reply = c.send(&url, &key);
        assert_eq!(reply.code(), code, "{}", reply.text());
    };
    let mut c = signed_call();
    c.signed_body = Some(
        body()
            .into_iter()
            .map(|b| if b == b'b' { b'c' } else { b })
            .collect(),
    );
    expect(c, "signature_mismatch");
    let mut c = signed_call();
    c.signed_path_and_query = Some("/api/v1/enforcement/verifz".into());
    expect(c, "signature_mismatch");
    let mut c = signed_call();
    c.path_and_query = format!("{VERIFY}?dry_run=true");
    c.signed_path_and_query = Some(format!("{VERIFY}?dry_run=truf"));
    expect(c, "signature_mismatch");
    let mut c = signed_call();
    c.path_and_query = format!("{VERIFY}?dry_run=true&region=eu");
    assert_eq!(c.send(&url, &key).status, 200, "a signed query verifies");
    let mut c = signed_call();
    c.authority = "gateway.example.con".into();
    expect(c, "signature_mismatch");
    let mut c = signed_call();
    c.authority = server.url.trim_start_matches("http://").into();
    expect(c, "signature_mismatch");
    let mut c = signed_call();
    c.signed_org = Some("org-acmf".into());
    expect(c, "signature_mismatch");
    // Timestamp, nonce and ANS ID: sign one value, send another.
    let c = signed_call();
    let mut headers = c.headers(&key);
    for (name, value) in &mut headers {
        if name == "X-SCK-Timestamp" {
            *value = (value.parse::<i64>().unwrap() + 1).to_string();
        }
    }
    assert_eq!(
        send(&url, VERIFY, &headers, &c.body).code(),
        "signature_mismatch"
    );
    let c = signed_call();
    let mut headers = c.headers(&key);
    for (name, value) in &mut headers {
        if name == "X-SCK-Nonce" {
            value.push('x');
        }
    }
    assert_eq!(
        send(&url, VERIFY, &headers, &c.body).code(),
        "signature_mismatch"
    );

    // Timestamp 301 s off, both directions; 299 s is fine.
    for offset in [301, -301] {
        let mut c = signed_call();
        c.timestamp = (now() + offset).to_string();
        expect(c, "timestamp_skew");
    }
    let mut c = signed_call();
    c.timestamp = (now() - 290).to_string();
    assert_eq!(c.send(&url, &key).status, 200);

    // Unknown ANS ID; the ANS ID pinned to another org; a key pinned to another ANS ID.
    let mut c = signed_call();
    c.ans_id = "ans://v1.0.0.unknown.example.com".into();
    expect(c, "unknown_identity");
    let other_ans = "ans://v1.0.0.other.example.com";
    let (other_secret, _) = pin(&server, "default", other_ans);
    let mut c = signed_call();
    c.ans_id = other_ans.into();
    let reply = c.send(&url, &Key::Hmac(other_secret.clone()));
    assert_eq!(reply.code(), "org_mismatch");
    let c = signed_call();
    assert_eq!(
        c.send(&url, &Key::Hmac(other_secret)).code(),
        "signature_mismatch"
    );
    // The other pin's key id named for this ANS ID is not tried either.
    let mut c = signed_call();
    c.extra
        .push(("X-SCK-Key-Id".into(), "xk_not_this_pin".into()));
    expect(c, "signature_mismatch");

    // Missing and duplicate headers.
    for name in [
        "X-SCK-Signature",
        "X-SCK-Timestamp",
        "X-SCK-Nonce",
        "X-SCK-ANS-ID",
        "X-SCK-Organization",
    ] {
        let mut c = signed_call();
        c.drop = Some(name);
        expect(c, "missing_header");
        let c = signed_call();
        let mut headers = c.headers(&key);
        let copy = headers.iter().find(|(n, _)| n == name).unwrap().clone();
        headers.push(copy);
        assert_eq!(
            send(&url, VERIFY, &headers, &c.body).code(),
            "duplicate_header",
            "{name}"
        );
    }
    // A control character HTTP itself allows (tab) inside a value.
    let mut c = signed_call();
    c.org = "org\tacme".into();
    expect(c, "invalid_header");
    // CR or LF inside a header value: never a 2xx (refused by the HTTP layer or by X-SCK).
    for bad in ["org-acme\rx", "org-\nacme"] {
        let c = signed_call();
        let mut raw = format!("POST {VERIFY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", c.body.len());
        for (n, v) in c.headers(&key) {
            let v = if n == "X-SCK-Organization" {
                bad.to_owned()
            } else {
                v
            };
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        stream.write_all(&c.body).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    // Oversized body.
    let mut c = signed_call();
    c.body = vec![b' '; (1 << 20) + 1];
    let mut headers = c.headers(&key);
    headers.push(("Content-Type".into(), "application/json".into()));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = post_oversized(&format!("{url}{}", c.path_and_query), &headers, &c.body);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.code(), "body_too_large");

    // Ed25519 round trip: rotate in a public key, sign with it.
    let ed = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(ed.verifying_key().to_bytes());
    let rotated = post_json(
        &format!("{url}{API}/identities/rotate"),
        Some(server.root()),
        &json!({"organizationId": ORG, "ansId": ANS, "scheme": "ed25519", "publicKey": public}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let reply = signed_call().send(&url, &Key::Ed(ed.clone()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["caller"]["scheme"], "ed25519");
    // Both live keys verify.
    assert_eq!(signed_call().send(&url, &key).status, 200);
    // A third key retires the oldest (the HMAC key).
    let again = post_json(
        &format!("{url}{API}/identities/rotate"),
        Some(server.root()),
        &json!({"organizationId": ORG, "ansId": ANS, "scheme": "hmac-sha256"}),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["retired"], json!([key_id]));
    assert_eq!(signed_call().send(&url, &key).code(), "signature_mismatch");
    assert_eq!(signed_call().send(&url, &Key::Ed(ed.clone())).status, 200);

    // Listing never shows secrets.
    let listed = get_as(
        &format!("{url}{API}/identities?organizationId={ORG}"),
        server.root(),
    );
    assert_eq!(listed.status, 200);
    let text = listed.text();
    assert!(!text.contains(&secret) && !text.contains("sckx_"), "{text}");
    assert_eq!(
        listed.json()["identities"][0]["keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Revocation: refused from then on.
    let revoked = post_json(
        &format!("{url}{API}/identities/revoke"),
        Some(server.root()),
        &json!({"organizationId": ORG, "ansId": ANS, "reason": "test"}),
    );
    assert_eq!(revoked.status, 200);
    assert_eq!(
        signed_call().send(&url, &Key::Ed(ed)).code(),
        "identity_revoked"
    );

    // The ledger holds every outcome, and never a secret.
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let mut reasons = std::collections::BTreeSet::<String>::new();
    for org in [ORG, "default"] {
        for entry in ledger::exported_entries(&db, org, &data_dir) {
            let text = entry.to_string();
            assert!(!text.contains(&secret) && !text.contains("sckx_"), "{text}");
            let Some(kind) = entry["type"].as_str().or(entry["kind"].as_str()) else {
                continue;
            };
            *kinds.entry(kind.to_owned()).or_default() += 1;
            if let Some(reason) = entry["body"]["reason"].as_str() {
                reasons.insert(reason.to_owned());
            }
        }
    }
    for kind in [
        "identity.pinned",
        "identity.rotated",
        "identity.revoked",
        "upstream.verified",
        "upstream.rejected",
    ] {
        assert!(kinds.contains_key(kind), "{kind} missing from {kinds:?}");
    }
    for reason in [
        "signature_mismatch",
        "timestamp_skew",
        "replayed_nonce",
        "unknown_identity",
        "org_mismatch",
        "identity_revoked",
        "missing_header",
        "duplicate_header",
        "invalid_header",
        "body_too_large",
    ] {
        assert!(
            reasons.contains(reason),
            "{reason} missing from {reasons:?}"
        );
    }
}

#[test]
fn identities_are_org_scoped_and_never_trusted_on_first_use() {
    let server = server();
    let root = server.root_key.as_deref();
    let url = &server.url;
    release(&server, ORG);
    // An org admin key cannot pin into another org, nor list it.
    let org_key = orgs::credential(url, server.root(), ORG, "admin");
    {
        let reply = post_json(
            &format!("{url}{API}/identities"),
            Some(&org_key),
            &json!({"organizationId": "default", "ansId": "ans://x.example.com"}),
        );
        assert_eq!(reply.status, 403);
        let listed = get_as(
            &format!("{url}{API}/identities?organizationId=default"),
            &org_key,
        );
        assert_eq!(listed.status, 404);
    }
    // No trust on first use: a signed call for an unpinned ANS ID is refused, and no pin appears.
    let c = signed_call();
    assert_eq!(
        c.send(url, &Key::Hmac("anything".into())).code(),
        "unknown_identity"
    );
    let listed = get_as(&format!("{url}{API}/identities"), server.root());
    assert_eq!(listed.json()["identities"], json!([]));
    // An ANS ID belongs to one org: pinning it again (any org) conflicts.
    pin(&server, ORG, ANS);
    for org in [ORG, "default"] {
        let reply = post_json(
            &format!("{url}{API}/identities"),
            root,
            &json!({"organizationId": org, "ansId": ANS}),
        );
        assert_eq!(reply.code(), "identity_exists");
    }
    // Malformed requests.
    for bad in [
        json!({"organizationId": ORG, "ansId": "not-ans"}),
        json!({"organizationId": ORG, "ansId": "ans://y", "scheme": "rsa"}),
        json!({"organizationId": ORG, "ansId": "ans://y", "scheme": "ed25519"}),
        json!({"organizationId": ORG, "ansId": "ans://y", "scheme": "ed25519", "publicKey": "AAAA"}),
        json!({"organizationId": ORG, "ansId": "ans://y", "publicKey": "AAAA"}),
    ] {
        let reply = post_json(&format!("{url}{API}/identities"), root, &bad);
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[test]
fn the_example_clients_are_accepted_end_to_end() {
    let server = server();
    release(&server, ORG);
    let (secret, _) = pin(&server, ORG, ANS);
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body()).unwrap();
    let target = format!("{}{VERIFY}", server.url);
    // What every client is told about the call it signs.
    let call = [
        "--url",
        target.as_str(),
        "--public-url",
        PUBLIC,
        "--ans-id",
        ANS,
        "--org",
        ORG,
    ];
    let out = Command::new("python3")
        .arg(repo().join("examples/sign_request.py"))
        .args(call)
        .args(["--secret", &secret, "--body-file"])
        .arg(&body_file)
        .output()
        .unwrap();
    let stdout = cli::succeeded(out);
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["allow"], true, "{answer}");
    assert_eq!(answer["caller"]["ans_id"], ANS);

    // The shell + openssl client, when openssl and curl exist here.
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("curl")
        && Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        let out = Command::new("bash")
            .arg(repo().join("examples/sign_request.sh"))
            .args([&target, ANS, ORG])
            .arg(&body_file)
            .env("SCK_XSCK_SECRET", &secret)
            .env("SCK_PUBLIC_URL", PUBLIC)
            .output()
            .unwrap();
        let stdout = cli::succeeded(out);
        assert_eq!(
            serde_json::from_str::<Value>(stdout.trim()).unwrap()["allow"],
            true
        );
    } else {
        eprintln!("skipped the shell example: curl or openssl missing");
    }

    // `sck sign-request` prints headers that verify.
    let out = cli::ok(
        &[
            &["sign-request"][..],
            &call,
            &["--key", &secret, "--body-file", body_file.to_str().unwrap()],
        ]
        .concat(),
    );
    let headers: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    assert_eq!(headers.len(), 5);
    let reply = send(&server.url, VERIFY, &headers, &body());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        send(&server.url, VERIFY, &headers, &body()).code(),
        "replayed_nonce"
    );
}

#[test]
fn a_replay_on_a_second_postgresql_replica_is_refused() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let a = deployment.replica();
    let b = deployment.replica();
    let (secret, _) = pin(&a, "default", ANS);
    let key = Key::Hmac(secret);
    // Replicas use the default public_url, so that is the signed authority.
    let replica_call = || Call::new("http://127.0.0.1:8080", ANS, "default", body());
    let c = replica_call();
    let headers = c.headers(&key);
    let first = send(&a.url, VERIFY, &headers, &c.body);
    assert_eq!(first.status, 200, "{}", first.text());
    let second = send(&b.url, VERIFY, &headers, &c.body);
    assert_eq!(second.code(), "replayed_nonce");
    // A fresh nonce verifies on the second replica (it shares the pin and the master key).
    assert_eq!(replica_call().send(&b.url, &key).status, 200);
    // Concurrent duplicates on both replicas: exactly one is accepted.
    let c3 = replica_call();
    let headers = c3.headers(&key);
    let results: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let base = if i % 2 == 0 {
                    a.url.clone()
                } else {
                    b.url.clone()
                };
                let headers = headers.clone();
                let body = c3.body.clone();
                s.spawn(move || send(&base, VERIFY, &headers, &body).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        1,
        "{results:?}"
    );
}

#[test]
fn the_layer_protects_any_route() {
    use axum::routing::post;
    use sck_gateway::signed_caller::{require_signed_caller, SignedCaller};

    let dir = tempfile::tempdir().unwrap();
    let config = sck_enforce::config::Config {
        data_dir: dir.path().to_path_buf(),
        database_url: dir.path().join("sck.db").display().to_string(),
        public_url: PUBLIC.into(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, secret) = runtime.block_on(async {
        let services = sck_enforce::Services::open(config).await.unwrap();
        let (_, key) = services
            .xsck()
            .identities()
            .create(ORG, ANS, &sck_enforce::identities::KeyRequest::Hmac, "test")
            .await
            .unwrap();
        async fn whoami(SignedCaller(caller): SignedCaller, body: axum::body::Bytes) -> String {
            format!("{} {} {}", caller.ans_id, caller.org, body.len())
        }
        let app = require_signed_caller(
            axum::Router::new().route("/internal/whoami", post(whoami)),
            services.xsck().clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, key.secret.unwrap())
    });
    let base = format!("http://{addr}");
    let key = Key::Hmac(secret);
    let mut c = signed_call();
    c.path_and_query = "/internal/whoami".into();
    let reply = c.send(&base, &key);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        format!("{ANS} {ORG} {}", body().len())
    );
    assert_eq!(c.send(&base, &key).code(), "replayed_nonce");
    let mut unsigned = signed_call();
    unsigned.path_and_query = "/internal/whoami".into();
    unsigned.drop = Some("X-SCK-Signature");
    assert_eq!(unsigned.send(&base, &key).code(), "missing_header");
    let mut wrong = signed_call();
    wrong.path_and_query = "/internal/whoami".into();
    assert_eq!(
        wrong.send(&base, &Key::Hmac("nope".into())).code(),
        "signature_mismatch"
    );
    drop(runtime);
}
