//! Ledger entries: fields, event types and the RFC 8785 (JCS) leaf encoding.
//!
//! Pure, no I/O. An entry is `{v, seq, ts, type, org, prev, body}`; its leaf bytes are the JCS
//! canonical JSON of that object and its leaf hash is SHA-256(0x00 || leaf bytes). `prev` is the
//! lowercase hex leaf hash of entry `seq - 1`, or for `seq` 0 the genesis hash
//! SHA-256("sck-ledger-genesis\n" + origin), which binds the chain to its log.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{LedgerError, Result};
use crate::merkle::{leaf_hash, Hash};

/// The entry format version written into every entry (`v`).
pub const FORMAT_VERSION: u32 = 1;

/// Every kind of event the ledger records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    DecisionAllowed,
    DecisionDenied,
    DecisionSidecar,
    BundleCompiled,
    BundlePublished,
    BundleActivated,
    BundleSuperseded,
    BundleRevoked,
    TokenIssued,
    TokenRevoked,
    KeyCreated,
    KeyActivated,
    KeyRetired,
    IdentityPinned,
    IdentityRotated,
    IdentityRevoked,
    UpstreamVerified,
    UpstreamRejected,
    CredentialCreated,
    CredentialRevoked,
    RetentionInputsPruned,
    RouteCreated,
    RouteDeleted,
    RouteCredentialRotated,
    ProxyCompleted,
    ClientCreated,
    ClientRotated,
    ClientRevoked,
    ClientKeyAdded,
    ClientKeyRemoved,
}

impl EventType {
    /// Every event type, in specification order.
    pub const ALL: [EventType; 30] = [
        EventType::DecisionAllowed,
        EventType::DecisionDenied,
        EventType::DecisionSidecar,
        EventType::BundleCompiled,
        EventType::BundlePublished,
        EventType::BundleActivated,
        EventType::BundleSuperseded,
        EventType::BundleRevoked,
        EventType::TokenIssued,
        EventType::TokenRevoked,
        EventType::KeyCreated,
        EventType::KeyActivated,
        EventType::KeyRetired,
        EventType::IdentityPinned,
        EventType::IdentityRotated,
        EventType::IdentityRevoked,
        EventType::UpstreamVerified,
        EventType::UpstreamRejected,
        EventType::CredentialCreated,
        EventType::CredentialRevoked,
        EventType::RetentionInputsPruned,
        EventType::RouteCreated,
        EventType::RouteDeleted,
        EventType::RouteCredentialRotated,
        EventType::ProxyCompleted,
        EventType::ClientCreated,
        EventType::ClientRotated,
        EventType::ClientRevoked,
        EventType::ClientKeyAdded,
        EventType::ClientKeyRemoved,
    ];

    /// The wire name, e.g. `decision.allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DecisionAllowed => "decision.allowed",
            EventType::DecisionDenied => "decision.denied",
            EventType::DecisionSidecar => "decision.sidecar",
            EventType::BundleCompiled => "bundle.compiled",
            EventType::BundlePublished => "bundle.published",
            EventType::BundleActivated => "bundle.activated",
            EventType::BundleSuperseded => "bundle.superseded",
            EventType::BundleRevoked => "bundle.revoked",
            EventType::TokenIssued => "token.issued",
            EventType::TokenRevoked => "token.revoked",
            EventType::KeyCreated => "key.created",
            EventType::KeyActivated => "key.activated",
            EventType::KeyRetired => "key.retired",
            EventType::IdentityPinned => "identity.pinned",
            EventType::IdentityRotated => "identity.rotated",
            EventType::IdentityRevoked => "identity.revoked",
            EventType::UpstreamVerified => "upstream.verified",
            EventType::UpstreamRejected => "upstream.rejected",
            EventType::CredentialCreated => "credential.created",
            EventType::CredentialRevoked => "credential.revoked",
            EventType::RetentionInputsPruned => "retention.inputs_pruned",
            EventType::RouteCreated => "route.created",
            EventType::RouteDeleted => "route.deleted",
            EventType::RouteCredentialRotated => "route.credential_rotated",
            EventType::ProxyCompleted => "proxy.completed",
            EventType::ClientCreated => "client.created",
            EventType::ClientRotated => "client.rotated",
            EventType::ClientRevoked => "client.revoked",
            EventType::ClientKeyAdded => "client.key_added",
            EventType::ClientKeyRemoved => "client.key_removed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| LedgerError::InvalidEvent(format!("unknown event type `{s}`")))
    }
}

