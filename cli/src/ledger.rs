//! `sck ledger ...`: export a log, verify an export offline or a database in place, print
//! proofs, generate checkpoint keys, and show or prune the decision inputs kept beside a log.
//!
//! Thin wrappers over `sck-ledger` and the fleet's retention: parse flags, open the store, call
//! the library, print. `verify` exits 0 when everything checks out and 2 on the first bad
//! entry (named by seq).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use base64::Engine;
use clap::{Args, Subcommand};
use sck_ledger::checkpoint::NoteVerifier;
use sck_ledger::export::{verify_database, verify_export, write_export, Outcome};
use sck_ledger::schema::MIGRATIONS;
use sck_ledger::store::DEFAULT_DATABASE_URL;
use sck_ledger::{LedgerError, LedgerKey, LogReader, Store};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Export one org's log as a .tar.gz (entries, checkpoints, keys, consistency proofs,
    /// VERIFY.md) that `sck ledger verify` checks offline.
    Export(ExportArgs),
    /// Verify an export offline (`verify <export> --key <vkey>`) or a database in place
    /// (`verify --db --org <org>`). Names the first bad entry by seq.
    Verify(VerifyArgs),
    /// Print an inclusion or consistency proof from the database.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Manage checkpoint signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the decision inputs kept beside an org's log (`[fleet] store_input`), one JSON
    /// object per line: decision id, entry seq, when stored, the masked input.
    Inputs(InputsArgs),
    /// Delete an org's kept decision inputs stored before a cutoff (what the server does by
    /// itself with `[fleet] input_retention_days`); ledger entries stay and still verify. Prints
    /// how many were deleted; a run that deleted any appends `retention.inputs_pruned`.
    PruneInputs(PruneArgs),
    /// Print an org's entries from a running server (admin key), one JSON object per line;
    /// `--follow` keeps printing new ones until Ctrl-C.
    Tail(super::ledger_tail::TailArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database: a SQLite file path / sqlite: URL, or a postgres:// URL.
    #[arg(long, env = "SCK_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// Deployment name; log origins are `<deployment>/<org>`.
    #[arg(long, env = "SCK_DEPLOYMENT", default_value = "sck")]
    deployment: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The org whose log to export.
    #[arg(long)]
    org: String,
    /// First seq to export.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Export entries below this seq (default: the whole log).
    #[arg(long)]
    to: Option<u64>,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export archive to verify offline.
    #[arg(required_unless_present = "db", conflicts_with = "db")]
    export: Option<PathBuf>,
    /// Trusted verifier key `<name>+<hex id>+<base64 key>` (repeat for rotated keys).
    /// Required for exports; for --db defaults to the keys published in the database.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A file of checkpoints kept from an earlier audit; the log must reproduce them.
    #[arg(long = "checkpoint")]
    checkpoints: Vec<PathBuf>,
    /// Verify the live database instead of an export.
    #[arg(long, requires = "org")]
    db: bool,
    /// The org to verify (with --db).
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    dbargs: DbArgs,
    /// Never draw a progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct InputsArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long)]
    org: String,
    /// Only this decision.
    #[arg(long)]
    decision_id: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("cutoff").required(true).args(["older_than", "before"])))]
