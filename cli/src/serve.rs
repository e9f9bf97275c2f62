//! `sck serve`, `sck config example`, `sck admin ...` and `sck opa-config`: running the server
//! and the operator commands around it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use super::client::{ApiClient, ServerArgs};
use super::CliError;
use sck_enforce::config::{Config, EXAMPLE};
use sck_enforce::registry::CredentialKind;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `sck config example`).
    #[arg(long, env = "SCK_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides the configuration).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// SQLite file or postgres:// URL (overrides the configuration and SCK_DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Print a copy-paste example for every endpoint once listening.
    #[arg(long)]
    examples: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print an example configuration with every option, its default and a comment.
    Example,
}

/// Every admin command creates something; the subcommand names say what.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin key (for one org, or --root for the whole deployment); printed once.
    CreateKey(CredentialArgs),
    /// Create an OPA sidecar credential for an org; printed once.
    CreateSidecarToken(CredentialArgs),
    /// Create an organization.
    CreateOrg(OrgArgs),
}

#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// The organization the credential belongs to.
    #[arg(long, required_unless_present = "root", conflicts_with = "root")]
    org: Option<String>,
    /// A deployment-wide root key (admin keys only).
    #[arg(long)]
    root: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    /// Organization id.
    org: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Admin commands work on the database directly (they are how the first keys are made).
#[derive(Debug, Args)]
struct DatabaseArgs {
    /// TOML configuration file.
    #[arg(long, env = "SCK_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite file or postgres:// URL.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct OpaConfigArgs {
    /// Organization whose bundle the sidecar fetches.
    #[arg(long)]
    org: String,
    /// Bundle name.
    #[arg(long)]
    bundle: String,
    /// Sidecar credential to embed; default: "${SCK_SIDECAR_TOKEN}" (OPA substitutes it).
    #[arg(long, env = "SCK_SIDECAR_TOKEN", hide_env_values = true)]
    sidecar_token: Option<String>,
    /// Signer whose public key the sidecar pins (default: the server's default signer).
    #[arg(long)]
    signer: Option<String>,
    /// Take the signer's public key from its private key file (`<data_dir>/signers/<id>.pem`;
    /// the id is --signer or the file name) instead of asking the server, so a pod can write
    /// its sidecar's configuration before sck starts. For an HMAC signer (`<id>.secret`, or a
    /// server signer without a public key) OPA reads the secret from `SCK_SIGNER_SECRET`.
    #[arg(long, value_name = "FILE")]
    signer_key: Option<PathBuf>,
    /// URL the sidecar uses to reach the server (default: --server).
    #[arg(long)]
    service_url: Option<String>,
    /// Also send OPA status reports to this server (`status` plugin, `POST /status`).
    #[arg(long)]
    status: bool,
    /// Also upload decision logs to this server (`decision_logs` plugin, `POST /logs`), where
    /// each decision becomes a `decision.sidecar` entry of the org's ledger.
    #[arg(long)]
    decision_logs: bool,
    #[command(flatten)]
    server: ServerArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("runtime: {e}")))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // A log line that cannot be written (stderr on a full disk) is dropped: by default the
    // subscriber reports that with `eprintln!`, which panics when stderr itself fails and would
    // take the request down with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(file: Option<&PathBuf>, database_url: Option<String>) -> Result<Config, CliError> {
    let mut config = Config::load(file.map(PathBuf::as_path)).map_err(CliError::new)?;
    if let Some(url) = database_url {
        config.database_url = url;
    }
    Ok(config)
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    init_logging(args.log_format);
    let mut config = load_config(args.config.as_ref(), args.database_url)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = runtime()?;
    let served = runtime.block_on(sck_gateway::server::serve(config, args.examples));
    // Dropping the runtime would wait for every blocking task, however long it runs.
    runtime.shutdown_timeout(sck_gateway::server::BLOCKING_WORK_GRACE);
    served.map_err(CliError::new)?;
    Ok(ExitCode::SUCCESS)
}