/// What a caller asks the ledger to record: a type and a JSON object body.
///
/// Bodies carry ids and hashes only — never raw tokens, secrets or request bodies. The body is
/// canonicalized (RFC 8785) here, on the caller's task, so the single writer only splices bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    kind: EventType,
    body: serde_json::Value,
    canonical_body: Vec<u8>,
    /// A row of the caller's table committed with the entry ([`crate::companion`]).
    row: Option<crate::companion::Row>,
}

impl Event {
    /// An event of `kind` with `body` (checked to be a JSON object).
    pub fn new(kind: EventType, body: serde_json::Value) -> Result<Self> {
        if !body.is_object() {
            return Err(LedgerError::InvalidEvent(
                "event body must be a JSON object".into(),
            ));
        }
        let canonical_body = crate::canonical::to_vec(&body)
            .map_err(|e| LedgerError::InvalidEvent(format!("cannot canonicalize: {e}")))?;
        Ok(Event {
            kind,
            body,
            canonical_body,
            row: None,
        })
    }

    /// The same event, committed together with `row` (see [`crate::companion`]).
    pub fn with_row(mut self, row: crate::companion::Row) -> Self {
        self.row = Some(row);
        self
    }

    /// The companion row, if any.
    pub(crate) fn row(&self) -> Option<&crate::companion::Row> {
        self.row.as_ref()
    }

    /// The event type.
    pub fn kind(&self) -> EventType {
        self.kind
    }

    /// The event body.
    pub fn body(&self) -> &serde_json::Value {
        &self.body
    }
}

/// Largest seq whose JCS (IEEE double) form is the plain decimal integer.
const MAX_EXACT_SEQ: u64 = 1 << 53;

/// One ledger entry as it is hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Format version ([`FORMAT_VERSION`]).
    pub v: u32,
    /// 0-based position in the org log.
    pub seq: u64,
    /// RFC 3339 UTC timestamp with microseconds.
    pub ts: String,
    /// Event type wire name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The org the log belongs to.
    pub org: String,
    /// Lowercase hex leaf hash of entry `seq - 1` (or the genesis hash).
    pub prev: String,
    /// The event body.
    pub body: serde_json::Value,
}

impl Entry {
    /// Builds entry `seq` of `org` recording `event`.
    pub fn new(org: &str, seq: u64, ts: OffsetDateTime, prev: &Hash, event: &Event) -> Self {
        Entry {
            v: FORMAT_VERSION,
            seq,
            ts: format_timestamp(ts),
            kind: event.kind.as_str().to_owned(),
            org: org.to_owned(),
            prev: hex::encode(prev),
            body: event.body.clone(),
        }
    }

    /// The RFC 8785 canonical JSON of this entry: the bytes that are hashed.
    pub fn leaf_bytes(&self) -> Result<Vec<u8>> {
        serde_json_canonicalizer::to_vec(self)
            .map_err(|e| LedgerError::InvalidEvent(format!("cannot canonicalize: {e}")))
    }

    /// Decodes leaf bytes.
    pub fn parse(leaf: &[u8]) -> Result<Self> {
        serde_json::from_slice(leaf).map_err(|e| LedgerError::InvalidEntry(e.to_string()))
    }
}

/// The chain fields of an entry, decoded without copying the body (used by verifiers).
#[derive(Debug, Deserialize)]
pub struct EntryHeader<'a> {
    /// Format version.
    pub v: u32,
    /// Position in the log.
    pub seq: u64,
    /// Org of the log.
    #[serde(borrow)]
    pub org: Cow<'a, str>,
    /// Hex leaf hash of the previous entry.
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
    /// Event type wire name.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// Timestamp.
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
}

impl<'a> EntryHeader<'a> {
    /// Decodes the chain fields of leaf bytes.
    pub fn parse(leaf: &'a [u8]) -> Result<Self> {
        serde_json::from_slice(leaf).map_err(|e| LedgerError::InvalidEntry(e.to_string()))
    }
}

/// SHA-256("sck-ledger-genesis\n" + origin): the `prev` of entry 0.
pub fn genesis_prev(origin: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"sck-ledger-genesis\n");
    h.update(origin.as_bytes());
    h.finalize().into()
}

/// The log origin string `<deployment>/<org>`.
pub fn origin(deployment: &str, org: &str) -> String {
    format!("{deployment}/{org}")
}

/// Formats a time as RFC 3339 UTC with exactly six fractional digits, e.g.
/// `2026-11-23T08:11:14.123456Z`.
pub fn format_timestamp(ts: OffsetDateTime) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.microsecond()
    )
}

