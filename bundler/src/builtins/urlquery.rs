//! `urlquery.decode` as OPA computes it (Go's `url.QueryUnescape`): `+` is a space, `%XX` a
//! byte, a `%` without two hex digits an error, and nothing else changes (regorus drops
//! trailing spaces). A result that is not UTF-8 (`%ff`) is refused: OPA keeps the raw bytes.

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{scope, string_arg};

pub fn decode(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let [s] = args else {
        anyhow::bail!("`urlquery.decode` expects 1 argument");
    };
    let s = string_arg("urlquery.decode", s)?;
    let bytes = s.as_bytes();
    let valid = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !valid {
        anyhow::bail!("urlquery.decode: invalid URL escape in {s:?}");
    }
    let spaced = s.replace('+', " ");
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    match String::from_utf8(decoded) {
        Ok(text) => Ok(Value::from(text)),
        Err(_) => Err(scope::refuse(format!(
            "urlquery.decode({s:?}) is not UTF-8 (OPA keeps the bytes)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers recorded from OPA 0.60 and 1.9.
    #[test]
    fn decodes_as_go() {
        let call = |s: &str| super::super::call_plain(decode, &[Value::from(s)]);
        assert_eq!(call("b.%C3%9F+x ").unwrap(), Value::from("b.ß x "));
        assert_eq!(call("a%2Bb+c").unwrap(), Value::from("a+b c"));
        assert_eq!(call("b.ß 日٣ ").unwrap(), Value::from("b.ß 日٣ "));
        assert!(call("%zz").is_err());
        assert!(call("%4").is_err());
        let ended = scope::run(1 << 20, || call("%ff"));
        assert!(matches!(
            ended,
            scope::Ended::Returned(Err(_), Some(scope::Stop::Unsupported(_)))
        ));
    }
}
