//! `sck decide`: one decision from a running server (`POST /api/v1/enforcement/decide` with a
//! gateway token). Prints the answer — decision, reasons, decision id and ledger receipt — and
//! turns it into the exit status: 0 allow, 3 deny, 1 when no decision was made.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::client::{print_json, ApiClient};
use super::CliError;

/// Exit status of a decision that denied.
const DENIED: u8 = 3;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 allow, 3 deny (the answer still printed), 1 error \
                        (no decision: bad token, bad input, server unreachable)."
)]
pub struct DecideArgs {
    /// Base URL of the sck server.
    #[arg(long, env = "SCK_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The gateway token (from `sck token issue --token-only`).
    #[arg(long, env = "SCK_TOKEN", hide_env_values = true)]
    token: String,
    /// The action, e.g. tools.invoke.
    #[arg(long)]
    action: String,
    /// The resource, as a JSON object.
    #[arg(long, value_parser = json_object)]
    resource: Option<Value>,
    /// The context, as a JSON object.
    #[arg(long, value_parser = json_object)]
    context: Option<Value>,
}

fn json_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Runs `sck decide`.
pub fn decide(args: DecideArgs) -> Result<ExitCode, CliError> {
    let mut body = json!({"action": args.action});
    for (key, value) in [("resource", args.resource), ("context", args.context)] {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let answer = ApiClient::with_bearer(&args.server, Some(args.token))
        .post("/api/v1/enforcement/decide", &body)?;
    print_json(&answer);
    match answer["allow"].as_bool() {
        Some(true) => Ok(ExitCode::SUCCESS),
        Some(false) => Ok(ExitCode::from(DENIED)),
        None => Err(CliError::new("the server's answer has no decision")),
    }
}
