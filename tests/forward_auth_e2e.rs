//! The forward-auth endpoint as nginx `auth_request`, Traefik `ForwardAuth` and Envoy's
//! ext_authz HTTP service call it (the headers each sends, written here by hand; the real
//! nginx is `nginx_e2e.rs`): a `forward_auth` route's path is allowed (200 with
//! the decision and subject headers), denied (403 with the decision id) or refused without a
//! valid token (401 with `WWW-Authenticate`); X-SCK signed callers are verified over the
//! original request and decided as themselves; path tricks and ambiguous or missing original
//! requests are refused; every decision is in the ledger; sck never serves the route itself.

mod support;

use serde_json::json;
use support::http::{post_json, request, Reply, API};
use support::server::Server;
use support::signed::{self, Call, Key};
use support::{db, ledger, orgs, routes};

const ENDPOINT: &str = "/api/v1/enforcement/forward-auth";

/// A request to the endpoint (method, path, headers) and the status and code refusing it.
type Refusal<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, &'a str);

fn ask(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(method, &format!("{}{path}", server.url), headers, b"")
}

#[test]
fn proxies_get_allow_deny_and_401_with_decision_headers_and_every_decision_ledgered() {
    db::on_each_backend(|server| {
        let token = routes::forward_auth_reader(server);
        let bearer = format!("Bearer {token}");
        let auth = ("authorization", bearer.as_str());
        let mut decisions = Vec::new();

        // nginx (X-Original-*), Traefik (X-Forwarded-*), Envoy (method and path): a read is
        // allowed with the headers the proxy copies upstream.
        let nginx = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/reports/q1?year=2026"),
            auth,
        ];
        let traefik = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/reports/q1"),
            ("x-forwarded-host", "app.example"),
            auth,
        ];
        for reply in [
            ask(server, "GET", ENDPOINT, &nginx),
            ask(server, "GET", ENDPOINT, &traefik),
            ask(
                server,
                "GET",
                &format!("{ENDPOINT}/reports/q1?year=2026"),
                &[auth],
            ),
        ] {
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.header("x-sck-org").as_deref(), Some("default"));
            assert_eq!(reply.header("x-sck-route").as_deref(), Some("reports"));
            assert!(reply.header("x-sck-subject").is_some_and(|s| !s.is_empty()));
            decisions.push((
                "decision.allowed",
                reply.header("x-sck-decision-id").unwrap(),
            ));
        }

        // A write needs http:write: 403 naming the decision, whichever proxy asks.
        for reply in [
            ask(
                server,
                "GET",
                ENDPOINT,
                &[
                    ("x-original-method", "POST"),
                    ("x-original-uri", "/reports/q1"),
                    auth,
                ],
            ),
            ask(server, "POST", &format!("{ENDPOINT}/reports/q1"), &[auth]),
            ask(server, "DELETE", &format!("{ENDPOINT}/reports"), &[auth]),
        ] {
            assert_eq!(reply.status, 403, "{}", reply.text());
            assert_eq!(reply.code(), "forbidden");
            decisions.push((
                "decision.denied",
                reply.header("x-sck-decision-id").unwrap(),
            ));
        }

        // No token, or a bad one: 401 with the challenge the proxy passes to the client.
        for headers in [vec![], vec![("authorization", "Bearer not-a-token")]] {
            let mut headers = headers;
            headers.extend([
                ("x-original-method", "GET"),
                ("x-original-uri", "/reports/q1"),
            ]);
            let reply = ask(server, "GET", ENDPOINT, &headers);
            assert_eq!(reply.status, 401, "{}", reply.text());
            let challenge = reply.header("www-authenticate").unwrap();
            assert!(
                challenge.starts_with("Bearer resource_metadata=")
                    && challenge.contains("/.well-known/oauth-protected-resource/reports"),
                "{challenge}"
            );
        }

        // Every decision is in the ledger, as the proxy was told.
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::entries(&ledger::export(&server.database_url, "default", dir.path()));
        let ledgered: Vec<(&str, String)> = entries
            .iter()
            .filter(|e| e["body"]["call"]["route"] == "reports")
            .map(|e| {
                (
                    e["type"].as_str().unwrap(),
                    e["body"]["decision_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(ledgered, decisions);
        let text = serde_json::to_string(&entries).unwrap();
        assert!(!text.contains(&token), "the token is in the ledger");

        // sck does not serve a forward_auth route's path itself.
        let direct = ask(server, "GET", "/reports/q1", &[auth]);
        assert_eq!((direct.status, direct.code()), (404, "not_found".into()));
    });
}

#[test]
fn unreadable_original_requests_and_path_tricks_are_refused_before_deciding() {
    db::on_each_backend(|server| {
        let token = routes::forward_auth_reader(server);
        let bearer = format!("Bearer {token}");
        let auth = ("authorization", bearer.as_str());
        let before = ledger::size(&server.url, server.root(), "default");
        let cases: Vec<Refusal> = vec![
            ("GET", ENDPOINT.into(), vec![auth], 400, "missing_header"),
            (
                "GET",
                ENDPOINT.into(),
                vec![("x-original-uri", "/reports/q1"), auth],
                400,
                "missing_header",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/reports/q1"),
                    ("x-forwarded-uri", "/public"),
                    ("x-forwarded-method", "GET"),
                    auth,
                ],
                400,
                "ambiguous_original",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/reports/q1"),
                    ("x-original-uri", "/reports/q2"),
                    auth,
                ],
                400,
                "duplicate_header",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "reports"),
                    auth,
                ],
                400,
                "invalid_header",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "G ET"),
                    ("x-original-uri", "/reports"),
                    auth,
                ],
                400,
                "invalid_header",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/reports/../admin"),
                    auth,
                ],
                400,
                "path_refused",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-uri", "/reports/%2e%2e/admin"),
                    auth,
                ],
                400,
                "path_refused",
            ),
            (
                "GET",
                format!("{ENDPOINT}/reports//x"),
                vec![auth],
                400,
                "path_refused",
            ),
            (
                "GET",
                format!("{ENDPOINT}/reports/%2E%2E/admin"),
                vec![auth],
                400,
                "path_refused",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/elsewhere"),
                    auth,
                ],
                403,
                "no_route",
            ),
            (
                "GET",
                ENDPOINT.into(),
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/reportsx"),
                    auth,
                ],
                403,
                "no_route",
            ),
        ];
        for (method, path, headers, status, code) in cases {
            let reply = ask(server, method, &path, &headers);
            assert_eq!(
                (reply.status, reply.code()),
                (status, code.to_owned()),
                "{path} {headers:?}: {}",
                reply.text()
            );
            assert!(reply.header("x-sck-decision-id").is_none());
        }
        assert_eq!(
            ledger::size(&server.url, server.root(), "default"),
            before,
            "a refused request was decided"
        );

        // A forward_auth route has no upstream and no credential.
        for body in [
            json!({"organizationId": "default", "id": "x1", "prefix": "/x1", "kind": "forward_auth", "upstream": "http://h/"}),
            json!({"organizationId": "default", "id": "x2", "prefix": "/x2", "kind": "forward_auth", "credentialHeader": "x-key", "credential": "k"}),
            json!({"organizationId": "default", "id": "x3", "prefix": "/x3", "kind": "http"}),
        ] {
            let reply = post_json(
                &format!("{}{API}/routes", server.url),
                Some(server.root()),
                &body,
            );
            assert_eq!(
                (reply.status, reply.code()),
                (400, "invalid_route".into()),
                "{body}"
            );
        }
    });
}

