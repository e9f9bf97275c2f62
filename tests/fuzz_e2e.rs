//! Fuzz-style properties of the whole HTTP surface, against one real `sck serve` (SQLite).
//!
//! proptest generates requests for every route (and for paths no route has): hostile path
//! segments (percent-encoded garbage, `..`, huge numbers, 4 KB names), random query strings
//! (repeated keys, broken percent-encoding), random `Authorization` headers (none, the right
//! credential, real credentials of the wrong kind, mutated ones, other schemes, raw bytes,
//! oversized tokens), content types and encodings, X-SCK headers, `Prefer`/`If-None-Match`,
//! and bodies aimed at each route's request type: hostile or plausible field values, foreign
//! fields, truncation and byte damage, deep nesting, huge numbers, invalid UTF-8, SQL-looking
//! strings, random bytes; header values with control characters, oversized headers and
//! targets. For every request:
//!
//! - the status is never 5xx (the database is up, so not even 503);
//! - every 4xx is an `application/problem+json` body whose `status` is the HTTP status and
//!   whose `code` is a non-empty string — also for heads refused before any handler runs
//!   (`edge.rs`; each request is a connection's first, which the edge checks);
//! - a POST body that is not JSON where the route reads JSON, and a Data API body that is
//!   JSON but neither an object nor `null`, is refused (no POST route acts on a body it does
//!   not take);
//! - a refused request changed nothing: the bundle list, identities, issuers, token keys and
//!   the sizes of the `default` and `system` ledgers are as before (the only entries that may
//!   appear are the `upstream.rejected` records the X-SCK pipeline keeps of every refused
//!   signed call, and the server's own maintenance, `actor: system`);
//!
//! and afterwards the server is healthy, ready and deciding. A third run aims another org's
//! admin key at every route that changes something, with bodies made of the `default` org's
//! real ids: whatever it is answered, nothing of `default` changes (`tests/isolation_e2e.rs`
//! probes each resource on both backends). Failures print the minimal
//! request as sent. `PROPTEST_CASES` overrides the case count; `PROPTEST_RNG_SEED` replays a
//! run. Methods a path does not allow and path parameters that are not UTF-8 or not numbers are
//! in the second, ignored test: see its comment.
//!
//! Library-level properties of the same parsers live next to them: bundle reader and
//! canonical JSON (`bundler/tests/fuzz.rs`, `bundler/tests/properties.rs`), export reader
//! (`ledger/tests/fuzz_export.rs`, `ledger/tests/export_verify.rs`), gateway tokens
//! (`gateway/src/tokens/verify.rs`), X-SCK headers (`gateway/src/xsck/canonical.rs`), bearer
//! credentials (`gateway/src/auth.rs`), decision-log and status bodies (`gateway/src/fleet/`)
//! and configuration (`gateway/src/config.rs`).

mod support;

use std::io::Write;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use support::http::{exchange_raw, get, get_as, merged, parse_response, post_raw, Reply, API};
use support::server::Server;
use support::{ledger, orgs, sidecar, signed, tokens};

/// Every route the server serves, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v1/enforcement/signers"),
    ("GET", "/api/v1/enforcement/bundles"),
    ("GET", "/api/v1/enforcement/bundles/{id}"),
    ("POST", "/api/v1/enforcement/bundles/compile"),
    ("POST", "/api/v1/enforcement/bundles/publish"),
    ("POST", "/api/v1/enforcement/bundles/activate"),
    ("POST", "/api/v1/enforcement/bundles/revoke"),
    ("POST", "/api/v1/enforcement/orgs"),
    ("POST", "/api/v1/enforcement/credentials"),
    ("POST", "/api/v1/enforcement/decide"),
    ("POST", "/v1/data/{*path}"),
    ("POST", "/status"),
    ("POST", "/status/{*path}"),
    ("POST", "/logs"),
    ("POST", "/logs/{*path}"),
    ("GET", "/api/v1/enforcement/fleet"),
    ("GET", "/api/v1/enforcement/usage"),
    ("GET", "/api/v1/enforcement/identities"),
    ("POST", "/api/v1/enforcement/identities"),
    ("POST", "/api/v1/enforcement/identities/rotate"),
    ("POST", "/api/v1/enforcement/identities/revoke"),
    ("POST", "/api/v1/enforcement/verify"),
    ("POST", "/api/v1/enforcement/tokens/issue"),
    ("POST", "/api/v1/enforcement/tokens/introspect"),
    ("POST", "/api/v1/enforcement/tokens/revoke"),
    ("GET", "/api/v1/enforcement/tokens/issuers"),
    ("POST", "/api/v1/enforcement/tokens/issuers"),
    ("GET", "/api/v1/enforcement/tokens/settings"),
    ("POST", "/api/v1/enforcement/tokens/settings"),
    ("GET", "/api/v1/enforcement/tokens/keys"),
    ("POST", "/api/v1/enforcement/tokens/keys/rotate"),
    ("GET", "/api/v1/enforcement/tokens/current"),
    ("GET", "/api/v1/ledger/{org}/entries"),
    ("GET", "/api/v1/ledger/{org}/entries/{seq}"),
    ("GET", "/api/v1/ledger/{org}/checkpoint"),
    ("GET", "/api/v1/ledger/{org}/checkpoints"),
    ("GET", "/api/v1/ledger/{org}/proof/inclusion"),
    ("GET", "/api/v1/ledger/{org}/proof/consistency"),
    ("GET", "/api/v1/ledger/{org}/export"),
    ("GET", "/api/v1/ledger/{org}/keys"),
    ("GET", "/bundles/{org}/{file}"),
    ("GET", "/bundles/{org}/sha256/{file}"),
];

