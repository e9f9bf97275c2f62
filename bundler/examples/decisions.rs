//! Runs one policy's decision rule N times in-process, for instruction counts under
//! callgrind (`docs/benchmarks.md`, "arithmetic"): the per-decision cost is the difference
//! between two runs divided by the difference in N.
//!
//! `cargo run --release -p sck-bundler --example decisions -- <policies|thousand|arith> <n>`

use std::collections::BTreeMap;
use std::path::Path;

use sck_bundler::decision::{parse_input, EvalLimits, Evaluator, Mode};
use sck_bundler::{build, BuildOptions, SourceTree};

fn tree(files: BTreeMap<String, Vec<u8>>) -> SourceTree {
    SourceTree::from_files(files).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, n) = match args.as_slice() {
        [_, which, n] => (which.as_str(), n.parse::<usize>().unwrap()),
        _ => panic!("usage: decisions <policies|thousand|arith> <n>"),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (source, entrypoint, input) = match which {
        "policies" => (
            SourceTree::from_dir(&repo.join("policies")).unwrap(),
            "data.sck.gateway.decision",
            r#"{"action": "tools.invoke", "resource": {"org": "org-1", "tool": "search.web"},
                "token": {"sub": "agent:a", "org": "org-1", "loa": 3, "scope": ["mcp:invoke"], "exp": 4102444800},
                "now": 1767225600}"#,
        ),
        "thousand" => {
            let vectors = repo.join("tests/vectors/opa-bundles/src");
            let mut files = BTreeMap::new();
            files.insert(
                "sck/authz/authz.rego".to_string(),
                std::fs::read(vectors.join("sck/authz/authz.rego")).unwrap(),
            );
            files.insert(".manifest".to_string(), br#"{"roots": ["sck"]}"#.to_vec());
            let mut actions = serde_json::Map::new();
            for i in 0..1000 {
                actions.insert(
                    format!("svc{i:03}.call"),
                    serde_json::json!({"min_loa": i % 4 + 1, "scopes": [format!("svc{i:03}:call"), format!("svc{i:03}:*")]}),
                );
            }
            let data = serde_json::json!({"actions": actions, "blocked_subjects": {"agent:mallory": true}});
            files.insert(
                "sck/requirements/data.json".to_string(),
                serde_json::to_vec(&data).unwrap(),
            );
            (
                tree(files),
                "data.sck.authz.decision",
                r#"{"action": "svc517.call", "resource": {"org": "org-1"},
                    "token": {"sub": "agent:a", "org": "org-1", "loa": 3, "scope": ["svc517:call"]}}"#,
            )
        }
        "arith" => {
            let rego = "package p\nimport rego.v1\nallow if {\n\tinput.x * input.y >= 0.25\n\tinput.n - input.x < 100\n\tsum(input.nums) / count(input.nums) > 1.5\n}\n";
            let files = [("p/p.rego".to_string(), rego.as_bytes().to_vec())]
                .into_iter()
                .collect();
            (
                tree(files),
                "data.p.allow",
                r#"{"x": 0.5, "y": 2.5, "n": 7, "nums": [1, 2.5, 3]}"#,
            )
        }
        other => panic!("unknown policy {other}"),
    };
    let bundle = build(&source, &BuildOptions::default()).unwrap().bundle;
    let evaluator = Evaluator::new(
        &bundle,
        Some(entrypoint),
        EvalLimits::default(),
        Mode::Fastest,
    )
    .unwrap();
    let mut allowed = 0;
    for _ in 0..n {
        let input = parse_input(input.as_bytes()).unwrap();
        allowed += usize::from(evaluator.decide(input).allow);
    }
    println!("{which} on {}: {allowed} of {n} allowed", evaluator.mode());
}
