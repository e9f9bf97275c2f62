//! Fuzz-style properties of the gateway's public parsers, library level (the HTTP level is
//! `tests/fuzz_e2e.rs`): the configuration file, OPA decision-log and status bodies (gzip
//! included) and the X-SCK header block beyond `xsck/canonical.rs`'s own properties (which
//! vary header values only): arbitrary header names, cases and values, timestamps, signature
//! values and public URLs. Never a panic; refusals carry their codes; what is accepted is
//! well formed — and an accepted signature value is the only spelling of that signature.
//! The edge's check of a connection's first request head (`edge.rs`) is compared with hyper
//! itself: it refuses exactly the heads hyper refuses, with hyper's status.

use std::io::Write;

use proptest::prelude::*;
use sck_enforce::budget::Budget;
use sck_enforce::config::Config;
use sck_enforce::fleet::events::{gunzip_bounded, parse_batch};
use sck_enforce::fleet::status::parse_status;
use sck_enforce::fleet::{InputPolicy, Uploader};
use sck_gateway::api_error::status_of;
use sck_gateway::edge::{check_head, Head};
use sck_ledger::canonical::sha256_hex as canonical_sha256;
use sck_wire::xsck::{self as canonical, Signature};
use serde_json::{json, Value};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!("2026-01-01T00:00:00Z")),
        Just(json!("x".repeat(300))),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "id",
                        "version",
                        "decision_id",
                        "labels",
                        "timestamp",
                        "input",
                        "result",
                        "path",
                        "bundles",
                        "revision",
                        "active_revision",
                        "plugins",
                        "state",
                        "errors",
                        "metrics",
                        "erased",
                        "masked",
                        "req_id",
                        "query",
                        "requested_by",
                        "password",
                    ])
                    .prop_map(str::to_owned),
                    "\\PC{0,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An OPA decision-log event with every field present, then some replaced by anything.
fn event() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9-]{0,12}",
        proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "decision_id",
                    "labels",
                    "timestamp",
                    "input",
                    "result",
                    "path",
                    "bundles",
                    "metrics",
                    "erased",
                    "masked",
                    "req_id",
                    "requested_by",
                    "query",
                ]),
                json_value(),
            ),
            0..3,
        ),
    )
        .prop_map(|(id, replacements)| {
            let mut event = json!({
                "labels": {"id": "opa-1", "version": "0.60.0"},
                "decision_id": id,
                "bundles": {"gateway": {"revision": "1.0.0"}},
                "path": "sck/gateway/decision",
                "input": {"user": "bob", "password": "hunter2", "nested": {"k": [1, 2]}},
                "result": {"allow": false, "reasons": ["loa_too_low"]},
                "timestamp": "2026-01-01T00:00:00.123456789Z",
                "metrics": {"timer_rego_query_eval_ns": 1234},
            });
            for (field, value) in replacements {
                event[field] = value;
            }
            event
        })
}

fn uploader() -> Uploader<'static> {
    Uploader {
        credential_id: "crd_1",
        partition: Some("east"),
    }
}

fn policy(store_input: bool) -> InputPolicy {
    InputPolicy {
        store_input,
        mask: vec!["/input/password".into(), "/input/nested/k/0".into()],
        input_retention_days: None,
    }
}

/// Header names the X-SCK parser sees: its own in any case, and others.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            canonical::SIGNATURE,
            canonical::TIMESTAMP,
            canonical::ANS_ID,
            canonical::ORGANIZATION,
            canonical::NONCE,
            canonical::KEY_ID,
        ])
        .prop_flat_map(|name| {
            proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
                name.chars()
                    .zip(upper)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                    .collect()
            })
        }),
        "x-sck-[a-z-]{0,10}",
        "[a-z-]{1,12}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(format!("hmac-sha256={}", "ab".repeat(32)).into_bytes()),
        Just(format!("ed25519={}=", "A".repeat(87)).into_bytes()),
        Just(b"2026-01-01T00:00:00Z".to_vec()),
        Just(b"1767225600".to_vec()),
        Just(b"ans://agent.example".to_vec()),
        Just(b"nonce-0123456789".to_vec()),
        "[!-~]{0,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
        Just(vec![b'a'; canonical::MAX_VALUE_LEN + 1]),
    ]
}

