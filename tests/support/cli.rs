//! The `sck` command line as a user runs it: the binary Cargo built for the test target that
//! includes this module (only a test of the binary's own package sees
//! `CARGO_BIN_EXE_sck`), with none of sck's settings inherited from the environment the suite
//! runs in — `SCK_CONFIG`, `SCK_DATABASE_URL`, `SCK_DEPLOYMENT`, `SOURCE_DATE_EPOCH` — so a
//! command uses exactly what the test gives it, and `SCK_LOG=warn`. Also: running any
//! command and requiring that it succeeded or failed, with both outputs in the message.

use std::path::Path;
use std::process::{Command, Output};

/// The `sck` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sck");

/// `sck <args>`, not started yet.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("SCK_LOG", "warn")
        .env_remove("SCK_CONFIG")
        .env_remove("SCK_DATABASE_URL")
        .env_remove("SCK_DEPLOYMENT")
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// Runs `sck <args>`.
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("sck runs")
}

/// Runs `sck <args>` with `env` set (sck's own variables among them).
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args)
        .envs(env.iter().copied())
        .output()
        .expect("sck runs")
}

/// Runs `sck <args>` with `data_dir` as its data and working directory.
pub fn run_in(data_dir: &Path, args: &[&str]) -> Output {
    command(args)
        .env("SCK_DATA_DIR", data_dir)
        .current_dir(data_dir)
        .output()
        .expect("sck runs")
}

/// Runs `sck <args>` against the server at `url` with admin key `key`.
pub fn remote(url: &str, key: &str, args: &[&str]) -> Output {
    command(args)
        .env("SCK_SERVER", url)
        .env("SCK_ADMIN_KEY", key)
        .output()
        .expect("sck runs")
}

/// The standard output of `sck <args>`, which must succeed.
pub fn ok(args: &[&str]) -> String {
    String::from_utf8(run_ok(&mut command(args)).stdout).unwrap()
}

/// The exit status and standard error of `sck <args>`, which must fail.
pub fn fails(args: &[&str]) -> (i32, String) {
    let out = run(args);
    assert!(!out.status.success(), "sck {args:?} succeeded");
    failed(out)
}

/// The standard output of a command that succeeded (else a panic showing both outputs).
pub fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The exit status and standard error of a command that failed (else a panic showing its
/// output).
pub fn failed(out: Output) -> (i32, String) {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs any `command` and returns its output once it succeeded (else a panic naming the
/// command, with both outputs).
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
