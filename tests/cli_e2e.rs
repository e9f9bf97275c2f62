//! The CLI clients of the REST API against the real binary and server: `sck token
//! issue|introspect|revoke`, `sck decide` (exit 0 allow, 3 deny), `sck ledger tail [--follow]`,
//! the server's problem code in the `error:` line, and the examples `sck serve --examples`
//! prints. On SQLite and, with `SCK_TEST_DATABASE_URL`, on PostgreSQL.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::succeeded;
use support::db::on_each_backend;
use support::ledger;
use support::server::Server;

/// How long a test waits for an expected line or exit before failing.
const PATIENCE: Duration = Duration::from_secs(60);

fn exit_code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Creates an issuer of the default org and issues a token with `sck token issue --token-only`.
fn issue_token(server: &Server) -> String {
    let issuer = json(&succeeded(server.cli(&[
        "issuer",
        "create",
        "--org",
        "default",
        "--name",
        "cli",
        "--loa-ceiling",
        "3",
        "--scope",
        "mcp:invoke",
    ])));
    let token = succeeded(server.cli(&[
        "token",
        "issue",
        "--org",
        "default",
        "--issuer",
        issuer["id"].as_str().unwrap(),
        "--artifact-id",
        "agent-1",
        "--artifact-type",
        "agent",
        "--loa",
        "3",
        "--scope",
        "mcp:invoke",
        "--token-only",
    ]));
    assert_eq!(token.lines().count(), 1, "{token}");
    token.trim().to_owned()
}

fn decide(server: &Server, token: &str, action: &str) -> Output {
    server.cli(&[
        "decide",
        "--token",
        token,
        "--action",
        action,
        "--resource",
        r#"{"org":"default","tool":"search.web"}"#,
    ])
}

fn introspect(server: &Server, token: &str) -> Value {
    json(&succeeded(server.cli(&["token", "introspect", token])))
}