fn visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b)) && s.len() <= canonical::MAX_VALUE_LEN
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any configuration file: a `Config` or an error message, never a panic.
    #[test]
    fn any_configuration_file_loads_or_is_refused(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[fleet]".to_owned()),
                Just("[fleet.orgs.acme]".to_owned()),
                Just("[http]".to_owned()),
                Just("[decisions]".to_owned()),
                Just("[xsck]".to_owned()),
                Just("input_retention_days = 18446744073709551615".to_owned()),
                Just("input_retention_days = -1".to_owned()),
                Just("store_input = \"yes\"".to_owned()),
                Just("max_body_bytes = 1e400".to_owned()),
                Just("listen = \"::::\"".to_owned()),
                Just("subject_rate = { per_second = 0, burst = -5 }".to_owned()),
                Just("mask = [\"/password\", 7]".to_owned()),
                "[a-z_]{1,20} = [0-9]{1,25}",
                "[a-z_]{1,20} = \"\\PC{0,10}\"",
                "\\PC{0,30}",
            ],
            0..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sck.toml");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Err(e) = Config::load(Some(&path)) {
            prop_assert!(e.starts_with("configuration"), "{}", e);
        }
    }

    /// Any decision-log body: a validated batch or a refusal with a code, never a panic. An
    /// accepted event's entry holds the hash of the input as uploaded and never the input; a
    /// kept input has the mask pointers removed.
    #[test]
    fn any_decision_log_body_is_validated_whole(
        events in proptest::collection::vec(event(), 0..4),
        wrapper in prop_oneof![
            3 => Just(None),
            1 => json_value().prop_map(Some),
        ],
        store_input in any::<bool>(),
    ) {
        let document = wrapper.unwrap_or_else(|| Value::from(events.clone()));
        let bytes = serde_json::to_vec(&document).unwrap();
        match parse_batch(&bytes, &uploader(), &policy(store_input), 3) {
            Err(e) => {
                prop_assert!(status_of(e.kind).is_client_error(), "{}", e);
                prop_assert!(!e.code.is_empty());
            }
            Ok(batch) => {
                for decision in batch {
                    let event = events
                        .iter()
                        .find(|e| e["decision_id"] == decision.decision_id.as_str())
                        .unwrap();
                    prop_assert!(decision.body.get("input").is_none());
                    match event.get("input") {
                        Some(input) => prop_assert_eq!(
                            &decision.body["input_sha256"],
                            &json!(canonical_sha256(input).unwrap())
                        ),
                        None => prop_assert!(decision.body["input_sha256"].is_null()),
                    }
                    prop_assert!(!decision.body.to_string().contains("hunter2"));
                    if let Some(kept) = &decision.input {
                        prop_assert!(store_input);
                        prop_assert!(kept.input.pointer("/password").is_none());
                        prop_assert!(!kept.input.to_string().contains("hunter2"));
                    }
                }
            }
        }
    }

    /// Arbitrary bytes, plain or inside gzip, under a shared budget of any capacity: never a
    /// panic, never more than the bound; the budget holds exactly what was kept while the
    /// reservation lives, never more than its capacity, and refuses with 503
    /// `decompression_busy` only what it could not cover.
    #[test]
    fn any_upload_bytes_are_refused_or_bounded(
        raw in proptest::collection::vec(any::<u8>(), 0..512),
        max in 0u64..600,
        capacity in 0u64..700,
    ) {
        let budget = Budget::new("fuzz_budget", capacity);
        for (body, inflates_to) in [(raw.clone(), None), (gzip(&raw), Some(raw.len() as u64))] {
            let mut reservation = budget.reservation();
            match gunzip_bounded(&body, max, &mut reservation) {
                Ok(out) => {
                    prop_assert!(out.len() as u64 <= max);
                    prop_assert_eq!(budget.in_use(), out.len() as u64);
                }
                Err(e) if e.code == "decompression_busy" => {
                    prop_assert_eq!(status_of(e.kind).as_u16(), 503);
                    prop_assert!(e.retry_after.is_some());
                    if let Some(size) = inflates_to {
                        prop_assert!(capacity < size.min(max.saturating_add(1)));
                    }
                }
                Err(e) => prop_assert!(status_of(e.kind).is_client_error(), "{}", e),
            }
            prop_assert!(budget.in_use() <= capacity);
            drop(reservation);
            prop_assert_eq!(budget.in_use(), 0);
        }
        let _ = parse_batch(&raw, &uploader(), &policy(true), 10);
    }

    /// Any status report: a summary or a 400 `invalid_status`, never a panic.
    #[test]
    fn any_status_report_is_summarised_or_refused(value in json_value(), labels in any::<bool>()) {
        let mut report = value;
        if labels {
            if let Value::Object(map) = &mut report {
                map.insert("labels".into(), json!({"id": "opa-1"}));
            }
        }
        if let Err(e) = parse_status(&report) {
            prop_assert_eq!(e.code, "invalid_status");
        }
    }

    /// Any X-SCK header block (names in any case, duplicates, anything as values): parsed
    /// headers are well formed, and every refusal is a malformed-request code.
    #[test]
    fn any_xsck_header_block_is_parsed_or_refused(
        headers in proptest::collection::vec((header_name(), header_value()), 0..9),
        require_nonce in any::<bool>(),
    ) {
        let parsed = canonical::parse_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            require_nonce,
        );
        match parsed {
            Ok(h) => {
                for value in [&h.timestamp, &h.ans_id, &h.organization] {
                    prop_assert!(visible_ascii(value), "{value:?}");
                }
                prop_assert!(canonical::parse_timestamp(&h.timestamp).is_ok());
                match &h.nonce {
                    Some(n) => prop_assert!(visible_ascii(n) && canonical::NONCE_LEN.contains(&n.len())),
                    None => prop_assert!(!require_nonce),
                }
            }
            Err(e) => prop_assert!(
                ["missing_header", "duplicate_header", "invalid_header"].contains(&e.code()),
                "{}",
                e.code()
            ),
        }
    }

    /// An accepted `X-SCK-Signature` value is the one canonical spelling of its signature (so
    /// a signature cannot be replayed under a second spelling).
    #[test]
    fn accepted_signature_values_are_canonical(
        value in prop_oneof![
            "\\PC{0,100}",
            "(hmac-sha256|ed25519|HMAC-SHA256)=[0-9a-fA-F]{60,68}",
            "ed25519=[A-Za-z0-9+/]{84,90}={0,2}",
        ],
    ) {
        if let Ok(signature) = Signature::parse(&value) {
            prop_assert_eq!(signature.header_value(), value);
        }
    }

    /// Timestamps: unix seconds (at most 12 digits) or RFC 3339 UTC; anything else refused.
    #[test]
    fn timestamps_parse_only_in_their_two_forms(
        value in prop_oneof![
            "\\PC{0,30}",
            "[0-9]{0,14}",
            "-?[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ],
        now in any::<i64>(),
        skew in any::<i64>(),
    ) {
        if let Ok(at) = canonical::parse_timestamp(&value) {
            let digits = value.bytes().all(|b| b.is_ascii_digit());
            prop_assert!(digits || value.ends_with('Z') || value.ends_with("+00:00"), "{value}");
            prop_assert!(at >= 0 || !digits);
        }
        let _ = canonical::check_skew(&value, now, skew);
    }

    /// Any configured public URL gives an authority without scheme, path or userinfo.
    #[test]
    fn authorities_are_bare(url in "\\PC{0,60}") {
        let authority = canonical::authority_of(&url);
        prop_assert!(!authority.contains(['/', '?', '#', '@']), "{authority:?}");
        prop_assert_eq!(authority.to_ascii_lowercase(), authority);
    }

    /// The edge refuses a first request head exactly when hyper would, with hyper's status, and
    /// hands hyper every head it accepts: it never changes what sck accepts.
    #[test]
    fn the_edge_refuses_exactly_the_heads_hyper_refuses(head in request_head()) {
        let hyper = hyper_status(&head);
        match check_head(&head) {
            Head::Acceptable => prop_assert_eq!(hyper, Some(200)),
            Head::Refused(error) => {
                prop_assert_eq!(hyper, Some(error.status.as_u16()), "{}", error);
                prop_assert!(
                    ["invalid_header", "invalid_request_line", "header_too_large", "uri_too_long"]
                        .contains(&error.code),
                    "{}",
                    error.code
                );
            }
            Head::Incomplete => prop_assert_eq!(hyper, None),
        }
    }
}

