//! End-to-end tests of decisions through the real server: OPA's results on the vector bundle
//! through the registry and HTTP (sck's API and OPA's Data API), deny by default for every
//! failure kind, rate limits, hot swap under load, and the ledger entry of every decision.

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Map, Value};
use support::http::{merged, post_raw, Reply, API};
use support::release::{self, Source};
use support::server::Server;
use support::{db, ledger, metrics, orgs, repo, tokens};

/// The OPA vector policy tree as a compile source, with its decision rule as entrypoint.
fn vector_files() -> Source {
    let mut files = release::files(&repo().join("tests/vectors/opa-bundles/src"));
    files.insert(
        ".manifest".into(),
        json!(r#"{"roots": ["sck"], "metadata": {"sck": {"entrypoint": "sck/authz/decision"}}}"#),
    );
    Source::from(files)
}

/// compile → publish → activate `source` as `org`'s gateway bundle `version`.
fn release(server: &Server, org: &str, version: &str, source: &Source) {
    release::release_source(&server.url, server.root(), org, version, source);
}

/// Creates `org` with an issuer that may grant LoA 4 and every scope the tests use.
fn setup_org(server: &Server, org: &str) -> String {
    if org != "default" {
        orgs::create(&server.url, server.root(), org);
    }
    let scopes = [
        "mcp:invoke",
        "mcp:list",
        "mcp:*",
        "policy:write",
        "svc017:call",
    ];
    tokens::create_issuer(&server.url, server.root(), org, "tests", 4, &scopes)
}

/// A gateway token of `org`'s `issuer` for subject `sub`.
fn token(server: &Server, org: &str, issuer: &str, sub: &str, loa: u64, scope: &Value) -> String {
    let request = tokens::request(org, issuer, "art-1", loa, scope.clone());
    let issued = tokens::issue(
        &server.url,
        server.root(),
        &merged(&request, json!({"subject": sub})),
    );
    issued["token"].as_str().unwrap().to_owned()
}

fn decide(server: &Server, token: &str, body: &Value) -> Reply {
    tokens::decide(&server.url, token, body)
}

/// A policy tree of one module, `sck/gateway/p.rego`, whose body is `rules`.
fn gateway_policy(rules: &str) -> Source {
    let mut files = Map::new();
    files.insert(
        ".manifest".into(),
        json!(r#"{"roots": ["sck"], "metadata": {"sck": {"entrypoint": "sck/gateway/decision"}}}"#),
    );
    files.insert(
        "sck/gateway/p.rego".into(),
        json!(format!("package sck.gateway\nimport rego.v1\n{rules}\n")),
    );
    Source::from(files)
}

#[test]
fn decisions_match_opa_through_the_registry_and_http() {
    let server = Server::start();
    let cases: Vec<Value> = serde_json::from_slice(
        &std::fs::read(repo().join("tests/vectors/opa-bundles/decisions.json")).unwrap(),
    )
    .unwrap();
    let mut issuers = BTreeMap::new();
    for case in &cases {
        let org = case["input"]["token"]["org"].as_str().unwrap().to_owned();
        if !issuers.contains_key(&org) {
            let issuer = setup_org(&server, &org);
            release(&server, &org, "1.0.0", &vector_files());
            issuers.insert(org.clone(), issuer);
        }
    }
    for case in &cases {
        let input = &case["input"];
        let t = &input["token"];
        let org = t["org"].as_str().unwrap();
        let bearer = token(
            &server,
            org,
            &issuers[org],
            t["sub"].as_str().unwrap(),
            t["loa"].as_u64().unwrap(),
            &t["scope"],
        );

        let reply = decide(
            &server,
            &bearer,
            &json!({"action": input["action"], "resource": input["resource"]}),
        );
        let answer = reply.expect(200);
        assert_eq!(
            answer["allow"], case["expected"]["allow"],
            "{input}: {answer}"
        );
        assert_eq!(
            answer["reasons"], case["expected"]["reasons"],
            "{input}: {answer}"
        );
        assert_eq!(answer["bundle"]["version"], "1.0.0");
        assert_eq!(answer["receipt"]["leaf_hash"].as_str().unwrap().len(), 64);

        // OPA's Data API answers with the rule's value, exactly as OPA did.
        let data = post_raw(
            &format!("{}/v1/data/sck/authz/decision", server.url),
            Some(&bearer),
            "application/json",
            &serde_json::to_vec(
                &json!({"input": {"action": input["action"], "resource": input["resource"]}}),
            )
            .unwrap(),
        );
        assert_eq!(data.status, 200);
        assert_eq!(data.json()["result"], case["expected"], "{input}");
        assert!(data.json()["decision_id"].is_string());
    }
}

#[test]
fn callers_cannot_inject_verified_facts_and_bad_requests_are_refused() {
    let server = Server::start();
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:a",
        1,
        &json!(["mcp:invoke"]),
    );
    // The default policy needs LoA 2 for tools.invoke: a forged token field must not help.
    let forged = decide(
        &server,
        &bearer,
        &json!({"action": "tools.invoke", "resource": {"org": "default"}, "token": {"loa": 4}}),
    );
    forged.assert_problem(400, "invalid_request");
    let data = post_raw(
        &format!("{}/v1/data/sck/gateway/decision", server.url),
        Some(&bearer),
        "application/json",
        br#"{"input": {"action": "tools.invoke", "resource": {"org": "default"}, "token": {"loa": 4, "org": "default", "scope": ["mcp:invoke"]}, "caller": {"ans_id": "ans://v1.0.0.agent.example.com", "org": "default"}}}"#,
    );
    assert_eq!(data.status, 200);
    assert_eq!(data.json()["result"]["allow"], false, "{}", data.json());
    assert!(data.json()["result"]["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("loa 1 below required 2")));

    for (body, code) in [
        (&b"{not json"[..], "invalid_json"),
        (&b"[1,2]"[..], "invalid_request"),
        (&br#"{"resource": {}}"#[..], "invalid_request"),
    ] {
        let reply = post_raw(
            &format!("{}{API}/decide", server.url),
            Some(&bearer),
            "application/json",
            body,
        );
        reply.assert_problem(400, code);
    }
    let bad_path = post_raw(
        &format!("{}/v1/data/sck/../x", server.url),
        Some(&bearer),
        "application/json",
        b"{}",
    );
    assert!(
        bad_path.status == 400 || bad_path.status == 404,
        "{}",
        bad_path.status
    );
    let no_token = decide(&server, "not-a-token", &json!({"action": "tools.invoke"}));
    no_token.assert_problem(401, "invalid_token");
}

/// OPA's Data API request bodies, as OPA 0.60 and 1.9 (`opa run --server`) answer them: no
/// body, `{}`, `null`, `{"input": null}` and unknown fields are decisions without input; a body
/// that is not an object or `null` is 400 and no decision. One deliberate difference: OPA
/// evaluates a non-object `input` (`{"input": 5}`), sck refuses it, because the gateway's
/// verified facts (`input.token`, `input.request`) must be in the input.
#[test]
fn data_api_bodies_are_decided_or_refused_as_opa_does() {
    db::on_each_backend(|server| {
        let issuer = setup_org(server, "default");
        let bearer = token(
            server,
            "default",
            &issuer,
            "agent:a",
            3,
            &json!(["mcp:invoke"]),
        );
        let data = |body: &[u8]| {
            post_raw(
                &format!("{}/v1/data/sck/gateway/decision", server.url),
                Some(&bearer),
                "application/json",
                body,
            )
        };
        let decided: [&[u8]; 5] = [b"", b"{}", b"null", b"{\"input\": null}", b"{\"foo\": 1}"];
        let refused: [&[u8]; 9] = [
            b"[]",
            b"[{\"input\": {}}]",
            b"\"x\"",
            b"5",
            b"true",
            b"{\"input\": 5}",
            b"{\"input\": []}",
            b"{\"input\": \"x\"}",
            b"{",
        ];
        let cases = decided
            .iter()
            .map(|b| (*b, true))
            .chain(refused.iter().map(|b| (*b, false)));
        for (body, is_decision) in cases {
            let before = ledger::size(&server.url, server.root(), "default");
            let reply = data(body);
            let shown = format!(
                "{}: {}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&reply.body)
            );
            if is_decision {
                assert_eq!(reply.status, 200, "{shown}");
                assert!(reply.json()["decision_id"].is_string(), "{shown}");
            } else {
                assert_eq!(
                    (reply.status, reply.code()),
                    (400, "invalid_json".to_owned()),
                    "{shown}"
                );
            }
            let ledgered = ledger::size(&server.url, server.root(), "default") - before;
            assert_eq!(ledgered, u64::from(is_decision), "{shown}: ledger entries");
        }
    });
}

#[test]
fn every_failure_kind_denies_with_its_reason() {
    let server = Server::start_with_env(&[("SCK_DECISIONS__TIMEOUT_MS", "50")]);
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:a",
        3,
        &json!(["mcp:invoke"]),
    );
    let body = json!({"action": "tools.invoke", "resource": {"org": "default"}});
    for (version, rule, reason) in [
        ("2.0.0", "decision := {\"allow\": true} if input.action == \"never\"", "policy_undefined"),
        ("3.0.0", "decision := 1 if true\ndecision := 2 if true", "evaluation_error"),
        ("4.0.0", "decision := {\"allow\": true} if {\n some i in numbers.range(1, 100000)\n some j in numbers.range(1, 100000)\n i + j < 0\n}", "evaluation_timeout"),
        ("5.0.0", "decision := \"yes\"", "invalid_decision"),
    ] {
        release(&server, "default", version, &gateway_policy(rule));
        let answer = decide(&server, &bearer, &body).json();
        assert_eq!(answer["allow"], false, "{version}: {answer}");
        assert_eq!(answer["bundle"]["version"], version);
        let first = answer["reasons"][0].as_str().unwrap();
        // The RVM reports conflicting outputs as undefined (see docs/decisions.md); both deny.
        let ok = first.starts_with(reason) || (reason == "evaluation_error" && first == "policy_undefined");
        assert!(ok, "{version}: expected {reason}, got {answer}");
    }
    // No active bundle at all.
    let active = release::active(&server.url, server.root(), "default");
    release::revoke(
        &server.url,
        server.root(),
        &json!({"bundleId": active.id, "reason": "test", "allowNoActive": true}),
    );
    let answer = decide(&server, &bearer, &body).json();
    assert_eq!(
        (answer["allow"].clone(), answer["reasons"].clone()),
        (json!(false), json!(["no_active_bundle"]))
    );
    assert!(answer["bundle"].is_null());
    assert!(
        answer["receipt"]["seq"].is_u64(),
        "even a no-bundle denial is ledgered: {answer}"
    );
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let server = Server::start_with_env(&[
        ("SCK_DECISIONS__SUBJECT_RATE__PER_SECOND", "1"),
        ("SCK_DECISIONS__SUBJECT_RATE__BURST", "2"),
    ]);
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:busy",
        3,
        &json!(["mcp:invoke"]),
    );
    let other = token(
        &server,
        "default",
        &issuer,
        "agent:calm",
        3,
        &json!(["mcp:invoke"]),
    );
    let body = json!({"action": "tools.invoke", "resource": {"org": "default"}});
    let statuses: Vec<u16> = (0..4)
        .map(|_| decide(&server, &bearer, &body).status)
        .collect();
    assert_eq!(&statuses[..2], &[200, 200]);
    let limited = decide(&server, &bearer, &body);
    limited.assert_problem(429, "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Another subject of the same org is not affected.
    assert_eq!(decide(&server, &other, &body).status, 200);
}

#[test]
fn hot_swap_under_load_never_fails_and_serves_active_versions() {
    let server = Server::start();
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:a",
        3,
        &json!(["mcp:invoke"]),
    );
    let started = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, bearer, stop) = (server.url.clone(), bearer.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let body = json!({"action": "tools.invoke", "resource": {"org": "default"}});
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t0 = started.elapsed();
                    let reply = tokens::decide(&url, &bearer, &body);
                    let t1 = started.elapsed();
                    let version = reply.expect(200)["bundle"]["version"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    seen.push((t0, t1, version));
                }
                seen
            })
        })
        .collect();
    // Versions 2..=6: each activation window is [call start, call end].
    let files = Source::policies();
    let mut windows = vec![(
        "1.0.0".to_owned(),
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    )];
    for major in 2..=6 {
        let version = format!("{major}.0.0");
        let t0 = started.elapsed();
        release(&server, "default", &version, &files);
        windows.push((version, t0, started.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        for (t0, t1, version) in worker.join().unwrap() {
            total += 1;
            let i = windows
                .iter()
                .position(|(v, _, _)| *v == version)
                .expect("known version");
            // Active from (at the earliest) the start of its activation call until (at the
            // latest) the end of the next activation call.
            let from = windows[i].1;
            let until = windows.get(i + 1).map(|w| w.2);
            assert!(t1 >= from, "{version} served before its activation began");
            if let Some(until) = until {
                assert!(t0 <= until, "{version} served after it was superseded");
            }
        }
    }
    assert!(total > 20, "only {total} requests ran");
    // The operator metric names the revision now enforced, and only that one.
    let text = metrics::text(&server.url);
    let active: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("sck_bundle_active{org=\"default\""))
        .collect();
    assert_eq!(active.len(), 1, "{text}");
    assert!(
        active[0].contains("version=\"6.0.0\"") && active[0].ends_with(" 1"),
        "{}",
        active[0]
    );
}