/// The fields of each route's request body (by path prefix, most specific first): generated
/// bodies mostly use them, so that requests get past "unknown field" into the handlers.
const BODY_FIELDS: &[(&str, &[&str])] = &[
    (
        "/api/v1/enforcement/bundles/compile",
        &[
            "organizationId",
            "name",
            "version",
            "revision",
            "files",
            "tarball",
        ],
    ),
    (
        "/api/v1/enforcement/bundles/publish",
        &["bundleId", "signerId"],
    ),
    (
        "/api/v1/enforcement/bundles/activate",
        &["bundleId", "rollback"],
    ),
    (
        "/api/v1/enforcement/bundles/revoke",
        &["bundleId", "reason", "rollbackTo", "allowNoActive"],
    ),
    ("/api/v1/enforcement/orgs", &["organizationId"]),
    (
        "/api/v1/enforcement/credentials",
        &["organizationId", "kind"],
    ),
    (
        "/api/v1/enforcement/decide",
        &["action", "resource", "context"],
    ),
    (
        "/api/v1/enforcement/verify",
        &["action", "resource", "context"],
    ),
    ("/v1/data", &["input"]),
    (
        "/api/v1/enforcement/identities/rotate",
        &[
            "organizationId",
            "ansId",
            "scheme",
            "publicKey",
            "retireKeyId",
        ],
    ),
    (
        "/api/v1/enforcement/identities/revoke",
        &["organizationId", "ansId", "reason"],
    ),
    (
        "/api/v1/enforcement/identities",
        &["organizationId", "ansId", "scheme", "publicKey"],
    ),
    (
        "/api/v1/enforcement/tokens/issue",
        &[
            "organizationId",
            "artifactId",
            "artifactType",
            "loaLevel",
            "scope",
            "issuerId",
            "subject",
            "ttlSeconds",
        ],
    ),
    ("/api/v1/enforcement/tokens/introspect", &["token"]),
    (
        "/api/v1/enforcement/tokens/revoke",
        &["token", "tokenId", "organizationId"],
    ),
    (
        "/api/v1/enforcement/tokens/issuers",
        &[
            "organizationId",
            "name",
            "loaCeiling",
            "scopes",
            "algorithm",
        ],
    ),
    (
        "/api/v1/enforcement/tokens/settings",
        &["organizationId", "maxTtlSeconds", "defaultTtlSeconds"],
    ),
    (
        "/status",
        &["labels", "bundles", "plugins", "decision_logs", "metrics"],
    ),
    (
        "/logs",
        &[
            "decision_id",
            "labels",
            "timestamp",
            "input",
            "result",
            "path",
            "bundles",
            "metrics",
            "erased",
            "req_id",
        ],
    ),
];

/// Field names of no route.
const FOREIGN_FIELDS: &[&str] = &["id", "org", "__proto__", "organization_id", ""];

fn body_fields(path: &str) -> &'static [&'static str] {
    BODY_FIELDS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or(FOREIGN_FIELDS, |(_, fields)| fields)
}

/// Credentials of the running server, real ids of the default org to aim at (bundle and ETag,
/// pinned ANS ID and its key, issuer, token id), and the admin key of another org, `tenant`.
#[derive(Debug, Clone)]
struct Known {
    admin: String,
    sidecar: String,
    issuer: String,
    gateway_token: String,
    bundle_id: String,
    etag: String,
    ans_id: String,
    key_id: String,
    token_id: String,
    tenant_admin: String,
}

/// One generated request (shown as the bytes sent, so a failure prints the request).
#[derive(Clone)]
struct Fuzz {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The body as the route reads it (gunzipped where the route decodes gzip).
    read_as: Vec<u8>,
}

