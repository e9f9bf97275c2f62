//! Server configuration: a TOML file, overridden by `SCK_*` environment variables.
//!
//! Precedence: built-in defaults < `--config FILE` < environment. Nested keys use `__` in the
//! environment (`SCK_HTTP__MAX_BODY_BYTES=1048576`); `SCK_DATABASE_URL` sets `database_url`.
//! `sck config example` prints [`EXAMPLE`], every option with its default and a comment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything `sck serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL clients and sidecars use to reach this server.
    pub public_url: String,
    /// SQLite file path or `sqlite:`/`postgres://` URL.
    pub database_url: String,
    /// Where keys and the SQLite database live.
    pub data_dir: PathBuf,
    /// Deployment name; ledger origins are `<deployment>/<org>`.
    pub deployment: String,
    pub http: HttpConfig,
    pub bundles: BundleConfig,
    pub ledger: LedgerConfig,
    pub decisions: DecisionConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub xsck: XsckConfig,
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Gateway routes (`[[routes]]`); more are created through the API.
    #[serde(default)]
    pub routes: Vec<crate::proxy::route::RouteConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Requests (other than long polls) that take longer are answered 503.
    pub request_timeout_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Upper bound on an OPA long poll (`Prefer: wait=N`).
    pub long_poll_max_secs: u64,
    /// Decompressed bytes all requests in flight may hold together (compile uploads, bundles
    /// read for publish/activation, sidecar gzip uploads); past it work is refused with 503.
    pub decompression_budget_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    /// Policy tree compiled, published and activated on an empty database (none: skip).
    pub bootstrap_policies: Option<PathBuf>,
    /// Org created on an empty database.
    pub default_org: String,
    /// Bundle name of the bootstrap bundle.
    pub default_bundle: String,
    /// Signer used when a publish request names none.
    pub default_signer: String,
    /// Reader limit: most files in one bundle.
    pub max_files: usize,
    /// Reader limit: most decompressed bytes of one bundle.
    pub max_decompressed_bytes: u64,
    /// Compiles running at once; one more is refused with 503 `compile_busy`.
    pub max_concurrent_compiles: usize,
    /// Wall-clock limit of each Rego test a compile runs; past it the compile is refused
    /// with `policy_test_timeout`.
    pub test_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Checkpoint signing key file (generated on first start). `SCK_LEDGER_SIGNING_KEY` overrides it.
    pub key_file: Option<PathBuf>,
    /// Sign a checkpoint every K entries...
    pub checkpoint_every: u64,
    /// ...or every T seconds, whichever comes first.
    pub checkpoint_interval_secs: u64,
}

/// A token-bucket limit for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    /// Wall-clock limit of one evaluation; a runaway rule denies with `evaluation_timeout`.
    pub timeout_ms: u64,
    /// Instruction limit of one evaluation on the compiled VM.
    pub instruction_limit: usize,
    /// Use the interpreter even where the compiled VM applies.
    pub interpreter_only: bool,
    /// Decisions per token subject (within an org).
    pub subject_rate: Rate,
    /// Decisions per org.
    pub org_rate: Rate,
}

/// X-SCK signed upstream calls (`[xsck]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XsckConfig {
    /// Largest accepted `|now - X-SCK-Timestamp|`, in seconds; nonces are kept twice as long.
    pub max_skew_secs: u64,
    /// Refuse calls without `X-SCK-Nonce`; `false` is compat mode (replays keyed on the signature).
    pub require_nonce: bool,
    /// Largest signed request body.
    pub max_body_bytes: usize,
    /// File of the master key sealing HMAC secrets (default `<data_dir>/master.key`, generated);
    /// `SCK_MASTER_KEY` (64 hex digits), if set, wins.
    pub master_key_file: Option<PathBuf>,
}

impl Default for XsckConfig {
    fn default() -> Self {
        XsckConfig {
            max_skew_secs: 300,
            require_nonce: true,
            max_body_bytes: 1 << 20,
            master_key_file: None,
        }
    }
}

