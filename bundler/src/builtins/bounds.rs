//! Argument bounds for the built-ins whose output can be much larger than their input. Each
//! one estimates what the call would allocate from its arguments alone, charges that to the
//! evaluation's budget ([`scope::charge`]), and only then lets regorus run it: a call that would
//! not fit stops the evaluation (`evaluation_limit`) before it allocates anything. regorus'
//! own time limit is only checked between instructions, so a single `numbers.range(1, 5e7)`
//! would otherwise run to completion (seconds, gigabytes) whatever the limit.

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{delegate, scope};

const VALUE: u64 = std::mem::size_of::<Value>() as u64;

fn int(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) if n.is_integer() => n.as_i128(),
        _ => None,
    }
}

fn len(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.len() as u64,
        Value::Set(s) => s.len() as u64,
        Value::Object(o) => o.len() as u64,
        _ => 0,
    }
}

/// Elements of `numbers.range(a, b)` / `numbers.range_step(a, b, step)`.
fn range_len(args: &[Value]) -> u64 {
    let (Some(a), Some(b)) = (args.first().and_then(int), args.get(1).and_then(int)) else {
        return 0;
    };
    let step = args
        .get(2)
        .map_or(Some(1), int)
        .filter(|s| *s != 0)
        .unwrap_or(1);
    let span = (b - a).unsigned_abs() / step.unsigned_abs() + 1;
    u64::try_from(span).unwrap_or(u64::MAX)
}

macro_rules! bounded {
    ($fn:ident, $name:literal, |$args:ident| $estimate:expr) => {
        pub fn $fn(
            span: &Span,
            params: &[Ref<Expr>],
            $args: &[Value],
            strict: bool,
        ) -> anyhow::Result<Value> {
            scope::charge($name, $estimate)?;
            delegate($name, span, params, $args, strict)
        }
    };
}

bounded!(range, "numbers.range", |args| range_len(args)
    .saturating_mul(VALUE));
bounded!(range_step, "numbers.range_step", |args| range_len(args)
    .saturating_mul(VALUE));
bounded!(concat, "concat", |args| {
    let delimiter = args.first().map_or(0, len);
    match args.get(1) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| len(v).saturating_add(delimiter))
            .fold(0u64, u64::saturating_add),
        Some(Value::Set(items)) => items
            .iter()
            .map(|v| len(v).saturating_add(delimiter))
            .fold(0u64, u64::saturating_add),
        _ => 0,
    }
});
bounded!(array_concat, "array.concat", |args| args
    .iter()
    .map(len)
    .fold(0u64, u64::saturating_add)
    .saturating_mul(VALUE));

/// Bytes of replacing every occurrence of `old` in `s` by `new` (an empty `old` matches
/// between every two characters).
fn replaced(s: u64, old: u64, new: u64) -> u64 {
    let matches = s.checked_div(old).unwrap_or(s) + 1;
    s.saturating_add(matches.saturating_mul(new))
}

bounded!(replace, "replace", |args| match args {
    [s, old, new] => replaced(len(s), len(old), len(new)),
    _ => 0,
});
bounded!(replace_n, "strings.replace_n", |args| match args {
    [Value::Object(patterns), s] => patterns
        .iter()
        .map(|(old, new)| replaced(len(s), len(old), len(new)))
        .fold(0u64, u64::saturating_add),
    _ => 0,
});

/// `regex.replace(s, pattern, value)`: the pattern is Go's (see [`super::regex`]); a match can
/// be empty, so the bound is that of replacing between every two characters.
pub fn regex_replace(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    if let [s, _, value] = args {
        scope::charge("regex.replace", replaced(len(s), 0, len(value)))?;
    }
    super::regex::regex_replace(span, params, args, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_the_arguments() {
        let n = |v: i64| Value::from(v);
        assert_eq!(range_len(&[n(1), n(50_000_000)]), 50_000_000);
        assert_eq!(range_len(&[n(10), n(1)]), 10);
        assert_eq!(range_len(&[n(1), n(10), n(3)]), 4);
        assert_eq!(replaced(4, 0, 2), 4 + 5 * 2);
        assert_eq!(replaced(6, 2, 1), 6 + 4);
    }

    #[test]
    fn a_huge_range_stops_before_it_is_built() {
        let call =
            || super::super::call_plain(range, &[Value::from(1i64), Value::from(50_000_000i64)]);
        let ended = scope::run(64 << 20, call);
        assert!(
            matches!(
                ended,
                scope::Ended::Returned(Err(_), Some(scope::Stop::Limit(_)))
            ),
            "{ended:?}"
        );
        let small = scope::run(64 << 20, || {
            super::super::call_plain(range, &[Value::from(1i64), Value::from(3i64)])
        });
        assert!(matches!(small, scope::Ended::Returned(Ok(Value::Array(a)), None) if a.len() == 3));
    }
}
