//! Rego in a bundle, through regorus: parsing, package/root checks, refusing built-ins regorus
//! cannot evaluate, running the bundle's `test_*` rules, and evaluating a rule on an input.
//!
//! Static facts (packages, calls, rule names) come from regorus' own parser via its AST, with
//! positions turned into `file:line:col` diagnostics; nothing here re-parses Rego by hand.

use std::time::{Duration, Instant};

use regorus::{Engine, LimitError};
use serde_json::Value as JsonValue;

use crate::builtins::scope::{self, Ended, Stop};
use crate::bundle::{Bundle, ModuleRef};
use crate::decision::EvalLimits;
use crate::error::{BundleError, Result};
use crate::roots::Roots;

/// OPA built-ins that regorus does not evaluate. A bundle calling one of these would be
/// evaluated differently by sck than by OPA (an error, or for `http.send` a silent undefined),
/// so it is refused at compile time. Entries ending in `.` are prefixes.
pub const UNSUPPORTED_BUILTINS: &[&str] = &[
    "io.jwt.",
    "crypto.",
    "http.send",
    "net.cidr_intersects",
    "net.cidr_merge",
    "net.cidr_overlap",
    "net.cidr_contains_matches",
    "net.lookup_ip_addr",
    "rego.metadata.",
    "rego.parse_module",
    "strings.render_template",
    "providers.aws.",
    "graphql.",
];

/// The unsupported built-in a function name refers to, if any.
pub fn unsupported_builtin(name: &str) -> Option<&'static str> {
    UNSUPPORTED_BUILTINS.iter().copied().find(|entry| {
        if entry.ends_with('.') {
            name.starts_with(entry)
        } else {
            name == *entry
        }
    })
}

fn new_engine(bundle: &Bundle) -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(bundle.manifest.is_rego_v0());
    engine
}

fn policy_error(message: impl Into<String>) -> BundleError {
    BundleError::Policy(vec![message.into()])
}

/// Parses one module alone and returns its AST (regorus' JSON form).
fn module_ast(bundle: &Bundle, module: ModuleRef<'_>) -> Result<(String, JsonValue)> {
    let mut engine = new_engine(bundle);
    let package = engine
        .add_policy(module.path.to_owned(), module.source.to_owned())
        .map_err(|e| policy_error(e.to_string()))?;
    let ast = engine
        .get_ast_as_json()
        .map_err(|e| policy_error(format!("{}: {e}", module.path)))?;
    let mut modules: Vec<JsonValue> =
        serde_json::from_str(&ast).map_err(|e| policy_error(format!("{}: {e}", module.path)))?;
    let ast = modules
        .pop()
        .map(|mut m| m["ast"].take())
        .unwrap_or_default();
    Ok((package, ast))
}

/// `data.a.b` → `["a", "b"]`.
fn package_segments(package: &str) -> Vec<String> {
    package
        .strip_prefix("data.")
        .unwrap_or("")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks that every module parses and its package lies under the manifest roots.
pub fn check_packages(bundle: &Bundle, roots: &Roots) -> Result<()> {
    for module in bundle.modules() {
        let mut engine = new_engine(bundle);
        let package = engine
            .add_policy(module.path.to_owned(), module.source.to_owned())
            .map_err(|e| policy_error(e.to_string()))?;
        roots.check_package(module.path, &package_segments(&package))?;
    }
    Ok(())
}

/// A source position and message, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

/// Line and column (1-based, columns in characters) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The source text a span covers.
fn span_text<'a>(source: &'a str, span: &JsonValue) -> Option<(&'a str, usize)> {
    let start = span["start"].as_u64()? as usize;
    let end = span["end"].as_u64()? as usize;
    source.get(start..end).map(|text| (text, start))
}

