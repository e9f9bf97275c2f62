//! End-to-end tests of `sck serve` driving the real binary: the bundle lifecycle API, the bundle
//! service as OPA sidecars use it, credentials and org isolation, malformed input, and two
//! replicas on one PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use sck_bundler::sha256_hex as sha256;
use sck_bundler::{Bundle, Limits, VerificationConfig, VerificationKey};
use serde_json::{json, Value};
use support::db::{self, Deployment};
use support::http::{bearer, get, get_as, gzip, post_json, post_oversized, post_raw, Reply, API};
use support::release::{self, compile_policies as compile, compile_request, Source};
use support::server::Server;
use support::sidecar::fetch_bundle as fetch;
use support::{cli, ledger, metrics, orgs};

#[test]
fn lifecycle_and_sidecar_fetches_end_to_end() {
    let server = Server::start();
    let root = server.root();
    let token = server.sidecar().to_owned();

    // The bootstrap bundle is served with its digest as ETag, then 304.
    let first = fetch(&server.url, "default", &token, None, None);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type").as_deref(),
        Some("application/gzip")
    );
    assert!(first.header("content-encoding").is_none());
    let etag = sha256(&first.body);
    assert_eq!(first.header("etag"), Some(format!("\"{etag}\"")));
    assert_eq!(
        fetch(&server.url, "default", &token, Some(&etag), None).status,
        304
    );

    // A long poll returns as soon as a new version is activated.
    let url = server.url.clone();
    let (tok, tag) = (token.clone(), etag.clone());
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let reply = fetch(&url, "default", &tok, Some(&tag), Some(60));
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let v2 = release::release(&server.url, root, "default", "2.0.0").id;
    let (reply, waited) = poller.join().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/vnd.openpolicyagent.bundles")
    );
    // Woken by the activation itself: the fallback re-check would only come after 5 s.
    assert!(
        waited < Duration::from_secs(3),
        "long poll waited {waited:?}"
    );
    let v2_sha = sha256(&reply.body);
    assert_ne!(v2_sha, etag);
    let bundle = Bundle::read(&reply.body, &Limits::default()).unwrap();
    assert_eq!(bundle.manifest.sck().unwrap().version, "2.0.0");

    // A long poll with nothing new answers 304 when its wait is over.
    let idle = fetch(&server.url, "default", &token, Some(&v2_sha), Some(1));
    assert_eq!(idle.status, 304);

    // Published versions are also served immutably by digest.
    let by_digest = get_as(
        &format!("{}/bundles/default/sha256/{etag}.tar.gz", server.url),
        &token,
    );
    assert_eq!(by_digest.status, 200);
    assert_eq!(sha256(&by_digest.body), etag);

    // Anti-downgrade: the old version needs an explicit rollback.
    let list = get_as(
        &format!("{}{API}/bundles?status=SUPERSEDED", server.url),
        root,
    );
    let v1 = list.json()["bundles"][0]["id"].as_str().unwrap().to_owned();
    let refused = post_json(
        &format!("{}{API}/bundles/activate", server.url),
        Some(root),
        &json!({"bundleId": v1}),
    );
    refused.assert_problem(409, "downgrade_refused");
    let rolled = post_json(
        &format!("{}{API}/bundles/activate", server.url),
        Some(root),
        &json!({"bundleId": v1, "rollback": true}),
    );
    assert_eq!(rolled.status, 200);
    assert_eq!(
        sha256(&fetch(&server.url, "default", &token, None, None).body),
        etag
    );

    // Revoking the active version requires a choice; rollbackTo makes it.
    let revoke = |body: Value| {
        post_json(
            &format!("{}{API}/bundles/revoke", server.url),
            Some(root),
            &body,
        )
    };
    let needs_choice = revoke(json!({"bundleId": v1, "reason": "bad rule"}));
    needs_choice.assert_problem(409, "choice_required");
    let revoked = revoke(json!({"bundleId": v1, "reason": "bad rule", "rollbackTo": v2}));
    assert_eq!(revoked.expect(200)["bundle"]["status"], "REVOKED");
    assert_eq!(
        sha256(&fetch(&server.url, "default", &token, None, None).body),
        v2_sha
    );

    // A revoked version is never activated or served again.
    let again = post_json(
        &format!("{}{API}/bundles/activate", server.url),
        Some(root),
        &json!({"bundleId": v1, "rollback": true}),
    );
    again.assert_problem(409, "bundle_revoked");
    let gone = get_as(
        &format!("{}/bundles/default/sha256/{etag}.tar.gz", server.url),
        &token,
    );
    assert_eq!(gone.status, 404);

    // Revoking the last active version may leave the org with none.
    let none = revoke(json!({"bundleId": v2, "reason": "incident", "allowNoActive": true}));
    assert_eq!(none.status, 200);
    let missing = fetch(&server.url, "default", &token, None, None);
    missing.assert_problem(404, "no_active_bundle");

    // Versions are immutable: the same version cannot be compiled twice.
    let dup = compile(&server.url, root, "default", "2.0.0");
    dup.assert_problem(409, "version_exists");

    // Every transition is in the org's ledger, and the log verifies.
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());
    ledger::verify_db(&db, "default");
    let entries: Vec<String> = ledger::exported_entries(&db, "default", &data_dir)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "credential.created",
        "bundle.compiled",
        "bundle.published",
        "bundle.activated",
        "bundle.superseded",
        "bundle.revoked",
    ] {
        assert!(
            entries.iter().any(|t| t == expected),
            "no {expected} in {entries:?}"
        );
    }
}

