//! OPA's arithmetic (`+ - * / %`, `sum`, `product`) in place of regorus'. regorus computes
//! with IEEE doubles; OPA reads each operand's decimal text into a Go `big.Float` of 64 bits
//! ([`bigfloat`]), rounds the result to 64 bits and keeps it as the shortest decimal that reads
//! back to it — so `0.1 + 0.2` is `0.3` and `1 / 3` is `0.33333333333333333334`.
//!
//! sck holds numbers as regorus does (integers, or doubles standing for their shortest
//! decimal), so a result is served only when OPA's decimal is exactly what sck's double stands
//! for (`0.3`, `2.5`: most results of decimal inputs; an integral result is an integer, as
//! in OPA); otherwise
//! (`0.33333333333333333334` has more digits than a double holds) the evaluation stops with
//! `float arithmetic differs from OPA` rather than go on with a different number. Integer
//! operands stay exact (regorus' big integers, as OPA 1.x). An arithmetic error (a non-number
//! operand, division or `%` by zero, `%` of a non-integer) stops the evaluation too: OPA 0.60
//! treats it as undefined under `not` (so `not x / 0 == 1` holds) where OPA 1.x does not, and
//! sck does not pick one.
//!
//! The VM compiles operators to instructions, not built-in calls: [`patch_program`] replaces
//! each arithmetic instruction by a call of the same registers into these functions. The
//! interpreter evaluates them inline: there the operators are rewritten into calls before the
//! modules are parsed (`crate::rewrite`). Both reach [`apply`].

use regorus::rvm::instructions::Instruction;
use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::bigfloat::Float;
use super::{scope, Fcn};

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Plus,
    Minus,
    Mul,
    Div,
    Rem,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Plus, Op::Minus, Op::Mul, Op::Div, Op::Rem];

    /// The built-in the operator is called through (the interpreter's extension and the VM's
    /// built-in table entry). Not a name OPA or regorus defines.
    pub fn builtin(self) -> &'static str {
        match self {
            Op::Plus => "__sck_plus",
            Op::Minus => "__sck_minus",
            Op::Mul => "__sck_mul",
            Op::Div => "__sck_div",
            Op::Rem => "__sck_rem",
        }
    }

    pub fn fcn(self) -> Fcn {
        match self {
            Op::Plus => plus,
            Op::Minus => minus,
            Op::Mul => mul,
            Op::Div => div,
            Op::Rem => rem,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Plus => "+",
            Op::Minus => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
        }
    }
}

/// Stops the evaluation on an arithmetic error (see the module header).
fn error(what: String) -> anyhow::Error {
    scope::refuse(format!(
        "arithmetic error: {what} (OPA 0.60 and 1.x disagree on what follows from it)"
    ))
}

/// The double regorus holds a number as, or `None` for an integer (regorus' integers are
/// exact). Its number type is not public, so the kind is told from the outside: a double
/// prints with a fraction digit (below `f64::MAX / 10`, where the printing overflows), and an
/// integer too large for 64 bits has no double.
fn double(n: &Value) -> Option<f64> {
    let Value::Number(n) = n else { return None };
    let fraction = n.format_decimal_with_width(1).contains('.');
    let huge = n.as_i64().is_none() && n.as_u64().is_none() && n.as_f64().is_some();
    if fraction || huge {
        n.as_f64()
    } else {
        None
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        _ => "undefined",
    }
}

/// The decimal text OPA holds for a number sck holds.
fn decimal(v: &Value) -> anyhow::Result<String> {
    match (v, double(v)) {
        (_, Some(f)) => {
            Float::shortest_of(f).ok_or_else(|| error(format!("{f} is not a number OPA can hold")))
        }
        (Value::Number(n), None) => Ok(n.format_decimal()),
        _ => Err(error(format!("{} is not a number", kind(v)))),
    }
}

fn float(v: &Value) -> anyhow::Result<Float> {
    let text = decimal(v)?;
    Float::parse(&text).ok_or_else(|| error(format!("{text} is not a number OPA can hold")))
}

