//! `time.parse_duration_ns` as OPA computes it: Go's `time.ParseDuration`, ported. regorus'
//! own parser slices the text by bytes and panics on a multi-byte character after a number
//! (`"0¡"`, found by `tests/builtins_property.rs`); Go reads the unit bytewise and refuses it.
//!
//! Invariant: a string gets Go's answer (nanoseconds as an integer, or an error for what Go
//! refuses, including overflow past 64 bits); other argument types are regorus' type errors.

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::delegate;

/// Nanoseconds per unit, as Go's `unitMap` (both micro signs included).
fn unit(name: &[u8]) -> Option<u64> {
    Some(match name {
        b"ns" => 1,
        // `µs` (U+00B5) and `μs` (U+03BC), as UTF-8.
        b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

const LIMIT: u64 = 1 << 63;

/// Go's `leadingInt`: the digits at the start, `None` past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for &c in &s[..digits] {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// Go's `leadingFraction`: the digits at the start as an integer and its scale, digits past
/// 63 bits ignored.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..digits] {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` in nanoseconds.
pub fn parse(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some(&sign @ (b'-' | b'+')) = s.first() {
        negative = sign == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            (f, scale, s) = leading_fraction(s);
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        let end = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if end == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let per = unit(&s[..end]).ok_or_else(|| {
            let name = String::from_utf8_lossy(&s[..end]);
            format!("time: unknown unit {name:?} in duration {text:?}")
        })?;
        s = &s[end..];
        if v > LIMIT / per {
            return Err(invalid());
        }
        v *= per;
        if f > 0 {
            // As Go: a float64 is exact enough for fractions of the largest unit (hours).
            v += (f as f64 * (per as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

pub fn parse_duration_ns(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    match args {
        [Value::String(text)] => parse(text).map(Value::from).map_err(anyhow::Error::msg),
        _ => delegate("time.parse_duration_ns", span, params, args, strict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers recorded from OPA 0.60 and 1.9 (`opa eval 'time.parse_duration_ns("…")'`; both
    /// gave the same for every case); `None` where OPA errs.
    #[test]
    fn durations_are_gos() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1h30m", Some(5_400_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("-1.5s", Some(-1_500_000_000)),
            ("0", Some(0)),
            ("-0", Some(0)),
            ("+5m", Some(300_000_000_000)),
            ("", None),
            ("1", None),
            ("0\u{a1}", None),
            ("1\u{b5}s", Some(1_000)),
            ("1\u{3bc}s", Some(1_000)),
            ("1.s", Some(1_000_000_000)),
            (".5s", Some(500_000_000)),
            (".", None),
            ("9223372036854775807ns", Some(i64::MAX)),
            ("9223372036854775808ns", None),
            ("-9223372036854775808ns", Some(i64::MIN)),
            ("1d", None),
            ("0.0000000001s", Some(0)),
            ("2562047h47m16.854775807s", Some(i64::MAX)),
            ("1.0000000000000000001h", Some(3_600_000_000_000)),
            ("1h-1m", None),
            ("5m3.2s", Some(303_200_000_000)),
            ("00001ms", Some(1_000_000)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).ok(), *expected, "{text:?}");
        }
    }
}