const PUBLIC: &str = "https://gateway.example.com";

/// Signed headers and the proxy's own sent to the nginx endpoint, and the status and code
/// refusing them.
type SignedRefusal<'a> = (Vec<(String, String)>, Vec<(&'a str, &'a str)>, u16, &'a str);
const ANS: &str = "ans://v1.0.0.reports.example.com";

/// The X-SCK headers of `method` `target` with `body`, signed by `key` as [`ANS`] of `org`
/// (after `tamper` changed the call).
fn signed(
    key: &Key,
    org: &str,
    method: &str,
    target: &str,
    body: &[u8],
    tamper: impl FnOnce(&mut Call),
) -> Vec<(String, String)> {
    let mut call = Call::new(PUBLIC, ANS, org, body.to_vec());
    call.method = method.into();
    call.path_and_query = target.into();
    tamper(&mut call);
    call.headers(key)
}

/// `method` `path` with the `signed` X-SCK headers and a proxy's `extra` ones.
fn send<'a>(
    server: &Server,
    method: &str,
    path: &str,
    signed: &'a [(String, String)],
    extra: &[(&'a str, &'a str)],
    body: &[u8],
) -> Reply {
    let mut headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.extend_from_slice(extra);
    request(method, &format!("{}{path}", server.url), &headers, body)
}

