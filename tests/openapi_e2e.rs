//! Contract test of the OpenAPI document a running `sck serve` publishes at `/openapi.json`:
//!
//! - it is a valid OpenAPI 3.1 document (structure, unique operation ids, declared path
//!   parameters, tags and security schemes, resolvable `$ref`s, JSON Schema 2020-12 schemas);
//! - it documents exactly what the router serves: every documented operation answers (never
//!   the 404 of an unknown route), other methods on a documented path are 405, and the router
//!   code registers routes only through `utoipa_axum::routes!` (so only annotated handlers) of
//!   the modules the document gathers;
//! - real answers — successes and errors of every area — validate against the documented
//!   response of their status and content type (schemas checked with `jsonschema`, `$ref`s
//!   resolved into the document's components), and every operation is seen succeeding.

mod support;

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::http::{gzip, post_json, post_raw, request as send, Reply};
use support::release::{compile_request, Source};
use support::server::Server;
use support::signed::{Call, Key, VERIFY};
use support::{repo, sidecar};

const PUBLIC: &str = "https://gateway.example.com";
const ORG: &str = "acme";
const ANS: &str = "ans://v1.0.0.agent.acme.example.com";
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The published document and the answers checked against it.
struct Contract {
    doc: Value,
    /// (method, path template) of every operation seen answering 2xx.
    succeeded: RefCell<BTreeSet<(String, String)>>,
}

impl Contract {
    fn fetch(server: &Server) -> Contract {
        let reply = send("get", &format!("{}/openapi.json", server.url), &[], &[]);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let contract = Contract {
            doc: reply.json(),
            succeeded: RefCell::default(),
        };
        contract.check("get", "/openapi.json", &reply);
        contract
    }

    fn operations(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item.get(method).is_some() {
                    all.push((method.to_owned(), path.clone()));
                }
            }
        }
        all
    }

    /// `schema` as a standalone JSON Schema whose `#/components/...` references resolve.
    fn standalone(&self, schema: &Value) -> Value {
        let mut root = schema.clone();
        root.as_object_mut()
            .expect("a schema object")
            .insert("components".into(), self.doc["components"].clone());
        root
    }

    /// Asserts that `reply` is a documented answer of `method template`: its status is
    /// documented, its content type too, and a JSON body validates against the schema.
    fn check(&self, method: &str, template: &str, reply: &Reply) {
        let operation = &self.doc["paths"][template][method];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let status = reply.status.to_string();
        let response = &operation["responses"][&status];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which is not documented: {}",
            reply.text()
        );
        if (200..300).contains(&reply.status) {
            self.succeeded
                .borrow_mut()
                .insert((method.to_owned(), template.to_owned()));
        }
        let Some(content) = response["content"].as_object() else {
            assert!(
                reply.body.is_empty(),
                "{method} {template} {status} has a body but none is documented"
            );
            return;
        };
        let media = reply.header("content-type").unwrap_or_default();
        let media = media.split(';').next().unwrap().trim().to_owned();
        let documented = content.get(&media).unwrap_or_else(|| {
            panic!(
                "{method} {template} {status}: content type {media:?} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            )
        });
        if !media.ends_with("json") {
            assert!(
                !reply.body.is_empty(),
                "{method} {template} {status}: no body"
            );
            return;
        }
        let schema = self.standalone(&documented["schema"]);
        let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| {
            panic!("{method} {template} {status}: schema does not compile: {e}")
        });
        let body = reply.json();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the answer does not match the documented schema:\n{}\nanswer: {body}",
            errors.join("\n")
        );
    }
}

/// Follows a `#/...` JSON pointer within `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The parts of the OpenAPI 3.1 specification a generator could get wrong.
fn assert_valid_openapi(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi version");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts[0] == "3" && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "openapi: {version}"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut operation_ids = BTreeSet::new();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let templated: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap())
            .collect();
        assert!(
            templated.iter().all(|name| !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')),
            "{path}: path parameters must be plain names"
        );
        let item = item.as_object().unwrap();
        for key in item.keys() {
            assert!(
                METHODS.contains(&key.as_str())
                    || ["parameters", "summary", "description"].contains(&key.as_str()),
                "{path}: unexpected {key}"
            );
        }
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id), "duplicate operationId {id}");
            for tag in operation["tags"].as_array().expect("tags") {
                assert!(
                    tags.contains(tag.as_str().unwrap()),
                    "{method} {path}: undeclared tag {tag}"
                );
            }
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, templated, "{method} {path}: path parameters");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (status, response) in responses {
                assert!(
                    status == "default"
                        || (status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit())),
                    "{method} {path}: status {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status}"
                );
            }
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(name),
                        "{method} {path}: unknown scheme {name}"
                    );
                }
            }
        }
    }
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        assert!(
            resolve(doc, reference).is_some(),
            "unresolved $ref {reference}"
        );
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("schema {name} is not JSON Schema 2020-12: {e}");
        }
    }
}