/// `sck ledger tail` printed lines, as `(seq, type)`.
fn tailed(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .map(|line| {
            let leaf = json(line);
            (
                leaf["seq"].as_u64().unwrap(),
                leaf["entry"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn token_decide_revoke_and_tail_through_the_cli() {
    on_each_backend(|server| {
        let issued = json(&succeeded(
            server.cli(&[
                "token",
                "issue",
                "--org",
                "default",
                "--issuer",
                json(&succeeded(server.cli(&[
                    "issuer",
                    "create",
                    "--org",
                    "default",
                    "--name",
                    "full",
                    "--loa-ceiling",
                    "3",
                    "--scope",
                    "mcp:invoke",
                ])))["id"]
                    .as_str()
                    .unwrap(),
                "--artifact-id",
                "agent-0",
                "--artifact-type",
                "agent",
                "--loa",
                "2",
                "--scope",
                "mcp:invoke",
                "--subject",
                "alice",
                "--ttl",
                "600",
            ]),
        ));
        assert_eq!(issued["subject"], "alice");
        assert_eq!(issued["loaLevel"], 2);
        assert_eq!(issued["expiresIn"], 600);
        assert!(issued["token"].as_str().unwrap().starts_with("ey"));

        let token = issue_token(server);
        let active = introspect(server, &token);
        assert_eq!(active["active"], true, "{active}");
        assert_eq!(active["sub"], "agent-1");
        assert_eq!(active["loa"], 3);

        let allow = decide(server, &token, "tools.invoke");
        assert_eq!(exit_code(&allow), Some(0), "{}", stderr(&allow));
        let answer = json(&String::from_utf8(allow.stdout).unwrap());
        assert_eq!(answer["allow"], true, "{answer}");
        let allowed_seq = answer["receipt"]["seq"].as_u64().expect("a receipt seq");
        assert_eq!(answer["receipt"]["leaf_hash"].as_str().unwrap().len(), 64);

        let deny = decide(server, &token, "no.such.action");
        assert_eq!(exit_code(&deny), Some(3), "{}", stderr(&deny));
        let answer = json(&String::from_utf8(deny.stdout).unwrap());
        assert_eq!(answer["allow"], false, "{answer}");
        let denied_seq = answer["receipt"]["seq"].as_u64().expect("a receipt seq");

        let revoked = json(&succeeded(server.cli(&["token", "revoke", &token])));
        assert_eq!(revoked, serde_json::json!({}));
        assert_eq!(
            introspect(server, &token),
            serde_json::json!({"active": false})
        );
        let after = decide(server, &token, "tools.invoke");
        assert_eq!(exit_code(&after), Some(1));
        assert!(
            stderr(&after).contains("[token_revoked]"),
            "{}",
            stderr(&after)
        );

        // Revocation by id: the first token.
        let jti = issued["tokenId"].as_str().unwrap();
        succeeded(server.cli(&["token", "revoke", "--token-id", jti, "--org", "default"]));
        let first = issued["token"].as_str().unwrap();
        assert_eq!(
            introspect(server, first),
            serde_json::json!({"active": false})
        );

        let entries = tailed(&succeeded(
            server.cli(&["ledger", "tail", "--org", "default"]),
        ));
        let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "every seq once, in order"
        );
        let types = |kind: &str| entries.iter().filter(|(_, t)| t == kind).count();
        assert_eq!(types("token.issued"), 2);
        assert_eq!(types("token.revoked"), 2);
        assert_eq!(entries[allowed_seq as usize].1, "decision.allowed");
        assert_eq!(entries[denied_seq as usize].1, "decision.denied");

        let from = succeeded(server.cli(&[
            "ledger",
            "tail",
            "--org",
            "default",
            "--from",
            &denied_seq.to_string(),
        ]));
        assert_eq!(tailed(&from)[0], (denied_seq, "decision.denied".to_owned()));
    });
}

/// The lines of a child's standard output as they are written.
fn lines_of(stdout: ChildStdout) -> Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A running `sck ledger tail --follow` whose stdout lines arrive on a channel.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(server: &Server) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sck"))
            .args(["ledger", "tail", "--org", "default", "--follow"])
            .args(["--interval", "0.2"])
            .env("SCK_SERVER", &server.url)
            .env("SCK_ADMIN_KEY", server.root_key.as_deref().unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        Follower { child, lines }
    }

    /// Reads lines until one is the entry `seq`; returns its type.
    fn until_seq(&self, seq: u64) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("entry {seq} printed within {PATIENCE:?}"));
            let (printed, kind) = tailed(&line).remove(0);
            if printed == seq {
                return kind;
            }
        }
    }

    /// Waits for the exit; its status and standard error.
    fn exit(mut self) -> (ExitStatus, String) {
        let (tx, rx) = mpsc::channel();
        let mut err = self.child.stderr.take().unwrap();
        let mut child = self.child;
        std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut err, &mut text).unwrap();
            let _ = tx.send((child.wait().unwrap(), text));
        });
        rx.recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("sck ledger tail exits within {PATIENCE:?}"))
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

#[test]
fn tail_follow_prints_new_entries_and_stops_on_sigterm() {
    on_each_backend(|server| {
        let token = issue_token(server);
        let follower = Follower::start(server);
        let size = ledger::size(&server.url, server.root(), "default");
        // The entries written so far come first...
        assert_eq!(follower.until_seq(size - 1), "token.issued");
        // ...then one appended after the tail started.
        let allow = decide(server, &token, "tools.invoke");
        assert_eq!(exit_code(&allow), Some(0), "{}", stderr(&allow));
        assert_eq!(follower.until_seq(size), "decision.allowed");
        follower.signal("-TERM");
        let (status, err) = follower.exit();
        assert!(status.success(), "{status}: {err}");
    });
}

#[test]
fn tail_follow_stops_with_an_error_when_the_server_goes_away() {
    let server = Server::start();
    let follower = Follower::start(&server);
    follower.until_seq(0);
    let url = server.url.clone();
    server.stop();
    let (status, err) = follower.exit();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.contains(&url), "{err}");
}

