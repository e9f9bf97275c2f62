//! Evaluating a bundle's decision rule: compiled once, run many times, deny by default.
//!
//! [`Evaluator::new`] compiles the bundle's entrypoint to a regorus RVM program (the fast path,
//! one VM per concurrent caller from a pool) and falls back to the interpreter when the VM
//! compiler refuses the policy (it does not support `with`). The rule may return
//! `{"allow": bool, "reasons": [...]}` or a bare boolean; anything else — undefined, an error,
//! another shape — is a deny with the reason named. The same code serves `sck bundle eval` and
//! the gateway.
//!
//! **Bounds.** Every evaluation runs inside [`builtins::scope::run`], the one boundary shared
//! by the server and the CLI:
//! - time and instructions: regorus' execution timer (wall clock, checked between
//!   instructions on both engines) and the VM's instruction limit → `evaluation_timeout`;
//! - memory: regorus checks neither inside a single built-in call, so the built-ins whose
//!   output can outgrow their input (ranges, `sprintf` widths, `concat`, `replace`, ...; see
//!   [`builtins`]) estimate their output from their arguments and charge it to a per-evaluation
//!   budget ([`EvalLimits::memory`]) *before* allocating → `evaluation_limit`. regorus'
//!   `allocator-memory-limits` feature was not used: it makes regorus' own mimalloc fork the
//!   process's global allocator (sck has its own), and it is cooperative too (one built-in
//!   call can overshoot before the next check);
//! - panics: a panic anywhere in evaluation (regorus has some, e.g. `regex.template_match`)
//!   is caught → `evaluation_error`, answered and ledgered like any other deny; the VM that
//!   panicked is dropped, never returned to the pool, and the panic is not printed as a crash.
//!
//! **Semantics.** sck's built-ins replace regorus' where they differ from OPA — on the VM by
//! patching the program's built-in table, on the interpreter as extensions (see
//! [`builtins`]); a call sck cannot evaluate OPA's way stops the evaluation
//! (`evaluation_error`) instead of answering differently. A result carrying an integer beyond
//! 64 bits, which JSON output would round, is an `evaluation_error` too.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value};
use serde::Serialize;

use crate::builtins::{self, scope};
use crate::bundle::Bundle;
use crate::error::Result;
use crate::policy;

/// Bounds on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// Wall-clock limit.
    pub time: Duration,
    /// Instruction limit (VM only).
    pub instructions: usize,
    /// Bytes the bounded built-ins may produce in one evaluation.
    pub memory: u64,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            time: Duration::from_millis(100),
            instructions: 5_000_000,
            memory: 64 << 20,
        }
    }
}

/// Why a decision came out as it did, beyond the policy's own reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The rule produced a well-formed decision.
    Evaluated,
    /// The rule is undefined for this input.
    Undefined,
    /// Evaluation failed.
    Error,
    /// Evaluation hit its time or instruction limit.
    Timeout,
    /// A built-in would have exceeded the evaluation's memory budget.
    Limit,
    /// The rule produced something other than a boolean or `{allow, reasons}`.
    Invalid,
}

/// A decision: allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub allow: bool,
    pub reasons: Vec<String>,
    pub outcome: Outcome,
}

impl Decision {
    fn deny(outcome: Outcome, reason: impl Into<String>) -> Decision {
        Decision {
            allow: false,
            reasons: vec![reason.into()],
            outcome,
        }
    }

