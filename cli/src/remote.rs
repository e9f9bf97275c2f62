//! `sck bundle compile|publish|activate|revoke|list`: the bundle lifecycle of a running server,
//! through its REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sck_bundler::SourceTree;
use serde_json::{json, Value};

use super::client::{print_json, ApiClient, ServerArgs};
use super::CliError;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The policy source directory.
    dir: PathBuf,
    #[arg(long)]
    org: String,
    #[arg(long)]
    name: String,
    /// Semantic version (or whole number) of this bundle; must be new for org/name.
    #[arg(long)]
    version: String,
    /// Manifest revision (default: the version).
    #[arg(long)]
    revision: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The DRAFT bundle id.
    bundle_id: String,
    /// Signer id (default: the server's default signer).
    #[arg(long)]
    signer: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The PUBLISHED bundle id.
    bundle_id: String,
    /// Allow activating a version older than the active one.
    #[arg(long)]
    rollback: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The bundle id to revoke.
    bundle_id: String,
    /// Why (recorded in the ledger).
    #[arg(long)]
    reason: String,
    /// If the bundle is active: the published version to roll back to.
    #[arg(long, conflicts_with = "allow_no_active")]
    rollback_to: Option<String>,
    /// If the bundle is active: leave no active bundle (the gateway then denies everything).
    #[arg(long)]
    allow_no_active: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// DRAFT, PUBLISHED, ACTIVE, SUPERSEDED or REVOKED.
    #[arg(long)]
    status: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

fn done(value: Value) -> Result<ExitCode, CliError> {
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

pub fn compile(args: CompileArgs) -> Result<ExitCode, CliError> {
    let tree = SourceTree::from_dir(&args.dir)?;
    let mut files = serde_json::Map::new();
    for (path, bytes) in tree.files() {
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| CliError::new(format!("{path}: not UTF-8 text")))?;
        files.insert(path.clone(), Value::String(text));
    }
    let body = json!({
        "organizationId": args.org, "name": args.name, "version": args.version,
        "revision": args.revision, "files": files,
    });
    done(ApiClient::new(&args.server).post("/api/v1/enforcement/bundles/compile", &body)?)
}

pub fn publish(args: PublishArgs) -> Result<ExitCode, CliError> {
    let body = json!({"bundleId": args.bundle_id, "signerId": args.signer});
    done(ApiClient::new(&args.server).post("/api/v1/enforcement/bundles/publish", &body)?)
}

pub fn activate(args: ActivateArgs) -> Result<ExitCode, CliError> {
    let body = json!({"bundleId": args.bundle_id, "rollback": args.rollback});
    done(ApiClient::new(&args.server).post("/api/v1/enforcement/bundles/activate", &body)?)
}

pub fn revoke(args: RevokeArgs) -> Result<ExitCode, CliError> {
    let body = json!({
        "bundleId": args.bundle_id, "reason": args.reason,
        "rollbackTo": args.rollback_to, "allowNoActive": args.allow_no_active,
    });
    done(ApiClient::new(&args.server).post("/api/v1/enforcement/bundles/revoke", &body)?)
}

pub fn list(args: ListArgs) -> Result<ExitCode, CliError> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("organizationId", &args.org),
        ("name", &args.name),
        ("status", &args.status),
    ] {
        if let Some(v) = value {
            query.append_pair(key, v);
        }
    }
    let path = format!("/api/v1/enforcement/bundles?{}", query.finish());
    done(ApiClient::new(&args.server).get(&path)?)
}