/// Every function call in an AST: (function name as written, byte offset).
fn calls<'a>(source: &'a str, node: &JsonValue, out: &mut Vec<(&'a str, usize)>) {
    match node {
        JsonValue::Object(map) => {
            if let Some(call) = map.get("Call") {
                if let Some(fcn) = call.get("fcn").and_then(|f| f.as_object()) {
                    if let Some(found) = fcn
                        .values()
                        .next()
                        .and_then(|e| span_text(source, &e["span"]))
                    {
                        out.push(found);
                    }
                }
            }
            map.values().for_each(|v| calls(source, v, out));
        }
        JsonValue::Array(items) => items.iter().for_each(|v| calls(source, v, out)),
        _ => {}
    }
}

/// The call-like nodes of regorus' AST: each is a call in OPA (`plus`, `equal`, `or`, ...).
const CALL_LIKE: [&str; 5] = ["Call", "ArithExpr", "BoolExpr", "BinExpr", "Membership"];

/// Comprehensions: OPA evaluates their bodies as closures, never hoisted.
const CLOSURES: [&str; 3] = ["ArrayCompr", "SetCompr", "ObjectCompr"];

/// Byte offsets of the calls nested in negated expressions (`not count(x) == 1`, not
/// `not f(x)`). OPA's compiler moves such calls before the negation, so when one is undefined
/// the whole literal is; regorus evaluates them inside it, where undefined makes `not` hold.
fn negated_nested_calls(node: &JsonValue, out: &mut Vec<usize>) {
    match node {
        JsonValue::Object(map) => {
            if let Some(negated) = map.get("NotExpr") {
                if let Some((kind, top)) = negated["expr"].as_object().and_then(|e| e.iter().next())
                {
                    let operands = if CALL_LIKE.contains(&kind.as_str()) {
                        top.as_object()
                            .into_iter()
                            .flat_map(|fields| fields.values())
                            .collect()
                    } else {
                        vec![top]
                    };
                    operands
                        .into_iter()
                        .for_each(|operand| first_calls(operand, out));
                }
            }
            map.values().for_each(|v| negated_nested_calls(v, out));
        }
        JsonValue::Array(items) => items.iter().for_each(|v| negated_nested_calls(v, out)),
        _ => {}
    }
}

/// The outermost call-like nodes below `node`, outside comprehensions.
fn first_calls(node: &JsonValue, out: &mut Vec<usize>) {
    match node {
        JsonValue::Object(map) => {
            for (key, value) in map {
                if CLOSURES.contains(&key.as_str()) {
                    continue;
                }
                if CALL_LIKE.contains(&key.as_str()) {
                    if let Some(start) = value["span"]["start"].as_u64() {
                        out.push(start as usize);
                        continue;
                    }
                }
                first_calls(value, out);
            }
        }
        JsonValue::Array(items) => items.iter().for_each(|v| first_calls(v, out)),
        _ => {}
    }
}

/// Names of the rules a module defines without arguments (e.g. `test_allows`), with the byte
/// offset of their first definition.
fn rule_names(source: &str, ast: &JsonValue) -> Vec<(String, usize)> {
    let mut names = Vec::new();
    for rule in ast["rules"].as_array().into_iter().flatten() {
        let Some(head) = rule.get("Spec").map(|s| &s["head"]) else {
            continue;
        };
        let Some((kind, head)) = head.as_object().and_then(|h| h.iter().next()) else {
            continue;
        };
        if kind == "Func" {
            continue;
        }
        if let Some(refr) = head["refr"].as_object().and_then(|r| r.values().next()) {
            if let Some((text, offset)) = span_text(source, &refr["span"]) {
                if !names.iter().any(|(n, _)| n == text) {
                    names.push((text.to_owned(), offset));
                }
            }
        }
    }
    names
}

/// Everything `sck bundle check` establishes about a bundle's Rego.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub modules: usize,
    pub packages: Vec<String>,
    pub entrypoint: String,
    /// Whether the entrypoint rule exists in the bundle.
    pub entrypoint_defined: bool,
}