    /// Reads a rule result: a boolean or `{"allow": bool, "reasons": [string...]}`.
    pub fn from_result(value: &serde_json::Value) -> Decision {
        match value {
            serde_json::Value::Bool(allow) => Decision {
                allow: *allow,
                reasons: Vec::new(),
                outcome: Outcome::Evaluated,
            },
            serde_json::Value::Object(map) => {
                let Some(serde_json::Value::Bool(allow)) = map.get("allow") else {
                    return Decision::deny(
                        Outcome::Invalid,
                        "invalid_decision: allow is not a boolean",
                    );
                };
                let reasons = match map.get("reasons") {
                    None | Some(serde_json::Value::Null) => Vec::new(),
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .map(|r| match r {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                    Some(_) => {
                        return Decision::deny(
                            Outcome::Invalid,
                            "invalid_decision: reasons is not a list",
                        )
                    }
                };
                Decision {
                    allow: *allow,
                    reasons,
                    outcome: Outcome::Evaluated,
                }
            }
            _ => Decision::deny(
                Outcome::Invalid,
                "invalid_decision: the rule must yield a boolean or {allow, reasons}",
            ),
        }
    }
}

struct Vm {
    program: Arc<Program>,
    data: Value,
    pool: Mutex<Vec<RegoVM>>,
}

/// A compiled decision rule of one bundle, safe to share between threads.
pub struct Evaluator {
    entrypoint: String,
    limits: EvalLimits,
    /// The decision rule compiled for the VM, when the policy allows it.
    vm: Option<Vm>,
    /// The interpreter: the fallback for the decision rule, and any other rule (Data API).
    interpreter: Engine,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("entrypoint", &self.entrypoint)
            .field("mode", &self.mode())
            .finish()
    }
}

pub(crate) fn timer(limits: &EvalLimits) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: limits.time,
        check_interval: NonZeroU32::new(64).expect("non-zero"),
    }
}

/// Which way to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The RVM when the policy compiles to it, else the interpreter.
    Fastest,
    /// Always the interpreter (the cross-check).
    Interpreter,
}

impl Evaluator {
    /// Compiles `entrypoint` (a `data.`-rooted rule path; default: the manifest's) of `bundle`.
    pub fn new(
        bundle: &Bundle,
        entrypoint: Option<&str>,
        limits: EvalLimits,
        mode: Mode,
    ) -> Result<Evaluator> {
        let entrypoint = entrypoint
            .map(str::to_owned)
            .unwrap_or_else(|| bundle.manifest.entrypoint());
        let mut engine = policy::load(bundle)?;
        engine.set_execution_timer_config(timer(&limits));
        let vm = match mode {
            // The VM compiles the modules as written (its arithmetic instructions are patched),
            // the interpreter runs them with the operators rewritten into calls.
            Mode::Fastest => policy::load_for_vm(bundle)?
                .compile_with_entrypoint(&entrypoint.as_str().into())
                .ok()
                .and_then(|compiled| Compiler::compile_from_policy(&compiled, &[&entrypoint]).ok())
                // The VM runs sck's built-ins too; a program that cannot be patched is not used.
                .and_then(|mut program| builtins::patch_program(&mut program).then_some(program)),
            Mode::Interpreter => None,
        };
        let vm = vm.map(|program| Vm {
            program,
            data: engine.get_data(),
            pool: Mutex::new(Vec::new()),
        });
        Ok(Evaluator {
            entrypoint,
            limits,
            vm,
            interpreter: engine,
        })
    }

