//! JSON documents with their number literals intact, and OPA's canonical JSON form.
//!
//! OPA hashes `data.json`, `data.yaml` and `.manifest` over a canonical encoding (see
//! `spec/bundles.md`): object keys sorted by byte order, no insignificant whitespace, strings
//! escaped as Go's `encoding/json` does with HTML escaping off, and numbers written as the
//! literal text of the source (tokenizing is done by `jiter`, which hands out each number's
//! bytes), so a bundle written by OPA hashes to exactly what OPA signed. When sck writes data
//! itself, every number is first rewritten as a plain decimal ([`Numbers::Plain`],
//! [`Json::normalize_numbers`]) so that every OPA version agrees on the bytes.
//!
//! Data documents can be hundreds of megabytes, so they are never turned into a tree:
//! [`write_canonical`], [`canonical_digest`] and [`validate`] work on the text itself (module
//! `stream`). [`Json`], a tree that keeps number literals, is for small documents (the
//! manifest).

use std::collections::BTreeMap;

mod stream;

pub(crate) use stream::skip_value;
pub use stream::{canonical_digest, validate, write_canonical, Numbers};

/// Deepest nesting accepted in a JSON document; deeper input is refused instead of
/// exhausting the stack.
pub const MAX_DEPTH: usize = 256;

/// Largest decimal exponent a number may need when written as a plain decimal.
const MAX_PLAIN_EXPONENT: i64 = 400;

/// A JSON value whose numbers keep their literal source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's literal text, e.g. `1.50` or `-3e2`.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys in byte order; a key given twice keeps its last value, as Go's decoder does.
    Object(BTreeMap<String, Json>),
}

/// Why a document is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("number {0} cannot be written as a plain decimal")]
    UnrepresentableNumber(String),
}

impl Json {
    /// Parses UTF-8 JSON text, keeping number literals (tokenized by `jiter`).
    pub fn parse(bytes: &[u8]) -> Result<Json, JsonError> {
        let mut jiter = jiter::Jiter::new(bytes);
        let result = jiter
            .peek()
            .map_err(Build::Syntax)
            .and_then(|peek| Self::from_jiter(&mut jiter, peek, 0))
            .and_then(|value| jiter.finish().map(|()| value).map_err(Build::Syntax));
        result.map_err(|e| match e {
            Build::Syntax(e) => JsonError::Syntax(e.description(&jiter)),
            Build::TooDeep => JsonError::TooDeep,
        })
    }

    fn from_jiter(
        jiter: &mut jiter::Jiter<'_>,
        peek: jiter::Peek,
        depth: usize,
    ) -> Result<Json, Build> {
        use jiter::Peek;
        if depth >= MAX_DEPTH {
            return Err(Build::TooDeep);
        }
        Ok(match peek {
            Peek::Null => {
                jiter.known_null()?;
                Json::Null
            }
            Peek::True | Peek::False => Json::Bool(jiter.known_bool(peek)?),
            Peek::String => Json::String(jiter.known_str()?.to_owned()),
            Peek::Array => {
                let mut items = Vec::new();
                let mut next = jiter.known_array()?;
                while let Some(peek) = next {
                    items.push(Self::from_jiter(jiter, peek, depth + 1)?);
                    next = jiter.array_step()?;
                }
                Json::Array(items)
            }
            Peek::Object => {
                let mut map = BTreeMap::new();
                let mut key = jiter.known_object()?.map(str::to_owned);
                while let Some(k) = key {
                    let peek = jiter.peek()?;
                    let value = Self::from_jiter(jiter, peek, depth + 1)?;
                    map.insert(k, value);
                    key = jiter.next_key()?.map(str::to_owned);
                }
                Json::Object(map)
            }
            _ => {
                let literal = jiter.known_number_bytes(peek)?;
                // Only JSON number grammar gets here, which is ASCII.
                Json::Number(String::from_utf8_lossy(literal).into_owned())
            }
        })
    }