/// The enforcement point (`[proxy]`): how sck forwards calls on its routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The ANS ID forwarded requests are signed as (default `ans://gateway.<deployment>`).
    pub ans_id: Option<String>,
    /// Ed25519 key of that identity (default `<data_dir>/gateway-signing.key`, generated).
    pub signing_key_file: Option<PathBuf>,
    /// Connecting to an upstream longer than this is answered 504.
    pub connect_timeout_ms: u64,
    /// An upstream that sends no response head for this long is answered 504.
    pub response_timeout_secs: u64,
    /// PEM file of CA certificates trusted for `https://` upstreams besides the platform's
    /// (private upstreams); read once at start, where a bad file fails the start.
    pub upstream_ca_file: Option<PathBuf>,
    /// Longest server-sent event sck reads from an MCP upstream whose answer it filters.
    pub max_event_bytes: usize,
    /// Length of the fixed usage windows (aligned to the Unix epoch) `input.usage` counts in.
    pub usage_window_secs: u64,
    /// How often each replica writes its usage counts to the database.
    pub usage_flush_secs: u64,
    /// Distinct tool names per route with their own metrics label; the rest are `other`.
    pub usage_tool_labels: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            ans_id: None,
            signing_key_file: None,
            connect_timeout_ms: 5_000,
            response_timeout_secs: 30,
            upstream_ca_file: None,
            max_event_bytes: 4 << 20,
            usage_window_secs: 60,
            usage_flush_secs: 5,
            usage_tool_labels: 32,
        }
    }
}

/// OPA sidecar fleet: status reports and decision-log uploads (`[fleet]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Largest decision-log (or status) body after gzip decompression, in bytes.
    pub max_decompressed_bytes: u64,
    /// Most events in one decision-log upload.
    pub max_events_per_batch: usize,
    /// A decision-log claim older than this is taken to be abandoned (crash) and recovered.
    pub claim_lease_secs: u64,
    /// A sidecar silent for this long is listed as stale and left out of the drift gauges.
    pub stale_after_secs: u64,
    /// Default for every org: keep the (masked) input of sidecar decisions, not only its hash.
    pub store_input: bool,
    /// Default for every org: JSON pointers (`/input/...`) removed before an input is kept.
    pub mask: Vec<String>,
    /// Default for every org: stored inputs older than this many days are pruned (none: kept
    /// forever). Ledger entries are never deleted; they hold only the input's hash.
    pub input_retention_days: Option<u64>,
    /// How often expired stored inputs are pruned, in seconds.
    pub input_prune_interval_secs: u64,
    /// Per-org overrides of `store_input`, `mask` and `input_retention_days`.
    pub orgs: std::collections::BTreeMap<String, sck_wire::opa_logs::InputPolicy>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            max_decompressed_bytes: 32 << 20,
            max_events_per_batch: 10_000,
            claim_lease_secs: 120,
            stale_after_secs: 3600,
            store_input: false,
            mask: Vec::new(),
            input_retention_days: None,
            input_prune_interval_secs: 3600,
            orgs: Default::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: "sck-data/sck.db".into(),
            data_dir: "sck-data".into(),
            deployment: "sck".into(),
            http: HttpConfig {
                request_timeout_secs: 30,
                max_body_bytes: 8 << 20,
                shutdown_grace_secs: 30,
                long_poll_max_secs: 300,
                decompression_budget_bytes: 512 << 20,
            },
            bundles: BundleConfig {
                bootstrap_policies: Some("policies".into()),
                default_org: "default".into(),
                default_bundle: "gateway".into(),
                default_signer: "sck-es256".into(),
                max_files: 10_000,
                max_decompressed_bytes: 256 << 20,
                max_concurrent_compiles: 2,
                test_timeout_ms: 5_000,
            },
            ledger: LedgerConfig {
                key_file: None,
                checkpoint_every: 1000,
                checkpoint_interval_secs: 10,
            },
            decisions: DecisionConfig {
                timeout_ms: 100,
                instruction_limit: 5_000_000,
                interpreter_only: false,
                subject_rate: Rate {
                    per_second: 2_000,
                    burst: 4_000,
                },
                org_rate: Rate {
                    per_second: 50_000,
                    burst: 100_000,
                },
            },
            fleet: FleetConfig::default(),
            xsck: XsckConfig::default(),
            proxy: ProxyConfig::default(),
            routes: Vec::new(),
        }
    }
}