pub fn config(command: ConfigCommand) -> Result<ExitCode, CliError> {
    match command {
        ConfigCommand::Example => print!("{EXAMPLE}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn admin(command: AdminCommand) -> Result<ExitCode, CliError> {
    let (database, kind, org, root) = match &command {
        AdminCommand::CreateKey(a) => (&a.database, CredentialKind::Admin, a.org.clone(), a.root),
        AdminCommand::CreateSidecarToken(a) => {
            if a.root {
                return Err(CliError::new(
                    "sidecar credentials belong to one org: use --org",
                ));
            }
            (&a.database, CredentialKind::Sidecar, a.org.clone(), false)
        }
        AdminCommand::CreateOrg(a) => (
            &a.database,
            CredentialKind::Admin,
            Some(a.org.clone()),
            false,
        ),
    };
    let config = load_config(database.config.as_ref(), database.database_url.clone())?;
    runtime()?.block_on(async move {
        let state = sck_gateway::server::open(config)
            .await
            .map_err(CliError::new)?;
        let registry = &state.registry();
        let fail = |e: sck_enforce::error::EnforceError| CliError::new(e.detail);
        let result = match (&command, org) {
            (AdminCommand::CreateOrg(_), Some(org)) => {
                sck_enforce::org_names::check_new_org(&org).map_err(fail)?;
                registry.ensure_org(&org).await.map_err(fail)?;
                println!("organization {org} exists");
                Ok(())
            }
            (_, None) if root => {
                let (id, secret) = registry.create_credential(kind, None).await.map_err(fail)?;
                println!("root admin key {id}:\n{secret}");
                Ok(())
            }
            (_, Some(org)) => {
                if !registry.org_exists(&org).await.map_err(fail)? {
                    return Err(CliError::new(format!(
                        "organization {org} not found (create it with `sck admin create-org {org}`)"
                    )));
                }
                let (id, secret) = state
                    .lifecycle()
                    .issue_credential(kind, &org, "cli")
                    .await
                    .map_err(fail)?;
                println!(
                    "{} credential {id} for org {org}:\n{secret}",
                    if kind == CredentialKind::Admin {
                        "admin"
                    } else {
                        "sidecar"
                    }
                );
                Ok(())
            }
            _ => Err(CliError::new("give --org or --root")),
        };
        let _ = state.ledger().shutdown().await;
        result
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The signer's `SignerInfo` as the server describes it (`GET /api/v1/enforcement/signers`).
fn server_signer(args: &OpaConfigArgs) -> Result<Value, CliError> {
    let signers = ApiClient::new(&args.server).get("/api/v1/enforcement/signers")?;
    let list = signers["signers"].as_array().cloned().unwrap_or_default();
    list.into_iter()
        .find(|s| match &args.signer {
            Some(id) => s["id"] == Value::String(id.clone()),
            None => s["default"] == Value::Bool(true),
        })
        .ok_or_else(|| CliError::new("signer not found on the server"))
}

/// The same description made from the signer's key file, as the server would make it.
fn file_signer(path: &std::path::Path, id: Option<&str>) -> Result<Value, CliError> {
    let material =
        std::fs::read(path).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    let key = sck_bundler::SigningKey::from_material(&material, None)?;
    let id = id
        .map(str::to_owned)
        .or_else(|| Some(path.file_stem()?.to_str()?.to_owned()))
        .ok_or_else(|| CliError::new("give --signer: the key file name is not a signer id"))?;
    Ok(serde_json::json!({
        "id": id,
        "algorithm": format!("{:?}", key.algorithm()),
        "publicKey": key.public_key_pem(),
    }))
}

/// The OPA environment variable an HMAC signer's secret is read from (`${...}` in the config).
const HMAC_SECRET_ENV: &str = "SCK_SIGNER_SECRET";

pub fn opa_config(args: OpaConfigArgs) -> Result<ExitCode, CliError> {
    let signer = match &args.signer_key {
        Some(path) => file_signer(path, args.signer.as_deref())?,
        None => server_signer(&args)?,
    };
    let id = signer["id"].as_str().unwrap_or_default();
    let algorithm = signer["algorithm"].as_str().unwrap_or_default();
    // The public key, or for an HMAC signer a reference OPA resolves from its environment
    // (`|-`: without a trailing newline): the secret is never printed, nor served.
    let key_block = match signer["publicKey"].as_str() {
        Some(public) => {
            let lines: String = public.lines().map(|l| format!("      {l}\n")).collect();
            format!("|\n{lines}")
        }
        None => {
            eprintln!(
                "signer {id} uses an HMAC secret: set {HMAC_SECRET_ENV} in OPA's environment \
                 to the exact content of its {id}.secret file (one line)"
            );
            format!("|-\n      ${{{HMAC_SECRET_ENV}}}\n")
        }
    };
    let token = args
        .sidecar_token
        .unwrap_or_else(|| "${SCK_SIDECAR_TOKEN}".to_owned());
    let url = args.service_url.unwrap_or(args.server.server);
    print!(
        "services:\n  sck:\n    url: {url}\n    credentials:\n      bearer:\n        token: \"{token}\"\n\
         bundles:\n  {bundle}:\n    service: sck\n    resource: bundles/{org}/{bundle}.tar.gz\n\
         \x20   polling:\n      min_delay_seconds: 10\n      max_delay_seconds: 20\n      long_polling_timeout_seconds: 30\n\
         \x20   signing:\n      keyid: {id}\n\
         keys:\n  {id}:\n    algorithm: {algorithm}\n    key: {key_block}",
        bundle = args.bundle,
        org = args.org,
    );
    if args.status {
        print!("status:\n  service: sck\n");
    }
    if args.decision_logs {
        print!(
            "decision_logs:\n  service: sck\n  reporting:\n    min_delay_seconds: 5\n    max_delay_seconds: 10\n\
             \x20   upload_size_limit_bytes: 4194304\n"
        );
    }
    Ok(ExitCode::SUCCESS)
}