    /// `"rvm"` or `"interpreter"`.
    pub fn mode(&self) -> &'static str {
        if self.vm.is_some() {
            "rvm"
        } else {
            "interpreter"
        }
    }

    /// The rule this evaluator decides with.
    pub fn entrypoint(&self) -> &str {
        &self.entrypoint
    }

    /// Evaluates the rule on a JSON input; never fails — every failure is a deny. The input is
    /// taken by value: it is converted to the engine's value without a copy.
    pub fn decide(&self, input: serde_json::Value) -> Decision {
        match self.evaluate(Value::from(input), None) {
            Ok(None) => Decision::deny(Outcome::Undefined, "policy_undefined"),
            Ok(Some(json)) => Decision::from_result(&json),
            Err(failure) => failure.into_decision(),
        }
    }

    /// Evaluates any rule (a `data.`-rooted path), as OPA's Data API does: the decision rule on
    /// the VM, others on the interpreter. `Ok(None)` when undefined; a failure is the deny it
    /// stands for (outcome and reason).
    pub fn evaluate_rule(
        &self,
        rule: &str,
        input: serde_json::Value,
    ) -> std::result::Result<Option<serde_json::Value>, Decision> {
        self.evaluate(Value::from(input), Some(rule))
            .map_err(Failure::into_decision)
    }

    /// Runs the decision rule (on the VM when compiled), or `rule` on the interpreter, inside
    /// the evaluation boundary; the result as JSON, `None` when undefined.
    fn evaluate(
        &self,
        input: Value,
        rule: Option<&str>,
    ) -> std::result::Result<Option<serde_json::Value>, Failure> {
        // The decision rule runs on the VM whether asked for by name or not.
        let rule = rule.filter(|r| *r != self.entrypoint);
        let ended = match (&self.vm, rule) {
            (Some(vm), None) => {
                let mut machine = vm.checkout(&self.limits)?;
                let ended = scope::run(self.limits.memory, || {
                    machine.set_input(input);
                    machine.execute().map_err(|e| match e {
                        VmError::InstructionLimitExceeded { .. }
                        | VmError::TimeLimitExceeded { .. } => Failure::Timeout,
                        VmError::MemoryLimitExceeded { .. }
                        | VmError::MemoryBudgetExceeded { .. } => Failure::Limit(e.to_string()),
                        other => Failure::Error(other.to_string()),
                    })
                });
                // A VM that panicked may be in any state: it is dropped, not pooled.
                if !matches!(ended, scope::Ended::Panicked(_)) {
                    vm.give_back(machine);
                }
                ended
            }
            _ => {
                let mut engine = self.interpreter.clone();
                let rule = rule.unwrap_or(&self.entrypoint).to_owned();
                scope::run(self.limits.memory, move || {
                    engine.set_input(input);
                    engine.eval_rule(rule).map_err(|e| {
                        match e.chain().find_map(|c| c.downcast_ref::<LimitError>()) {
                            Some(LimitError::TimeLimitExceeded { .. }) => Failure::Timeout,
                            Some(limit) => Failure::Limit(limit.to_string()),
                            None => Failure::Error(summary(&e.to_string())),
                        }
                    })
                })
            }
        };
        let value = match ended {
            scope::Ended::Panicked(message) => return Err(Failure::Panic(message)),
            scope::Ended::Returned(_, Some(scope::Stop::Limit(why))) => {
                return Err(Failure::Limit(why))
            }
            scope::Ended::Returned(_, Some(scope::Stop::Unsupported(why))) => {
                return Err(Failure::Error(why))
            }
            scope::Ended::Returned(result, None) => result?,
        };
        if value == Value::Undefined {
            return Ok(None);
        }
        to_json(&value).map(Some).map_err(Failure::Error)
    }
}

impl Vm {
    /// A VM from the pool, or a new one for this program.
    fn checkout(&self, limits: &EvalLimits) -> std::result::Result<RegoVM, Failure> {
        if let Some(vm) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(vm);
        }
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_data(self.data.clone())
            .map_err(|e| Failure::Error(e.to_string()))?;
        vm.set_execution_timer_config(Some(timer(limits)));
        vm.set_max_instructions(limits.instructions);
        // As the interpreter (`policy::load`): non-strict, the VM goes on past an assignment
        // from an erroring built-in (`v := to_number("x"); not v == 1` held).
        vm.set_strict_builtin_errors(true);
        Ok(vm)
    }

    fn give_back(&self, vm: RegoVM) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(vm);
        }
    }

    /// VMs waiting in the pool.
    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.pool.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// A rule result as JSON. JSON output would round an integer beyond 64 bits (regorus keeps
/// it exact, serde_json does not), so such a result is refused rather than served rounded.
fn to_json(value: &Value) -> std::result::Result<serde_json::Value, String> {
    fn check(value: &Value) -> std::result::Result<(), String> {
        match value {
            Value::Number(n) => {
                let integer = !n.format_decimal_with_width(1).contains('.');
                if integer && n.as_i64().is_none() && n.as_u64().is_none() {
                    return Err(format!(
                        "the result holds the integer {}, beyond what sck answers exactly (64 bits)",
                        n.format_decimal()
                    ));
                }
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(check),
            Value::Set(items) => items.iter().try_for_each(check),
            Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
                check(k)?;
                check(v)
            }),
            _ => Ok(()),
        }
    }
    check(value)?;
    value
        .to_json_str()
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or_else(|| "invalid_decision: result is not JSON".to_owned())
}