/// The commented example configuration (`sck config example`).
pub const EXAMPLE: &str = r#"# sck serve configuration. Every value below is the default.
# Environment variables override the file: SCK_<KEY>, nested keys joined by "__",
# e.g. SCK_LISTEN=0.0.0.0:8080, SCK_DATABASE_URL=postgres://..., SCK_HTTP__MAX_BODY_BYTES=1048576.

# Address to listen on.
listen = "127.0.0.1:8080"
# The URL OPA sidecars and API clients use to reach this server (printed in examples and
# in `sck opa-config`).
public_url = "http://127.0.0.1:8080"
# A SQLite file (created on first start) or a postgres:// URL (for several replicas).
database_url = "sck-data/sck.db"
# Where generated keys live.
data_dir = "sck-data"
# Deployment name: ledger log origins are "<deployment>/<org>".
deployment = "sck"

[http]
# Requests other than long polls that run longer are answered 503.
request_timeout_secs = 30
# Largest accepted request body, in bytes.
max_body_bytes = 8388608
# Grace period for in-flight requests after SIGTERM/SIGINT.
shutdown_grace_secs = 30
# Upper bound on an OPA long poll (Prefer: wait=N).
long_poll_max_secs = 300
# Decompressed bytes that all requests in flight may hold together: compile uploads, bundles
# read back for publish/activation and sidecar gzip uploads. Work past it is refused with
# 503 decompression_busy and Retry-After. At least the largest per-request limit
# ([bundles] and [fleet] max_decompressed_bytes).
decompression_budget_bytes = 536870912

[bundles]
# Policy tree compiled, published and activated on an empty database.
bootstrap_policies = "policies"
# Org and bundle name used for that first bundle.
default_org = "default"
default_bundle = "gateway"
# Signer used when a publish request names none (ES256 key generated in data_dir/signers).
default_signer = "sck-es256"
# Limits for reading untrusted bundles.
max_files = 10000
max_decompressed_bytes = 268435456
# Compiles (which run the bundle's Rego tests) running at once; one more is refused with
# 503 compile_busy and Retry-After.
max_concurrent_compiles = 2
# Wall-clock limit of each Rego test a compile runs (opa test's default); a test that runs
# longer is stopped and the compile refused with policy_test_timeout, naming the test.
test_timeout_ms = 5000

[ledger]
# Checkpoint signing key (Ed25519, generated on first start at data_dir/ledger.key when unset).
# SCK_LEDGER_SIGNING_KEY, if set, holds the key itself and wins.
# key_file = "sck-data/ledger.key"
# Sign a checkpoint every K entries or T seconds, whichever comes first, and at shutdown.
checkpoint_every = 1000
checkpoint_interval_secs = 10

[decisions]
# Wall-clock limit of one evaluation; a runaway rule is cut off and denies (evaluation_timeout).
timeout_ms = 100
# Instruction limit of one evaluation on the compiled VM.
instruction_limit = 5000000
# Evaluate with the interpreter even where the compiled VM applies (slower; the cross-check).
interpreter_only = false
# Rate limits: decisions per second per token subject (within an org) and per org, with bursts.
# Over a limit the gateway answers 429 with Retry-After.
subject_rate = { per_second = 2000, burst = 4000 }
org_rate = { per_second = 50000, burst = 100000 }

