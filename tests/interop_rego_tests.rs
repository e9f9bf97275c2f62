//! Interop case 4, Rego tests: `opa test` (the real OPA, `SCK_OPA`) and `sck bundle test`
//! agree on pass/fail for every test rule of `policies/`, of every module directory under
//! `tests/interop/corpus/`, and of `tests/interop/fixtures/rego-tests/`, whose modules also
//! have tests that fail (a false or undefined body, a `with` override that does not hold, an
//! evaluation error), so that agreement on failure is exercised too.
//!
//! Outcomes are compared as pass / not pass: for a test whose evaluation errors (division by
//! zero, a built-in given the wrong type) OPA reports FAIL and sck reports ERROR.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{cli, opa, repo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Pass,
    NotPass,
}

/// What one tool said about a module directory: test name (`data.<package>.<rule>`) →
/// outcome, or why it refused the directory as a whole.
type Results = Result<BTreeMap<String, Outcome>, String>;

/// `opa test DIR --format json`.
fn opa_test(dir: &Path) -> Results {
    let out = opa::cli_in(dir, &["test", ".", "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.trim().is_empty() {
        // Nothing on stdout: no tests (exit 0), or the modules did not compile.
        return if out.status.success() {
            Ok(BTreeMap::new())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        };
    }
    let reports: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .map_err(|e| format!("opa test output is not a JSON array ({e}): {stdout}"))?;
    Ok(reports
        .iter()
        .map(|r| {
            let name = format!(
                "{}.{}",
                r["package"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            );
            let failed = r["fail"].as_bool() == Some(true) || !r["error"].is_null();
            let skipped = r["skip"].as_bool() == Some(true);
            assert!(!skipped, "{name}: skipped tests are not compared");
            (
                name,
                if failed {
                    Outcome::NotPass
                } else {
                    Outcome::Pass
                },
            )
        })
        .collect())
}

/// `sck bundle test DIR`, read from its `data.<pkg>.<rule>: PASS|FAIL|ERROR (duration)` lines.
fn sck_test(dir: &Path) -> Results {
    let out = cli::run(&["bundle", "test", &dir.display().to_string()]);
    // 0: all passed, 2: some did not; anything else refused the directory.
    if !matches!(out.status.code(), Some(0 | 2)) {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut results = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let outcome = match rest.split(' ').next() {
            Some("PASS") => Outcome::Pass,
            Some("FAIL" | "ERROR") => Outcome::NotPass,
            _ => continue,
        };
        if name.starts_with("data.") {
            // The FAILURES section repeats a failed test's line: the same outcome.
            results.insert(name.to_owned(), outcome);
        }
    }
    Ok(results)
}

/// The module directories under `root` (each compared on its own), sorted.
fn module_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn opa_test_and_sck_bundle_test_agree_on_every_test() {
    let mut dirs = vec![repo().join("policies")];
    dirs.extend(module_dirs(&repo().join("tests/interop/corpus")));
    let fixtures = module_dirs(&repo().join("tests/interop/fixtures/rego-tests"));
    assert!(!fixtures.is_empty(), "the failing-test fixtures are there");
    dirs.extend(fixtures.iter().cloned());

    let mut disagreements = Vec::new();
    let mut compared = BTreeMap::from([(Outcome::Pass, 0), (Outcome::NotPass, 0)]);
    let mut fixture_outcomes = BTreeMap::from([(Outcome::Pass, 0), (Outcome::NotPass, 0)]);
    for dir in &dirs {
        let shown = dir
            .strip_prefix(repo())
            .unwrap_or(dir)
            .display()
            .to_string();
        match (opa_test(dir), sck_test(dir)) {
            (Ok(opa), Ok(sck)) if opa == sck => {
                for outcome in opa.values() {
                    *compared.get_mut(outcome).unwrap() += 1;
                    if fixtures.contains(dir) {
                        *fixture_outcomes.get_mut(outcome).unwrap() += 1;
                    }
                }
            }
            // A module sck refuses at check time (a construct it does not evaluate like OPA)
            // has no test results to compare when OPA finds no tests in it either; the
            // decision parity suite covers the refusal itself.
            (Ok(opa), Err(_)) if opa.is_empty() => {}
            (opa, sck) => disagreements.push(format!("{shown}:\n  opa: {opa:?}\n  sck: {sck:?}")),
        }
    }
    assert!(
        disagreements.is_empty(),
        "opa test and sck bundle test disagree:\n{}",
        disagreements.join("\n")
    );
    assert!(
        fixture_outcomes.values().all(|&n| n > 0),
        "the fixtures exercise agreement on passing and on failing tests: {fixture_outcomes:?}"
    );
    eprintln!(
        "{} directories, tests compared: {compared:?} (OPA {})",
        dirs.len(),
        opa::version()
    );
}
