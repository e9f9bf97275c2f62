//! RFC 8785 (JCS) canonical JSON for ledger bodies and document hashes, with a fast path.
//!
//! For the documents sck hashes on every decision, serde_json's compact output already *is*
//! the canonical form: its maps are sorted (`serde_json` without `preserve_order`), it escapes
//! strings exactly as JCS does, and prints integers the same way. The differences are floats
//! (JCS uses ECMAScript number formatting), integers beyond ±2^53 (JCS treats every number as
//! an IEEE double), and key order between characters above U+E000 and supplementary ones (JCS
//! compares UTF-16 code units). Documents with any of those take the general canonicalizer.
//!
//! Invariant: [`to_vec`] equals the reference canonicalizer (`serde_json_canonicalizer`) on
//! every document (proptest below); the fast path only decides how quickly.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest integer an IEEE double holds exactly.
const MAX_EXACT: u64 = 1 << 53;

/// The RFC 8785 canonical form of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, String> {
    if compact_is_canonical(value) {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    } else {
        serde_json_canonicalizer::to_vec(value).map_err(|e| e.to_string())
    }
}

/// Hex SHA-256 of `value`'s canonical form.
pub fn sha256_hex(value: &Value) -> Result<String, String> {
    Ok(hex::encode(Sha256::digest(to_vec(value)?)))
}

/// Whether serde_json's compact serialization of `value` equals its JCS form.
fn compact_is_canonical(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u <= MAX_EXACT,
            (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT,
            _ => false,
        },
        Value::Array(items) => items.iter().all(compact_is_canonical),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| k.chars().all(|c| c < '\u{e000}') && compact_is_canonical(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn reference(value: &Value) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(value).unwrap()
    }

    #[test]
    fn maps_are_sorted_whatever_the_insertion_order() {
        // Guards the fast path against serde_json's `preserve_order` feature being enabled.
        let mut map = serde_json::Map::new();
        map.insert("b".into(), json!(1));
        map.insert("a".into(), json!(2));
        let value = Value::Object(map);
        assert!(compact_is_canonical(&value));
        assert_eq!(to_vec(&value).unwrap(), br#"{"a":2,"b":1}"#);
    }

    #[test]
    fn the_cases_the_fast_path_refuses_still_canonicalize() {
        for value in [
            json!({"n": 1.5}),
            json!({"n": 1.0}),
            json!({"n": 1e21}),
            json!({"n": 9007199254740993_u64}),
            json!({"n": -9007199254740993_i64}),
            json!({"\u{ffff}": 1, "\u{10000}": 2}),
        ] {
            assert!(!compact_is_canonical(&value), "{value}");
            assert_eq!(to_vec(&value).unwrap(), reference(&value), "{value}");
        }
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{0,6}",
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just('\u{e000}'),
                    Just('\u{ffff}'),
                    Just('\u{10000}'),
                    Just('é'),
                    Just('\u{7f}'),
                    Just('\u{1}'),
                    Just('"'),
                ],
                0..4
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(arb_key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn equals_the_reference_canonicalizer(value in arb_json()) {
            prop_assert_eq!(to_vec(&value).unwrap(), reference(&value));
        }
    }
}