#[test]
fn signed_callers_are_verified_and_decided_as_themselves_and_each_refusal_has_its_code() {
    let server = Server::start_with_env(&[("SCK_PUBLIC_URL", PUBLIC)]);
    let token = routes::forward_auth_reader(&server);
    routes::release_with_caller(&server, "2.0.0", ANS, &["http.get", "http.post"]);

    let (secret, _) = signed::pin_hmac(&server.url, server.root(), "default", ANS);
    let key = Key::Hmac(secret);
    let nginx = |method: &'static str, uri: &'static str| {
        [("x-original-method", method), ("x-original-uri", uri)]
    };
    let mut decisions = Vec::new();

    // nginx asks about a signed read: allowed as the caller, named by its ANS ID.
    let read = signed(&key, "default", "GET", "/reports/q1?year=2026", b"", |_| {});
    let reply = send(
        &server,
        "GET",
        ENDPOINT,
        &read,
        &nginx("GET", "/reports/q1?year=2026"),
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-sck-subject").as_deref(), Some(ANS));
    decisions.push((
        "decision.allowed",
        reply.header("x-sck-decision-id").unwrap(),
    ));

    // Envoy forwards the body it was configured to: a signed post covers it and is allowed;
    // a delete the caller may not make is denied by policy, as the caller.
    let body = br#"{"quarter": 2}"#;
    let post = signed(&key, "default", "POST", "/reports/q2", body, |_| {});
    let reply = send(
        &server,
        "POST",
        &format!("{ENDPOINT}/reports/q2"),
        &post,
        &[],
        body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    decisions.push((
        "decision.allowed",
        reply.header("x-sck-decision-id").unwrap(),
    ));
    let delete = signed(&key, "default", "DELETE", "/reports/q2", b"", |_| {});
    let reply = send(
        &server,
        "DELETE",
        &format!("{ENDPOINT}/reports/q2"),
        &delete,
        &[],
        b"",
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        reply.text().contains("caller_action_denied"),
        "{}",
        reply.text()
    );
    decisions.push((
        "decision.denied",
        reply.header("x-sck-decision-id").unwrap(),
    ));

    // Each refusal before deciding has its code; nothing of it is decided.
    let acme_ans = "ans://v1.0.0.acme.example.com";
    orgs::create(&server.url, server.root(), "org-acme");
    let (acme_secret, _) = signed::pin_hmac(&server.url, server.root(), "org-acme", acme_ans);
    let other_org = {
        let mut call = Call::new(PUBLIC, acme_ans, "org-acme", Vec::new());
        call.method = "GET".into();
        call.path_and_query = "/reports/q1".into();
        call.headers(&Key::Hmac(acme_secret))
    };
    let bearer = format!("Bearer {token}");
    let fresh = || signed(&key, "default", "GET", "/reports/q1", b"", |_| {});
    let cases: Vec<SignedRefusal> = vec![
        // The same signed request again.
        (
            read.clone(),
            nginx("GET", "/reports/q1?year=2026").to_vec(),
            401,
            "replayed_nonce",
        ),
        // Signed for another path, method or query than the one asked about.
        (
            fresh(),
            nginx("GET", "/reports/q9").to_vec(),
            401,
            "signature_mismatch",
        ),
        (
            fresh(),
            nginx("POST", "/reports/q1").to_vec(),
            401,
            "signature_mismatch",
        ),
        (
            fresh(),
            nginx("GET", "/reports/q1?all=1").to_vec(),
            401,
            "signature_mismatch",
        ),
        // nginx and Traefik send no body: a signature over one cannot be checked, so it fails.
        (
            signed(&key, "default", "GET", "/reports/q1", b"", |c| {
                c.signed_body = Some(b"{}".to_vec())
            }),
            nginx("GET", "/reports/q1").to_vec(),
            401,
            "signature_mismatch",
        ),
        // A caller pinned to another org.
        (
            other_org,
            nginx("GET", "/reports/q1").to_vec(),
            401,
            "org_mismatch",
        ),
        // A token and a signature at once.
        (
            fresh(),
            vec![
                ("x-original-method", "GET"),
                ("x-original-uri", "/reports/q1"),
                ("authorization", bearer.as_str()),
            ],
            400,
            "ambiguous_credentials",
        ),
    ];
    for (signed, extra, status, code) in &cases {
        let reply = send(&server, "GET", ENDPOINT, signed, extra, b"");
        assert_eq!(
            (reply.status, reply.code()),
            (*status, code.to_string()),
            "{}",
            reply.text()
        );
        assert!(reply.header("x-sck-decision-id").is_none());
    }
    // Envoy's forwarded body must be the signed one.
    let tampered = signed(&key, "default", "POST", "/reports/q2", body, |_| {});
    let reply = send(
        &server,
        "POST",
        &format!("{ENDPOINT}/reports/q2"),
        &tampered,
        &[],
        b"{}",
    );
    assert_eq!(
        (reply.status, reply.code()),
        (401, "signature_mismatch".into())
    );

    // Every decision is ledgered with the caller; refusals are ledgered as X-SCK rejections,
    // never as decisions.
    let dir = tempfile::tempdir().unwrap();
    let entries = ledger::entries(&ledger::export(&server.database_url, "default", dir.path()));
    let ledgered: Vec<(&str, String)> = entries
        .iter()
        .filter(|e| e["body"]["call"]["route"] == "reports")
        .map(|e| {
            assert!(e.to_string().contains(ANS), "{e}");
            (
                e["type"].as_str().unwrap(),
                e["body"]["decision_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(ledgered, decisions);
    let rejected = entries
        .iter()
        .filter(|e| e["type"] == "upstream.rejected")
        .count();
    assert_eq!(rejected, 6, "one per refused signature of the default org");
}