/// What hyper answers to `head` (sent with `Connection: close`): its status, or `None` if it
/// answered nothing.
fn hyper_status(head: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let service = hyper::service::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let connection = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(server), service),
        );
        client.write_all(head).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut answer),
        )
        .await
        .expect("hyper answers or closes")
        .unwrap();
        let _ = connection.await;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        response.parse(&answer).ok()?;
        response.code
    })
}

/// Bytes of a request line or header line: anything but CR and LF (which would make lines of
/// their own: `Content-Length` or `Transfer-Encoding` values hyper checks after parsing).
fn line_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![8 => 0x20u8..=0x7e, 1 => 0u8..=0x1f, 1 => 0x7fu8..=0xff]
            .prop_filter("no line breaks", |b| *b != b'\r' && *b != b'\n'),
        0..max,
    )
}

fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "OPTIONS", "PATCH", "BREW"]).prop_map(|m| m.as_bytes().to_vec()),
        1 => line_bytes(8),
    ];
    let target = prop_oneof![
        4 => prop::sample::select(vec!["/", "/health", "/v1/data/a/b?x=1&y", "*", "http://h/p", "/%zz", "//a"])
            .prop_map(|t| t.as_bytes().to_vec()),
        2 => line_bytes(24),
        1 => Just(format!("/{}", "a".repeat(65_534)).into_bytes()),
    ];
    let version = prop_oneof![
        6 => Just(b"HTTP/1.1".to_vec()),
        1 => prop::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", ""]).prop_map(|v| v.as_bytes().to_vec()),
    ];
    let name = prop_oneof![
        4 => prop::sample::select(vec!["Host", "Authorization", "X-A", "Accept"]).prop_map(|n| n.as_bytes().to_vec()),
        1 => line_bytes(10),
    ]
    .prop_filter("fields hyper interprets after parsing", |n| {
        let n = String::from_utf8_lossy(n).to_ascii_lowercase();
        !["content-length", "transfer-encoding", "connection", "expect", "upgrade"].contains(&n.trim())
    });
    let field = (name, line_bytes(24));
    let fields = prop_oneof![
        8 => proptest::collection::vec(field, 0..6),
        1 => Just(vec![(b"X-A".to_vec(), b"b".to_vec()); 99]),
        1 => Just(vec![(b"X-A".to_vec(), b"b".to_vec()); 100]),
    ];
    (method, target, version, fields, any::<bool>()).prop_map(
        |(method, target, version, fields, colon_space)| {
            let mut head = [method, target, version].join(&b' ');
            head.extend_from_slice(b"\r\n");
            for (name, value) in fields {
                head.extend_from_slice(&name);
                head.extend_from_slice(if colon_space { b": " } else { b":" });
                head.extend_from_slice(&value);
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            head
        },
    )
}