/// Parses and compiles every module, refusing built-ins regorus cannot evaluate and calls
/// nested in a negation (which regorus evaluates otherwise than OPA); all problems are reported
/// together, each with `file:line:col`.
pub fn check(bundle: &Bundle) -> Result<CheckReport> {
    let mut problems = Vec::new();
    let mut packages = Vec::new();
    for module in bundle.modules() {
        match module_ast(bundle, module) {
            Ok((package, ast)) => {
                let mut report = |offset: usize, message: String| {
                    let (line, col) = position(module.source, offset);
                    let path = module.path.to_owned();
                    problems.push(
                        Diagnostic {
                            path,
                            line,
                            col,
                            message,
                        }
                        .to_string(),
                    );
                };
                let mut found = Vec::new();
                calls(module.source, &ast, &mut found);
                for (name, offset) in found {
                    if let Some(entry) = unsupported_builtin(name) {
                        let what = if entry.ends_with('.') {
                            format!("built-ins {entry}*")
                        } else {
                            format!("built-in {entry}")
                        };
                        report(
                            offset,
                            format!("{name}: {what} cannot be evaluated by sck (regorus)"),
                        );
                    }
                }
                let mut nested = Vec::new();
                negated_nested_calls(&ast, &mut nested);
                for offset in nested {
                    report(
                        offset,
                        "a call inside `not`: OPA evaluates it before negating (the literal is \
                         undefined when the call is), regorus inside the negation; bind it first \
                         (`n := count(x)`, then `not n == 1`)"
                            .to_owned(),
                    );
                }
                for (rule, offset) in rule_names(module.source, &ast) {
                    let mut path = package_segments(&package);
                    path.extend(rule.split('.').map(str::to_owned));
                    if bundle.data.contains(&path)? {
                        report(
                            offset,
                            format!(
                                "rule {package}.{rule} conflicts with data at /{}",
                                path.join("/")
                            ),
                        );
                    }
                }
                if !packages.contains(&package) {
                    packages.push(package);
                }
            }
            Err(BundleError::Policy(messages)) => problems.extend(messages),
            Err(other) => return Err(other),
        }
    }
    if !problems.is_empty() {
        return Err(BundleError::Policy(problems));
    }
    let mut engine = load(bundle)?;
    let entrypoint = bundle.manifest.entrypoint();
    let entrypoint_defined = rule_defined(bundle, &entrypoint);
    if entrypoint_defined {
        engine
            .compile_with_entrypoint(&entrypoint.as_str().into())
            .map_err(|e| policy_error(format!("entrypoint {entrypoint}: {e}")))?;
    }
    Ok(CheckReport {
        modules: bundle.modules().count(),
        packages,
        entrypoint,
        entrypoint_defined,
    })
}

fn rule_defined(bundle: &Bundle, rule_path: &str) -> bool {
    let Some((package, rule)) = rule_path.rsplit_once('.') else {
        return false;
    };
    bundle.modules().any(|module| {
        module_ast(bundle, module).is_ok_and(|(pkg, ast)| {
            pkg == package
                && rule_names(module.source, &ast)
                    .iter()
                    .any(|(n, _)| n == rule)
        })
    })
}

/// An engine with every module and the bundle's data loaded, and sck's built-ins
/// ([`crate::builtins`]) in place of regorus' where they differ; the arithmetic operators are
/// rewritten into calls of sck's ([`crate::builtins::rewrite`]), since the interpreter offers no
/// other way to evaluate them as OPA does.
///
/// A built-in error ends the evaluation (regorus' strict mode, its interpreter's default; the
/// VM is set alike in [`crate::decision`]): the decision is a deny with `evaluation_error`.
/// OPA would treat the call as undefined and go on, but regorus' VM goes on past an undefined
/// assignment (`v := to_number("x")` held), so sck refuses rather than guess.
pub fn load(bundle: &Bundle) -> Result<Engine> {
    let mut engine = load_modules(bundle, true)?;
    engine
        .add_data(data_value(bundle)?)
        .map_err(|e| BundleError::Data(format!("data: {e}")))?;
    Ok(engine)
}

/// The modules as written (no data), for compiling to the VM, whose arithmetic instructions
/// sck patches instead ([`crate::builtins::arith::patch_program`]).
pub fn load_for_vm(bundle: &Bundle) -> Result<Engine> {
    load_modules(bundle, false)
}