/// Builds the leaf bytes and leaf hash of entry `seq` in one step.
///
/// Produces exactly `Entry::new(..).leaf_bytes()` (tested), but by splicing the event's
/// pre-canonicalized body: JCS sorts the keys `body, org, prev, seq, ts, type, v`, and every
/// other value is an escape-free ASCII string (org is validated) or an exact integer.
pub fn seal(
    org: &str,
    seq: u64,
    ts: OffsetDateTime,
    prev: &Hash,
    event: &Event,
) -> Result<(Vec<u8>, Hash)> {
    validate_org(org)?;
    if seq >= MAX_EXACT_SEQ {
        return Err(LedgerError::OutOfRange(format!("seq {seq} is too large")));
    }
    let ts = format_timestamp(ts);
    let mut b = Vec::with_capacity(event.canonical_body.len() + 200);
    b.extend_from_slice(b"{\"body\":");
    b.extend_from_slice(&event.canonical_body);
    b.extend_from_slice(b",\"org\":\"");
    b.extend_from_slice(org.as_bytes());
    b.extend_from_slice(b"\",\"prev\":\"");
    b.extend_from_slice(hex::encode(prev).as_bytes());
    b.extend_from_slice(b"\",\"seq\":");
    b.extend_from_slice(seq.to_string().as_bytes());
    b.extend_from_slice(b",\"ts\":\"");
    b.extend_from_slice(ts.as_bytes());
    b.extend_from_slice(b"\",\"type\":\"");
    b.extend_from_slice(event.kind.as_str().as_bytes());
    b.extend_from_slice(b"\",\"v\":");
    b.extend_from_slice(FORMAT_VERSION.to_string().as_bytes());
    b.push(b'}');
    let hash = leaf_hash(&b);
    Ok((b, hash))
}

/// Checks an org name: 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn validate_org(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 128
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::InvalidEvent(
            "org must be 1-128 characters of [A-Za-z0-9._-]".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaf_bytes_are_jcs_with_sorted_keys() {
        let ev = Event::new(EventType::TokenIssued, json!({"z": 1, "a": "é", "m": 1.0})).unwrap();
        let ts = time::macros::datetime!(2026-11-23 08:11:14.5 UTC);
        let e = Entry::new("acme", 3, ts, &[0xab; 32], &ev);
        let bytes = String::from_utf8(e.leaf_bytes().unwrap()).unwrap();
        assert_eq!(
            bytes,
            format!(
                r#"{{"body":{{"a":"é","m":1,"z":1}},"org":"acme","prev":"{}","seq":3,"ts":"2026-11-23T08:11:14.500000Z","type":"token.issued","v":1}}"#,
                "ab".repeat(32)
            )
        );
        let back = Entry::parse(bytes.as_bytes()).unwrap();
        assert_eq!(back.seq, 3);
        let head = EntryHeader::parse(bytes.as_bytes()).unwrap();
        assert_eq!(head.prev, "ab".repeat(32));
    }

    proptest::proptest! {
        #[test]
        fn seal_equals_full_jcs(
            seq in 0u64..(1u64 << 53),
            micros in 0i64..4_000_000_000_000_000,
            keys in proptest::collection::vec("[a-zA-Z0-9é\\\\\"\u{1F600}\n]{0,8}", 0..6),
            nums in proptest::collection::vec(proptest::num::f64::NORMAL, 0..6),
            prev in proptest::prelude::any::<[u8; 32]>(),
            t in 0usize..20,
        ) {
            let mut body = serde_json::Map::new();
            for (i, k) in keys.iter().enumerate() {
                let v = match nums.get(i) { Some(n) => json!(n), None => json!([k, i, null, true]) };
                body.insert(k.clone(), v);
            }
            let ev = Event::new(EventType::ALL[t], serde_json::Value::Object(body)).unwrap();
            let ts = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
            let (bytes, hash) = seal("org-1", seq, ts, &prev, &ev).unwrap();
            let full = Entry::new("org-1", seq, ts, &prev, &ev).leaf_bytes().unwrap();
            proptest::prop_assert_eq!(&bytes, &full);
            proptest::prop_assert_eq!(hash, leaf_hash(&full));
        }
    }

    #[test]
    fn genesis_depends_on_origin() {
        assert_ne!(genesis_prev("d/a"), genesis_prev("d/b"));
        assert_eq!(
            hex::encode(genesis_prev("")),
            hex::encode(Sha256::digest(b"sck-ledger-genesis\n"))
        );
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        }
        assert!("decision.maybe".parse::<EventType>().is_err());
        assert!(Event::new(EventType::KeyCreated, json!([1])).is_err());
    }

    #[test]
    fn org_names_are_checked() {
        assert!(validate_org("acme-prod_1.x").is_ok());
        for bad in ["", "a/b", "a b", "ä"] {
            assert!(validate_org(bad).is_err());
        }
    }
}