impl std::fmt::Debug for Fuzz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.method, self.target)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {}", value.escape_ascii())?;
        }
        let shown = &self.body[..self.body.len().min(2000)];
        write!(f, "\n{}", shown.escape_ascii())?;
        if shown.len() < self.body.len() {
            write!(f, "... ({} bytes)", self.body.len())?;
        }
        Ok(())
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("default".to_owned()),
        Just("gateway".to_owned()),
        Just("'; DROP TABLE bundles; --".to_owned()),
        Just("\" OR 1=1 --".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("ans://".to_owned()),
        Just("1.0.0".to_owned()),
        Just("x".repeat(3000)),
        Just("\u{0}\u{1f}\u{2028}\u{fffd}".to_owned()),
        "[a-z0-9._-]{0,16}",
        "\\PC{0,24}",
    ]
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(hostile_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body, before the route is known.
#[derive(Debug, Clone)]
enum Body {
    /// An object of the route's fields (picked by index; sometimes a foreign one), hostile
    /// values, optionally cut or with one byte replaced.
    Fields {
        fields: Vec<(proptest::sample::Index, bool, Value)>,
        damage: Option<(proptest::sample::Index, u8)>,
    },
    Raw(Vec<u8>),
}

impl Body {
    fn bytes(self, path: &str) -> Vec<u8> {
        let Body::Fields { fields, damage } = self else {
            let Body::Raw(bytes) = self else {
                unreachable!()
            };
            return bytes;
        };
        let names = body_fields(path);
        let object: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(i, foreign, value)| {
                let name = if foreign {
                    FOREIGN_FIELDS[i.index(FOREIGN_FIELDS.len())]
                } else {
                    names[i.index(names.len())]
                };
                (name.to_owned(), value)
            })
            .collect();
        // Decision logs are arrays of events.
        let document = if path.starts_with("/logs") {
            json!([object])
        } else {
            Value::Object(object)
        };
        let mut bytes = serde_json::to_vec(&document).unwrap();
        if let Some((at, b)) = damage {
            let i = at.index(bytes.len());
            if b % 2 == 0 {
                bytes.truncate(i);
            } else {
                bytes[i] = b;
            }
        }
        bytes
    }
}