/// Request heads refused before any handler runs get a problem+json body with a stable code:
/// what hyper would refuse while parsing (checked on a connection's first head, `edge.rs`) and
/// what exceeds sck's own limits (every request). Heads within the limits are served.
#[test]
fn refused_request_heads_get_problem_bodies() {
    let server = Server::start();
    let authority = server.url.trim_start_matches("http://").to_owned();
    let request = |line: &[u8], fields: &[u8]| {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(format!("\r\nHost: {authority}\r\n").as_bytes());
        bytes.extend_from_slice(fields);
        bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        bytes
    };
    let get_health = &b"GET /health HTTP/1.1"[..];
    let header = |bytes: usize| format!("X-Big: {}\r\n", "a".repeat(bytes)).into_bytes();
    let path = |bytes: usize| format!("GET /{} HTTP/1.1", "a".repeat(bytes)).into_bytes();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "control character in a value",
            request(get_health, b"X-A: a\x01b\r\n"),
            400,
            "invalid_header",
        ),
        (
            "DEL in a value",
            request(get_health, b"X-A: a\x7f\r\n"),
            400,
            "invalid_header",
        ),
        (
            "space in a name",
            request(get_health, b"Bad Name: x\r\n"),
            400,
            "invalid_header",
        ),
        (
            "control character in the method",
            request(b"G\x01T /health HTTP/1.1", b""),
            400,
            "invalid_request_line",
        ),
        (
            "HTTP/2.0",
            request(b"GET /health HTTP/2.0", b""),
            400,
            "invalid_request_line",
        ),
        (
            "101 header fields",
            request(get_health, "X-A: b\r\n".repeat(101).as_bytes()),
            431,
            "header_too_large",
        ),
        (
            "100 KB of header fields (sck's limit)",
            request(get_health, &header(100 << 10)),
            431,
            "header_too_large",
        ),
        (
            "500 KB of header fields (hyper's)",
            request(get_health, &header(500 << 10)),
            431,
            "header_too_large",
        ),
        (
            "a 20 KB target (sck's limit)",
            request(&path(20 << 10), b""),
            414,
            "uri_too_long",
        ),
        (
            "a 70 KB target (hyper's)",
            request(&path(70 << 10), b""),
            414,
            "uri_too_long",
        ),
    ];
    for (why, bytes, status, code) in cases {
        let reply = support::http::send_raw(&authority, &bytes);
        assert_eq!(
            (reply.status, reply.code()),
            (status, code.to_owned()),
            "{why}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{why}"
        );
        assert_eq!(reply.json()["status"], status, "{why}");
    }
    // Within the limits, the same requests are served.
    let served = support::http::send_raw(&authority, &request(get_health, &header(60 << 10)));
    assert_eq!(served.status, 200);
    let long = support::http::send_raw(&authority, &request(&path(16_000), b""));
    long.assert_problem(404, "not_found");
    let obs_text = support::http::send_raw(&authority, &request(get_health, b"X-A: caf\xe9\r\n"));
    assert_eq!(obs_text.status, 200);
}

