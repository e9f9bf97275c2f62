//! Every built-in sck accepts, called with generated arguments (multi-byte and empty strings,
//! huge and negative numbers, floats, wrong types, nested values, sets) on both engines: no
//! evaluation panics (the boundary would turn one into `evaluation_error`, which this test
//! treats as a failure to fix) and every evaluation ends within the evaluation limits.

use proptest::prelude::*;
use sck_bundler::decision::{EvalLimits, Evaluator, Mode};
use sck_bundler::{build, policy, BuildOptions, Bundle, SourceTree};
use serde_json::{json, Value};

/// Built-ins whose output depends on the outside world or that never return a value to
/// compare (`print` writes to stderr); they are still called, just not required to be pure.
fn accepted_builtins() -> Vec<(&'static str, u8)> {
    let mut names: Vec<(&'static str, u8)> = regorus::unstable::BUILTINS
        .iter()
        .map(|(name, (_, nargs))| (*name, *nargs))
        .filter(|(name, _)| policy::unsupported_builtin(name).is_none())
        // Internal helpers regorus registers under reserved names; Rego cannot call them.
        .filter(|(name, _)| !name.starts_with("__"))
        .collect();
    names.sort();
    names
}

fn bundle_calling(name: &str, nargs: u8) -> Bundle {
    let args: Vec<String> = (0..nargs).map(|i| format!("arg(input.a{i})")).collect();
    let source = format!(
        "package p\nimport rego.v1\n\
         arg(v) := {{x | some x in v.s}} if is_array(v.s)\n\
         arg(v) := v.v if not is_array(v.s)\n\
         r := {name}({})\n",
        args.join(", ")
    );
    let files = [("p/p.rego".to_owned(), source.into_bytes())]
        .into_iter()
        .collect();
    build(
        &SourceTree::from_files(files).unwrap(),
        &BuildOptions::default(),
    )
    .unwrap()
    .bundle
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(2),
            Just(3),
            Just(64),
            Just(100_000_000)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![Just(0.5), Just(-0.0), Just(1e300), Just(1e-300), Just(2.5)]
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![
            Just(""),
            Just("ß"),
            Just("İ"),
            Just("日本語"),
            Just("a\u{301}"),
            Just("🦀x"),
            Just("{"),
            Just("}"),
            Just("%"),
            Just("%v%d%s"),
            Just("%0200000000d"),
            Just("*"),
            Just("."),
            Just("a.b.c"),
            Just("\\"),
            Just("["),
            Just("(?P<x>a)"),
            Just("10.0.0.0/8"),
            Just("::1"),
            Just("2024-01-01T00:00:00Z"),
            Just("1.2.3"),
            Just("10Gi"),
            Just("e30"),
            Just("eyJhIjoxfQ"),
            Just("a=b&c=d"),
            Just("{\"a\":[1,2]}"),
            Just("urn:foo:{.*}"),
            Just("a1b2"),
            Just("-1"),
            Just("1e400"),
            Just("0x10"),
            Just("\u{0}"),
        ]
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One argument: a value, or a set of values (JSON has no sets; the policy builds it).
fn argument() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => value().prop_map(|v| json!({"v": v})),
        1 => prop::collection::vec(value(), 0..4).prop_map(|s| json!({"s": s})),
    ]
}

fn evaluators(name: &str, nargs: u8) -> Vec<Evaluator> {
    let bundle = bundle_calling(name, nargs);
    [Mode::Fastest, Mode::Interpreter]
        .into_iter()
        .map(|mode| {
            Evaluator::new(&bundle, Some("data.p.r"), EvalLimits::default(), mode)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
}

#[test]
fn every_builtin_survives_generated_arguments() {
    let builtins = accepted_builtins();
    assert!(
        builtins.len() > 100,
        "regorus lists {} built-ins",
        builtins.len()
    );
    let mut failures = Vec::new();
    for (name, nargs) in builtins {
        let engines = evaluators(name, nargs);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let strategy = prop::collection::vec(argument(), nargs as usize);
        let result = runner.run(&strategy, |args| {
            let input: serde_json::Map<String, Value> = args
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("a{i}"), a))
                .collect();
            let input = Value::Object(input);
            for engine in &engines {
                if let Err(denied) = engine.evaluate_rule("data.p.r", input.clone()) {
                    let reason = denied.reasons.join(" ");
                    prop_assert!(
                        !reason.contains("failed internally"),
                        "{name} on {} with {input}: {reason}",
                        engine.mode()
                    );
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