/// An input document sck cannot evaluate as OPA would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Json(String),
    /// OPA keeps every integer exact; serde_json (and so sck) would round this one to a float.
    #[error(
        "the integer {literal} at {pointer} is beyond 64 bits, which sck cannot evaluate exactly"
    )]
    IntegerOutOfRange { pointer: String, literal: String },
    /// OPA keeps a decimal as written; sck holds a double, which stands for its shortest text.
    #[error(
        "the number {literal} at {pointer} has more digits than sck holds exactly (a double is {shortest})"
    )]
    DecimalOutOfRange {
        pointer: String,
        literal: String,
        shortest: String,
    },
}

impl InputError {
    /// A stable code: `invalid_json` or `number_out_of_range`.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Json(_) => "invalid_json",
            InputError::IntegerOutOfRange { .. } | InputError::DecimalOutOfRange { .. } => {
                "number_out_of_range"
            }
        }
    }
}

/// Parses an input document (JSON text), refusing integers beyond 64 bits and decimals a
/// double does not hold exactly: sck evaluates numbers as regorus receives them from
/// serde_json, which keeps `i64`/`u64` exact and turns anything else into a double, where OPA
/// keeps the number as written (`0.10000000000000001` is not `0.1` in OPA's arithmetic).
///
/// Only a document holding a double needs its literals read again: serde_json gives every
/// integer literal within 64 bits as an `i64`/`u64`, and anything else (a fraction, an
/// exponent, an integer out of range) as an `f64`.
pub fn parse_input(bytes: &[u8]) -> std::result::Result<serde_json::Value, InputError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| InputError::Json(e.to_string()))?;
    if !holds_a_double(&value) {
        return Ok(value);
    }
    let literals =
        crate::canonical::Json::parse(bytes).map_err(|e| InputError::Json(e.to_string()))?;
    fn walk(
        json: &crate::canonical::Json,
        pointer: &mut String,
    ) -> std::result::Result<(), InputError> {
        use crate::canonical::Json;
        match json {
            Json::Number(literal) => {
                let at = || {
                    if pointer.is_empty() {
                        "/".into()
                    } else {
                        pointer.clone()
                    }
                };
                let integer = !literal.contains(['.', 'e', 'E']);
                if integer && literal.parse::<i64>().is_err() && literal.parse::<u64>().is_err() {
                    return Err(InputError::IntegerOutOfRange {
                        pointer: at(),
                        literal: literal.clone(),
                    });
                }
                if !integer && !builtins::arith::holds_exactly(literal) {
                    return Err(InputError::DecimalOutOfRange {
                        pointer: at(),
                        literal: literal.clone(),
                        shortest: literal
                            .parse::<f64>()
                            .ok()
                            .and_then(builtins::bigfloat::Float::shortest_of)
                            .unwrap_or_default(),
                    });
                }
                Ok(())
            }
            Json::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk(item, pointer)?;
                pointer.truncate(len);
                Ok(())
            }),
            Json::Object(map) => map.iter().try_for_each(|(k, item)| {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk(item, pointer)?;
                pointer.truncate(len);
                Ok(())
            }),
            _ => Ok(()),
        }
    }
    walk(&literals, &mut String::new())?;
    Ok(value)
}

/// Whether any number in `value` is held as an `f64`.
fn holds_a_double(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(items) => items.iter().any(holds_a_double),
        serde_json::Value::Object(map) => map.values().any(holds_a_double),
        _ => false,
    }
}

/// Why an evaluation produced no value.
#[derive(Debug)]
enum Failure {
    /// The time or instruction limit.
    Timeout,
    /// The memory budget of the bounded built-ins.
    Limit(String),
    /// An evaluation error (including a call sck cannot evaluate OPA's way).
    Error(String),
    /// A panic inside the engine, caught at the boundary.
    Panic(String),
}