fn load_modules(bundle: &Bundle, rewrite: bool) -> Result<Engine> {
    let mut engine = new_engine(bundle);
    crate::builtins::register(&mut engine).map_err(|e| policy_error(e.to_string()))?;
    for module in bundle.modules() {
        let source = if rewrite {
            let (_, ast) = module_ast(bundle, module)?;
            crate::builtins::rewrite::operators_as_calls(module.source, &ast).ok_or_else(|| {
                policy_error(format!(
                    "{}: sck cannot place its arithmetic in this module",
                    module.path
                ))
            })?
        } else {
            module.source.to_owned()
        };
        engine
            .add_policy(module.path.to_owned(), source)
            .map_err(|e| policy_error(e.to_string()))?;
    }
    Ok(engine)
}

/// The bundle's data document as a regorus value, parsed from its text (a single data file as
/// written, several merged without a tree of their own in between).
pub fn data_value(bundle: &Bundle) -> Result<regorus::Value> {
    let text = bundle.data.json_text()?;
    std::str::from_utf8(&text)
        .map_err(|e| e.to_string())
        .and_then(|text| regorus::Value::from_json_str(text).map_err(|e| e.to_string()))
        .map_err(|e| BundleError::Data(format!("data: {e}")))
}

/// Evaluates `rule` (a `data.`-rooted path) on `input`; `None` when the rule is undefined.
pub fn evaluate(engine: &Engine, rule: &str, input: &JsonValue) -> Result<Option<JsonValue>> {
    let mut engine = engine.clone();
    let input = regorus::Value::from_json_str(&input.to_string())
        .map_err(|e| policy_error(format!("input: {e}")))?;
    engine.set_input(input);
    let value = engine
        .eval_rule(rule.to_owned())
        .map_err(|e| policy_error(format!("{rule}: {e}")))?;
    if value == regorus::Value::Undefined {
        return Ok(None);
    }
    let json = value
        .to_json_str()
        .map_err(|e| policy_error(format!("{rule}: result is not JSON: {e}")))?;
    Ok(Some(
        serde_json::from_str(&json).map_err(|e| policy_error(e.to_string()))?,
    ))
}

/// How one Rego test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStatus {
    Pass,
    Fail,
    /// The evaluation failed, or panicked inside regorus (the panic stops at this test).
    Error(String),
    /// The evaluation hit its time limit and was stopped.
    Timeout(Duration),
}

/// One `test_*` rule's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub file: String,
    /// Full rule path, e.g. `data.sck.authz_test.test_allows`.
    pub name: String,
    pub status: TestStatus,
    pub duration: Duration,
}

