//! Evaluating a bundle's decision rule: compiled once, run many times, deny by default.
//!
//! [`Evaluator::new`] compiles the bundle's entrypoint to a regorus RVM program (the fast path,
//! one VM per concurrent caller from a pool) and falls back to the interpreter when the VM
//! compiler refuses the policy (it does not support `with`). Every evaluation is bounded by a
//! wall-clock limit (and, on the VM, an instruction limit); a runaway rule yields a deny with
//! reason `evaluation_timeout`, never a stalled worker. The rule may return
//! `{"allow": bool, "reasons": [...]}` or a bare boolean; anything else — undefined, an error,
//! another shape — is a deny with the reason named. The same code serves `sck bundle eval` and
//! the gateway.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value};
use serde::Serialize;

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
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            time: Duration::from_millis(100),
            instructions: 5_000_000,
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
            Mode::Fastest => engine
                .compile_with_entrypoint(&entrypoint.as_str().into())
                .ok()
                .and_then(|compiled| Compiler::compile_from_policy(&compiled, &[&entrypoint]).ok()),
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

    /// Evaluates the rule on a JSON input; never fails — every failure is a deny.
    pub fn decide(&self, input: &serde_json::Value) -> Decision {
        match self.evaluate(Value::from(input.clone()), None) {
            Ok(Value::Undefined) => Decision::deny(Outcome::Undefined, "policy_undefined"),
            Ok(value) => match value.to_json_str().map(|s| serde_json::from_str(&s)) {
                Ok(Ok(json)) => Decision::from_result(&json),
                _ => Decision::deny(Outcome::Invalid, "invalid_decision: result is not JSON"),
            },
            Err(Failure::Limit) => Decision::deny(Outcome::Timeout, "evaluation_timeout"),
            Err(Failure::Error(message)) => {
                Decision::deny(Outcome::Error, format!("evaluation_error: {message}"))
            }
        }
    }

    /// Evaluates any rule (a `data.`-rooted path), as OPA's Data API does: the decision rule on
    /// the VM, others on the interpreter. `Ok(None)` when undefined; limits and errors are
    /// reported as errors.
    pub fn evaluate_rule(
        &self,
        rule: &str,
        input: &serde_json::Value,
    ) -> std::result::Result<Option<serde_json::Value>, String> {
        match self.evaluate(Value::from(input.clone()), Some(rule)) {
            Ok(Value::Undefined) => Ok(None),
            Ok(value) => value
                .to_json_str()
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .map(Some)
                .ok_or_else(|| "result is not JSON".to_owned()),
            Err(Failure::Limit) => Err("evaluation_timeout".into()),
            Err(Failure::Error(e)) => Err(format!("evaluation_error: {e}")),
        }
    }

    /// Runs the decision rule (on the VM when compiled), or `rule` on the interpreter.
    fn evaluate(&self, input: Value, rule: Option<&str>) -> std::result::Result<Value, Failure> {
        // The decision rule runs on the VM whether asked for by name or not.
        let rule = rule.filter(|r| *r != self.entrypoint);
        match (&self.vm, rule) {
            (
                Some(Vm {
                    program,
                    data,
                    pool,
                }),
                None,
            ) => {
                let reused = pool.lock().map(|mut p| p.pop()).unwrap_or(None);
                let mut vm = match reused {
                    Some(vm) => vm,
                    None => {
                        let mut vm = RegoVM::new();
                        vm.load_program(program.clone());
                        vm.set_data(data.clone())
                            .map_err(|e| Failure::Error(e.to_string()))?;
                        vm.set_execution_timer_config(Some(timer(&self.limits)));
                        vm.set_max_instructions(self.limits.instructions);
                        vm
                    }
                };
                vm.set_input(input);
                let result = vm.execute().map_err(|e| match e {
                    VmError::InstructionLimitExceeded { .. }
                    | VmError::TimeLimitExceeded { .. }
                    | VmError::MemoryLimitExceeded { .. }
                    | VmError::MemoryBudgetExceeded { .. } => Failure::Limit,
                    other => Failure::Error(other.to_string()),
                });
                if let Ok(mut p) = pool.lock() {
                    p.push(vm);
                }
                result
            }
            _ => {
                let mut engine = self.interpreter.clone();
                engine.set_input(input);
                let rule = rule.unwrap_or(&self.entrypoint).to_owned();
                engine.eval_rule(rule).map_err(|e| {
                    if e.chain().any(|c| c.downcast_ref::<LimitError>().is_some()) {
                        Failure::Limit
                    } else {
                        Failure::Error(summary(&e.to_string()))
                    }
                })
            }
        }
    }
}

/// Why an evaluation produced no value.
enum Failure {
    Limit,
    Error(String),
}

/// The `error: ...` line of a regorus error (its message without the source excerpt).
fn summary(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("error:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned())
}
