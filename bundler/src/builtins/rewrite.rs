//! Arithmetic operators rewritten into calls, for regorus' interpreter. The interpreter
//! evaluates `a + b` inline with IEEE doubles and offers no hook; a call `__sck_plus(a, b)`
//! reaches sck's extension ([`super::arith`]) instead. This is the form OPA's own parser gives
//! an operator (a call of `plus`), and the rewrite is driven by regorus' AST of the module:
//! each arithmetic expression's span, with its operator symbol between the operands' spans
//! replaced by a comma, the whole wrapped in the call. Text outside the expressions, and every
//! line break, is kept, so lines (and `file:line:col` of later diagnostics) stay where they
//! were.
//!
//! Invariant: the rewritten module has the same rules, in the same places, with every
//! arithmetic expression a call of the same operands.

use serde_json::Value as JsonValue;

use super::arith::Op;

/// One arithmetic expression: its span and its operands' spans (byte offsets).
#[derive(Debug, Clone, Copy)]
struct Arith {
    op: Op,
    start: usize,
    end: usize,
    lhs_end: usize,
    rhs_start: usize,
}

fn span(node: &JsonValue) -> Option<(usize, usize)> {
    let span = node.as_object()?.values().next()?.get("span")?;
    Some((
        usize::try_from(span["start"].as_u64()?).ok()?,
        usize::try_from(span["end"].as_u64()?).ok()?,
    ))
}

fn collect(node: &JsonValue, out: &mut Vec<Arith>) {
    match node {
        JsonValue::Object(map) => {
            if let Some(expr) = map.get("ArithExpr") {
                let op = match expr["op"].as_str() {
                    Some("Add") => Some(Op::Plus),
                    Some("Sub") => Some(Op::Minus),
                    Some("Mul") => Some(Op::Mul),
                    Some("Div") => Some(Op::Div),
                    Some("Mod") => Some(Op::Rem),
                    _ => None,
                };
                let whole = expr.get("span").and_then(|s| {
                    Some((
                        usize::try_from(s["start"].as_u64()?).ok()?,
                        usize::try_from(s["end"].as_u64()?).ok()?,
                    ))
                });
                if let (Some(op), Some((start, end)), Some((_, lhs_end)), Some((rhs_start, _))) =
                    (op, whole, span(&expr["lhs"]), span(&expr["rhs"]))
                {
                    out.push(Arith {
                        op,
                        start,
                        end,
                        lhs_end,
                        rhs_start,
                    });
                }
            }
            map.values().for_each(|v| collect(v, out));
        }
        JsonValue::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The operator's byte offset between two operands (outside comments).
fn operator_at(source: &str, from: usize, to: usize, symbol: u8) -> Option<usize> {
    let gap = source.get(from..to)?;
    let mut in_comment = false;
    for (i, b) in gap.bytes().enumerate() {
        match b {
            b'#' => in_comment = true,
            b'\n' => in_comment = false,
            _ if !in_comment && b == symbol => return Some(from + i),
            _ => {}
        }
    }
    None
}

fn symbol(op: Op) -> u8 {
    match op {
        Op::Plus => b'+',
        Op::Minus => b'-',
        Op::Mul => b'*',
        Op::Div => b'/',
        Op::Rem => b'%',
    }
}

/// The module's source with every arithmetic expression a call; `None` when the AST and the
/// text do not line up (the caller then refuses the module rather than evaluate it as is).
pub fn operators_as_calls(source: &str, ast: &JsonValue) -> Option<String> {
    let mut found = Vec::new();
    collect(ast, &mut found);
    if found.is_empty() {
        return Some(source.to_owned());
    }
    // Outermost first: by start, then the longer span.
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    // Every edit is an insertion before a byte or the replacement of one operator byte.
    let mut inserts: Vec<(usize, &'static str)> = Vec::new();
    let mut commas = Vec::new();
    for a in &found {
        if a.start > a.lhs_end || a.lhs_end > a.rhs_start || a.end > source.len() {
            return None;
        }
        inserts.push((a.start, a.op.builtin()));
        inserts.push((a.start, "("));
        inserts.push((a.end, ")"));
        commas.push(operator_at(source, a.lhs_end, a.rhs_start, symbol(a.op))?);
    }
    // At one offset: closing parentheses before the opening calls, outer calls first (the
    // sort keeps the order the expressions were found in, outermost first).
    inserts.sort_by_key(|(at, text)| (*at, *text != ")"));
    let mut out = String::with_capacity(source.len() + inserts.len() * 12);
    let mut next = inserts.iter().peekable();
    for (i, ch) in source.char_indices() {
        while let Some((_, text)) = next.next_if(|(at, _)| *at == i) {
            out.push_str(text);
        }
        if commas.contains(&i) {
            out.push(',');
        } else {
            out.push(ch);
        }
    }
    for (_, text) in next {
        out.push_str(text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(rego: &str) -> String {
        let mut engine = regorus::Engine::new();
        engine.add_policy("p.rego".into(), rego.into()).unwrap();
        let ast: Vec<JsonValue> = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
        operators_as_calls(rego, &ast[0]["ast"]).unwrap()
    }

    #[test]
    fn operators_become_calls_of_the_same_operands() {
        assert_eq!(
            rewritten("package p\nx := 1 + 2 * 3\n"),
            "package p\nx := __sck_plus(1 , __sck_mul(2 , 3))\n"
        );
        assert_eq!(
            rewritten("package p\nx := (input.a - 1) / (2 % input.b)\n"),
            "package p\nx := __sck_div((__sck_minus(input.a , 1)) , (__sck_rem(2 , input.b)))\n"
        );
        // Line breaks stay; a `-` inside a string or a comment is not an operator.
        assert_eq!(
            rewritten("package p\nx := count(\"a-b\") -\n  # a - b\n  1\n"),
            "package p\nx := __sck_minus(count(\"a-b\") ,\n  # a - b\n  1)\n"
        );
        assert_eq!(
            rewritten("package p\nf(a) := a * a\ny := [z | z := 2 * input.n[_]]\n"),
            "package p\nf(a) := __sck_mul(a , a)\ny := [z | z := __sck_mul(2 , input.n[_])]\n"
        );
    }
}