[fleet]
# OPA sidecars report status (POST /status) and upload decision logs (POST /logs) here.
# Largest decision-log or status body after gzip decompression, in bytes (gzip bombs stop here).
max_decompressed_bytes = 33554432
# Most events in one decision-log upload.
max_events_per_batch = 10000
# A decision-log claim older than this (seconds) is recovered by the next retry: the org's log
# is scanned for the decision id before anything is appended, so nothing is recorded twice.
claim_lease_secs = 120
# Sidecars silent this long are listed as stale and left out of the drift gauges.
stale_after_secs = 3600
# Every sidecar decision records the SHA-256 of its input. Keep the input itself too (after
# removing the mask pointers, OPA-style /input/... paths), beside the ledger entry?
# (`sck ledger inputs` shows kept inputs.)
store_input = false
mask = []
# Stored inputs older than this many days are deleted (default: unset, kept forever). Ledger
# entries are never deleted and still verify: they hold only the input's SHA-256. Each pruning
# run is itself recorded in the org's ledger (retention.inputs_pruned).
# input_retention_days = 90
# How often (seconds) expired inputs are pruned, when any org has a retention period.
input_prune_interval_secs = 3600
# Per-org overrides replace all three settings for that org:
# [fleet.orgs.acme]
# store_input = true
# mask = ["/input/password", "/input/token/raw"]
# input_retention_days = 30

[xsck]
# X-SCK signed upstream calls (POST /api/v1/enforcement/verify and routes behind the X-SCK layer).
# Largest accepted |now - X-SCK-Timestamp| in seconds; (ANS ID, nonce) pairs are kept twice as long.
max_skew_secs = 300
# Refuse calls without X-SCK-Nonce. false = compat mode: replays are keyed on the signature.
require_nonce = true
# Largest signed request body, in bytes.
max_body_bytes = 1048576
# Master key sealing HMAC secrets at rest (64 hex digits; generated at data_dir/master.key when
# unset). SCK_MASTER_KEY, if set, holds the key itself and wins. Replicas must share it.
# master_key_file = "sck-data/master.key"

[proxy]
# The enforcement point: MCP and HTTP routes (below and POST /api/v1/enforcement/routes).
# Forwarded requests are signed with X-SCK (SCK-ED25519-V1) as this ANS ID
# (default "ans://gateway.<deployment>"); the Ed25519 key is generated on first start.
# ans_id = "ans://gateway.sck"
# signing_key_file = "sck-data/gateway-signing.key"
# Connecting to an upstream, and waiting for its response head, past these is answered 504.
connect_timeout_ms = 5000
response_timeout_secs = 30
# https:// upstreams are verified (certificate and host name, always) against the platform's CA
# store plus the CA certificates of this PEM file, if set (for private upstreams); read at start.
# upstream_ca_file = "/etc/sck/upstream-ca.pem"
# Longest server-sent event read from an MCP upstream whose answer is filtered (tools/list...).
max_event_bytes = 4194304
# Usage accounting: input.usage counts calls in fixed windows of this many seconds (aligned to
# the Unix epoch); each replica writes its counts to the database this often (and at shutdown).
usage_window_secs = 60
usage_flush_secs = 5
# Distinct tool names per route with their own metrics label (sck_usage_*); the rest are "other".
usage_tool_labels = 32

# A route maps a public path prefix to an upstream. The upstream credential is read from the
# environment variable named here (never written in this file) and kept sealed in memory.
# [[routes]]
# id = "weather"
# org = "default"
# prefix = "/mcp/weather"
# upstream = "http://127.0.0.1:9000/mcp"
# kind = "mcp"                      # or "http"
# credential_header = "x-api-key"
# credential_env = "WEATHER_API_KEY"
# forward_arguments = false         # true: tools/call arguments in input.context.arguments
# usage_header = "x-usage-tokens"   # the upstream reports used tokens here (counted in usage)
# actions = { "tools/call" = "tools.invoke" }
"#;