/// SemVer §10-11: build metadata does not make another version, so `2.0.0+evil` next to an
/// active `2.0.0` is refused at compile (and, were it there, would not count as newer).
#[test]
fn versions_of_equal_precedence_are_one_version() {
    db::on_each_backend(|server| {
        let root = server.root();
        release::release(&server.url, root, "default", "2.0.0");
        for same in ["2.0.0+evil", "2", "2.0.0"] {
            compile(&server.url, root, "default", same).assert_problem(409, "version_exists");
        }
        let versions: Vec<Value> = get_as(
            &format!("{}{API}/bundles?organizationId=default", server.url),
            root,
        )
        .json()["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["version"].clone())
            .collect();
        assert!(!versions.contains(&json!("2.0.0+evil")), "{versions:?}");
        // A pre-release of a newer version and the newer version itself are new versions.
        for newer in ["2.0.1-rc.1", "2.0.1"] {
            release::release(&server.url, root, "default", newer);
        }
    });
}

#[test]
fn orgs_are_isolated() {
    let server = Server::start();
    let (url, root) = (&server.url, server.root());
    let api = |path: &str| format!("{url}{API}{path}");
    for org in ["org-a", "org-b"] {
        orgs::create(url, root, org);
    }
    let key = |org: &str, kind: &str| orgs::credential(url, root, org, kind);
    let (admin_a, admin_b) = (key("org-a", "admin"), key("org-b", "admin"));
    let sidecar_a = key("org-a", "sidecar");
    let b_bundle = release::release(url, &admin_b, "org-b", "1.0.0").id;

    // org-a's admin key cannot see, compile for, publish, activate or revoke org-b's bundles.
    compile(url, &admin_a, "org-b", "9.0.0").assert_problem(403, "forbidden");
    let foreign_get = get_as(&api(&format!("/bundles/{b_bundle}")), &admin_a);
    assert_eq!(foreign_get.status, 404);
    for op in ["publish", "activate"] {
        let reply = post_json(
            &api(&format!("/bundles/{op}")),
            Some(&admin_a),
            &json!({"bundleId": b_bundle}),
        );
        assert_eq!(reply.status, 404, "{op}");
    }
    let foreign_revoke = post_json(
        &api("/bundles/revoke"),
        Some(&admin_a),
        &json!({"bundleId": b_bundle, "reason": "x", "allowNoActive": true}),
    );
    assert_eq!(foreign_revoke.status, 404);
    let foreign_list = get_as(&api("/bundles?organizationId=org-b"), &admin_a);
    assert_eq!(foreign_list.status, 403);
    let own_list = get_as(&api("/bundles"), &admin_a);
    assert_eq!(own_list.json()["bundles"].as_array().unwrap().len(), 0);

    // org-a's sidecar cannot fetch org-b's bundle; no credential or a wrong one is 401.
    assert_eq!(fetch(url, "org-b", &sidecar_a, None, None).status, 403);
    assert_eq!(
        fetch(url, "org-b", "sck_sidecar_forged", None, None).status,
        401
    );
    assert_eq!(fetch(url, "org-b", &admin_b, None, None).status, 401);
    let anonymous = get(&format!("{url}/bundles/org-b/gateway.tar.gz"), &[]);
    anonymous.assert_problem(401, "unauthorized");
    // An org admin cannot create orgs or credentials for another org.
    assert_eq!(
        post_json(
            &api("/orgs"),
            Some(&admin_a),
            &json!({"organizationId": "org-c"})
        )
        .status,
        403
    );
    assert_eq!(
        post_json(
            &api("/credentials"),
            Some(&admin_a),
            &json!({"organizationId": "org-b", "kind": "admin"})
        )
        .status,
        403
    );
}

/// Asserts a refusal's status and code, and that its detail mentions `needle`.
fn assert_refused(reply: &Reply, name: &str, status: u16, code: &str, needle: &str) {
    let body = reply.assert_problem(status, code);
    assert!(
        body["detail"].as_str().unwrap().contains(needle),
        "{name}: {body}"
    );
}

#[test]
fn malformed_input_is_refused_with_status_and_code() {
    let server = Server::start_with_env(&[
        ("SCK_HTTP__MAX_BODY_BYTES", "1048576"),
        ("SCK_BUNDLES__MAX_FILES", "20"),
        ("SCK_BUNDLES__MAX_DECOMPRESSED_BYTES", "2097152"),
    ]);
    let root = server.root();
    let compile_url = format!("{}{API}/bundles/compile", server.url);
    let send = |source: Source| {
        release::compile(
            &server.url,
            root,
            &compile_request("default", "bad", "1", &source),
        )
    };
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "syntax error",
            json!({"x/p.rego": "package x\nallow if {"}),
            422,
            "bundle_invalid",
            "x/p.rego",
        ),
        (
            "unsupported builtin",
            json!({"x/p.rego": "package x\nimport rego.v1\nt := io.jwt.decode(input.t)\n"}),
            422,
            "bundle_invalid",
            "x/p.rego:3:6",
        ),
        (
            "failing test",
            json!({"x/p_test.rego": "package x_test\nimport rego.v1\ntest_no if { false }\n"}),
            422,
            "bundle_invalid",
            "test_no failed",
        ),
        (
            "data not an object",
            json!({"data.json": "[1]"}),
            422,
            "bundle_invalid",
            "must be a JSON object",
        ),
        (
            "overlapping roots",
            json!({".manifest": "{\"roots\": [\"a\", \"a/b\"]}"}),
            422,
            "bundle_invalid",
            "overlap",
        ),
        (
            "package outside roots",
            json!({".manifest": "{\"roots\": [\"a\"]}", "b/p.rego": "package b\nx := 1\n"}),
            422,
            "bundle_invalid",
            "outside the manifest roots",
        ),
        (
            "data outside roots",
            json!({".manifest": "{\"roots\": [\"a\"]}", "z/data.json": "{\"k\": 1}"}),
            422,
            "bundle_invalid",
            "outside the manifest roots",
        ),
        (
            "parent path",
            json!({"../evil.rego": "package evil\n"}),
            422,
            "bundle_invalid",
            "unsafe path",
        ),
        (
            "absolute path",
            json!({"//etc/x.rego": "package x\n"}),
            422,
            "bundle_invalid",
            "unsafe path",
        ),
        (
            "not a source file",
            json!({"run.sh": "echo"}),
            422,
            "bundle_invalid",
            "not a bundle source file",
        ),
    ];
    for (name, files, status, code, needle) in cases {
        assert_refused(&send(Source::Files(files)), name, status, code, needle);
    }

    // Every problem is listed with its position, not only the first.
    let many = send(Source::Files(
        json!({"x/p.rego": "package x\nimport rego.v1\na := io.jwt.decode(1)\nb := http.send({})\n"}),
    ));
    let diagnostics = many.json()["diagnostics"].clone();
    assert_eq!(
        diagnostics.as_array().map(Vec::len),
        Some(2),
        "{diagnostics}"
    );
    assert!(
        diagnostics[1]
            .as_str()
            .unwrap()
            .starts_with("x/p.rego:4:6: http.send"),
        "{diagnostics}"
    );

    // Tarball uploads go through the same hostile-archive reader: every refusal of the bundler.
    let module = b"package x\nimport rego.v1\nallow := true\n".to_vec();
    let regular = |name: &str, bytes: &[u8]| {
        (
            tar::EntryType::Regular,
            name.to_owned(),
            None,
            bytes.to_vec(),
        )
    };
    let many: Vec<_> = (0..30)
        .map(|i| regular(&format!("x/m{i}.rego"), &module))
        .collect();
    /// (case, archive members, status, code, words the detail must contain)
    type Member<'a> = (tar::EntryType, String, Option<&'a str>, Vec<u8>);
    type ArchiveCase<'a> = (&'a str, Vec<Member<'a>>, u16, &'a str, &'a str);
    let archive_cases: Vec<ArchiveCase> = vec![
        (
            "symlink",
            vec![(
                tar::EntryType::Symlink,
                "x/link.rego".into(),
                Some("/etc/passwd"),
                vec![],
            )],
            422,
            "bundle_invalid",
            "symbolic link",
        ),
        (
            "hard link",
            vec![
                regular("x/p.rego", &module),
                (
                    tar::EntryType::Link,
                    "x/h.rego".into(),
                    Some("x/p.rego"),
                    vec![],
                ),
            ],
            422,
            "bundle_invalid",
            "hard link",
        ),
        (
            "duplicate",
            vec![regular("x/p.rego", &module), regular("/x/p.rego", &module)],
            422,
            "bundle_invalid",
            "appears more than once",
        ),
        (
            "absolute",
            vec![regular("//etc/x.rego", &module)],
            422,
            "bundle_invalid",
            "absolute path",
        ),
        (
            "dot-dot",
            vec![regular("x/../../x.rego", &module)],
            422,
            "bundle_invalid",
            "escapes the bundle root",
        ),
        (
            "invalid UTF-8",
            vec![regular("x/p.rego", b"package x\n\xff\xfe := 1\n")],
            422,
            "bundle_invalid",
            "not valid UTF-8",
        ),
        (
            "no signature",
            vec![
                regular("x/p.rego", &module),
                regular(".signatures.json", br#"{"signatures": []}"#),
            ],
            422,
            "signature_invalid",
            "no signature",
        ),
        (
            "two signatures",
            vec![
                regular("x/p.rego", &module),
                regular(".signatures.json", br#"{"signatures": ["a.b.c", "d.e.f"]}"#),
            ],
            422,
            "signature_invalid",
            "2 signatures",
        ),
        ("too many files", many, 413, "bundle_too_large", "20 files"),
        (
            "gzip bomb",
            vec![regular("data.json", &vec![b' '; 4 << 20])],
            413,
            "bundle_too_large",
            "decompressed bytes",
        ),
    ];
    for (name, entries, status, code, needle) in archive_cases {
        let mut builder = tar::Builder::new(Vec::new());
        for (kind, path, link, bytes) in &entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            let field = &mut header.as_old_mut().name;
            field[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, bytes.as_slice()).unwrap();
        }
        let tarball = gzip(&builder.into_inner().unwrap());
        assert_refused(&send(Source::Tarball(tarball)), name, status, code, needle);
    }
    let not_base64 = post_json(
        &compile_url,
        Some(root),
        &json!({"organizationId": "default", "name": "bad", "version": "1", "tarball": "%%%"}),
    );
    not_base64.assert_problem(400, "invalid_request");

    // Broken JSON, wrong types, unknown fields, wrong content type, oversized bodies.
    let broken = post_raw(
        &compile_url,
        Some(root),
        "application/json",
        b"{\"organizationId\": ",
    );
    broken.assert_problem(400, "invalid_json");
    let mistyped = post_json(&compile_url, Some(root), &json!({"organizationId": 5}));
    mistyped.assert_problem(400, "invalid_json");
    let unknown = post_json(
        &format!("{}{API}/bundles/activate", server.url),
        Some(root),
        &json!({"bundleId": "x", "force": true}),
    );
    unknown.assert_problem(400, "invalid_json");
    // A struct is an object, not the array of its field values serde would also read.
    let positional = post_json(
        &format!("{}{API}/orgs", server.url),
        Some(root),
        &json!(["acme"]),
    );
    positional.assert_problem(400, "invalid_json");
    let created = post_json(
        &format!("{}{API}/orgs", server.url),
        Some(root),
        &json!({"organizationId": "acme"}),
    );
    assert_eq!(created.status, 201, "the refused request created no org");
    let text = post_raw(&compile_url, Some(root), "text/plain", b"{}");
    text.assert_problem(415, "unsupported_media_type");
    let huge = format!("{{\"organizationId\": \"{}\"}}", "x".repeat(2 << 20));
    let bearer = bearer(root);
    let oversized = post_oversized(
        &compile_url,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        huge.as_bytes(),
    );
    oversized.assert_problem(413, "payload_too_large");
    let bad_version = post_json(
        &compile_url,
        Some(root),
        &json!({"organizationId": "default", "name": "bad", "version": "latest", "files": {}}),
    );
    bad_version.assert_problem(400, "invalid_request");
    let bad_status = get_as(
        &format!("{}{API}/bundles?status=%27%20OR%201%3D1%20--", server.url),
        root,
    );
    bad_status.assert_problem(400, "invalid_request");
    let unknown_bundle = post_json(
        &format!("{}{API}/bundles/publish", server.url),
        Some(root),
        &json!({"bundleId": "' OR '1'='1"}),
    );
    unknown_bundle.assert_problem(404, "not_found");

    // SQL-looking strings are data, never SQL: stored and listed verbatim.
    let sqlish = post_json(
        &compile_url,
        Some(root),
        &json!({"organizationId": "default", "name": "sqlish", "version": "1",
                "revision": "'; DROP TABLE bundles; --",
                "files": {"x'; DROP TABLE bundles; --/p.rego": "package x\n"}}),
    );
    assert_eq!(sqlish.expect(201)["revision"], "'; DROP TABLE bundles; --");

    // The server is still healthy and nothing was stored for the refused uploads.
    assert_eq!(get(&format!("{}/health", server.url), &[]).status, 200);
    let all = get_as(&format!("{}{API}/bundles?name=bad", server.url), root);
    assert_eq!(all.json()["bundles"].as_array().unwrap().len(), 0);
}