fn body(known: Known) -> impl Strategy<Value = Body> {
    // Plausible values (right type, often wrong content) get requests into the handlers.
    let plausible = proptest::sample::select(vec![
        Value::from(known.bundle_id.clone()),
        Value::from(known.gateway_token.clone()),
        json!("default"),
        json!("gateway"),
        json!("1.0.0"),
        // The bootstrap version's precedence: refused as an existing version.
        json!("1.0.0+build.7"),
        json!("hmac-sha256"),
        json!("ans://agent.example"),
        json!(3),
        json!(0),
        json!(-1),
        json!(true),
        json!(["mcp:invoke"]),
        json!({"tool": "search"}),
        json!({"app/p.rego": "package app\n\nallow := true\n"}),
        json!({".manifest": "{\"roots\": [\"\"]}", "x.rego": "package x\nallow if { input.a[_] }"}),
        json!({"id": "opa-1"}),
        json!({".manifest": "{\"roots\": [\"app\"]}", "app/data.json": "{\"a\": 1e400}"}),
        json!({"app/data.json": format!("{{\"a\": {}{}}}", "[".repeat(300), "]".repeat(300))}),
        json!({"app/data.yaml": "a: &x [*x]\nb: !!binary AAAA"}),
        // Rego tests that run away (stopped at the fuzz server's test time limit) or that
        // panicked inside regorus before sck's strings.count: refused with 422, never a 5xx or
        // a stalled worker.
        json!({"app/p_test.rego": "package app\n\ntest_x if { count([1 | some x in numbers.range(1, 100000); some y in numbers.range(1, 100000); x == y]) > 0 }\n"}),
        json!({"app/p_test.rego": "package app\n\ntest_x if strings.count(\"\", \"\") == 0\n"}),
        json!("2026-01-01T00:00:00Z"),
    ]);
    let value = prop_oneof![
        3 => hostile_value(),
        3 => plausible,
    ];
    let fields = (
        proptest::collection::vec(
            (
                any::<proptest::sample::Index>(),
                prop_oneof![9 => Just(false), 1 => Just(true)],
                value,
            ),
            0..7,
        ),
        prop_oneof![
            3 => Just(None),
            1 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(Some),
        ],
    )
        .prop_map(|(fields, damage)| Body::Fields { fields, damage });
    let raw = prop_oneof![
        Just(Vec::new()),
        Just(b"null".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"{".to_vec()),
        Just(b"{\"organizationId\": \"default\",".to_vec()),
        Just(b"{\"a\": 1e999999, \"b\": -1e999999}".to_vec()),
        Just(b"{\"loaLevel\": 123456789012345678901234567890}".to_vec()),
        Just(b"{\"organizationId\": \"\xff\xfe\"}".to_vec()),
        Just(b"\xef\xbb\xbf{}".to_vec()),
        Just(format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes()),
        Just(format!("{}1{}", "{\"a\":".repeat(3000), "}".repeat(3000)).into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
    .prop_map(Body::Raw);
    prop_oneof![3 => fields, 1 => raw]
}

/// How much of the request space a run covers.
#[derive(Debug, Clone, Copy)]
struct Surface {
    /// Any method on any path (otherwise the route's own method).
    any_method: bool,
    /// Path parameters that are not valid UTF-8, and numeric ones that are not numbers.
    malformed_parameters: bool,
}

fn segment(known: Known, surface: Surface) -> BoxedStrategy<String> {
    let common = prop_oneof![
        3 => prop_oneof![
            Just("default".to_owned()),
            Just("system".to_owned()),
            Just("gateway.tar.gz".to_owned()),
            Just(format!("{}.tar.gz", known.etag.trim_matches('"'))),
            Just(known.bundle_id.clone()),
            Just("sck/gateway/decision".to_owned()),
            Just("0".to_owned()),
            Just("18446744073709551615".to_owned()),
            Just("-1".to_owned()),
            Just("1e3".to_owned()),
        ],
        2 => prop_oneof![
            Just("%00".to_owned()),
            Just("%2e%2e".to_owned()),
            Just("..".to_owned()),
            Just("%2F".to_owned()),
            Just("%".to_owned()),
            Just("%zz".to_owned()),
            Just("a%20b".to_owned()),
            Just("x".repeat(4000)),
            Just("x".repeat(20_000)),
        ],
        2 => "[a-zA-Z0-9._~-]{0,24}",
        1 => "\\PC{0,8}".prop_map(|s| percent_encode(s.as_bytes())),
    ];
    if surface.malformed_parameters {
        prop_oneof![
            8 => common,
            1 => Just("%ff".to_owned()),
            1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| percent_encode(&b)),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

/// A numeric path parameter (`{seq}`).
fn number(surface: Surface) -> BoxedStrategy<String> {
    let numbers = prop_oneof![
        Just("0".to_owned()),
        Just("3".to_owned()),
        Just("18446744073709551615".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
    ];
    if surface.malformed_parameters {
        prop_oneof![
            numbers,
            Just("18446744073709551616".to_owned()),
            Just("-1".to_owned()),
            Just("1e3".to_owned()),
            Just("%ff".to_owned()),
            "[a-z%]{0,5}",
        ]
        .boxed()
    } else {
        numbers.boxed()
    }
}

/// A route's path with its parameters filled in.
fn path(known: Known, surface: Surface) -> impl Strategy<Value = (String, String)> {
    let templated = (
        proptest::sample::select(ROUTES),
        proptest::collection::vec(segment(known.clone(), surface), 3),
        number(surface),
    )
        .prop_map(|((method, template), segments, number)| {
            let mut segments = segments.into_iter();
            let path = template
                .split('/')
                .map(|part| match part {
                    "{seq}" => number.clone(),
                    _ if part.starts_with('{') => segments.next().unwrap_or_default(),
                    _ => part.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            (method.to_owned(), path)
        });
    let random = proptest::collection::vec(segment(known, surface), 0..5)
        .prop_map(|segments| ("GET".to_owned(), format!("/{}", segments.join("/"))));
    prop_oneof![6 => templated, 1 => random]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        proptest::sample::select(
            &[
                "org",
                "organizationId",
                "from",
                "to",
                "limit",
                "seq",
                "size",
                "name",
                "version",
                "wait",
                "x"
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z%=&+]{0,6}",
    ];
    let value = prop_oneof![
        Just("default".to_owned()),
        Just("0".to_owned()),
        Just("5".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("%ff%fe".to_owned()),
        Just("%".to_owned()),
        Just("%%".to_owned()),
        Just("%2".to_owned()),
        Just("a+b%20c".to_owned()),
        Just(String::new()),
        // Characters a URI query may hold (RFC 3986); anything else never reaches sck.
        "[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,12}",
    ];
    proptest::collection::vec((key, value, any::<bool>()), 0..5).prop_map(|pairs| {
        let parts: Vec<String> = pairs
            .into_iter()
            .map(|(k, v, eq)| if eq { format!("{k}={v}") } else { k })
            .collect();
        parts.join("&")
    })
}

/// Header values: mostly what hyper accepts on the wire (visible ASCII, spaces, tabs and
/// obs-text), sometimes with a control character (not CR or LF, which would end the line).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let clean = || {
        proptest::collection::vec(
            prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
            0..64,
        )
    };
    let control = prop_oneof![0u8..=0x08, 0x0bu8..=0x0c, 0x0eu8..=0x1f, Just(0x7f)];
    prop_oneof![
        9 => clean(),
        1 => (clean(), any::<proptest::sample::Index>(), control).prop_map(|(mut v, at, c)| {
            v.insert(at.index(v.len() + 1), c);
            v
        }),
    ]
}

/// The `Authorization` header of a request to `path`.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// The credential the route wants: gateway token, sidecar credential or admin key.
    Right,
    /// One of the real credentials (another org's admin key too), whichever the route wants.
    Real(Vec<u8>),
    /// Anything else: mutated credentials, other schemes, raw bytes, oversized tokens.
    Raw(Vec<u8>),
}

impl Auth {
    fn header(self, known: &Known, path: &str) -> Option<Vec<u8>> {
        match self {
            Auth::None => None,
            Auth::Right => {
                let secret = if path.starts_with("/api/v1/enforcement/decide")
                    || path.starts_with("/v1/data")
                {
                    &known.gateway_token
                } else if ["/bundles/", "/status", "/logs"]
                    .iter()
                    .any(|p| path.starts_with(p))
                {
                    &known.sidecar
                } else {
                    &known.admin
                };
                Some(format!("Bearer {secret}").into_bytes())
            }
            Auth::Real(bytes) | Auth::Raw(bytes) => Some(bytes),
        }
    }
}

fn authorization(known: Known) -> impl Strategy<Value = Auth> {
    let secrets = vec![
        known.admin.clone(),
        known.sidecar.clone(),
        known.gateway_token.clone(),
        known.tenant_admin.clone(),
    ];
    let real = proptest::sample::select(secrets.clone())
        .prop_map(|s| Auth::Real(format!("Bearer {s}").into_bytes()));
    let mutated = (
        proptest::sample::select(secrets),
        any::<proptest::sample::Index>(),
        0x21u8..=0x7e,
        prop_oneof![
            Just("Bearer "),
            Just("bearer  "),
            Just("BEARER\t"),
            Just("Basic "),
            Just("Bearer"),
            Just(""),
        ],
    )
        .prop_map(|(secret, at, b, scheme)| {
            let mut bytes = secret.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = b;
            let mut out = scheme.as_bytes().to_vec();
            out.extend_from_slice(&bytes);
            Auth::Raw(out)
        });
    prop_oneof![
        1 => Just(Auth::None),
        12 => Just(Auth::Right),
        1 => real,
        2 => mutated,
        1 => header_bytes().prop_map(Auth::Raw),
        1 => Just(Auth::Raw(format!("Bearer {}", "a".repeat(9000)).into_bytes())),
        1 => Just(Auth::Raw(format!("Bearer {}", "a".repeat(70_000)).into_bytes())),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        4 => Just(Some("application/json")),
        1 => Just(None),
        1 => proptest::sample::select(&[
            "text/plain",
            "application/problem+json",
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/gzip",
            "*/*",
            "application/json, text/plain",
        ][..])
        .prop_map(Some),
    ]
}

fn xsck_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = proptest::sample::select(
        &[
            "X-SCK-Signature",
            "X-SCK-Timestamp",
            "X-SCK-ANS-ID",
            "X-SCK-Organization",
            "X-SCK-Nonce",
            "X-SCK-Key-ID",
        ][..],
    );
    let value = prop_oneof![
        Just(b"hmac-sha256=".to_vec()),
        Just(format!("hmac-sha256={}", "ab".repeat(32)).into_bytes()),
        Just(format!("ed25519={}", "A".repeat(88)).into_bytes()),
        Just(b"2026-01-01T00:00:00Z".to_vec()),
        Just(b"9999999999999".to_vec()),
        Just(b"ans://agent.example".to_vec()),
        Just(b"default".to_vec()),
        Just(b"nonce-0123456789".to_vec()),
        header_bytes(),
    ];
    proptest::collection::vec((name, value).prop_map(|(n, v)| (n.to_owned(), v)), 0..7)
}

fn request(known: Known, surface: Surface) -> impl Strategy<Value = Fuzz> {
    let other = if surface.any_method { 1 } else { 0 };
    let method = prop_oneof![
        6 => Just(None),
        other => proptest::sample::select(&["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"][..])
            .prop_map(Some),
    ];
    (
        (method, path(known.clone(), surface), query()),
        authorization(known.clone()),
        content_type(),
        // Gzip where the route wants it (decision logs), or explicitly on or off.
        prop_oneof![3 => Just(None), 1 => any::<bool>().prop_map(Some)],
        body(known.clone()),
        xsck_headers(),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(b"wait=1".to_vec())),
            1 => header_bytes().prop_map(Some),
        ],
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(known.etag.clone().into_bytes())),
            1 => header_bytes().prop_map(Some),
        ],
    )
        .prop_map(
            move |(
                (method, (route_method, path), query),
                auth,
                ctype,
                gzip,
                body,
                xsck,
                prefer,
                etag,
            )| {
                let mut headers = Vec::new();
                if let Some(auth) = auth.header(&known, &path) {
                    headers.push(("Authorization".to_owned(), auth));
                }
                if let Some(ctype) = ctype {
                    headers.push(("Content-Type".to_owned(), ctype.as_bytes().to_vec()));
                }
                let json = body.bytes(&path);
                let (body, read_as) = if gzip.unwrap_or(path.starts_with("/logs")) {
                    headers.push(("Content-Encoding".to_owned(), b"gzip".to_vec()));
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(&json).unwrap();
                    let body = encoder.finish().unwrap();
                    let decoded = ["/logs", "/status"].iter().any(|p| path.starts_with(p));
                    let read_as = if decoded { json } else { body.clone() };
                    (body, read_as)
                } else {
                    (json.clone(), json)
                };
                headers.extend(xsck);
                if let Some(prefer) = prefer {
                    headers.push(("Prefer".to_owned(), prefer));
                }
                if let Some(etag) = etag {
                    headers.push(("If-None-Match".to_owned(), etag));
                }
                let target = if query.is_empty() {
                    path
                } else {
                    format!("{path}?{query}")
                };
                Fuzz {
                    method: method.map(str::to_owned).unwrap_or(route_method),
                    target,
                    headers,
                    body,
                    read_as,
                }
            },
        )
}