fn source(path: &str) -> String {
    std::fs::read_to_string(repo().join("gateway/src").join(path)).unwrap()
}

/// The names `NAME` of every `routes::NAME::router` in `text`.
fn merged_route_modules(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices("routes::")
        // `routes::` as a whole path segment, not the end of a name like `gateway_routes::`.
        .filter(|(at, _)| !text[..*at].ends_with(ident))
        .filter_map(|(at, _)| {
            let rest = &text[at + "routes::".len()..];
            let name: String = rest.chars().take_while(|&c| ident(c)).collect();
            rest[name.len()..].starts_with("::router").then_some(name)
        })
        .collect()
}

#[test]
fn the_router_registers_routes_only_through_documented_handlers() {
    // What `server::app` serves: the route modules it merges and the document's own route.
    let server = source("server.rs");
    let merged = merged_route_modules(&server);
    assert!(
        merged.len() >= 10,
        "route modules merged in server.rs: {merged:?}"
    );
    assert!(server.contains(".merge(crate::openapi::router())"));
    // What the document gathers.
    let documented = source("routes/mod.rs");
    for module in &merged {
        assert!(
            documented.contains(&format!(".merge({module}::router())"))
                || documented.contains(&format!(".merge({module}::routes())")),
            "routes::{module} is served but missing from routes::documented()"
        );
    }
    // Routes come only from `utoipa_axum::routes!` (annotated handlers), never plain axum.
    let mut files = vec!["server.rs".to_owned(), "openapi.rs".to_owned()];
    for entry in std::fs::read_dir(repo().join("gateway/src/routes")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "mod.rs" || merged.contains(name.trim_end_matches(".rs")),
            "routes/{name} is not merged by server.rs"
        );
        files.push(format!("routes/{name}"));
    }
    for file in files {
        let text = source(&file);
        for plain in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !text.contains(plain),
                "{file} registers a route with {plain}...): use utoipa_axum::routes! on a #[utoipa::path] handler"
            );
        }
    }
}