pub struct PruneArgs {
    #[arg(long)]
    org: String,
    /// Delete inputs stored more than this many days ago.
    #[arg(long, value_name = "DAYS")]
    older_than: Option<u64>,
    /// Delete inputs stored before this instant (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    before: Option<String>,
    /// TOML configuration file of the server (database, data directory, deployment).
    #[arg(long, env = "SCK_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite file or postgres:// URL (overrides the configuration).
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Inclusion proof of entry --seq in the tree of --size entries (default: current size).
    Inclusion {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        org: String,
        #[arg(long)]
        seq: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between tree sizes --from and --to (default: current size).
    Consistency {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        org: String,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an Ed25519 checkpoint key: writes the private key text to --output (mode 0600)
    /// and prints the verifier key.
    Generate {
        /// Key name, e.g. `ledger.example.com/gw-prod-1`.
        #[arg(long)]
        name: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

impl From<LedgerError> for CliError {
    fn from(e: LedgerError) -> Self {
        CliError::new(e.to_string())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}

async fn reader(db: &DbArgs) -> Result<LogReader, CliError> {
    let store = Store::open(&db.database_url, &[MIGRATIONS]).await?;
    Ok(LogReader::new(store, &db.deployment))
}

fn parse_keys(keys: &[String]) -> Result<Vec<NoteVerifier>, CliError> {
    keys.iter()
        .map(|k| NoteVerifier::parse(k).map_err(CliError::from))
        .collect()
}

/// Runs one `sck ledger` subcommand.
pub fn run(command: LedgerCommand) -> Result<ExitCode, CliError> {
    match command {
        LedgerCommand::Export(a) => runtime()?.block_on(export(a)),
        LedgerCommand::Verify(a) => verify(a),
        LedgerCommand::Proof(p) => runtime()?.block_on(proof(p)),
        LedgerCommand::Key(KeyCommand::Generate { name, output }) => keygen(&name, &output),
        LedgerCommand::Inputs(a) => runtime()?.block_on(inputs(a)),
        LedgerCommand::PruneInputs(a) => prune_inputs(a),
        LedgerCommand::Tail(a) => super::ledger_tail::tail(a),
    }
}

async fn inputs(a: InputsArgs) -> Result<ExitCode, CliError> {
    let store = Store::open(
        &a.db.database_url,
        &[MIGRATIONS, sck_enforce::fleet::schema::MIGRATIONS],
    )
    .await?;
    let rows =
        sck_enforce::fleet::retention::stored_inputs(&store, &a.org, a.decision_id.as_deref())
            .await
            .map_err(|e| CliError::new(format!("database: {e}")))?;
    for row in rows {
        println!("{row}");
    }
    Ok(ExitCode::SUCCESS)
}

fn prune_inputs(a: PruneArgs) -> Result<ExitCode, CliError> {
    let cutoff = match (&a.before, a.older_than) {
        (Some(before), _) => {
            time::OffsetDateTime::parse(before, &time::format_description::well_known::Rfc3339)
                .map_err(|e| CliError::new(format!("--before {before:?}: not RFC 3339 ({e})")))?
        }
        (None, Some(days)) => {
            sck_enforce::fleet::retention::cutoff(time::OffsetDateTime::now_utc(), days)
                .ok_or_else(|| CliError::new(format!("--older-than {days}: too many days")))?
        }
        (None, None) => return Err(CliError::new("give --older-than DAYS or --before RFC3339")),
    };
    let mut config =
        sck_enforce::config::Config::load(a.config.as_deref()).map_err(CliError::new)?;
    if let Some(url) = a.database_url {
        config.database_url = url;
    }
    runtime()?.block_on(async move {
        let state = sck_gateway::server::open(config)
            .await
            .map_err(CliError::new)?;
        let pruned = state.fleet().prune_inputs(&a.org, cutoff, "cli").await;
        let shutdown = state.ledger().shutdown().await;
        let pruned = pruned.map_err(|e| CliError::new(e.detail))?;
        shutdown?;
        println!(
            "pruned {pruned} stored input(s) of {} stored before {}",
            a.org,
            sck_ledger::entry::format_timestamp(cutoff)
        );
        Ok(ExitCode::SUCCESS)
    })
}

async fn export(a: ExportArgs) -> Result<ExitCode, CliError> {
    let reader = reader(&a.db).await?;
    let file = std::fs::File::create(&a.output)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", a.output.display())))?;
    let m = write_export(&reader, &a.org, a.from, a.to, std::io::BufWriter::new(file)).await?;
    println!(
        "exported {} entries (seq {}..{}) of `{}` to {}",
        m.to - m.from,
        m.from,
        m.to,
        m.origin,
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    // Draws only when stderr is a terminal.
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn report(outcome: Outcome, started: Instant) -> ExitCode {
    match outcome {
        Ok(r) => {
            println!(
                "OK: {} entries (seq {}..{}), {} checkpoints, {} consistency proofs verified in {:.2?}",
                r.entries,
                r.first_seq,
                r.first_seq + r.entries,
                r.checkpoints,
                r.consistency_proofs,
                started.elapsed()
            );
            if let Some(root) = r.root {
                println!(
                    "root at size {}: {}",
                    r.first_seq + r.entries,
                    base64::engine::general_purpose::STANDARD.encode(root)
                );
            }
            if r.unsigned_tail() > 0 {
                println!(
                    "note: the last {} entries are not yet covered by a signed checkpoint",
                    r.unsigned_tail()
                );
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("FAILED: {f}");
            ExitCode::from(2)
        }
    }
}

fn verify(a: VerifyArgs) -> Result<ExitCode, CliError> {
    let trusted = parse_keys(&a.keys)?;
    let mut kept = Vec::new();
    for p in &a.checkpoints {
        kept.push(
            std::fs::read_to_string(p)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))?,
        );
    }
    let bar = progress_bar(a.quiet);
    let started = Instant::now();
    let outcome = if a.db {
        let org = a.org.clone().unwrap_or_default();
        if !kept.is_empty() {
            return Err(CliError::new("--checkpoint is only supported for exports"));
        }
        runtime()?.block_on(async {
            let reader = reader(&a.dbargs).await?;
            let mut tick = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            Ok::<_, CliError>(verify_database(&reader, &org, trusted, &mut tick).await?)
        })?
    } else {
        if trusted.is_empty() {
            return Err(CliError::new(
                "offline verification needs at least one --key <name>+<id>+<key>",
            ));
        }
        let path = a.export.clone().unwrap_or_default();
        let mut tick = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        verify_export(&path, trusted, &kept, &mut tick)?
    };
    bar.finish_and_clear();
    Ok(report(outcome, started))
}

async fn proof(p: ProofCommand) -> Result<ExitCode, CliError> {
    let b64 = |h: &[u8]| base64::engine::general_purpose::STANDARD.encode(h);
    match p {
        ProofCommand::Inclusion { db, org, seq, size } => {
            let reader = reader(&db).await?;
            let size = match size {
                Some(s) => s,
                None => reader.size(&org).await?,
            };
            let pr = reader.inclusion_proof(&org, seq, size).await?;
            let out = serde_json::json!({
                "org": org, "seq": pr.seq, "size": pr.size,
                "leaf_hash": b64(&pr.leaf_hash), "root": b64(&pr.root),
                "proof": pr.proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        ProofCommand::Consistency { db, org, from, to } => {
            let reader = reader(&db).await?;
            let to = match to {
                Some(s) => s,
                None => reader.size(&org).await?,
            };
            let pr = reader.consistency_proof(&org, from, to).await?;
            let out = serde_json::json!({
                "org": org, "from": pr.from, "to": pr.to,
                "from_root": b64(&pr.from_root), "to_root": b64(&pr.to_root),
                "proof": pr.proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(name: &str, output: &std::path::Path) -> Result<ExitCode, CliError> {
    let key = LedgerKey::generate(name)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(output)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", output.display())))?;
    writeln!(f, "{}", key.to_private_text())
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", output.display())))?;
    println!("{}", key.verifier());
    Ok(ExitCode::SUCCESS)
}
