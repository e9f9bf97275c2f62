//! `sck healthcheck`: asks a running server whether it is ready, for container `HEALTHCHECK`s
//! and probes on images without curl. Exit status 0 only on HTTP 200; anything else (another
//! status, no answer, a timeout) is reported on stderr with exit status 1.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::CliError;
use sck_enforce::config::Config;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to GET. Default: `/ready` on the configured listen address (loopback when the server
    /// listens on all addresses), read from --config and `SCK_*` like `sck serve` does.
    #[arg(long)]
    url: Option<String>,
    /// TOML configuration file of the server (see `sck serve --config`).
    #[arg(long, env = "SCK_CONFIG")]
    config: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

pub fn healthcheck(args: HealthcheckArgs) -> Result<ExitCode, CliError> {
    let url = match args.url {
        Some(url) => url,
        None => ready_url(&Config::load(args.config.as_deref()).map_err(CliError::new)?),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(args.timeout_secs)))
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| CliError::new(format!("unhealthy: GET {url}: {e}")))?;
    let status = response.status();
    if status == 200 {
        println!("healthy: GET {url} answered 200");
        return Ok(ExitCode::SUCCESS);
    }
    // The problem `code` (or the ready check's `status`) says why, when the server sent one.
    let reason = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|body| {
            body.get("code")
                .or_else(|| body.get("status"))
                .and_then(Value::as_str)
                .map(|reason| format!(" ({reason})"))
        })
        .unwrap_or_default();
    Err(CliError::new(format!(
        "unhealthy: GET {url} answered {status}{reason}"
    )))
}

/// `/ready` on the address the server listens on; an unspecified address (`0.0.0.0`, `::`)
/// is reached on loopback.
fn ready_url(config: &Config) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(listen: &str) -> String {
        ready_url(&Config {
            listen: listen.parse().unwrap(),
            ..Config::default()
        })
    }

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(url_for("0.0.0.0:8080"), "http://127.0.0.1:8080/ready");
        assert_eq!(url_for("[::]:9000"), "http://[::1]:9000/ready");
        assert_eq!(url_for("10.1.2.3:81"), "http://10.1.2.3:81/ready");
    }
}
