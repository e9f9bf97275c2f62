//! `sck client create|list|rotate|revoke`: OAuth 2 service accounts of a running server,
//! through its REST API with an admin key. A secret is printed once, when it is generated;
//! `private_key_jwt` public keys are read from files (a JWK, or a PEM public key).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{print_json, ApiClient, ServerArgs};
use super::CliError;

/// OAuth 2 service accounts (clients of `POST /oauth2/token`) of an org.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a service account; its first secret is printed once.
    Create(CreateArgs),
    /// List service accounts (of one org, or of the key's org; every org for the root key).
    List(ListArgs),
    /// Add a secret; with two live secrets the named or the oldest one is retired.
    Rotate(RotateArgs),
    /// Revoke a service account and every unexpired token it was issued.
    Revoke(RevokeArgs),
    /// Register a public key for `private_key_jwt` (at most 4 live).
    AddKey(AddKeyArgs),
    /// Remove a `private_key_jwt` key by its kid.
    RemoveKey(RemoveKeyArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    name: String,
    /// Highest Level of Assurance (1-4); its tokens carry this one.
    #[arg(long)]
    loa_ceiling: u8,
    /// A scope it may be granted (repeat for several).
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// An audience it may ask for (repeat; default: the deployment's).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// An IP address or CIDR range it may authenticate from (repeat; default: any).
    #[arg(long = "source-range")]
    source_ranges: Vec<String>,
    /// Unix seconds after which it authenticates no more.
    #[arg(long)]
    expires_at: Option<i64>,
    /// A public key file (JWK or PEM) for `private_key_jwt` (repeat); with any, no secret is
    /// generated.
    #[arg(long = "key-file")]
    key_files: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    client_id: String,
    /// Secret to retire now (default: the oldest, if two are live).
    #[arg(long)]
    retire_secret_id: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    client_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct AddKeyArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    client_id: String,
    /// The public key file: a JWK (JSON) or a PEM public key.
    #[arg(long)]
    key_file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RemoveKeyArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    kid: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// The API's key object for a key file: `{"jwk": ...}` for JSON, `{"pem": ...}` otherwise.
fn key_spec(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    if text.trim_start().starts_with('{') {
        let jwk: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::new(format!("{}: not JSON: {e}", path.display())))?;
        Ok(json!({ "jwk": jwk }))
    } else {
        Ok(json!({ "pem": text }))
    }
}

/// Runs `sck client ...`.
pub fn client(command: ClientCommand) -> Result<ExitCode, CliError> {
    let value = match command {
        ClientCommand::Create(a) => {
            let keys = a
                .key_files
                .iter()
                .map(|p| key_spec(p))
                .collect::<Result<Vec<_>, _>>()?;
            ApiClient::new(&a.server).post(
                "/api/v1/enforcement/clients",
                &json!({"organizationId": a.org, "name": a.name, "loaCeiling": a.loa_ceiling,
                        "scopes": a.scopes,
                        "audiences": (!a.audiences.is_empty()).then_some(a.audiences),
                        "sourceRanges": a.source_ranges, "expiresAt": a.expires_at,
                        "keys": keys}),
            )?
        }
        ClientCommand::List(a) => {
            let path = match &a.org {
                Some(org) => format!(
                    "/api/v1/enforcement/clients?organizationId={}",
                    form_urlencoded::byte_serialize(org.as_bytes()).collect::<String>()
                ),
                None => "/api/v1/enforcement/clients".into(),
            };
            ApiClient::new(&a.server).get(&path)?
        }
        ClientCommand::Rotate(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/clients/rotate",
            &json!({"organizationId": a.org, "clientId": a.client_id,
                    "retireSecretId": a.retire_secret_id}),
        )?,
        ClientCommand::Revoke(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/clients/revoke",
            &json!({"organizationId": a.org, "clientId": a.client_id}),
        )?,
        ClientCommand::AddKey(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/clients/keys",
            &json!({"organizationId": a.org, "clientId": a.client_id,
                    "key": key_spec(&a.key_file)?}),
        )?,
        ClientCommand::RemoveKey(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/clients/keys/remove",
            &json!({"organizationId": a.org, "clientId": a.client_id, "kid": a.kid}),
        )?,
    };
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}