/// `(negative, digits without leading or trailing zeros, exponent)` of a decimal text, so two
/// spellings of one value compare equal (`1e+06` and `1000000e0`).
pub(crate) fn normalized(text: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0').to_owned();
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = int.len() as i64 - lead as i64 + exp;
    Some((neg, digits, point))
}

/// Whether a decimal text is exactly the value sck's double for it stands for (the shortest
/// text of that double, [`Float::shortest_of`]).
pub fn holds_exactly(text: &str) -> bool {
    text.parse::<f64>()
        .ok()
        .and_then(Float::shortest_of)
        .is_some_and(|t| normalized(&t) == normalized(text))
}

/// OPA's result (its decimal text) as a regorus number, when sck's number is exactly it.
fn number_of(text: &str, what: impl FnOnce() -> String) -> anyhow::Result<Value> {
    if !text.contains(['.', 'e']) {
        if let Ok(n) = Value::from_numeric_string(text) {
            // Beyond 2^64 the shortest text has more digits than the float has bits, and the
            // Go versions behind OPA 0.60 and 1.x write some of them differently
            // (`742 * 804053212831802690`: ...960 and ...970).
            if fits(&n) {
                return Ok(n);
            }
            return Err(scope::refuse(format!(
                "{} is the integer {text} in OPA, beyond 64 bits, where OPA 0.60 and 1.x may differ",
                what()
            )));
        }
    }
    match text.parse::<f64>() {
        Ok(f) if holds_exactly(text) => {
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                Ok(Value::from(f as i64))
            } else {
                Ok(Value::from(f))
            }
        }
        _ => Err(scope::refuse(format!(
            "float arithmetic differs from OPA: {} is {text} in OPA, which sck cannot hold exactly",
            what()
        ))),
    }
}

/// Whether an integer's magnitude is below 2^64: there OPA's 64-bit float and its shortest
/// text are the integer itself. Beyond, OPA keeps the shortest text that reads back to the
/// rounded float (`6407665651342393194 * -96` is `-615135902528869746600`).
fn fits(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_big().is_some_and(|b| b.bits() <= 64),
        _ => false,
    }
}

fn is_integer(v: &Value) -> bool {
    matches!(v, Value::Number(_)) && double(v).is_none()
}

/// What OPA computes: a value sck holds exactly (integer arithmetic), or the decimal text of
/// a 64-bit float result.
#[derive(Debug)]
enum Computed {
    Exact(Value),
    Float(String),
}

impl Computed {
    /// The value sck serves for it, or the refusal.
    fn served(self, what: impl FnOnce() -> String) -> anyhow::Result<Value> {
        match self {
            Computed::Exact(value) => Ok(value),
            Computed::Float(text) => number_of(&text, what),
        }
    }
}

/// `a op b` as OPA evaluates it, or the refusal.
pub fn apply(op: Op, a: &Value, b: &Value) -> anyhow::Result<Value> {
    let describe = || format!("{} {} {}", text(a), op.symbol(), text(b));
    compute(op, a, b)?.served(describe)
}

fn text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.format_decimal(),
        other => kind(other).to_owned(),
    }
}