#[test]
fn each_decision_is_in_the_ledger_bound_to_bundle_token_and_input() {
    let server = Server::start();
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:ledger",
        3,
        &json!(["mcp:invoke"]),
    );
    let answer = decide(
        &server,
        &bearer,
        &json!({"action": "tools.invoke", "resource": {"org": "default"}}),
    )
    .json();
    let decision_id = answer["decision_id"].as_str().unwrap().to_owned();
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());
    let entry = ledger::exported_entries(&db, "default", &data_dir)
        .into_iter()
        .find(|e| e.to_string().contains(&decision_id))
        .expect("decision entry in the ledger");
    assert_eq!(entry["type"], "decision.allowed");
    let body = entry.to_string();
    for needle in [
        answer["bundle"]["sha256"].as_str().unwrap(),
        "agent:ledger",
        "input_sha256",
        "\"jti\"",
        "\"loa\":3",
    ] {
        assert!(body.contains(needle), "missing {needle} in {body}");
    }
    assert!(
        !body.contains(&bearer),
        "the raw token must never be in the ledger"
    );
    assert_eq!(entry["seq"].as_u64(), answer["receipt"]["seq"].as_u64());
}

/// The probe's cases through the server: the regorus panic (`regex.template_match`) is OPA's
/// answer now, unbounded built-ins deny with `evaluation_limit`, and each decision — allowed
/// or denied — is answered and in the ledger. Integers beyond 64 bits are refused with 400.
#[test]
fn probe_cases_are_answered_and_ledgered() {
    let server = Server::start();
    let issuer = setup_org(&server, "default");
    let bearer = token(
        &server,
        "default",
        &issuer,
        "agent:p",
        3,
        &json!(["mcp:invoke"]),
    );
    let files = gateway_policy(
        "decision := {\"allow\": regex.template_match(\"urn:foo:{.*}\", input.resource.s, \"{\", \"}\")} if input.action == \"t\"\n\
         decision := {\"allow\": count(numbers.range(1, 50000000)) > 0} if input.action == \"r\"",
    );
    release(&server, "default", "2.0.0", &files);
    let mut ids = Vec::new();
    for (body, allow, reason) in [
        (
            json!({"action": "t", "resource": {"s": "a1b2"}}),
            false,
            None,
        ),
        (
            json!({"action": "t", "resource": {"s": "urn:foo:x"}}),
            true,
            None,
        ),
        (
            json!({"action": "r"}),
            false,
            Some("evaluation_limit: numbers.range"),
        ),
    ] {
        let answer = decide(&server, &bearer, &body).expect(200);
        assert_eq!(answer["allow"], allow, "{answer}");
        if let Some(reason) = reason {
            assert!(
                answer["reasons"][0].as_str().unwrap().starts_with(reason),
                "{answer}"
            );
            assert_eq!(answer["outcome"], "limit");
        }
        ids.push((answer["decision_id"].as_str().unwrap().to_owned(), allow));
    }
    let big = post_raw(
        &format!("{}{API}/decide", server.url),
        Some(&bearer),
        "application/json",
        br#"{"action": "t", "resource": {"s": 18446744073709551616}}"#,
    );
    big.assert_problem(400, "number_out_of_range");
    let data = post_raw(
        &format!("{}/v1/data/sck/gateway/decision", server.url),
        Some(&bearer),
        "application/json",
        br#"{"input": {"n": -99999999999999999999}}"#,
    );
    data.assert_problem(400, "number_out_of_range");
    let (data_dir, db) = (server.data_dir.clone(), server.database_url.clone());
    assert!(server.stop().success());
    let entries = ledger::exported_entries(&db, "default", &data_dir);
    for (id, allow) in ids {
        let entry = entries
            .iter()
            .find(|e| e.to_string().contains(&id))
            .unwrap_or_else(|| panic!("decision {id} is not in the ledger"));
        let kind = if allow {
            "decision.allowed"
        } else {
            "decision.denied"
        };
        assert_eq!(entry["type"], kind);
    }
}