impl Failure {
    fn into_decision(self) -> Decision {
        match self {
            Failure::Timeout => Decision::deny(Outcome::Timeout, "evaluation_timeout"),
            Failure::Limit(why) => {
                Decision::deny(Outcome::Limit, format!("evaluation_limit: {why}"))
            }
            Failure::Error(message) if message.starts_with("invalid_decision") => {
                Decision::deny(Outcome::Invalid, message)
            }
            Failure::Error(message) => {
                Decision::deny(Outcome::Error, format!("evaluation_error: {message}"))
            }
            Failure::Panic(message) => Decision::deny(
                Outcome::Error,
                format!("evaluation_error: the engine failed internally ({message})"),
            ),
        }
    }
}

/// The `error: ...` line of a regorus error (its message without the source excerpt).
fn summary(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("error:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use regorus::unstable::{Expr, Ref, Span};

    fn bundle(rego: &str) -> Bundle {
        let files = [("p/p.rego".to_owned(), rego.as_bytes().to_vec())]
            .into_iter()
            .collect();
        crate::build(
            &crate::SourceTree::from_files(files).unwrap(),
            &crate::BuildOptions::default(),
        )
        .unwrap()
        .bundle
    }

    fn boom(_: &Span, _: &[Ref<Expr>], _: &[Value], _: bool) -> anyhow::Result<Value> {
        panic!("boom")
    }

    /// A panic inside the VM is a deny with `evaluation_error`, and that VM is not pooled.
    #[test]
    fn a_panicking_builtin_denies_and_its_vm_is_dropped() {
        let b = bundle("package p\nimport rego.v1\nallow if upper(input.s) == \"A\"\n");
        let mut evaluator = Evaluator::new(
            &b,
            Some("data.p.allow"),
            EvalLimits::default(),
            Mode::Fastest,
        )
        .unwrap();
        let vm = evaluator.vm.as_mut().expect("compiles to the VM");
        let program = Arc::get_mut(&mut vm.program).expect("no VM made yet");
        let index = program
            .builtin_info_table
            .iter()
            .position(|b| b.name == "upper")
            .unwrap();
        program.resolved_builtins[index] = (boom, 1);
        let denied = evaluator.decide(serde_json::json!({"s": "a"}));
        assert_eq!((denied.allow, denied.outcome), (false, Outcome::Error));
        assert!(
            denied.reasons[0].starts_with("evaluation_error: the engine failed internally (boom"),
            "{denied:?}"
        );
        assert_eq!(evaluator.vm.as_ref().unwrap().pooled(), 0);
        // Without a panic the VM goes back to the pool.
        let fine = Evaluator::new(
            &b,
            Some("data.p.allow"),
            EvalLimits::default(),
            Mode::Fastest,
        )
        .unwrap();
        assert!(fine.decide(serde_json::json!({"s": "a"})).allow);
        assert_eq!(fine.vm.as_ref().unwrap().pooled(), 1);
    }

    /// The reported panic (`regex.template_match` slicing past the end in regorus 0.14.1) and
    /// the two unbounded built-ins of the probe, on both engines.
    #[test]
    fn the_probe_cases_deny_or_answer_on_both_engines() {
        let b = bundle(
            "package p\nimport rego.v1\n\
             tm := regex.template_match(\"urn:foo:{.*}\", input.s, \"{\", \"}\")\n\
             range_allow if count(numbers.range(1, 50000000)) > 0\n\
             pad := sprintf(\"%0200000000d\", [1])\n",
        );
        for mode in [Mode::Fastest, Mode::Interpreter] {
            for rule in ["data.p.tm", "data.p.range_allow", "data.p.pad"] {
                let e = Evaluator::new(&b, Some(rule), EvalLimits::default(), mode).unwrap();
                let got = e.evaluate_rule(rule, serde_json::json!({"s": "a1b2"}));
                match rule {
                    "data.p.tm" => assert_eq!(got, Ok(Some(serde_json::json!(false))), "{mode:?}"),
                    _ => {
                        let denied = got.expect_err(rule);
                        assert_eq!(
                            denied.outcome,
                            Outcome::Limit,
                            "{rule} {mode:?}: {denied:?}"
                        );
                        assert!(denied.reasons[0].starts_with("evaluation_limit: "));
                    }
                }
            }
        }
    }

    #[test]
    fn inputs_with_integers_beyond_64_bits_are_refused() {
        assert_eq!(
            parse_input(br#"{"a": [1, {"n": 18446744073709551616}]}"#),
            Err(InputError::IntegerOutOfRange {
                pointer: "/a/1/n".into(),
                literal: "18446744073709551616".into()
            })
        );
        // Below i64 too, next to numbers that need no second look.
        assert_eq!(
            parse_input(br#"{"ok": [1, -2, 3], "n": -9223372036854775809}"#),
            Err(InputError::IntegerOutOfRange {
                pointer: "/n".into(),
                literal: "-9223372036854775809".into()
            })
        );
        // Decimals are held as doubles, which stand for their shortest text.
        for (text, literal) in [
            (&b"[0.10000000000000001]"[..], "0.10000000000000001"),
            (b"{\"x\": 96064706328052.625}", "96064706328052.625"),
        ] {
            let refused = parse_input(text).unwrap_err();
            assert!(
                matches!(&refused, InputError::DecimalOutOfRange { literal: l, .. } if l == literal),
                "{refused:?}"
            );
            assert_eq!(refused.code(), "number_out_of_range");
        }
        for fine in [
            &br#"{"n": 18446744073709551615, "m": -9223372036854775808, "f": 1e300}"#[..],
            b"[0.5, 1.0, -0, 1.10, 1e3, 0.30000000000000004, 96064706328052.62, 5e-324]",
        ] {
            assert!(parse_input(fine).is_ok());
        }
        assert_eq!(parse_input(b"{").unwrap_err().code(), "invalid_json");
    }

    #[test]
    fn integers_beyond_64_bits_are_not_served_rounded() {
        let b = bundle(
            "package p\nimport rego.v1\nbig := 18446744073709551616\nok := 9223372036854775807\n",
        );
        for mode in [Mode::Fastest, Mode::Interpreter] {
            let e = Evaluator::new(&b, Some("data.p.big"), EvalLimits::default(), mode).unwrap();
            let denied = e
                .evaluate_rule("data.p.big", serde_json::json!({}))
                .unwrap_err();
            assert_eq!(denied.outcome, Outcome::Error);
            assert!(
                denied.reasons[0].contains("18446744073709551616"),
                "{denied:?}"
            );
            assert_eq!(
                e.evaluate_rule("data.p.ok", serde_json::json!({})),
                Ok(Some(serde_json::json!(9223372036854775807i64)))
            );
        }
    }

    /// OPA's arithmetic on both engines (answers recorded from OPA 0.60 and 1.9): the VM's
    /// patched instructions and the interpreter's rewritten operators give the same answers.
    #[test]
    fn arithmetic_is_opas_on_both_engines() {
        let b = bundle(
            "package p\nimport rego.v1\n\
             sum3 := input.a + input.b\n\
             exact := (input.a + input.b) == 0.3\n\
             five := input.c * 2\n\
             big := product([1e300, 17])\n\
             third := 1 / input.d\n\
             zero := input.d / 0\n\
             nested := [x | some n in [1, 2]; x := (n + input.a) * 10]\n\
             f(v) := v * 0.1\n\
             called := f(3)\n\
             diff := {1, 2} - {2}\n",
        );
        let input = serde_json::json!({"a": 0.1, "b": 0.2, "c": 2.5, "d": 3});
        for mode in [Mode::Fastest, Mode::Interpreter] {
            let e = Evaluator::new(&b, Some("data.p.sum3"), EvalLimits::default(), mode).unwrap();
            if mode == Mode::Fastest {
                assert_eq!(e.mode(), "rvm");
            }
            let eval = |rule: &str| e.evaluate_rule(&format!("data.p.{rule}"), input.clone());
            assert_eq!(eval("sum3"), Ok(Some(serde_json::json!(0.3))), "{mode:?}");
            assert_eq!(eval("exact"), Ok(Some(serde_json::json!(true))), "{mode:?}");
            assert_eq!(eval("five"), Ok(Some(serde_json::json!(5))), "{mode:?}");
            // OPA holds 17 × 10^300 as an integer: beyond 64 bits, not served.
            assert!(eval("big").unwrap_err().reasons[0].contains("beyond 64 bits"));
            assert_eq!(
                eval("nested"),
                Ok(Some(serde_json::json!([11, 21]))),
                "{mode:?}"
            );
            assert_eq!(eval("called"), Ok(Some(serde_json::json!(0.3))), "{mode:?}");
            assert_eq!(eval("diff"), Ok(Some(serde_json::json!([1]))), "{mode:?}");
            // OPA holds 1/3 as 0.33333333333333333334, division by zero is an error.
            for rule in ["third", "zero"] {
                let denied = eval(rule).unwrap_err();
                assert_eq!(denied.outcome, Outcome::Error, "{rule} {mode:?}");
            }
            assert!(eval("third").unwrap_err().reasons[0]
                .starts_with("evaluation_error: float arithmetic differs from OPA"));
        }
    }

    /// A built-in error denies on both engines. OPA (0.60 and 1.9) treats the call as
    /// undefined: `{"a": true}` for this module and input, `b` undefined; regorus' non-strict
    /// VM answered `b` true (an allow where OPA has none), so sck runs both engines strict:
    /// the strict VM fails the query at the error (`b` undefined as in OPA, `a` too:
    /// `policy_undefined`), the interpreter ends the evaluation (`evaluation_error`).
    #[test]
    fn builtin_errors_deny_on_both_engines() {
        let b = bundle(
            "package p\nimport rego.v1\n\
             a if not to_number(input.x)\n\
             b if { v := to_number(input.x); not v == 1 }\n",
        );
        let input = serde_json::json!({"x": "abc"});
        for mode in [Mode::Fastest, Mode::Interpreter] {
            for rule in ["data.p.a", "data.p.b"] {
                let e = Evaluator::new(&b, Some(rule), EvalLimits::default(), mode).unwrap();
                let denied = e.decide(input.clone());
                let expected = match mode {
                    Mode::Fastest => Outcome::Undefined,
                    Mode::Interpreter => Outcome::Error,
                };
                assert_eq!(
                    (denied.allow, denied.outcome),
                    (false, expected),
                    "{rule} {mode:?}: {denied:?}"
                );
                // With a number the built-in answers, and only `b` holds.
                let fine = e.decide(serde_json::json!({"x": "7"}));
                assert_eq!(fine.allow, rule == "data.p.b", "{rule} {mode:?}: {fine:?}");
            }
        }
    }

    /// Two values for one key of a partial object rule: an error in OPA (recorded from 0.60 and
    /// 1.9, `eval_conflict_error`), a deny in sck on both engines — the VM kept the last value
    /// and allowed.
    #[test]
    fn partial_object_conflicts_deny_on_both_engines() {
        let b = bundle(
            "package p\nimport rego.v1\n\
             by_name[u.name] := u.age if { some u in input.users }\n\
             allow if by_name.alice > 17\n",
        );
        let conflict = serde_json::json!({"users": [{"name": "alice", "age": 0}, {"name": "alice", "age": 36}]});
        let same = serde_json::json!({"users": [{"name": "alice", "age": 36}, {"name": "alice", "age": 36}]});
        for mode in [Mode::Fastest, Mode::Interpreter] {
            let e = Evaluator::new(&b, Some("data.p.allow"), EvalLimits::default(), mode).unwrap();
            let denied = e.decide(conflict.clone());
            assert_eq!(
                (denied.allow, denied.outcome),
                (false, Outcome::Error),
                "{mode:?}: {denied:?}"
            );
            assert!(e.decide(same.clone()).allow, "{mode:?}");
        }
    }
}