fn compute(op: Op, a: &Value, b: &Value) -> anyhow::Result<Computed> {
    let (x, y) = match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x, y),
        (Value::Set(x), Value::Set(y)) if op == Op::Minus => {
            return Ok(Computed::Exact(Value::from(x.difference(y))));
        }
        _ => {
            return Err(error(format!(
                "{} {} {} needs numbers",
                kind(a),
                op.symbol(),
                kind(b)
            )))
        }
    };
    let describe = || format!("{} {} {}", text(a), op.symbol(), text(b));
    let zero = y.as_f64() == Some(0.0);
    // OPA computes on integers exactly only below 2^64 (a product of two 2^62s is rounded to
    // its 64-bit float); `%` is exact on integers of any size.
    let exact = is_integer(a) && is_integer(b) && fits(a) && fits(b);
    let exactly = |r: Value| fits(&r).then_some(Computed::Exact(r));
    let integer = match op {
        Op::Plus if exact => exactly(Value::from(x.add(y)?)),
        Op::Minus if exact => exactly(Value::from(x.sub(y)?)),
        Op::Mul if exact => exactly(Value::from(x.mul(y)?)),
        Op::Div if exact && !zero && x.clone().modulo(y)?.as_f64() == Some(0.0) => {
            exactly(Value::from(x.clone().divide(y)?))
        }
        _ => None,
    };
    if let Some(computed) = integer {
        return Ok(computed);
    }
    match op {
        Op::Div | Op::Rem if zero => Err(error(format!("{} by zero", describe()))),
        Op::Rem => {
            // `%` exists on integers only; integral floats (`2.0`) count as integers.
            let (Some(i), Some(j)) = (integral(a), integral(b)) else {
                return Err(error(format!("{}: % of a non-integer", describe())));
            };
            match (&i, &j) {
                (Value::Number(i), Value::Number(j)) => {
                    Ok(Computed::Exact(Value::from(i.clone().modulo(j)?)))
                }
                _ => unreachable!("integral returns numbers"),
            }
        }
        _ => {
            let (fx, fy) = (float(a)?, float(b)?);
            let result = match op {
                Op::Plus => fx.add(&fy),
                Op::Minus => fx.sub(&fy),
                Op::Mul => fx.mul(&fy),
                _ => fx
                    .quo(&fy)
                    .ok_or_else(|| error(format!("{} by zero", describe())))?,
            };
            Ok(Computed::Float(result.text()))
        }
    }
}

/// An integral number as an integer.
fn integral(v: &Value) -> Option<Value> {
    match double(v) {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            Some(Value::from(f as i64))
        }
        Some(_) => None,
        None => Some(v.clone()),
    }
}

fn binary(op: Op, args: &[Value]) -> anyhow::Result<Value> {
    match args {
        [a, b] => apply(op, a, b),
        _ => anyhow::bail!("`{}` expects 2 arguments", op.builtin()),
    }
}

pub fn plus(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    binary(Op::Plus, args)
}

pub fn minus(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    binary(Op::Minus, args)
}

pub fn mul(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    binary(Op::Mul, args)
}

pub fn div(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    binary(Op::Div, args)
}

pub fn rem(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    binary(Op::Rem, args)
}

/// The numbers of `sum`'s or `product`'s collection.
fn numbers<'a>(name: &str, args: &'a [Value]) -> anyhow::Result<Vec<&'a Value>> {
    let items: Vec<&Value> = match args {
        [Value::Array(items)] => items.iter().collect(),
        [Value::Set(items)] => items.iter().collect(),
        _ => return Err(error(format!("{name} needs an array or a set of numbers"))),
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Number(_) => Ok(v),
            other => Err(error(format!(
                "{name} needs numbers, got a {}",
                kind(other)
            ))),
        })
        .collect()
}

/// Folds integers with `op` (exact, as [`apply`] computes on integers).
fn fold(init: Value, items: &[&Value], op: Op) -> anyhow::Result<Value> {
    items.iter().try_fold(init, |total, n| apply(op, &total, n))
}

/// `sum` as OPA computes it: exact on integers, else a 64-bit float accumulation. OPA 1.x
/// adds integers in a machine word (a sum beyond 64 bits wraps around), OPA 0.60 in a float:
/// such sums are refused.
pub fn sum(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    aggregate(Op::Plus, args)?.served(|| "sum(...)".to_owned())
}

/// `product` as OPA computes it: exact on integers, else a 64-bit float accumulation.
pub fn product(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    aggregate(Op::Mul, args)?.served(|| "product(...)".to_owned())
}