/// An OPA-style sidecar: configured from `sck opa-config`, it polls with ETags and long polls
/// and verifies every bundle it downloads with the pinned public key, as OPA does.
#[test]
fn sidecar_follows_opa_polling_protocol_and_verifies_signatures() {
    let server = Server::start();
    let token = server.sidecar().to_owned();
    let yaml = cli::succeeded(server.cli(&[
        "opa-config",
        "--org",
        "default",
        "--bundle",
        "gateway",
        "--sidecar-token",
        &token,
    ]));
    let config: Value = yaml_serde::from_str(&yaml).unwrap();
    let service = &config["services"]["sck"];
    let bundle = &config["bundles"]["gateway"];
    assert_eq!(service["url"], Value::String(server.url.clone()));
    assert_eq!(
        service["credentials"]["bearer"]["token"],
        Value::String(token.clone())
    );
    let key_id = bundle["signing"]["keyid"].as_str().unwrap();
    let key = &config["keys"][key_id];
    assert_eq!(key["algorithm"], "ES256");
    let verification = VerificationConfig {
        keys: [(
            key_id.to_owned(),
            VerificationKey::from_material(key["key"].as_str().unwrap().as_bytes(), None).unwrap(),
        )]
        .into_iter()
        .collect(),
        key_id: Some(key_id.to_owned()),
        ..Default::default()
    };
    let resource = format!(
        "{}/{}",
        service["url"].as_str().unwrap(),
        bundle["resource"].as_str().unwrap()
    );
    let wait = bundle["polling"]["long_polling_timeout_seconds"]
        .as_u64()
        .unwrap();

    let mut etag: Option<String> = None;
    let mut activated = Vec::new();
    for round in 0..3 {
        let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
        if let Some(tag) = &etag {
            headers.push(("If-None-Match".to_owned(), tag.clone()));
            headers.push((
                "Prefer".to_owned(),
                format!("modes=snapshot,delta;wait={wait}"),
            ));
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if round > 0 {
            let server_url = server.url.clone();
            let root = server.root().to_owned();
            let version = format!("{}.0.0", round + 1);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                release::release(&server_url, &root, "default", &version);
            });
        }
        let reply = get(&resource, &refs);
        assert_eq!(reply.status, 200, "round {round}");
        let downloaded = Bundle::read(&reply.body, &Limits::default()).unwrap();
        downloaded
            .verify(&verification)
            .expect("sidecar verifies the bundle");
        activated.push(downloaded.manifest.sck().unwrap().version);
        etag = reply.header("etag");
    }
    assert_eq!(activated, ["1.0.0", "2.0.0", "3.0.0"]);
}