#[test]
fn the_document_is_valid_openapi_and_documents_every_served_route() {
    let server = Server::start();
    let contract = Contract::fetch(&server);
    assert_valid_openapi(&contract.doc);
    let operations = contract.operations();
    assert!(operations.len() >= 40, "{} operations", operations.len());

    // An unknown route is the fallback's 404: what a documented but unserved route would get.
    let unknown = send("get", &format!("{}/no/such/route", server.url), &[], &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "not_found");

    for (method, template) in &operations {
        let path = template
            .replace("{seq}", "0")
            .replace("{file}", "gateway.tar.gz")
            .replace("{path}", "sck/gateway/decision")
            .replace("{partition}", "part")
            .replace("{id}", "no-such-bundle")
            .replace("{org}", "default");
        // Without credentials: protected routes refuse, public ones answer.
        let reply = send(
            method,
            &format!("{}{path}", server.url),
            &[("Content-Type", "application/json")],
            if method == "post" { b"{}" } else { b"" },
        );
        assert!(
            reply.status != 404 && reply.status != 405,
            "{method} {template} is documented but not served ({}): {}",
            reply.status,
            reply.text()
        );
        contract.check(method, template, &reply);
        // Every method the router serves on this path is documented. (The X-SCK layer
        // refuses an unsigned request before the method is matched.)
        let item = &contract.doc["paths"][template];
        let signed = item[method.as_str()]["security"][0]
            .get("xsck_signature")
            .is_some();
        for other in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let reply = send(other, &format!("{}{path}", server.url), &[], &[]);
            let refused = match signed {
                true => reply.status == 400 && reply.code() == "missing_header",
                false => reply.status == 405,
            };
            assert!(
                refused,
                "{other} {template} is served ({}) but not documented",
                reply.status
            );
        }
    }

    // The checks above are not vacuous: an undocumented status or a body that does not
    // match the documented schema is refused.
    let answer = |status: u16, body: &[u8]| {
        let mut headers = ureq::http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        Reply {
            status,
            headers,
            body: body.to_vec(),
        }
    };
    let refuses = |reply: Reply| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            contract.check("get", "/health", &reply)
        }))
        .is_err()
    };
    assert!(!refuses(answer(200, br#"{"status": "ok"}"#)));
    assert!(refuses(answer(200, br#"{"status": 1}"#)));
    assert!(refuses(answer(200, br#"{}"#)));
    assert!(refuses(answer(418, br#"{"status": "ok"}"#)));
}

/// A running server, its document, and calls checked against it.
struct Api {
    server: Server,
    contract: Contract,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    fn root(&self) -> Option<&str> {
        self.server.root_key.as_deref()
    }

    /// Checks `reply` against the document, after asserting its status.
    fn expect(&self, method: &str, template: &str, reply: Reply, status: u16) -> Reply {
        assert_eq!(
            reply.status,
            status,
            "{method} {template}: {}",
            reply.text()
        );
        self.contract.check(method, template, &reply);
        reply
    }

    fn post(
        &self,
        template: &str,
        path: &str,
        key: Option<&str>,
        body: Value,
        status: u16,
    ) -> Reply {
        let reply = post_json(&self.url(path), key, &body);
        self.expect("post", template, reply, status)
    }

    fn get(&self, template: &str, path: &str, key: Option<&str>, status: u16) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let reply = send("get", &self.url(path), &headers, &[]);
        self.expect("get", template, reply, status)
    }

    fn send(
        &self,
        method: &str,
        template: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        status: u16,
    ) -> Reply {
        let reply = send(method, &self.url(path), headers, body);
        self.expect(method, template, reply, status)
    }
}

fn ops_and_credentials(api: &Api) -> (String, String) {
    for path in ["/health", "/ready", "/metrics"] {
        api.get(path, path, None, 200);
    }
    api.get(
        "/api/v1/enforcement/signers",
        "/api/v1/enforcement/signers",
        None,
        200,
    );

    let orgs = "/api/v1/enforcement/orgs";
    api.post(orgs, orgs, api.root(), json!({"organizationId": ORG}), 201);
    api.post(
        orgs,
        orgs,
        api.root(),
        json!({"organizationId": "no spaces"}),
        400,
    );
    api.post(orgs, orgs, None, json!({"organizationId": ORG}), 401);
    let credentials = "/api/v1/enforcement/credentials";
    let create = |kind: &str| {
        api.post(
            credentials,
            credentials,
            api.root(),
            json!({"organizationId": ORG, "kind": kind}),
            201,
        )
        .json()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin, sidecar) = (create("admin"), create("sidecar"));
    api.post(
        orgs,
        orgs,
        Some(&admin),
        json!({"organizationId": "other"}),
        403,
    );
    api.post(
        credentials,
        credentials,
        api.root(),
        json!({"organizationId": ORG, "kind": "robot"}),
        400,
    );
    api.post(
        credentials,
        credentials,
        api.root(),
        json!({"organizationId": "nowhere", "kind": "admin"}),
        404,
    );
    api.post(
        credentials,
        credentials,
        Some(&admin),
        json!({"organizationId": "default", "kind": "admin"}),
        403,
    );
    (admin, sidecar)
}

/// The bundle lifecycle and the bundle service.
fn bundles(api: &Api, admin: &str, sidecar: &str) {
    let key = Some(admin);
    let compile = "/api/v1/enforcement/bundles/compile";
    let source = |version: &str| compile_request(ORG, "gateway", version, &Source::policies());
    let v1 = api.post(compile, compile, key, source("1.0.0"), 201).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(compile, compile, key, source("1.0.0"), 409);
    api.post(compile, compile, None, source("1.0.1"), 401);
    api.post(
        compile,
        compile,
        key,
        json!({"organizationId": "default", "name": "gateway", "version": "1.0.0", "files": {}}),
        403,
    );
    api.post(compile, compile, key, json!({"organizationId": ORG, "name": "gateway", "version": "1.0.2", "files": {}, "tarball": ""}), 400);
    let broken = api.post(
        compile,
        compile,
        key,
        json!({"organizationId": ORG, "name": "gateway", "version": "1.0.3",
               "files": {".manifest": "{\"roots\": [\"sck\"]}", "sck/policy.rego": "package sck\nallow if {"}}),
        422,
    );
    assert_eq!(broken.code(), "bundle_invalid");

    let publish = "/api/v1/enforcement/bundles/publish";
    let published = api
        .post(publish, publish, key, json!({"bundleId": v1}), 200)
        .json();
    api.post(
        publish,
        publish,
        key,
        json!({"bundleId": "no-such-bundle"}),
        404,
    );
    let activate = "/api/v1/enforcement/bundles/activate";
    api.post(activate, activate, key, json!({"bundleId": v1}), 200);
    let v2 = api.post(compile, compile, key, source("2.0.0"), 201).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(activate, activate, key, json!({"bundleId": v2}), 409);
    let revoke = "/api/v1/enforcement/bundles/revoke";
    api.post(
        revoke,
        revoke,
        key,
        json!({"bundleId": v2, "reason": "not needed"}),
        200,
    );
    api.post(
        revoke,
        revoke,
        key,
        json!({"bundleId": v2, "reason": "again"}),
        409,
    );

    let list = "/api/v1/enforcement/bundles";
    api.get(
        list,
        &format!("{list}?organizationId={ORG}&status=ACTIVE"),
        key,
        200,
    );
    api.get(list, &format!("{list}?status=BOGUS"), key, 400);
    api.get(list, &format!("{list}?organizationId=default"), key, 403);
    let one = "/api/v1/enforcement/bundles/{id}";
    api.get(one, &format!("{list}/{v1}"), key, 200);
    api.get(one, &format!("{list}/no-such-bundle"), key, 404);

    // The bundle service, as OPA polls it.
    let active = "/bundles/{org}/{file}";
    let auth = format!("Bearer {sidecar}");
    let fetched = api.send(
        "get",
        active,
        &format!("/bundles/{ORG}/gateway.tar.gz"),
        &[("Authorization", &auth)],
        b"",
        200,
    );
    let etag = fetched.header("etag").unwrap();
    api.send(
        "get",
        active,
        &format!("/bundles/{ORG}/gateway.tar.gz"),
        &[("Authorization", &auth), ("If-None-Match", &etag)],
        b"",
        304,
    );
    let long_poll = api.send(
        "get",
        active,
        &format!("/bundles/{ORG}/gateway.tar.gz"),
        &[
            ("Authorization", &auth),
            ("If-None-Match", "\"stale\""),
            ("Prefer", "modes=snapshot;wait=5"),
        ],
        b"",
        200,
    );
    assert_eq!(
        long_poll.header("content-type").unwrap(),
        "application/vnd.openpolicyagent.bundles"
    );
    api.send(
        "get",
        active,
        "/bundles/default/gateway.tar.gz",
        &[("Authorization", &auth)],
        b"",
        403,
    );
    api.send(
        "get",
        active,
        &format!("/bundles/{ORG}/nothing.tar.gz"),
        &[("Authorization", &auth)],
        b"",
        404,
    );
    api.send(
        "get",
        active,
        &format!("/bundles/{ORG}/gateway.tar.gz"),
        &[],
        b"",
        401,
    );
    let sha256 = published["sha256"].as_str().unwrap().to_owned();
    let by_digest = "/bundles/{org}/sha256/{file}";
    api.send(
        "get",
        by_digest,
        &format!("/bundles/{ORG}/sha256/{sha256}.tar.gz"),
        &[("Authorization", &auth)],
        b"",
        200,
    );
    api.send(
        "get",
        by_digest,
        &format!("/bundles/{ORG}/sha256/{}.tar.gz", "0".repeat(64)),
        &[("Authorization", &auth)],
        b"",
        404,
    );
}

/// Gateway tokens, decisions and the OPA Data API.
fn tokens_and_decisions(api: &Api, admin: &str) {
    let key = Some(admin);
    let issuers = "/api/v1/enforcement/tokens/issuers";
    let issuer = api
        .post(issuers, issuers, key, json!({"organizationId": ORG, "name": "tests", "loaCeiling": 3, "scopes": ["mcp:invoke", "mcp:*"]}), 201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(
        issuers,
        issuers,
        key,
        json!({"organizationId": ORG, "name": "tests", "loaCeiling": 3, "scopes": ["mcp:invoke"]}),
        409,
    );
    api.post(
        issuers,
        issuers,
        key,
        json!({"organizationId": ORG, "name": "high", "loaCeiling": 9, "scopes": ["mcp:invoke"]}),
        400,
    );
    api.get(issuers, issuers, key, 200);
    api.get(
        issuers,
        &format!("{issuers}?organizationId=default"),
        key,
        403,
    );

    let settings = "/api/v1/enforcement/tokens/settings";
    api.post(
        settings,
        settings,
        key,
        json!({"organizationId": ORG, "maxTtlSeconds": 3600}),
        200,
    );
    api.post(
        settings,
        settings,
        key,
        json!({"organizationId": ORG, "maxTtlSeconds": 0}),
        400,
    );
    api.get(settings, settings, key, 200);
    api.get(settings, settings, api.root(), 400);

    let issue = "/api/v1/enforcement/tokens/issue";
    let request = |loa: u64, issuer: &str| {
        json!({"organizationId": ORG, "artifactId": "art-1", "artifactType": "agent", "loaLevel": loa,
               "scope": ["mcp:invoke"], "issuerId": issuer, "subject": "alice"})
    };
    let issued = api.post(issue, issue, key, request(2, &issuer), 201).json();
    let token = issued["token"].as_str().unwrap().to_owned();
    api.post(issue, issue, key, request(4, &issuer), 403);
    api.post(issue, issue, key, request(2, "no-such-issuer"), 404);
    api.post(issue, issue, None, request(2, &issuer), 401);

    let introspect = "/api/v1/enforcement/tokens/introspect";
    let active = api
        .post(introspect, introspect, key, json!({"token": token}), 200)
        .json();
    assert_eq!(active["active"], true);
    let form = post_raw(
        &api.url(introspect),
        key,
        "application/x-www-form-urlencoded",
        b"token=not-a-token&token_type_hint=access_token",
    );
    assert_eq!(
        api.expect("post", introspect, form, 200).json(),
        json!({"active": false})
    );
    api.post(introspect, introspect, key, json!({}), 400);

    let current = "/api/v1/enforcement/tokens/current";
    api.get(current, current, Some(&token), 200);
    api.get(current, current, Some("not-a-token"), 401);

    let decide = "/api/v1/enforcement/decide";
    let decision = api
        .post(
            decide,
            decide,
            Some(&token),
            json!({"action": "tools.call", "resource": {"tool": "search"}, "context": {}}),
            200,
        )
        .json();
    assert!(decision["receipt"]["seq"].is_u64());
    api.post(
        decide,
        decide,
        Some(&token),
        json!({"action": "tools.call", "token": {"org": "forged"}}),
        400,
    );
    api.post(decide, decide, Some(&token), json!([]), 400);
    api.post(decide, decide, None, json!({"action": "tools.call"}), 401);

    let data = "/v1/data/{path}";
    let answer = api
        .post(
            data,
            "/v1/data/sck/gateway/decision",
            Some(&token),
            json!({"input": {"action": "tools.call"}}),
            200,
        )
        .json();
    assert!(answer.get("result").is_some(), "{answer}");
    api.post(
        data,
        "/v1/data/sck/gateway-decision",
        Some(&token),
        json!({}),
        400,
    );
    api.post(data, "/v1/data/sck/gateway/decision", None, json!({}), 401);

    let revoke = "/api/v1/enforcement/tokens/revoke";
    let second = api.post(issue, issue, key, request(1, &issuer), 201).json();
    api.post(revoke, revoke, key, json!({"token": second["token"]}), 200);
    api.post(
        revoke,
        revoke,
        key,
        json!({"token": second["token"], "tokenId": second["tokenId"]}),
        400,
    );
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": "default", "tokenId": "x"}),
        403,
    );
    api.get(current, current, second["token"].as_str(), 401);

    let keys = "/api/v1/enforcement/tokens/keys";
    api.get(keys, keys, key, 200);
    let rotate = "/api/v1/enforcement/tokens/keys/rotate";
    api.post(rotate, rotate, key, json!({}), 403);
    api.post(rotate, rotate, api.root(), json!({}), 200);
    api.get(
        "/.well-known/jwks.json",
        "/.well-known/jwks.json",
        None,
        200,
    );
}

/// An X-SCK signed `POST /verify` of `body` (signed with `secret` unless `tamper`).
fn signed_verify(api: &Api, secret: &str, body: &[u8], tamper: bool) -> Reply {
    let key = Key::Hmac(if tamper { "wrong secret" } else { secret }.into());
    Call::new(PUBLIC, ANS, ORG, body.to_vec()).send(&api.server.url, &key)
}

/// Identity pins and X-SCK signed calls.
fn gateway_routes(api: &Api, admin: &str) {
    let key = Some(admin);
    let routes = "/api/v1/enforcement/routes";
    let one = "/api/v1/enforcement/routes/{id}";
    let body = json!({"organizationId": ORG, "id": "contract", "prefix": "/contract",
                      "upstream": "http://127.0.0.1:9/mcp", "kind": "mcp",
                      "credentialHeader": "x-api-key", "credential": "k1"});
    api.post(routes, routes, key, body.clone(), 201);
    api.post(routes, routes, key, body, 409);
    api.post(routes, routes, key, json!({"organizationId": ORG, "id": "x", "prefix": "/api", "upstream": "http://h/", "kind": "http"}), 400);
    api.get(routes, routes, key, 200);
    api.get(one, &format!("{routes}/contract"), key, 200);
    api.get(one, &format!("{routes}/nothing"), key, 404);
    let rotate = "/api/v1/enforcement/routes/{id}/credential";
    api.post(
        rotate,
        &format!("{routes}/contract/credential"),
        key,
        json!({"credential": "k2"}),
        200,
    );
    let auth = format!("Bearer {admin}");
    api.send(
        "delete",
        one,
        &format!("{routes}/contract"),
        &[("Authorization", &auth)],
        &[],
        204,
    );
    api.send(
        "delete",
        one,
        &format!("{routes}/contract"),
        &[("Authorization", &auth)],
        &[],
        404,
    );
    let signer = "/api/v1/enforcement/gateway/signer";
    api.get(signer, signer, key, 200);
}

/// The enforcement point's usage (the forward-auth calls before it were counted).
fn usage(api: &Api, admin: &str) {
    let usage = "/api/v1/enforcement/usage";
    let key = Some(admin);
    let report = api
        .get(usage, &format!("{usage}?route=guarded"), key, 200)
        .json();
    assert!(report["usage"][0]["calls"].as_u64() > Some(0), "{report}");
    api.get(usage, &format!("{usage}?since=soon"), key, 400);
    api.get(usage, &format!("{usage}?since=10&until=5"), key, 400);
    api.get(usage, usage, None, 401);
    api.get(usage, &format!("{usage}?organizationId=default"), key, 404);
}

/// The forward-auth endpoint: nginx/Traefik (headers) and Envoy (every method, original path).
fn forward_auth(api: &Api, admin: &str) {
    let routes = "/api/v1/enforcement/routes";
    api.post(
        routes,
        routes,
        Some(admin),
        json!({"organizationId": ORG, "id": "guarded",
             "prefix": "/guarded", "kind": "forward_auth"}),
        201,
    );
    let issuer = support::tokens::create_issuer(
        &api.server.url,
        admin,
        ORG,
        "fwd",
        4,
        &["http:read", "http:write"],
    );
    let issued = support::tokens::issue(
        &api.server.url,
        admin,
        &support::tokens::request(
            ORG,
            &issuer,
            "agent-fwd",
            3,
            json!(["http:read", "http:write"]),
        ),
    );
    let bearer = format!("Bearer {}", issued["token"].as_str().unwrap());
    let auth = ("Authorization", bearer.as_str());
    let headers = "/api/v1/enforcement/forward-auth";
    let original = |uri| [("X-Original-Method", "GET"), ("X-Original-URI", uri), auth];
    api.send("get", headers, headers, &original("/guarded/a"), &[], 200);
    api.send("get", headers, headers, &[auth], &[], 400);
    api.send(
        "get",
        headers,
        headers,
        &original("/guarded/a")[..2],
        &[],
        401,
    );
    api.send("get", headers, headers, &original("/nowhere"), &[], 403);
    let read_only = support::tokens::issue(
        &api.server.url,
        admin,
        &support::tokens::request(ORG, &issuer, "agent-ro", 2, json!(["http:read"])),
    );
    let read_only = format!("Bearer {}", read_only["token"].as_str().unwrap());
    let envoy = "/api/v1/enforcement/forward-auth/{path}";
    for method in ["get", "post", "put", "delete", "patch"] {
        api.send(
            method,
            envoy,
            &format!("{headers}/guarded/a"),
            &[auth],
            &[],
            200,
        );
    }
    api.send(
        "post",
        envoy,
        &format!("{headers}/guarded/a"),
        &[("Authorization", &read_only)],
        &[],
        403,
    );
    api.send(
        "get",
        envoy,
        &format!("{headers}/guarded/%2e%2e"),
        &[auth],
        &[],
        400,
    );
}

/// Service accounts, the token endpoint and its RFC 8414 metadata.
fn oauth(api: &Api, admin: &str) {
    use base64::Engine as _;
    let key = Some(admin);
    let clients = "/api/v1/enforcement/clients";
    let body = json!({"organizationId": ORG, "name": "contract-bot", "loaCeiling": 2, "scopes": ["mcp:invoke"]});
    let created = api.post(clients, clients, key, body.clone(), 201).json();
    let id = created["client"]["clientId"].as_str().unwrap().to_owned();
    let secret = created["secret"]["clientSecret"].as_str().unwrap();
    api.post(clients, clients, key, body, 409);
    api.get(clients, clients, key, 200);
    let metadata = "/.well-known/oauth-authorization-server";
    api.get(metadata, metadata, None, 200);

    let token = "/oauth2/token";
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    let grant = b"grant_type=client_credentials";
    api.send(
        "post",
        token,
        token,
        &[form, ("Authorization", &basic)],
        grant,
        200,
    );
    api.send("post", token, token, &[form], grant, 401);
    api.send(
        "post",
        token,
        token,
        &[form, ("Authorization", &basic)],
        b"grant_type=password",
        400,
    );

    let rotate = "/api/v1/enforcement/clients/rotate";
    api.post(
        rotate,
        rotate,
        key,
        json!({"organizationId": ORG, "clientId": id}),
        200,
    );
    api.post(
        rotate,
        rotate,
        key,
        json!({"organizationId": ORG, "clientId": "iss_nothing"}),
        404,
    );
    let keys = "/api/v1/enforcement/clients/keys";
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "contract",
                     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let key_of = |client: &str, jwk: &Value| json!({"organizationId": ORG, "clientId": client, "key": {"jwk": jwk}});
    api.post(keys, keys, key, key_of(&id, &jwk), 201);
    api.post(keys, keys, key, key_of(&id, &jwk), 409);
    api.post(
        keys,
        keys,
        key,
        key_of(&id, &json!({"kty": "oct", "k": "c2VjcmV0"})),
        400,
    );
    api.post(keys, keys, key, key_of("iss_nothing", &jwk), 404);
    let remove = "/api/v1/enforcement/clients/keys/remove";
    let kid_of = |kid: &str| json!({"organizationId": ORG, "clientId": id, "kid": kid});
    api.post(remove, remove, key, kid_of("contract"), 200);
    api.post(remove, remove, key, kid_of("contract"), 404);
    let revoke = "/api/v1/enforcement/clients/revoke";
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": ORG, "clientId": id}),
        200,
    );
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": ORG, "clientId": id}),
        404,
    );
}

fn identities_and_verify(api: &Api, admin: &str) {
    let key = Some(admin);
    let pins = "/api/v1/enforcement/identities";
    let created = api
        .post(
            pins,
            pins,
            key,
            json!({"organizationId": ORG, "ansId": ANS, "scheme": "hmac-sha256"}),
            201,
        )
        .json();
    let secret = created["key"]["secret"].as_str().unwrap().to_owned();
    api.post(
        pins,
        pins,
        key,
        json!({"organizationId": ORG, "ansId": ANS}),
        409,
    );
    api.post(
        pins,
        pins,
        api.root(),
        json!({"organizationId": "nowhere", "ansId": ANS}),
        404,
    );
    api.post(
        pins,
        pins,
        key,
        json!({"organizationId": ORG, "ansId": "ans://v1.0.0.b.example.com", "scheme": "rot13"}),
        400,
    );
    api.get(pins, pins, key, 200);
    api.get(pins, &format!("{pins}?organizationId=default"), key, 404);

    let verify = VERIFY;
    let body = serde_json::to_vec(&json!({"action": "bundles.evaluate", "resource": {"org": ORG}}))
        .unwrap();
    let answer = api
        .expect(
            "post",
            verify,
            signed_verify(api, &secret, &body, false),
            200,
        )
        .json();
    assert_eq!(answer["caller"]["ans_id"], ANS);
    api.expect(
        "post",
        verify,
        signed_verify(api, &secret, &body, true),
        401,
    );
    api.send(
        "post",
        verify,
        verify,
        &[("Content-Type", "application/json")],
        &body,
        400,
    );

    let rotate = "/api/v1/enforcement/identities/rotate";
    api.post(
        rotate,
        rotate,
        key,
        json!({"organizationId": ORG, "ansId": ANS}),
        200,
    );
    api.post(
        rotate,
        rotate,
        key,
        json!({"organizationId": ORG, "ansId": "ans://v1.0.0.none.example.com"}),
        404,
    );
    let revoke = "/api/v1/enforcement/identities/revoke";
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": ORG, "ansId": ANS, "reason": "retired"}),
        200,
    );
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": ORG, "ansId": ANS, "reason": "x".repeat(513)}),
        400,
    );
    api.post(
        revoke,
        revoke,
        key,
        json!({"organizationId": "default", "ansId": ANS}),
        403,
    );
}

/// The OPA status and decision-log services and the fleet view.
fn fleet(api: &Api, admin: &str, sidecar: &str) {
    let auth = format!("Bearer {sidecar}");
    let json_headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let gzip_headers = [
        json_headers[0],
        json_headers[1],
        ("Content-Encoding", "gzip"),
    ];
    let report = serde_json::to_vec(&sidecar::status_report("opa-1", "1.0.0")).unwrap();
    api.send("post", "/status", "/status", &json_headers, &report, 200);
    api.send(
        "post",
        "/status/{partition}",
        "/status/eu/west",
        &gzip_headers,
        &gzip(&report),
        200,
    );
    api.send(
        "post",
        "/status",
        "/status",
        &json_headers,
        b"not json",
        400,
    );
    api.send(
        "post",
        "/status",
        "/status",
        &[("Content-Type", "application/json")],
        &report,
        401,
    );

    let batch = |ids: &[&str]| {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| sidecar::decision(id, "opa-1"))
            .collect();
        gzip(&serde_json::to_vec(&events).unwrap())
    };
    let logs = api
        .send(
            "post",
            "/logs",
            "/logs",
            &gzip_headers,
            &batch(&["d-1", "d-2"]),
            200,
        )
        .json();
    assert_eq!(logs["appended"], 2);
    api.send(
        "post",
        "/logs/{partition}",
        "/logs/eu",
        &gzip_headers,
        &batch(&["d-2", "d-3"]),
        200,
    );
    api.send("post", "/logs", "/logs", &json_headers, b"[]", 415);
    api.send("post", "/logs", "/logs", &gzip_headers, b"not gzip", 400);

    let view = "/api/v1/enforcement/fleet";
    let fleet = api
        .get(view, &format!("{view}?org={ORG}"), Some(admin), 200)
        .json();
    assert_eq!(fleet["summary"]["sidecars"], 1);
    api.get(view, view, api.root(), 400);
    api.get(view, &format!("{view}?org=default"), Some(admin), 404);
}

/// The ledger read API.
fn ledger(api: &Api, admin: &str) {
    let key = Some(admin);
    let base = format!("/api/v1/ledger/{ORG}");
    let entries = "/api/v1/ledger/{org}/entries";
    let page = api
        .get(entries, &format!("{base}/entries?limit=5"), key, 200)
        .json();
    assert!(page["size"].as_u64().unwrap() >= 5, "{page}");
    api.get(entries, &format!("{base}/entries?bogus=1"), key, 400);
    api.get(entries, "/api/v1/ledger/default/entries", key, 404);
    let entry = "/api/v1/ledger/{org}/entries/{seq}";
    api.get(entry, &format!("{base}/entries/0"), key, 200);
    api.get(entry, &format!("{base}/entries/999999"), key, 404);
    api.get(
        "/api/v1/ledger/{org}/checkpoint",
        &format!("{base}/checkpoint"),
        key,
        200,
    );
    api.get(
        "/api/v1/ledger/{org}/checkpoints",
        &format!("{base}/checkpoints"),
        key,
        200,
    );
    let inclusion = "/api/v1/ledger/{org}/proof/inclusion";
    api.get(
        inclusion,
        &format!("{base}/proof/inclusion?seq=1"),
        key,
        200,
    );
    api.get(
        inclusion,
        &format!("{base}/proof/inclusion?seq=999999"),
        key,
        400,
    );
    let consistency = "/api/v1/ledger/{org}/proof/consistency";
    api.get(
        consistency,
        &format!("{base}/proof/consistency?from=2"),
        key,
        200,
    );
    api.get(consistency, &format!("{base}/proof/consistency"), key, 400);
    api.get(
        "/api/v1/ledger/{org}/export",
        &format!("{base}/export"),
        key,
        200,
    );
    api.get(
        "/api/v1/ledger/{org}/keys",
        &format!("{base}/keys"),
        None,
        200,
    );
}

#[test]
fn real_answers_match_the_documented_schemas() {
    let server = Server::start_with_env(&[
        ("SCK_PUBLIC_URL", PUBLIC),
        ("SCK_LEDGER__CHECKPOINT_EVERY", "1"),
    ]);
    let contract = Contract::fetch(&server);
    let api = Api { server, contract };

    let (admin, sidecar) = ops_and_credentials(&api);
    bundles(&api, &admin, &sidecar);
    tokens_and_decisions(&api, &admin);
    identities_and_verify(&api, &admin);
    gateway_routes(&api, &admin);
    forward_auth(&api, &admin);
    usage(&api, &admin);
    oauth(&api, &admin);
    fleet(&api, &admin, &sidecar);
    ledger(&api, &admin);

    // Every documented operation was seen succeeding with a documented answer.
    let succeeded = api.contract.succeeded.borrow();
    let missing: Vec<_> = api
        .contract
        .operations()
        .into_iter()
        .filter(|op| !succeeded.contains(op))
        .collect();
    assert!(missing.is_empty(), "never seen succeeding: {missing:?}");
}
