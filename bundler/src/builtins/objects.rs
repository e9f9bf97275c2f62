//! Objects as OPA evaluates them.
//! - `object.subset`: regorus' version panics when an array's sub-array is empty at any depth
//!   (`object.subset([], [])`, `{"a": []}` in `{"a": []}`: a zero-size window) and answers
//!   `true` for two equal scalars, which OPA refuses (its arguments must be objects, sets or
//!   arrays; non-strict evaluation makes the call undefined).
//! - partial object rules (`by_name[u.name] := u.age`): two values for one key are an
//!   evaluation error in OPA (and in regorus' interpreter); regorus' VM keeps the last one, so
//!   `by_name.alice > 17` could allow where OPA errs. [`patch_program`] replaces the VM's
//!   insertion by [`insert`], which stops the evaluation on a conflict.

use regorus::rvm::instructions::Instruction;
use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::scope;

/// The built-in a partial object rule's insertion is called through (not an OPA or regorus
/// name).
const INSERT: &str = "__sck_object_insert";

/// `obj[key] := value` for a partial object rule: the object with the key added, or the
/// evaluation stopped when the key already has another value.
pub fn insert(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let [object, key, value] = args else {
        anyhow::bail!("`{INSERT}` expects 3 arguments");
    };
    let mut object = object.clone();
    let fields = object.as_object_mut()?;
    match fields.get(key) {
        Some(existing) if existing != value => Err(scope::refuse(format!(
            "conflicting values for key {key} of a partial object rule (an error in OPA)"
        ))),
        _ => {
            fields.insert(key.clone(), value.clone());
            Ok(object)
        }
    }
}

/// Replaces the VM's insertions into partial object rules (its only use of `ObjectSet`) by
/// [`insert`].
pub fn patch_program(patcher: &mut super::Patcher<'_>) {
    patcher.replace(|instruction| match *instruction {
        Instruction::ObjectSet { obj, key, value } => {
            Some((INSERT, insert as super::Fcn, obj, vec![obj, key, value]))
        }
        _ => None,
    });
}

/// OPA's `isSubset`: objects key by key (recursively), sets by membership, arrays as a
/// contiguous run (an empty run is in every array), an array against a set as a set, and
/// anything else by equality.
fn is_subset(sup: &Value, sub: &Value) -> bool {
    match (sup, sub) {
        (Value::Object(sup), Value::Object(sub)) => sub
            .iter()
            .all(|(k, v)| sup.get(k).is_some_and(|s| is_subset(s, v))),
        (Value::Object(_), _) => false,
        (Value::Set(sup), Value::Set(sub)) => sub.iter().all(|v| sup.contains(v)),
        (Value::Set(_), _) => false,
        (Value::Array(sup), Value::Array(sub)) => {
            sub.is_empty()
                || sup
                    .as_slice()
                    .windows(sub.len())
                    .any(|w| w == sub.as_slice())
        }
        (Value::Array(sup), Value::Set(sub)) => sub.iter().all(|v| sup.iter().any(|s| s == v)),
        (Value::Array(_), _) => false,
        (sup, sub) => sup == sub,
    }
}

pub fn subset(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let [sup, sub] = args else {
        anyhow::bail!("`object.subset` expects 2 arguments");
    };
    let collection = |v: &Value| matches!(v, Value::Object(_) | Value::Set(_) | Value::Array(_));
    if !collection(sup) || !collection(sub) {
        anyhow::bail!("object.subset: both arguments must be objects, sets or arrays");
    }
    Ok(Value::from(is_subset(sup, sub)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers recorded from OPA 0.60 and 1.9:
    /// `[true,true,true,false,true,true,true,true,true,false]`, and an error for two numbers.
    #[test]
    fn subset_matches_opa() {
        let cases = [
            ("[]", "[]", true),
            ("[1,2]", "[]", true),
            ("[1,2,3]", "[2,3]", true),
            ("[1,2,3]", "[1,3]", false),
            (r#"{"a": []}"#, r#"{"a": []}"#, true),
            (r#"{"a": [1]}"#, r#"{"a": []}"#, true),
            (r#"{"a": {"b": 1, "c": 2}}"#, r#"{"a": {"b": 1}}"#, true),
            ("[[1,2],3]", "[[1]]", false),
        ];
        for (sup, sub, expected) in cases {
            let args = [
                Value::from_json_str(sup).unwrap(),
                Value::from_json_str(sub).unwrap(),
            ];
            assert_eq!(
                super::super::call_plain(subset, &args).unwrap(),
                Value::from(expected),
                "{sup} ⊇ {sub}"
            );
        }
        assert!(super::super::call_plain(subset, &[Value::from(1i64), Value::from(1i64)]).is_err());
    }
}