fn aggregate(op: Op, args: &[Value]) -> anyhow::Result<Computed> {
    let name = if op == Op::Plus { "sum" } else { "product" };
    let items = numbers(name, args)?;
    let (init, start) = if op == Op::Plus {
        (0i64, "0")
    } else {
        (1, "1")
    };
    if items.iter().all(|v| is_integer(v)) {
        let total = fold(Value::from(init), &items, op)?;
        return match &total {
            Value::Number(t) if op == Op::Plus && t.as_i64().is_none() => {
                Err(scope::refuse(format!(
                    "sum of integers {} is beyond 64 bits, where OPA 0.60 and 1.x answer differently",
                    t.format_decimal()
                )))
            }
            _ => Ok(Computed::Exact(total)),
        };
    }
    let mut total = Float::parse(start).expect("a number");
    for n in &items {
        let n = float(n)?;
        total = if op == Op::Plus {
            total.add(&n)
        } else {
            total.mul(&n)
        };
    }
    Ok(Computed::Float(total.text()))
}

/// `format_int(x, base)` as OPA computes it: `x` read as a 64-bit float (so a float beyond 64
/// bits keeps OPA's rounding, `1.2e29` is not the double's digits), truncated toward zero.
pub fn format_int(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let [x @ Value::Number(_), Value::Number(base)] = args else {
        anyhow::bail!("`format_int` expects a number and a base");
    };
    let radix = match (base.as_i64(), double(&args[1])) {
        (Some(b @ (2 | 8 | 10 | 16)), None) => b as u32,
        _ => anyhow::bail!("`format_int`: the base must be 2, 8, 10 or 16"),
    };
    let (negative, magnitude) = float(x)?.trunc();
    let digits = magnitude.to_str_radix(radix);
    Ok(Value::from(if negative {
        format!("-{digits}")
    } else {
        digits
    }))
}

