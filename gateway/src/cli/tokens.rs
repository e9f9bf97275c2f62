//! `sck issuer create|list|settings` and `sck keys list|rotate`: gateway token issuers, org TTL
//! settings and signing keys of a running server, through its REST API (admin key; rotation
//! needs the root key).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{print_json, ApiClient, ServerArgs};
use super::CliError;

/// Token issuers of an org.
#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Create an issuer with a LoA ceiling (1-4) and the scopes it may grant.
    Create(IssuerCreateArgs),
    /// List issuers (of one org, or of the key's org; every org for the root key).
    List(IssuerListArgs),
    /// Set an org's default and maximum token lifetime.
    Settings(IssuerSettingsArgs),
}

#[derive(Debug, Args)]
pub struct IssuerCreateArgs {
    #[arg(long)]
    org: String,
    /// Issuer name, unique in the org.
    #[arg(long)]
    name: String,
    /// Highest Level of Assurance this issuer may mint (1-4).
    #[arg(long)]
    loa_ceiling: i64,
    /// A scope the issuer may grant (repeat for several).
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// EdDSA (default) or HS256 (needs SCK_TOKENS_HS256_SECRET on the server).
    #[arg(long)]
    algorithm: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct IssuerListArgs {
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct IssuerSettingsArgs {
    #[arg(long)]
    org: String,
    /// Longest lifetime a token of this org may have, in seconds.
    #[arg(long)]
    max_ttl: i64,
    /// Lifetime of tokens whose request names none, in seconds.
    #[arg(long)]
    default_ttl: Option<i64>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Token signing keys.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys and their states (next, active, retiring, retired).
    List(KeysArgs),
    /// Rotate: next → active, active → retiring (verifies until its tokens expire), new next.
    Rotate(KeysArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `sck issuer ...`.
pub fn issuer(command: IssuerCommand) -> Result<ExitCode, CliError> {
    let value = match command {
        IssuerCommand::Create(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/tokens/issuers",
            &json!({"organizationId": a.org, "name": a.name, "loaCeiling": a.loa_ceiling,
                    "scopes": a.scopes, "algorithm": a.algorithm.unwrap_or_else(|| "EdDSA".into())}),
        )?,
        IssuerCommand::List(a) => {
            let path = match &a.org {
                Some(org) => format!(
                    "/api/v1/enforcement/tokens/issuers?organizationId={}",
                    form_urlencoded::byte_serialize(org.as_bytes()).collect::<String>()
                ),
                None => "/api/v1/enforcement/tokens/issuers".into(),
            };
            ApiClient::new(&a.server).get(&path)?
        }
        IssuerCommand::Settings(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/tokens/settings",
            &json!({"organizationId": a.org, "maxTtlSeconds": a.max_ttl, "defaultTtlSeconds": a.default_ttl}),
        )?,
    };
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

/// Runs `sck keys ...`.
pub fn keys(command: KeysCommand) -> Result<ExitCode, CliError> {
    let value = match command {
        KeysCommand::List(a) => ApiClient::new(&a.server).get("/api/v1/enforcement/tokens/keys")?,
        KeysCommand::Rotate(a) => {
            ApiClient::new(&a.server).post("/api/v1/enforcement/tokens/keys/rotate", &json!({}))?
        }
    };
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}