/// The default time limit of one test: `opa test`'s default `--timeout`.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every `test_*` rule of the bundle, as `opa test` does: a test passes when it
/// evaluates to `true`; `false` or undefined fail; an evaluation error is an error.
///
/// Each test is bounded by `limits.time` through regorus' execution timer (tests run on the
/// interpreter, since they use `with`, which the VM refuses, so `limits.instructions` does not
/// apply), and a panic inside regorus becomes that test's error. `stop` is asked before each
/// test: once it answers true (the caller gave up on the result), the remaining tests are not
/// started and are missing from the outcomes.
pub fn run_tests(
    bundle: &Bundle,
    limits: &EvalLimits,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<TestOutcome>> {
    let mut engine = load(bundle)?;
    engine.set_execution_timer_config(crate::decision::timer(limits));
    let mut outcomes = Vec::new();
    for module in bundle.modules() {
        let (package, ast) = module_ast(bundle, module)?;
        for (rule, _) in rule_names(module.source, &ast) {
            if !rule.starts_with("test_") {
                continue;
            }
            if stop() {
                return Ok(outcomes);
            }
            let name = format!("{package}.{rule}");
            let started = Instant::now();
            let status = run_test(&engine, &name, limits);
            outcomes.push(TestOutcome {
                file: module.path.to_owned(),
                name,
                status,
                duration: started.elapsed(),
            });
        }
    }
    Ok(outcomes)
}

/// Evaluates one test rule on a fresh clone of `engine`, which is dropped afterwards, so a
/// panic cannot leave a half-updated engine behind for the next test. The test runs inside the
/// same boundary as a decision ([`scope::run`]): panics are caught quietly and the bounded
/// built-ins charge the evaluation's memory budget.
fn run_test(engine: &Engine, name: &str, limits: &EvalLimits) -> TestStatus {
    let mut engine = engine.clone();
    match scope::run(limits.memory, || engine.eval_rule(name.to_owned())) {
        Ended::Returned(_, Some(Stop::Limit(why))) => {
            TestStatus::Error(format!("evaluation_limit: {why}"))
        }
        Ended::Returned(_, Some(Stop::Unsupported(why))) => TestStatus::Error(why),
        Ended::Returned(Ok(regorus::Value::Bool(true)), None) => TestStatus::Pass,
        Ended::Returned(Ok(_), None) => TestStatus::Fail,
        Ended::Returned(Err(e), None) if is_time_limit(&*e) => TestStatus::Timeout(limits.time),
        Ended::Returned(Err(e), None) => TestStatus::Error(e.to_string()),
        Ended::Panicked(message) => TestStatus::Error(format!("evaluation panicked: {message}")),
    }
}

/// True if regorus stopped an evaluation at its execution time limit.
fn is_time_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|cause| {
        matches!(
            cause.downcast_ref::<LimitError>(),
            Some(LimitError::TimeLimitExceeded { .. })
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_builtins_match_names_and_prefixes() {
        assert_eq!(unsupported_builtin("io.jwt.decode"), Some("io.jwt."));
        assert_eq!(unsupported_builtin("http.send"), Some("http.send"));
        assert_eq!(unsupported_builtin("http.sender"), None);
        assert_eq!(unsupported_builtin("count"), None);
    }

    /// Each listed built-in really is one regorus cannot evaluate: calling it is an error
    /// (or, for `http.send`, silently undefined). Keeps the list honest across upgrades.
    #[test]
    fn every_listed_builtin_fails_in_regorus() {
        let probes = [
            ("io.jwt.decode", "io.jwt.decode(\"x\")"),
            ("crypto.sha256", "crypto.sha256(\"x\")"),
            ("net.cidr_merge", "net.cidr_merge([\"10.0.0.0/8\"])"),
            (
                "net.cidr_intersects",
                "net.cidr_intersects(\"10.0.0.0/8\", \"10.0.0.0/16\")",
            ),
            (
                "rego.parse_module",
                "rego.parse_module(\"x.rego\", \"package x\")",
            ),
            (
                "strings.render_template",
                "strings.render_template(\"{{.a}}\", {\"a\": 1})",
            ),
        ];
        for (name, call) in probes {
            let mut engine = Engine::new();
            engine
                .add_policy("p.rego".into(), format!("package p\nx := {call}\n"))
                .unwrap();
            let result = engine.eval_rule("data.p.x".into());
            assert!(result.is_err(), "{name} unexpectedly evaluates: {result:?}");
        }
        let mut engine = Engine::new();
        engine
            .add_policy(
                "p.rego".into(),
                "package p\nx := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:9\"})\n".into(),
            )
            .unwrap();
        assert!(
            !matches!(engine.eval_rule("data.p.x".into()), Ok(v) if v != regorus::Value::Undefined)
        );
    }

    fn bundle_with_tests(tests: &str) -> Bundle {
        let source = crate::SourceTree::from_files(
            [(
                "t/t_test.rego".to_owned(),
                format!("package t\n{tests}").into_bytes(),
            )]
            .into_iter()
            .collect(),
        )
        .unwrap();
        crate::build(&source, &crate::BuildOptions::default())
            .unwrap()
            .bundle
    }

    fn limits(time: Duration) -> EvalLimits {
        EvalLimits {
            time,
            ..EvalLimits::default()
        }
    }

    fn statuses(outcomes: &[TestOutcome]) -> Vec<(&str, &TestStatus)> {
        outcomes
            .iter()
            .map(|o| (o.name.as_str(), &o.status))
            .collect()
    }

    /// The probe of issue 14: ten billion iterations, stopped by the time limit; the tests
    /// around it still run.
    #[test]
    fn a_runaway_test_times_out_and_the_others_run() {
        let bundle = bundle_with_tests(
            "test_before if true\n\
             test_runaway if { count([1 | some x in numbers.range(1, 100000); \
             some y in numbers.range(1, 100000); x == y]) > 0 }\n\
             test_after if true\n",
        );
        let limit = Duration::from_millis(200);
        let outcomes = run_tests(&bundle, &limits(limit), &|| false).unwrap();
        assert_eq!(
            statuses(&outcomes),
            [
                ("data.t.test_before", &TestStatus::Pass),
                ("data.t.test_runaway", &TestStatus::Timeout(limit)),
                ("data.t.test_after", &TestStatus::Pass),
            ]
        );
    }

    /// A panic inside an evaluation (here an extension that panics, as a regorus bug would:
    /// sck's own built-ins replaced the ones known to panic) becomes that test's error, and the
    /// next test runs on a fresh engine.
    #[test]
    fn a_panic_in_a_test_is_that_tests_error() {
        let bundle = bundle_with_tests("test_panics if boom(1) == 0\ntest_after if true\n");
        let mut engine = load(&bundle).unwrap();
        engine
            .add_extension("boom".to_owned(), 1, Box::new(|_| panic!("boom")))
            .unwrap();
        let limits = limits(DEFAULT_TEST_TIMEOUT);
        let status = run_test(&engine, "data.t.test_panics", &limits);
        assert!(
            matches!(&status, TestStatus::Error(e) if e.starts_with("evaluation panicked")),
            "{status:?}"
        );
        assert_eq!(
            run_test(&engine, "data.t.test_after", &limits),
            TestStatus::Pass
        );
    }

    #[test]
    fn no_test_starts_once_stop_answers_true() {
        let bundle = bundle_with_tests("test_a if true\ntest_b if true\ntest_c if true\n");
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() > 2
        };
        let outcomes = run_tests(&bundle, &limits(DEFAULT_TEST_TIMEOUT), &stop).unwrap();
        assert_eq!(
            statuses(&outcomes),
            [
                ("data.t.test_a", &TestStatus::Pass),
                ("data.t.test_b", &TestStatus::Pass),
            ]
        );
    }

    /// Calls nested in a negation are refused with their position (OPA moves them before the
    /// `not`: for `input = {}` OPA 0.60 and 1.9 answer `{"top": true, "compr": true}` for this
    /// module, regorus also `nested` and `arith`); a call that is the negated expression itself,
    /// and calls inside a comprehension, are fine.
    #[test]
    fn calls_nested_in_a_negation_are_refused() {
        let source = "package p\nimport rego.v1\n\
                      top if not startswith(input.s, \"a\")\n\
                      nested if not count(input.missing) == 1\n\
                      arith if not input.missing + 1 > 2\n\
                      compr if not [x | x := count(input.xs)] == [1]\n";
        let files = [("p/p.rego".to_owned(), source.as_bytes().to_vec())]
            .into_iter()
            .collect();
        let bundle = crate::build(
            &crate::SourceTree::from_files(files).unwrap(),
            &crate::BuildOptions::default(),
        )
        .unwrap()
        .bundle;
        let Err(BundleError::Policy(problems)) = check(&bundle) else {
            panic!("accepted")
        };
        let at: Vec<&str> = problems
            .iter()
            .map(|p| &p[..p.find(": ").unwrap()])
            .collect();
        assert_eq!(at, ["p/p.rego:4:15", "p/p.rego:5:14"], "{problems:?}");
        assert!(problems[0].contains("a call inside `not`"), "{problems:?}");
    }

    #[test]
    fn positions_are_one_based() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
    }
}