/// Top-level keys settable from the environment as `SCK_<KEY>`.
const ENV_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "database_url",
    "data_dir",
    "deployment",
];

impl Config {
    /// Loads defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(format!("config file {}: not found", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming configuration keys: other SCK_* variables (SCK_LOG,
        // SCK_ADMIN_KEY, SCK_LEDGER_SIGNING_KEY, ...) belong to other parts of sck.
        figment = figment.merge(
            Env::prefixed("SCK_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    ENV_KEYS.contains(&key.as_str())
                        || [
                            "http__",
                            "bundles__",
                            "ledger__",
                            "decisions__",
                            "fleet__",
                            "xsck__",
                            "proxy__",
                        ]
                        .iter()
                        .any(|section| key.starts_with(section))
                })
                .split("__"),
        );
        let config: Config = figment
            .extract()
            .map_err(|e| format!("configuration: {e}"))?;
        config.check()?;
        Ok(config)
    }

    /// Refuses settings under which some request could never succeed.
    fn check(&self) -> Result<(), String> {
        let largest = self
            .bundles
            .max_decompressed_bytes
            .max(self.fleet.max_decompressed_bytes);
        if self.http.decompression_budget_bytes < largest {
            return Err(format!(
                "configuration: http.decompression_budget_bytes ({}) is below the largest \
                 per-request limit ({largest}, bundles/fleet max_decompressed_bytes)",
                self.http.decompression_budget_bytes
            ));
        }
        if self.proxy.usage_window_secs == 0 || self.proxy.usage_flush_secs == 0 {
            return Err(
                "configuration: proxy.usage_window_secs and proxy.usage_flush_secs must be at least 1"
                    .into(),
            );
        }
        if self.bundles.max_concurrent_compiles == 0 || self.bundles.test_timeout_ms == 0 {
            return Err(
                "configuration: bundles.max_concurrent_compiles and bundles.test_timeout_ms \
                 must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail API fixes the closure's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn example_matches_the_defaults() {
        let parsed: Config = Figment::from(Toml::string(EXAMPLE)).extract().unwrap();
        // The example leaves key_file commented out, as the default does.
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn environment_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sck.toml",
                "listen = \"127.0.0.1:9000\"\n[http]\nmax_body_bytes = 5\n",
            )?;
            jail.set_env("SCK_HTTP__MAX_BODY_BYTES", "7");
            jail.set_env("SCK_DATABASE_URL", "postgres://x/y");
            jail.set_env("SCK_LOG", "debug");
            jail.set_env("SCK_LEDGER_SIGNING_KEY", "not config");
            jail.set_env("SCK_PROXY__UPSTREAM_CA_FILE", "/etc/sck/upstream-ca.pem");
            let config = Config::load(Some(Path::new("sck.toml"))).unwrap();
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.http.max_body_bytes, 7);
            assert_eq!(
                config.proxy.upstream_ca_file.as_deref(),
                Some(Path::new("/etc/sck/upstream-ca.pem"))
            );
            assert_eq!(config.database_url, "postgres://x/y");
            Ok(())
        });
    }

    #[test]
    fn a_budget_below_a_per_request_limit_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SCK_HTTP__DECOMPRESSION_BUDGET_BYTES", "1000");
            jail.set_env("SCK_FLEET__MAX_DECOMPRESSED_BYTES", "1000");
            jail.set_env("SCK_BUNDLES__MAX_DECOMPRESSED_BYTES", "1001");
            let err = Config::load(None).unwrap_err();
            assert!(err.contains("decompression_budget_bytes"), "{err}");
            jail.set_env("SCK_BUNDLES__MAX_DECOMPRESSED_BYTES", "1000");
            Config::load(None).unwrap();
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sck.toml", "lisen = \"x\"\n")?;
            let err = Config::load(Some(Path::new("sck.toml"))).unwrap_err();
            assert!(err.contains("lisen"), "{err}");
            Ok(())
        });
    }
}
