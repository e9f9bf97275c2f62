//! The `sck` binary: one clap parser, one module per subcommand group. The work is the
//! libraries' (`sck-bundler`, `sck-ledger`, `sck-enforce`, `sck-gateway`); this crate parses
//! flags, calls them and prints.
//!
//! Each subcommand returns `Result<ExitCode, CliError>`; [`main`] prints errors as
//! `error: <message>` on stderr and maps them to a non-zero exit status.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the request path allocates many small JSON values from
/// several threads, where glibc's arenas cost ~10% of a decision's CPU (scripts/bench-decide.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bundle;
mod client;
mod clients;
mod decide;
mod healthcheck;
mod identity;
mod ledger;
mod ledger_tail;
mod remote;
mod serve;
mod tokens;

/// sck — policy-bundle enforcement gateway.
///
/// Builds, signs and verifies OPA-compatible policy bundles, evaluates them in-process, and
/// records every decision in a verifiable ledger.
#[derive(Debug, Parser)]
#[command(name = "sck", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, sign, verify, check, test and inspect policy bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Export, verify and prove the trust ledger; manage checkpoint keys.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Run the gateway server (bundle registry, lifecycle API, bundle service for OPA).
    ///
    /// On an empty database it creates the default org, compiles, publishes and activates the
    /// bootstrap policies, and prints a root admin key and a sidecar token once.
    Serve(serve::ServeArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(serve::ConfigCommand),
    /// Create orgs, admin keys and sidecar credentials directly in the database.
    #[command(subcommand)]
    Admin(serve::AdminCommand),
    /// Print an OPA sidecar configuration that fetches and verifies a bundle from this server.
    OpaConfig(serve::OpaConfigArgs),
    /// Gateway token issuers (LoA ceiling, scopes) and org token lifetimes.
    #[command(subcommand)]
    Issuer(tokens::IssuerCommand),
    /// Gateway token signing keys: list, rotate.
    #[command(subcommand)]
    Keys(tokens::KeysCommand),
    /// Gateway tokens: issue, introspect, revoke.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Ask a running server for one decision with a gateway token; prints the decision and
    /// its ledger receipt. Exit status 0 allow, 3 deny, 1 error.
    Decide(decide::DecideArgs),
    /// ANS identity pins for X-SCK signed upstream calls: create, list, rotate, revoke.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// OAuth 2 service accounts (clients of /oauth2/token): create, list, rotate, revoke.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Print the X-SCK headers that sign one HTTP request (HMAC secret or Ed25519 key).
    SignRequest(identity::SignRequestArgs),
    /// Exit 0 if a running server answers its readiness check with 200 (for container health
    /// checks without curl); otherwise say why and exit 1.
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// A failure to report to the user, with the exit status to use.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit_code: u8,
}

impl CliError {
    /// A failure with exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }
}

impl From<sck_bundler::BundleError> for CliError {
    fn from(e: sck_bundler::BundleError) -> Self {
        CliError::new(format!("{} [{}]", e, e.code()))
    }
}

/// Parses the command line, runs the command and returns the process exit status.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bundle(command) => bundle::run(command),
        Command::Ledger(command) => ledger::run(command),
        Command::Serve(args) => serve::serve(args),
        Command::Config(command) => serve::config(command),
        Command::Admin(command) => serve::admin(command),
        Command::OpaConfig(args) => serve::opa_config(args),
        Command::Issuer(command) => tokens::issuer(command),
        Command::Keys(command) => tokens::keys(command),
        Command::Token(command) => tokens::token(command),
        Command::Decide(args) => decide::decide(args),
        Command::Identity(command) => identity::identity(command),
        Command::SignRequest(args) => identity::sign_request(args),
        Command::Client(command) => clients::client(command),
        Command::Healthcheck(args) => healthcheck::healthcheck(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.exit_code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
