//! `upper` and `lower` as OPA computes them: Go's `strings.ToUpper`/`ToLower` map each
//! character through Unicode's *simple* case mapping (one character to one character), so
//! `upper("ß")` is `"ß"` and `lower("İ")` is `"i"`. Rust's `str::to_uppercase` uses the full
//! mapping (`"SS"`, `"i̇"`), which regorus returns.

use icu_casemap::CaseMapper;
use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{scope, string_arg};

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
}