/// Sends `request` over a fresh connection, byte for byte (HTTP clients refuse some of it).
fn send(addr: &str, request: &Fuzz) -> Reply {
    let mut raw = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method,
        request.target,
        request.body.len()
    )
    .into_bytes();
    for (name, value) in &request.headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&request.body);
    parse_response(&exchange_raw(addr, &raw))
}

/// What a refused request must not change.
#[derive(Debug, PartialEq)]
struct State {
    bundles: Value,
    identities: Value,
    issuers: Value,
    /// The token key ids (their states change by the server's own maintenance).
    keys: Vec<Value>,
    default_log: u64,
    system_log: u64,
}

fn state(server: &Server, admin: &str) -> State {
    let read = |path: &str| get_as(&format!("{}{path}", server.url), admin).expect(200);
    let size = |org: &str| ledger::size_if_any(&server.url, admin, org).unwrap_or(0);
    State {
        bundles: read(&format!("{API}/bundles?organizationId=default")),
        identities: read(&format!("{API}/identities?organizationId=default")),
        issuers: read(&format!("{API}/tokens/issuers?organizationId=default")),
        keys: read(&format!("{API}/tokens/keys"))["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect(),
        default_log: size("default"),
        system_log: size("system"),
    }
}

/// The `default` log's entries from `from` on that no refused request may cause: all but the
/// `upstream.rejected` records of refused X-SCK calls and the server's own maintenance
/// (`actor: system`, e.g. retiring token keys whose tokens have all expired).
fn unexpected_entries(server: &Server, admin: &str, from: u64) -> Vec<Value> {
    let reply = get_as(
        &format!(
            "{}/api/v1/ledger/default/entries?from={from}&limit=1000",
            server.url
        ),
        admin,
    );
    reply.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].clone())
        .filter(|e| e["type"] != "upstream.rejected" && e["body"]["actor"] != "system")
        .collect()
}