/// Two `sck serve` replicas on one PostgreSQL: an activation on one is served by the other and
/// wakes its long polls.
#[test]
fn two_replicas_on_postgres_share_activations() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let a = deployment.replica();
    let b = deployment.replica();
    let root = a.root();
    let token = a.sidecar().to_owned();
    assert!(
        b.root_key.is_none(),
        "replica B found the database bootstrapped"
    );

    let on_b = fetch(&b.url, "default", &token, None, None);
    assert_eq!(on_b.status, 200);
    let etag = sha256(&on_b.body);

    let b_url = b.url.clone();
    let (tok, tag) = (token.clone(), etag.clone());
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let reply = fetch(&b_url, "default", &tok, Some(&tag), Some(60));
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let activated_at = Instant::now();
    release::release(&a.url, root, "default", "2.0.0");
    let (reply, _) = poller.join().unwrap();
    let woke_after = activated_at.elapsed();
    assert_eq!(reply.status, 200);
    // Woken by NOTIFY from replica A: replica B's own re-check would only come after 5 s.
    assert!(
        woke_after < Duration::from_secs(3),
        "replica B woke after {woke_after:?}"
    );
    let bundle = Bundle::read(&reply.body, &Limits::default()).unwrap();
    assert_eq!(bundle.manifest.sck().unwrap().version, "2.0.0");
    assert_eq!(
        sha256(&fetch(&b.url, "default", &token, None, None).body),
        sha256(&reply.body)
    );
}

