//! `json.filter` and `json.remove` where a path runs through a value that is neither an
//! object nor an array: OPA keeps that value whole (`json.filter({"a": "x"}, ["a/b"])` is
//! `{"a": "x"}`, `json.remove` removes nothing there), regorus drops it. Such calls stop the
//! evaluation; every other call is regorus' (which answers as OPA does).

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{delegate, scope};

/// A path's segments: `"a/b"` (leading `/` optional) or `["a", "b"]`.
fn segments(path: &Value) -> Option<Vec<Value>> {
    match path {
        Value::String(s) => Some(
            s.trim_start_matches('/')
                .split('/')
                .map(Value::from)
                .collect(),
        ),
        Value::Array(items) => Some(items.iter().cloned().collect()),
        _ => None,
    }
}

/// Whether some path goes on below a value that is neither an object nor an array.
fn through_a_scalar(document: &Value, paths: &Value) -> bool {
    let paths: Vec<&Value> = match paths {
        Value::Array(items) => items.iter().collect(),
        Value::Set(items) => items.iter().collect(),
        _ => return false,
    };
    paths.into_iter().filter_map(segments).any(|segments| {
        let mut node = document;
        for segment in &segments {
            let next = match (node, segment) {
                (Value::Object(fields), _) => fields.get(segment),
                (Value::Array(items), Value::String(s)) => {
                    s.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                (Value::Array(items), Value::Number(n)) => n
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| items.get(i)),
                (Value::Array(_), _) => None,
                _ => return true,
            };
            match next {
                Some(child) => node = child,
                None => return false,
            }
        }
        false
    })
}

fn guarded(
    name: &str,
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    if let [document, paths] = args {
        if through_a_scalar(document, paths) {
            return Err(scope::refuse(format!(
                "{name} with a path below a value that is not an object or an array (OPA keeps the value)"
            )));
        }
    }
    delegate(name, span, params, args, strict)
}

pub fn filter(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    guarded("json.filter", span, params, args, strict)
}

pub fn remove(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    guarded("json.remove", span, params, args, strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::from_json_str(text).unwrap()
    }

    #[test]
    fn paths_through_scalars_stop_and_others_are_regorus() {
        for (f, doc, paths) in [
            (filter as super::super::Fcn, r#"{"a": "x"}"#, r#"["a/b"]"#),
            (filter, r#"{"a": {"b": "x"}}"#, r#"[["a", "b", "c"]]"#),
            (remove, r#"{"a": "x"}"#, r#"["a/b"]"#),
            (filter, r#"{"a": [1, {"b": 2}]}"#, r#"["a/0/c"]"#),
        ] {
            let ended = scope::run(1 << 20, || {
                super::super::call_plain(f, &[json(doc), json(paths)])
            });
            assert!(
                matches!(
                    ended,
                    scope::Ended::Returned(Err(_), Some(scope::Stop::Unsupported(_)))
                ),
                "{doc} {paths}: {ended:?}"
            );
        }
        // Answers recorded from OPA 0.60 and 1.9.
        let call = |f: super::super::Fcn, doc: &str, paths: &str| {
            super::super::call_plain(f, &[json(doc), json(paths)]).unwrap()
        };
        assert_eq!(
            call(filter, r#"{"a": {"b": 1, "c": 2}}"#, r#"["a/b"]"#),
            json(r#"{"a": {"b": 1}}"#)
        );
        assert_eq!(
            call(filter, r#"{"a": [1, {"b": 2}]}"#, r#"["a/1/b"]"#),
            json(r#"{"a": [{"b": 2}]}"#)
        );
        assert_eq!(
            call(remove, r#"{"a": {"b": 1, "c": 2}}"#, r#"["a/b"]"#),
            json(r#"{"a": {"c": 2}}"#)
        );
        assert_eq!(call(filter, r#"{"a": 1}"#, r#"["z/y"]"#), json("{}"));
    }
}