/// Why `request` must be refused whatever else it carries: a POST body that is not JSON text
/// (syntax; numbers out of range are JSON) unless sent as a form, which introspection and
/// revocation also take, or a Data API body that is JSON but neither an object nor `null`.
fn must_be_refused(request: &Fuzz) -> Option<&'static str> {
    let form = request.headers.iter().any(|(name, value)| {
        name == "Content-Type" && value.starts_with(b"application/x-www-form-urlencoded")
    });
    if request.method != "POST" || request.read_as.is_empty() || form {
        return None;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&request.read_as).is_err() {
        return Some("a body that is not JSON");
    }
    match serde_json::from_slice::<Value>(&request.read_as) {
        Ok(v) if request.target.starts_with("/v1/data") && !(v.is_object() || v.is_null()) => {
            Some("a Data API body that is not an object")
        }
        _ => None,
    }
}

fn check(server: &Server, known: &Known, request: &Fuzz) -> Result<(), TestCaseError> {
    let addr = server.url.trim_start_matches("http://").to_owned();
    let before = state(server, &known.admin);
    let answer = send(&addr, request);
    let text = || String::from_utf8_lossy(&answer.body).into_owned();
    prop_assert!(answer.status < 500, "{} {}", answer.status, text());
    if let Some(why) = must_be_refused(request) {
        prop_assert!(
            (400..500).contains(&answer.status),
            "{why} was answered {}: {}",
            answer.status,
            text()
        );
    }
    if !(400..500).contains(&answer.status) {
        return Ok(());
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    // The OAuth token endpoint answers RFC 6749 §5.2 `application/json` (with the problem
    // members too, `code` = `error`); every other route answers problem+json.
    let oauth = request.target.starts_with("/oauth2/token") && content_type == "application/json";
    prop_assert!(
        content_type.starts_with("application/problem+json") || oauth,
        "{} with Content-Type {:?}: {}",
        answer.status,
        content_type,
        text()
    );
    let problem: Value = serde_json::from_slice(&answer.body).map_err(|e| {
        TestCaseError::fail(format!("{}: not JSON ({e}): {}", answer.status, text()))
    })?;
    prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(answer.status)));
    prop_assert!(
        problem["code"].as_str().is_some_and(|c| !c.is_empty()),
        "no code: {}",
        text()
    );
    if oauth {
        prop_assert_eq!(&problem["error"], &problem["code"]);
    }
    unchanged(server, known, before, "a refused request")
}

