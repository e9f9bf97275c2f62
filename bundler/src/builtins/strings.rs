//! String built-ins as OPA computes them where regorus differs:
//! - `upper` and `lower`: Go's `strings.ToUpper`/`ToLower` map each character through
//!   Unicode's *simple* case mapping (one character to one character), so `upper("ß")` is
//!   `"ß"` and `lower("İ")` is `"i"`. Rust's `str::to_uppercase` uses the full mapping (`"SS"`,
//!   `"i̇"`), which regorus returns.
//! - `count` of a string counts characters (Go runes); regorus counts UTF-16 units
//!   (`count("🦀")` is 2).
//! - `strings.count` counts non-overlapping occurrences, and an empty substring occurs between
//!   every two characters (Go's `strings.Count`); regorus counts overlapping ones
//!   (`strings.count("aaa", "aa")` is 2) and panics on an empty substring.
//! - `indexof` and `indexof_n` of an empty substring are undefined in OPA (an error); regorus
//!   answers 0 and every index.

use icu_casemap::CaseMapper;
use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{delegate, scope, string_arg};

fn map(name: &str, args: &[Value], f: fn(char) -> char) -> anyhow::Result<Value> {
    let [s] = args else {
        anyhow::bail!("`{name}` expects 1 argument");
    };
    let s = string_arg(name, s)?;
    // Simple mappings stay within 3 bytes per character of UTF-8 growth at most.
    scope::charge(name, s.len() as u64 * 3)?;
    Ok(Value::from(s.chars().map(f).collect::<String>()))
}

pub fn upper(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    map("upper", args, |c| CaseMapper::new().simple_uppercase(c))
}

pub fn lower(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    map("lower", args, |c| CaseMapper::new().simple_lowercase(c))
}

pub fn count(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    match args {
        [Value::String(s)] => Ok(Value::from(s.chars().count())),
        _ => delegate("count", span, params, args, strict),
    }
}

pub fn strings_count(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let [s, sub] = args else {
        anyhow::bail!("`strings.count` expects 2 arguments");
    };
    let (s, sub) = (
        string_arg("strings.count", s)?,
        string_arg("strings.count", sub)?,
    );
    Ok(Value::from(if sub.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(sub).count()
    }))
}

/// `name` of regorus, unless the substring is empty (an error in OPA).
fn nonempty_needle(
    name: &str,
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    if let [_, Value::String(needle)] = args {
        if needle.is_empty() {
            anyhow::bail!("`{name}`: empty search character");
        }
    }
    delegate(name, span, params, args, strict)
}

pub fn indexof(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    nonempty_needle("indexof", span, params, args, strict)
}

pub fn indexof_n(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    nonempty_needle("indexof_n", span, params, args, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: super::super::Fcn, s: &str) -> String {
        super::super::call_plain(f, &[Value::from(s)])
            .unwrap()
            .as_string()
            .unwrap()
            .to_string()
    }

    /// Answers recorded from OPA 0.60 and 1.9 (`opa eval 'upper("straße ǆ")'` ...).
    #[test]
    fn case_mapping_matches_opa() {
        assert_eq!(call(upper, "straße ǆ"), "STRAßE Ǆ");
        assert_eq!(call(lower, "ÀΣ İ"), "àσ i");
        assert_eq!(call(upper, "ﬁx ŉ"), "ﬁX ŉ");
        assert_eq!(call(lower, "ABC"), "abc");
    }

    /// Answers recorded from OPA 1.9 (`strings.count` is not in 0.60) and 0.60 (`count`).
    #[test]
    fn lengths_count_characters() {
        let n = |f: super::super::Fcn, args: &[Value]| super::super::call_plain(f, args).unwrap();
        assert_eq!(n(count, &[Value::from("🦀")]), Value::from(1u64));
        assert_eq!(n(count, &[Value::from("éa🦀b")]), Value::from(4u64));
        assert_eq!(
            n(count, &[Value::from(vec![Value::Null, Value::Null])]),
            Value::from(2u64)
        );
        let sc = |s: &str, sub: &str| n(strings_count, &[Value::from(s), Value::from(sub)]);
        assert_eq!(sc("aaa", "aa"), Value::from(1u64));
        assert_eq!(sc("éa🦀b", ""), Value::from(5u64));
        assert_eq!(sc("", ""), Value::from(1u64));
        assert_eq!(sc("ab", ""), Value::from(3u64));
        let at = |f: super::super::Fcn, s: &str, t: &str| {
            super::super::call_plain(f, &[Value::from(s), Value::from(t)])
        };
        assert!(at(indexof, "abc", "").is_err());
        assert!(at(indexof_n, "abc", "").is_err());
        assert_eq!(at(indexof, "日本語b🦀", "b").unwrap(), Value::from(3u64));
    }
}
