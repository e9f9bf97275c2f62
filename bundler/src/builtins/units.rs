//! `units.parse` and `units.parse_bytes` as OPA reads them. Where the OPA majors disagree —
//! OPA 1.x reads a number with an exponent or a leading `+` (`"1e3"` is 1000, `"+1"` is 1),
//! OPA 0.60 leaves such an input undefined — sck does not pick one: those inputs stop the
//! evaluation. Where regorus differs from both: `_` in the number (`"1_000"`) is undefined in
//! OPA, a trailing point (`"1."`) is read, and `units.parse_bytes` truncates a fraction of a
//! byte (`".5"` is 0) where regorus rounds. Every other input is regorus'.

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use num_bigint::BigUint;

use super::{delegate, scope};

/// Whether OPA 0.60 and 1.x read `text` differently: a leading `+`, or an exponent (a digit or
/// point, `e`/`E`, an optional sign and a digit — `"1E"` alone is the unit exa).
fn majors_disagree(text: &str) -> bool {
    let b = text.as_bytes();
    text.starts_with('+')
        || b.windows(2).enumerate().any(|(i, w)| {
            (w[0].is_ascii_digit() || w[0] == b'.')
                && (w[1] == b'e' || w[1] == b'E')
                && match b.get(i + 2) {
                    Some(b'+' | b'-') => b.get(i + 3).is_some_and(u8::is_ascii_digit),
                    Some(c) => c.is_ascii_digit(),
                    None => false,
                }
        })
}

fn guarded(
    name: &str,
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    let [Value::String(s)] = args else {
        return delegate(name, span, params, args, strict);
    };
    if majors_disagree(s) {
        return Err(scope::refuse(format!(
            "{name}({s:?}): OPA 0.60 and 1.x disagree on numbers with an exponent or a `+`"
        )));
    }
    if s.contains('_') {
        anyhow::bail!("{name}: could not parse {s:?}");
    }
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number = match number.strip_suffix('.') {
        Some(whole) if !whole.is_empty() && !whole.contains('.') => whole,
        _ => number,
    };
    let text = Value::from(format!("{number}{unit}"));
    if name == "units.parse_bytes" {
        if let Some((whole, fraction)) = number.split_once('.') {
            return bytes_truncated(whole, fraction, unit, span, params, strict)
                .map_or_else(|| delegate(name, span, params, &[text], strict), Ok);
        }
    }
    delegate(name, span, params, &[text], strict)
}

/// `whole.fraction` bytes of `unit`, truncated as OPA does.
fn bytes_truncated(
    whole: &str,
    fraction: &str,
    unit: &str,
    span: &Span,
    params: &[Ref<Expr>],
    strict: bool,
) -> Option<Value> {
    let one = Value::from(format!("1{unit}"));
    let multiplier = match delegate("units.parse_bytes", span, params, &[one], strict).ok()? {
        Value::Number(n) => BigUint::parse_bytes(n.format_decimal().as_bytes(), 10)?,
        _ => return None,
    };
    let scaled = BigUint::parse_bytes(format!("0{whole}{fraction}").as_bytes(), 10)?;
    let bytes = scaled * multiplier / BigUint::from(10u8).pow(u32::try_from(fraction.len()).ok()?);
    Value::from_numeric_string(&bytes.to_string()).ok()
}

pub fn parse(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    guarded("units.parse", span, params, args, strict)
}

pub fn parse_bytes(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    guarded("units.parse_bytes", span, params, args, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs run through both majors: where they differ, and where they agree.
    #[test]
    fn disagreements_are_the_exponent_and_plus_forms() {
        for differ in [
            "1e3", "1.5e3K", "2E3", "1e-3", "1e3Mi", "1E3", "1.0e+2", "+1", "-1e2",
        ] {
            assert!(majors_disagree(differ), "{differ}");
        }
        for agree in [
            "1E", "1e", "1eKi", "1Ei", "1Ee", "10", "1.5Gi", "e3", "1ee3", "5m", "1EB", ".5",
        ] {
            assert!(!majors_disagree(agree), "{agree}");
        }
        let ended = scope::run(1 << 20, || {
            super::super::call_plain(parse, &[Value::from("1e3")])
        });
        assert!(matches!(
            ended,
            scope::Ended::Returned(Err(_), Some(scope::Stop::Unsupported(_)))
        ));
        let call = |f: super::super::Fcn, s: &str| super::super::call_plain(f, &[Value::from(s)]);
        assert_eq!(call(parse_bytes, "10Ki").unwrap(), Value::from(10240u64));
        // Where regorus differs from both majors (recorded from OPA 0.60 and 1.9).
        assert!(call(parse, "1_000").is_err());
        assert!(call(parse_bytes, "1_000").is_err());
        assert_eq!(call(parse, "1.").unwrap(), Value::from(1u64));
        assert_eq!(call(parse_bytes, "1.").unwrap(), Value::from(1u64));
        assert_eq!(call(parse_bytes, ".5").unwrap(), Value::from(0u64));
        assert_eq!(
            call(parse_bytes, "1.5Gi").unwrap(),
            Value::from(1610612736u64)
        );
        assert_eq!(call(parse_bytes, "1.0005K").unwrap(), Value::from(1000u64));
    }
}
