//! `sck ledger tail`: an org's ledger entries from a running server
//! (`GET /api/v1/ledger/{org}/entries`, admin key), one JSON object per line as served
//! (`seq`, `leaf_hash`, `entry`). With `--follow` it keeps polling and prints entries as they
//! are appended, until SIGINT/SIGTERM (exit 0) or the server stops answering (exit 1).
//!
//! Invariant: each seq is printed once and in order — the next request starts after the last
//! seq printed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use super::client::{ApiClient, ServerArgs};
use super::CliError;

/// Entries asked for per request (the server's page maximum).
const PAGE: u64 = 1000;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// The org whose log to print.
    #[arg(long)]
    org: String,
    /// First seq to print.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Keep polling and print new entries as they arrive (stop with Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
    interval: f64,
    #[command(flatten)]
    server: ServerArgs,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err("a number of seconds above 0, at most 3600".into()),
    }
}

/// Runs `sck ledger tail`.
pub fn tail(args: TailArgs) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(follow(args))
}

async fn follow(args: TailArgs) -> Result<ExitCode, CliError> {
    let signal_error = |e: std::io::Error| CliError::new(format!("signal handler: {e}"));
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let client = ApiClient::new(&args.server);
    let org: String = form_urlencoded::byte_serialize(args.org.as_bytes()).collect();
    let interval = Duration::from_secs_f64(args.interval);
    let mut from = args.from;
    loop {
        let page = client.get(&format!(
            "/api/v1/ledger/{org}/entries?from={from}&limit={PAGE}"
        ))?;
        let entries = page["entries"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for leaf in entries {
            let seq = leaf["seq"]
                .as_u64()
                .ok_or_else(|| CliError::new("the server's entry has no seq"))?;
            println!("{leaf}");
            from = seq + 1;
        }
        if entries.len() as u64 == PAGE {
            continue;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}
