//! `sck issuer create|list|settings`, `sck keys list|rotate` and `sck token
//! issue|introspect|revoke`: gateway token issuers, org TTL settings, signing keys and tokens of
//! a running server, through its REST API (admin key; rotation needs the root key). Thin
//! clients: the server checks everything, the CLI only shapes the request.

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

/// Gateway tokens.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token (prints the answer JSON with the token inside; `--token-only` for just the
    /// token, as in `TOKEN=$(sck token issue ... --token-only)`).
    Issue(TokenIssueArgs),
    /// Print the RFC 7662 introspection of a token (`{"active": false}` unless it verifies).
    Introspect(TokenIntrospectArgs),
    /// Revoke a token, given as the token itself or by its id (`jti`).
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    #[arg(long)]
    org: String,
    /// The issuer id (`iss_...`, from `sck issuer create` or `sck issuer list`).
    #[arg(long)]
    issuer: String,
    /// What the token is for (the `artifact_id` claim; `sub` defaults to it).
    #[arg(long)]
    artifact_id: String,
    /// Kind of artifact, e.g. mcp-client or agent.
    #[arg(long)]
    artifact_type: String,
    /// Level of Assurance (1-4), at most the issuer's ceiling.
    #[arg(long)]
    loa: i64,
    /// A scope to grant, one the issuer may grant (repeat for several).
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// The `sub` claim (default: the artifact id).
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime in seconds (default: the org's default TTL).
    #[arg(long)]
    ttl: Option<i64>,
    /// Print only the token.
    #[arg(long)]
    token_only: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TokenIntrospectArgs {
    /// The token.
    token: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token to revoke.
    #[arg(required_unless_present = "token_id", conflicts_with = "token_id")]
    token: Option<String>,
    /// The id (`jti`) of the token to revoke, instead of the token.
    #[arg(long)]
    token_id: Option<String>,
    /// The org of the token (default: the admin key's org).
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `sck token ...`.
pub fn token(command: TokenCommand) -> Result<ExitCode, CliError> {
    let value = match command {
        TokenCommand::Issue(a) => {
            let issued = ApiClient::new(&a.server).post(
                "/api/v1/enforcement/tokens/issue",
                &json!({"organizationId": a.org, "issuerId": a.issuer, "artifactId": a.artifact_id,
                        "artifactType": a.artifact_type, "loaLevel": a.loa, "scope": a.scopes,
                        "subject": a.subject, "ttlSeconds": a.ttl}),
            )?;
            if a.token_only {
                let token = issued["token"]
                    .as_str()
                    .ok_or_else(|| CliError::new("the server's answer has no token"))?;
                println!("{token}");
                return Ok(ExitCode::SUCCESS);
            }
            issued
        }
        TokenCommand::Introspect(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/tokens/introspect",
            &json!({"token": a.token}),
        )?,
        TokenCommand::Revoke(a) => ApiClient::new(&a.server).post(
            "/api/v1/enforcement/tokens/revoke",
            &json!({"token": a.token, "tokenId": a.token_id, "organizationId": a.org}),
        )?,
    };
    print_json(&value);
    Ok(ExitCode::SUCCESS)
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