/// Publishing signs with the configured signer: ES256 by default, RS256 and HS256 on request;
/// what a sidecar downloads verifies with that signer's key.
#[test]
fn publish_signs_with_es256_rs256_or_hs256_signers() {
    let vectors = support::repo().join("tests/vectors/opa-bundles/keys");
    let server = Server::start_prepared(|dir| {
        let signers = dir.join("signers");
        std::fs::create_dir_all(&signers).unwrap();
        std::fs::copy(vectors.join("rs256.pem"), signers.join("rsa-prod.pem")).unwrap();
        std::fs::copy(
            vectors.join("hs256.secret"),
            signers.join("hmac-prod.secret"),
        )
        .unwrap();
    });
    let (root, token) = (server.root(), server.sidecar());
    let signers = get(&format!("{}{API}/signers", server.url), &[]).json();
    let algorithms: Vec<(String, String)> = signers["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["algorithm"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        algorithms.contains(&("rsa-prod".into(), "RS256".into())),
        "{algorithms:?}"
    );
    assert!(
        algorithms.contains(&("hmac-prod".into(), "HS256".into())),
        "{algorithms:?}"
    );
    assert!(signers["signers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["id"] != "hmac-prod" || s["publicKey"].is_null()));

    for (version, signer, key, alg) in [
        (
            "2.0.0",
            "rsa-prod",
            std::fs::read(vectors.join("rs256.pub.pem")).unwrap(),
            "RS256",
        ),
        (
            "3.0.0",
            "hmac-prod",
            std::fs::read(vectors.join("hs256.secret")).unwrap(),
            "HS256",
        ),
    ] {
        let id = compile(&server.url, root, "default", version).expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let published = release::publish(&server.url, root, &id, Some(signer));
        assert_eq!(published["signerId"], signer);
        release::activate(&server.url, root, &id, false);
        let reply = fetch(&server.url, "default", token, None, None);
        let bundle = Bundle::read(&reply.body, &Limits::default()).unwrap();
        let verified = bundle
            .verify(&VerificationConfig {
                keys: [(
                    signer.to_owned(),
                    VerificationKey::from_material(&key, None).unwrap(),
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (verified.key_id.as_str(), verified.algorithm.as_str()),
            (signer, alg)
        );
    }
    let unknown = post_json(
        &format!("{}{API}/bundles/publish", server.url),
        Some(root),
        &json!({"bundleId": compile(&server.url, root, "default", "4.0.0").json()["id"], "signerId": "nope"}),
    );
    unknown.assert_problem(400, "unknown_signer");
}

/// Concurrent activations of one org/name serialise: every call answers, and afterwards
/// exactly one version is ACTIVE and it is the one served.
#[test]
fn concurrent_activations_leave_exactly_one_active_version() {
    let server = Server::start();
    let (root, token) = (server.root(), server.sidecar());
    let ids: Vec<String> = (2..8)
        .map(|major| {
            release::published(&server.url, root, "default", &format!("{major}.0.0"), None)
        })
        .collect();
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let (url, root, id) = (server.url.clone(), root.to_owned(), id.clone());
            std::thread::spawn(move || {
                post_json(
                    &format!("{url}{API}/bundles/activate"),
                    Some(&root),
                    &json!({"bundleId": id, "rollback": true}),
                )
                .status
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    let active = get_as(
        &format!(
            "{}{API}/bundles?organizationId=default&name=gateway&status=ACTIVE",
            server.url
        ),
        root,
    )
    .json();
    let active = active["bundles"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    let served = fetch(&server.url, "default", token, None, None);
    assert_eq!(
        Some(sha256(&served.body)),
        active[0]["sha256"].as_str().map(str::to_owned)
    );
}

/// The `sck bundle` lifecycle subcommands drive the same API.
#[test]
fn cli_lifecycle_commands_call_the_api() {
    let server = Server::start();
    let policies = support::repo().join("policies");
    let run =
        |args: &[&str]| serde_json::from_str::<Value>(&cli::succeeded(server.cli(args))).unwrap();
    let draft = run(&[
        "bundle",
        "compile",
        policies.to_str().unwrap(),
        "--org",
        "default",
        "--name",
        "gateway",
        "--version",
        "1.5.0",
    ]);
    let id = draft["id"].as_str().unwrap();
    assert_eq!(run(&["bundle", "publish", id])["status"], "PUBLISHED");
    assert_eq!(
        run(&["bundle", "activate", id])["bundle"]["status"],
        "ACTIVE"
    );
    let listed = run(&["bundle", "list", "--status", "ACTIVE"]);
    assert_eq!(listed["bundles"][0]["id"], id);
    let out = server.cli(&["bundle", "revoke", id, "--reason", "test"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[choice_required]"));
}

/// Auditors read their org's ledger over HTTP: entries, proofs that verify, checkpoints, an
/// export that `sck ledger verify` accepts offline with the published key; other orgs cannot.
#[test]
fn ledger_api_serves_entries_proofs_checkpoints_and_exports() {
    let server = Server::start_with_env(&[("SCK_LEDGER__CHECKPOINT_EVERY", "1")]);
    let root = server.root();
    release::release(&server.url, root, "default", "2.0.0");
    let api = |path: &str| format!("{}/api/v1/ledger/default{path}", server.url);
    let page = get_as(&api("/entries?from=0&limit=5"), root).json();
    let size = page["size"].as_u64().unwrap();
    assert!(size >= 5, "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["entries"][0]["entry"]["seq"], 0);
    let third = get_as(&api("/entries/2"), root).json();
    assert_eq!(third["seq"], 2);

    let proof = get_as(&api(&format!("/proof/inclusion?seq=2&size={size}")), root).json();
    let b64 = |v: &Value| -> [u8; 32] {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let path: Vec<[u8; 32]> = proof["proof"].as_array().unwrap().iter().map(b64).collect();
    let leaf: [u8; 32] = hex::decode(third["leaf_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    sck_ledger::merkle::verify_inclusion(&leaf, 2, size, &path, &b64(&proof["root"])).unwrap();
    let consistency = get_as(&api(&format!("/proof/consistency?from=3&to={size}")), root);
    assert_eq!(consistency.status, 200);

    let note = get_as(&api("/checkpoint"), root);
    assert_eq!(note.status, 200);
    assert!(String::from_utf8_lossy(&note.body).starts_with("sck/default\n"));
    let verifier = ledger::published_keys(&server.url, "default")[0].clone();
    let export = ledger::api_export(&server.url, root, "default", &server.data_dir);
    ledger::verify_export(&export, &[verifier]);

    // Another org's admin key sees nothing of this ledger.
    orgs::create(&server.url, root, "org-x");
    let other = orgs::credential(&server.url, root, "org-x", "admin");
    let denied = get_as(&api("/entries"), &other);
    assert_eq!(denied.status, 404);
    let bad = get_as(&api("/proof/inclusion?seq=99999&size=3"), root);
    bad.assert_problem(400, "invalid_request");
}

/// Restarting with a new ledger key rotates: the old public key stays published with its
/// validity window closed, and the log still verifies with both keys.
#[test]
fn a_new_ledger_key_at_start_rotates_the_published_keys() {
    let deployment = Deployment::sqlite();
    let first = deployment.replica();
    let root = first.root().to_owned();
    assert!(first.stop().success());
    let key_file = deployment.data_dir().join("ledger.key");
    std::fs::remove_file(&key_file).unwrap();
    let key_file = key_file.display().to_string();
    cli::ok(&[
        "ledger",
        "key",
        "generate",
        "--name",
        "sck-ledger-2",
        "-o",
        &key_file,
    ]);
    let second = deployment.replica();
    release::release(&second.url, &root, "default", "2.0.0");
    let keys = get(&format!("{}/api/v1/ledger/default/keys", second.url), &[]).json();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let current: Vec<&Value> = keys.iter().filter(|k| k["valid_until"].is_null()).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["name"], "sck-ledger-2");
    assert!(second.stop().success());
    ledger::verify_db(&deployment.database_url, "default");
}

/// A stored bundle whose bytes were changed behind sck's back (disk corruption, a hostile DBA
/// bypassing the immutability trigger) is refused at activation and reported, never served.
#[test]
fn a_corrupted_bundle_row_is_refused_at_activation() {
    let server = Server::start();
    let (root, token) = (server.root(), server.sidecar());
    let id = release::published(&server.url, root, "default", "2.0.0", None);
    let before = sha256(&fetch(&server.url, "default", token, None, None).body);

    let db = &server.database_url;
    // The immutability trigger refuses the change...
    let refused = db::sqlite_execute(
        db,
        "UPDATE bundles SET tarball = x'00' WHERE id = $1",
        &[&id],
    );
    assert!(refused.is_err());
    // ...so simulate corruption below it.
    db::sqlite_execute(db, "DROP TRIGGER bundles_immutable", &[]).unwrap();
    db::sqlite_execute(
        db,
        "UPDATE bundles SET tarball = substr(tarball, 1, length(tarball) - 7) || x'00000000000000' WHERE id = $1",
        &[&id],
    )
    .unwrap();
    let activated = post_json(
        &format!("{}{API}/bundles/activate", server.url),
        Some(root),
        &json!({"bundleId": id}),
    );
    activated.assert_problem(409, "bundle_corrupt");
    assert!(activated.json()["detail"]
        .as_str()
        .unwrap()
        .contains("integrity check"));
    // ...and reported to operators.
    assert_eq!(
        metrics::value(
            &metrics::text(&server.url),
            "sck_bundle_integrity_failures_total{org=\"default\"}"
        ),
        Some(1.0)
    );
    // The previous version is still the one served.
    assert_eq!(
        sha256(&fetch(&server.url, "default", token, None, None).body),
        before
    );
}