/// The default org's state is `before` (entries the server adds by itself aside).
fn unchanged(
    server: &Server,
    known: &Known,
    before: State,
    what: &str,
) -> Result<(), TestCaseError> {
    let after = state(server, &known.admin);
    if after.default_log > before.default_log {
        let added = unexpected_entries(server, &known.admin, before.default_log);
        prop_assert!(added.is_empty(), "{} added {:?}", what, added);
    }
    prop_assert_eq!(
        State {
            default_log: before.default_log,
            ..after
        },
        before,
        "{} changed state",
        what
    );
    Ok(())
}

/// Routes that change something, for [`cross_org_request`].
const WRITE_ROUTES: &[&str] = &[
    "/api/v1/enforcement/identities",
    "/api/v1/enforcement/identities/rotate",
    "/api/v1/enforcement/identities/revoke",
    "/api/v1/enforcement/orgs",
    "/api/v1/enforcement/credentials",
    "/api/v1/enforcement/tokens/issue",
    "/api/v1/enforcement/tokens/revoke",
    "/api/v1/enforcement/tokens/introspect",
    "/api/v1/enforcement/tokens/issuers",
    "/api/v1/enforcement/tokens/settings",
    "/api/v1/enforcement/tokens/keys/rotate",
    "/api/v1/enforcement/bundles/compile",
    "/api/v1/enforcement/bundles/publish",
    "/api/v1/enforcement/bundles/activate",
    "/api/v1/enforcement/bundles/revoke",
];

/// A POST to a write route with `tenant`'s admin key: each of the route's fields is present or
/// not, with a value of the default org's (or `tenant`'s own org name, or a plain value).
fn cross_org_request(known: Known) -> impl Strategy<Value = Fuzz> {
    let picks = proptest::collection::vec((any::<bool>(), any::<proptest::sample::Index>()), 8);
    (proptest::sample::select(WRITE_ROUTES), picks).prop_map(move |(path, picks)| {
        let choices = |field: &str| match field {
            "organizationId" => vec![json!("tenant"), json!("default")],
            "ansId" => vec![json!(known.ans_id)],
            "retireKeyId" => vec![json!(known.key_id)],
            "bundleId" | "rollbackTo" => vec![json!(known.bundle_id)],
            "issuerId" => vec![json!(known.issuer)],
            "token" => vec![json!(known.gateway_token)],
            "tokenId" => vec![json!(known.token_id)],
            "rollback" | "allowNoActive" => vec![json!(true)],
            "kind" => vec![json!("admin"), json!("sidecar")],
            "scope" | "scopes" => vec![json!(["mcp:invoke"])],
            "loaLevel" | "loaCeiling" => vec![json!(1)],
            "maxTtlSeconds" | "defaultTtlSeconds" => vec![json!(60)],
            "files" => vec![json!({"app/p.rego": "package app\n\nallow := true\n"})],
            _ => vec![json!("x"), json!("9.0.0")],
        };
        let body: serde_json::Map<String, Value> = body_fields(path)
            .iter()
            .zip(picks)
            .filter(|(_, (present, _))| *present)
            .map(|(field, (_, at))| {
                let values = choices(field);
                ((*field).to_owned(), values[at.index(values.len())].clone())
            })
            .collect();
        Fuzz {
            method: "POST".into(),
            target: path.into(),
            headers: vec![
                (
                    "Authorization".into(),
                    format!("Bearer {}", known.tenant_admin).into_bytes(),
                ),
                ("Content-Type".into(), b"application/json".to_vec()),
            ],
            read_as: serde_json::to_vec(&body).unwrap(),
            body: serde_json::to_vec(&body).unwrap(),
        }
    })
}