    /// Converts a `serde_json` value (as produced by the YAML reader or by code).
    pub fn from_serde(value: &serde_json::Value) -> Json {
        use serde_json::Value as V;
        match value {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(*b),
            V::Number(n) => Json::Number(n.to_string()),
            V::String(s) => Json::String(s.clone()),
            V::Array(items) => Json::Array(items.iter().map(Self::from_serde).collect()),
            V::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_serde(v)))
                    .collect(),
            ),
        }
    }

    /// OPA's canonical encoding of this value (the bytes OPA hashes for signing).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(true) => out.extend_from_slice(b"true"),
            Json::Bool(false) => out.extend_from_slice(b"false"),
            Json::Number(literal) => out.extend_from_slice(literal.as_bytes()),
            Json::String(s) => write_go_string(s, out),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_canonical(out);
                }
                out.push(b']');
            }
            Json::Object(map) => {
                out.push(b'{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_go_string(key, out);
                    out.push(b':');
                    value.write_canonical(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Rewrites every number as a plain decimal (`1.0` → `1`, `1e3` → `1000`, `2.50` → `2.5`),
    /// exactly, from the literal digits.
    pub fn normalize_numbers(&mut self) -> Result<(), JsonError> {
        match self {
            Json::Number(literal) => {
                *literal = plain_decimal(literal)?;
                Ok(())
            }
            Json::Array(items) => items.iter_mut().try_for_each(Json::normalize_numbers),
            Json::Object(map) => map.values_mut().try_for_each(Json::normalize_numbers),
            Json::Null | Json::Bool(_) | Json::String(_) => Ok(()),
        }
    }
}

/// Why building a [`Json`] from tokens stopped.
enum Build {
    Syntax(jiter::JiterError),
    TooDeep,
}

impl From<jiter::JiterError> for Build {
    fn from(e: jiter::JiterError) -> Self {
        Build::Syntax(e)
    }
}

/// Writes `s` as Go's `encoding/json` does with `SetEscapeHTML(false)` (Go 1.21, the toolchain
/// of OPA 0.60): `"` and `\` escaped, `\n` `\r` `\t` as short escapes, other control characters
/// as `\u00xx`, and U+2028/U+2029 escaped; everything else verbatim.
pub(crate) fn write_go_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Bytes that need no escape are copied in runs.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (escaped, len): (&[u8], usize) = match bytes[i] {
            b'"' => (b"\\\"", 1),
            b'\\' => (b"\\\\", 1),
            b'\n' => (b"\\n", 1),
            b'\r' => (b"\\r", 1),
            b'\t' => (b"\\t", 1),
            b if b < 0x20 => {
                out.extend_from_slice(&bytes[run..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                i += 1;
                run = i;
                continue;
            }
            // U+2028 and U+2029 in UTF-8.
            0xE2 if bytes[i + 1..].starts_with(&[0x80, 0xA8]) => (b"\\u2028", 3),
            0xE2 if bytes[i + 1..].starts_with(&[0x80, 0xA9]) => (b"\\u2029", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escaped);
        i += len;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Rewrites a JSON number literal as the shortest plain decimal with the same value.
pub(crate) fn plain_decimal(literal: &str) -> Result<String, JsonError> {
    let bad = || JsonError::UnrepresentableNumber(literal.to_owned());
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (
            &unsigned[..i],
            unsigned[i + 1..].parse::<i64>().map_err(|_| bad())?,
        ),
        None => (unsigned, 0),
    };
    if exponent.abs() > MAX_PLAIN_EXPONENT {
        return Err(bad());
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = [int_part, frac_part].concat();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // The value is 0.<digits> × 10^point.
    let point = int_part.len() as i64 + exponent;
    let first_nonzero = digits.bytes().position(|b| b != b'0');
    let Some(first) = first_nonzero else {
        return Ok("0".to_owned());
    };
    let last = digits.bytes().rposition(|b| b != b'0').unwrap_or(first);
    let significant = &digits[first..=last];
    let point = point - first as i64;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(significant);
    } else if point as usize >= significant.len() {
        out.push_str(significant);
        out.extend(std::iter::repeat_n('0', point as usize - significant.len()));
    } else {
        let (whole, fraction) = significant.split_at(point as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        String::from_utf8(Json::parse(text.as_bytes()).unwrap().to_canonical_bytes()).unwrap()
    }

    #[test]
    fn sorts_keys_by_bytes_and_keeps_number_literals() {
        assert_eq!(
            canonical(r#"{ "b": 1.50, "a": [1e3, -0, 2], "B": null, "é": true }"#),
            r#"{"B":null,"a":[1e3,-0,2],"b":1.50,"é":true}"#
        );
    }

    #[test]
    fn escapes_strings_like_go_without_html_escaping() {
        assert_eq!(
            canonical(
                "[\"<a&b>\", \"q\\\"\\\\\", \"\\n\\r\\t\\b\\f\\u0001\", \"\\u2028\\u2029\\u007f\"]"
            ),
            "[\"<a&b>\",\"q\\\"\\\\\",\"\\n\\r\\t\\u0008\\u000c\\u0001\",\"\\u2028\\u2029\u{7f}\"]"
        );
    }

    #[test]
    fn last_duplicate_key_wins() {
        assert_eq!(canonical(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }

    #[test]
    fn rejects_deep_nesting_and_bad_syntax() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(Json::parse(deep.as_bytes()), Err(JsonError::TooDeep));
        assert!(matches!(
            Json::parse(b"{\"a\":}"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(Json::parse(b"\xff"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn plain_decimals_are_exact() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("1.0", "1"),
            ("2.50", "2.5"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            ("-12.34e1", "-123.4"),
            ("0.000", "0"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("10", "10"),
            ("0.5", "0.5"),
        ] {
            assert_eq!(plain_decimal(input).unwrap(), want, "{input}");
        }
        assert!(plain_decimal("1e999").is_err());
    }
}