#[test]
fn a_wrong_admin_key_shows_the_servers_code_and_exits_1() {
    on_each_backend(|server| {
        for args in [
            &["token", "introspect", "x"][..],
            &["token", "revoke", "x"],
            &["ledger", "tail", "--org", "default"],
            &[
                "token",
                "issue",
                "--org",
                "default",
                "--issuer",
                "iss_x",
                "--artifact-id",
                "a",
                "--artifact-type",
                "agent",
                "--loa",
                "1",
                "--scope",
                "mcp:invoke",
            ],
        ] {
            let size = ledger::size(&server.url, server.root(), "default");
            let out = Command::new(env!("CARGO_BIN_EXE_sck"))
                .args(args)
                .env("SCK_SERVER", &server.url)
                .env("SCK_ADMIN_KEY", "sck_wrong_key")
                .output()
                .unwrap();
            assert_eq!(exit_code(&out), Some(1), "{args:?}");
            let err = stderr(&out);
            assert!(err.starts_with("error: "), "{err}");
            assert!(
                err.contains("401") && err.contains("[unauthorized]"),
                "{args:?}: {err}"
            );
            assert!(
                !err.contains("sck_wrong_key"),
                "the key is not echoed: {err}"
            );
            assert!(out.stdout.is_empty());
            assert_eq!(
                ledger::size(&server.url, server.root(), "default"),
                size,
                "nothing changed"
            );
        }
        // A bad token for `sck decide`: its refusal code, exit 1, no decision.
        let out = decide(server, "not-a-token", "tools.invoke");
        assert_eq!(exit_code(&out), Some(1));
        assert!(stderr(&out).contains("[invalid_token]"), "{}", stderr(&out));
    });
}

#[test]
fn decide_refuses_a_resource_that_is_not_a_json_object() {
    let out = Command::new(env!("CARGO_BIN_EXE_sck"))
        .args([
            "decide",
            "--token",
            "t",
            "--action",
            "a",
            "--resource",
            "[1]",
        ])
        .env("SCK_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(exit_code(&out), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("not a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_examples_cover_every_group_with_the_real_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sck"))
        .args([
            "serve",
            "--examples",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(dir.path().join("sck.db"))
        .env("SCK_DATA_DIR", dir.path())
        .env(
            "SCK_BUNDLES__BOOTSTRAP_POLICIES",
            support::repo().join("policies"),
        )
        .env("SCK_LOG", "warn")
        .env_remove("SCK_DATABASE_URL")
        .env_remove("SCK_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    // Lines up to the last example, or whatever came within the patience (then the
    // assertions below name what is missing).
    let deadline = Instant::now() + PATIENCE;
    let mut url = None;
    let mut examples = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(addr) = line.strip_prefix("sck listening on ") {
            url = Some(addr.to_owned());
        } else if url.is_some() {
            let last = line.starts_with("sck ledger tail");
            examples.push(line);
            if last {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let url = url.expect("the address is printed");
    let text = examples.join("\n");
    for expected in [
        "sck issuer create --org default".to_owned(),
        "sck token issue --org default".to_owned(),
        "sck token introspect".to_owned(),
        "sck token revoke".to_owned(),
        "sck decide --token".to_owned(),
        format!("{url}/api/v1/enforcement/decide"),
        format!("{url}/v1/data/sck/gateway/decision"),
        "sck identity create --org default".to_owned(),
        format!("sck sign-request --url {url}/api/v1/enforcement/verify --public-url "),
        format!("{url}/api/v1/enforcement/verify"),
        format!("{url}/api/v1/ledger/default/export"),
        format!("{url}/api/v1/ledger/default/keys"),
        "sck ledger verify".to_owned(),
        "sck ledger tail --org default --follow".to_owned(),
        format!("export SCK_SERVER={url} "),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
}