/// Whatever `tenant`'s request is answered (never a 5xx), the default org is unchanged.
fn check_cross_org(server: &Server, known: &Known, request: &Fuzz) -> Result<(), TestCaseError> {
    let before = state(server, &known.admin);
    let answer = send(server.url.trim_start_matches("http://"), request);
    prop_assert!(
        answer.status < 500,
        "{} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    unchanged(server, known, before, "another org's request")
}

/// A gateway token of the default org from `issuer`, and its token id.
fn issue_token(server: &Server, admin: &str, issuer: &str) -> (String, String) {
    let request = tokens::request("default", issuer, "a", 3, json!(["mcp:invoke"]));
    let issued = tokens::issue(
        &server.url,
        admin,
        &merged(&request, json!({"subject": "fuzz"})),
    );
    (
        issued["token"].as_str().unwrap().to_owned(),
        issued["tokenId"].as_str().unwrap().to_owned(),
    )
}

/// Creates an issuer and a gateway token in the default org; finds the bootstrap bundle.
fn setup(server: &Server) -> Known {
    let (url, admin) = (&server.url, server.root());
    let issuer = tokens::create_issuer(url, admin, "default", "fuzz", 4, &["mcp:invoke"]);
    let (gateway_token, token_id) = issue_token(server, admin, &issuer);
    let bundles = get_as(&format!("{url}{API}/bundles?organizationId=default"), admin);
    let bundle_id = bundles.json()["bundles"][0]["id"]
        .as_str()
        .expect("the bootstrap bundle")
        .to_owned();
    let ans_id = "ans://agent.example";
    let (_, key_id) = signed::pin_hmac(url, admin, "default", ans_id);
    orgs::create(url, admin, "tenant");
    let tenant_admin = orgs::credential(url, admin, "tenant", "admin");
    let poll = sidecar::fetch_bundle(url, "default", server.sidecar(), None, None);
    Known {
        admin: admin.to_owned(),
        sidecar: server.sidecar().to_owned(),
        issuer,
        gateway_token,
        bundle_id,
        etag: poll.header("etag").expect("an ETag"),
        ans_id: ans_id.into(),
        key_id,
        token_id,
        tenant_admin,
    }
}

/// Runs `cases` requests from `requests` through `check` against a fresh server, then checks
/// it is still healthy and serving.
fn fuzz<S: Strategy<Value = Fuzz>>(
    cases: u32,
    requests: impl FnOnce(Known) -> S,
    check: fn(&Server, &Known, &Fuzz) -> Result<(), TestCaseError>,
) {
    // Long polls are capped at 1 s so a generated `Prefer: wait=N` cannot stall the suite, and
    // so are the Rego tests of a compile (100 ms each).
    let server = Server::start_with_env(&[
        ("SCK_HTTP__LONG_POLL_MAX_SECS", "1"),
        ("SCK_BUNDLES__TEST_TIMEOUT_MS", "100"),
    ]);
    let known = setup(&server);
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    });
    let result = runner.run(&requests(known.clone()), |request| {
        check(&server, &known, &request)
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    for path in ["/health", "/ready"] {
        assert_eq!(
            get(&format!("{}{path}", server.url), &[]).status,
            200,
            "{path}"
        );
    }
    // A fresh token: valid requests of the run may have revoked the first one, rotated its key
    // or lowered the org's maximum TTL below its lifetime.
    let (token, _) = issue_token(&server, &known.admin, &known.issuer);
    let decided = post_raw(
        &format!("{}{API}/decide", server.url),
        Some(&token),
        "application/json",
        br#"{"action": "tools.invoke", "resource": {"tool": "search"}}"#,
    );
    assert_eq!(
        decided.status,
        200,
        "{}",
        String::from_utf8_lossy(&decided.body)
    );
}

#[test]
fn no_request_gets_a_5xx_a_non_problem_error_or_changes_state_when_refused() {
    let surface = Surface {
        any_method: false,
        malformed_parameters: false,
    };
    fuzz(600, |known| request(known, surface), check);
}

/// The same over the whole surface. Found by this suite, not fixable in its files: a method a
/// path does not allow gets an empty `405` (the router's default, `server.rs`), and a path
/// parameter that is not UTF-8 or not a number (`/status/%80`,
/// `/api/v1/ledger/default/entries/abc`) gets axum's plain-text `400 Invalid URL` (the `Path`
/// extractor of the handlers in `routes/`).
#[test]
fn wrong_methods_and_malformed_path_parameters_get_problem_bodies() {
    let surface = Surface {
        any_method: true,
        malformed_parameters: true,
    };
    fuzz(400, |known| request(known, surface), check);
}

/// Another org's admin key on every write route, aimed at the default org's ids: the final
/// decision of [`fuzz`] also shows the default org's token was not revoked.
#[test]
fn another_orgs_admin_key_changes_nothing_of_the_default_org() {
    fuzz(300, cross_org_request, check_cross_org);
}

/// Every POST route the server documents, with the credential it wants, refuses a body that is
/// not JSON with a problem body and changes nothing: no route acts on a body it does not take
/// (a handler without a body extractor would; see `extract.rs`).
#[test]
fn every_post_route_refuses_a_body_that_is_not_json() {
    let server = Server::start();
    let known = setup(&server);
    let document = get(&format!("{}/openapi.json", server.url), &[]).json();
    let unclosed = "[".repeat(20_000);
    let bodies: [&[u8]; 4] = [
        b"{",
        b"{\"organizationId\": ",
        b"\xff\xfe{}",
        unclosed.as_bytes(),
    ];
    let mut routes = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        if operations.get("post").is_none() {
            continue;
        }
        routes += 1;
        let path = template
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "sck/gateway/decision"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for body in bodies {
            let mut headers = vec![("Content-Type".to_owned(), b"application/json".to_vec())];
            if let Some(auth) = Auth::Right.header(&known, &path) {
                headers.push(("Authorization".to_owned(), auth));
            }
            let request = Fuzz {
                method: "POST".into(),
                target: path.clone(),
                headers,
                body: body.to_vec(),
                read_as: body.to_vec(),
            };
            assert!(must_be_refused(&request).is_some(), "{request:?}");
            if let Err(e) = check(&server, &known, &request) {
                panic!("{e}\n{request:?}");
            }
        }
    }
    assert!(routes >= 20, "only {routes} POST routes documented");
}