/// Replaces each arithmetic instruction of a compiled program by a call of the same
/// registers into [`apply`].
pub fn patch_program(patcher: &mut super::Patcher<'_>) {
    patcher.replace(|instruction| {
        match *instruction {
            Instruction::Add { dest, left, right } => Some((Op::Plus, dest, left, right)),
            Instruction::Sub { dest, left, right } => Some((Op::Minus, dest, left, right)),
            Instruction::Mul { dest, left, right } => Some((Op::Mul, dest, left, right)),
            Instruction::Div { dest, left, right } => Some((Op::Div, dest, left, right)),
            Instruction::Mod { dest, left, right } => Some((Op::Rem, dest, left, right)),
            _ => None,
        }
        .map(|(op, dest, left, right)| (op.builtin(), op.fcn(), dest, vec![left, right]))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number as an input carries it (serde_json: integers within 64 bits, else a double).
    fn n(text: &str) -> Value {
        Value::from(serde_json::from_str::<serde_json::Value>(text).unwrap())
    }

    fn stopped(result: anyhow::Result<Value>) -> bool {
        result.is_err_and(|e| e.downcast_ref::<regorus::LimitError>().is_some())
    }

    /// Every case of `tests/interop/fixtures/arith.json` (recorded from OPA 0.60 and 1.9 by
    /// `tests/interop/record_arith.py`): sck's port computes OPA's exact decimal, and what sck
    /// serves is OPA's value or a refusal — never another value, and never a value where OPA
    /// has none or where the two majors differ.
    #[test]
    fn every_recorded_case_is_opas_answer_or_refused() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../../tests/interop/fixtures/arith.json"))
                .unwrap();
        assert!(cases.len() >= 3000);
        let (mut served, mut refused) = (0, 0);
        for case in &cases {
            let num = |v: &serde_json::Value| n(v.as_str().unwrap());
            let op = case["op"].as_str().unwrap();
            let computed = || match op {
                "sum" | "product" => {
                    let items: Vec<Value> =
                        case["items"].as_array().unwrap().iter().map(num).collect();
                    let op = if op == "sum" { Op::Plus } else { Op::Mul };
                    aggregate(op, &[Value::from(items)])
                }
                _ => {
                    let op = match op {
                        "+" => Op::Plus,
                        "-" => Op::Minus,
                        "*" => Op::Mul,
                        "/" => Op::Div,
                        _ => Op::Rem,
                    };
                    compute(op, &num(&case["a"]), &num(&case["b"]))
                }
            };
            let (old, new) = (case["opa_0_60"].as_str(), case["opa_1_9"].as_str());
            let ended = scope::run(1 << 20, || {
                let computed = computed()?;
                if let (Computed::Float(text), Some(opa), true) = (&computed, new, old == new) {
                    assert_eq!(normalized(text), normalized(opa), "{case}: Go's decimal");
                }
                computed.served(String::new)
            });
            match ended {
                scope::Ended::Returned(Ok(value), None) => {
                    served += 1;
                    assert_eq!(old, new, "{case}: served where the majors differ");
                    let opa = new.unwrap_or_else(|| panic!("{case}: served {value}"));
                    assert_eq!(
                        normalized(&decimal(&value).unwrap()),
                        normalized(opa),
                        "{case}: served {value}"
                    );
                }
                scope::Ended::Returned(Err(_), Some(_)) => refused += 1,
                other => panic!("{case}: {other:?}"),
            }
        }
        // The generator mixes short decimals (mostly served) with 17-digit doubles and 64-bit
        // integers (mostly refused); both kinds must be exercised.
        assert!(
            served >= 1000 && refused >= 1000,
            "{served} served, {refused} refused"
        );
    }

    /// Answers recorded from OPA 0.60 and 1.9.
    #[test]
    fn format_int_reads_a_64_bit_float() {
        let f = |x: &str, base: i64| {
            super::super::call_plain(format_int, &[n(x), Value::from(base)])
                .map(|v| v.as_string().unwrap().to_string())
        };
        assert_eq!(f("1.2e29", 16).unwrap(), "183bdac6ae9bc1c8c00000000");
        assert_eq!(f("-1.5", 10).unwrap(), "-1");
        assert_eq!(f("2.5", 2).unwrap(), "10");
        assert_eq!(f("-2.9", 16).unwrap(), "-2");
        assert_eq!(f("-0.5", 10).unwrap(), "0");
        assert_eq!(f("18446744073709551615", 16).unwrap(), "ffffffffffffffff");
        assert_eq!(f("255", 8).unwrap(), "377");
        assert!(f("255", 3).is_err());
        assert!(super::super::call_plain(format_int, &[n("255"), n("16.0")]).is_err());
    }

    #[test]
    fn results_sck_can_hold_are_opas() {
        assert_eq!(apply(Op::Plus, &n("0.1"), &n("0.2")).unwrap(), n("0.3"));
        assert_eq!(
            apply(Op::Mul, &n("2.5"), &n("2")).unwrap(),
            Value::from(5i64)
        );
        assert_eq!(apply(Op::Div, &n("7"), &n("2")).unwrap(), n("3.5"));
        assert_eq!(apply(Op::Div, &n("6"), &n("3")).unwrap(), Value::from(2i64));
        // An integral result is an integer in OPA too (`FloatToNumber` writes it with 'f').
        assert_eq!(
            apply(Op::Mul, &n("2.5"), &n("400000")).unwrap(),
            Value::from(1000000i64)
        );
        assert_eq!(
            apply(Op::Rem, &n("7"), &n("2.0")).unwrap(),
            Value::from(1i64)
        );
        assert_eq!(
            apply(Op::Plus, &n("9223372036854775807"), &n("1")).unwrap(),
            n("9223372036854775808")
        );
    }

    #[test]
    fn results_sck_cannot_hold_and_errors_stop() {
        let run = |op, a: &str, b: &str| scope::run(1 << 20, || apply(op, &n(a), &n(b)));
        for (op, a, b) in [
            (Op::Div, "1", "3"),
            (Op::Plus, "9007199254740993", "0.5"),
            (Op::Div, "1", "0"),
            (Op::Div, "1.5", "0.0"),
            (Op::Rem, "7.5", "2"),
            (Op::Mul, "1e300", "17"),
        ] {
            match run(op, a, b) {
                scope::Ended::Returned(result, Some(scope::Stop::Unsupported(_))) => {
                    assert!(stopped(result), "{a} {op:?} {b}")
                }
                other => panic!("{a} {op:?} {b}: {other:?}"),
            }
        }
    }
}
