//! A small blocking client for the sck REST API, used by the CLI subcommands that act on a
//! running server. Non-2xx answers become a [`CliError`] carrying the server's problem
//! `detail` and `code`.

use serde_json::Value;

use super::CliError;

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Base URL of the sck server.
    #[arg(long, env = "SCK_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Admin key (printed at first start, or from `sck admin create-key`).
    #[arg(long, env = "SCK_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    key: Option<String>,
}

impl ApiClient {
    /// A client that authenticates with the admin key of `args`.
    pub fn new(args: &ServerArgs) -> ApiClient {
        ApiClient::with_bearer(&args.server, args.admin_key.clone())
    }

    /// A client for `server` that sends `bearer` (an admin key or a gateway token).
    pub fn with_bearer(server: &str, bearer: Option<String>) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into();
        ApiClient {
            agent,
            base: server.trim_end_matches('/').to_owned(),
            key: bearer,
        }
    }

    fn finish(
        &self,
        path: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CliError> {
        let mut response =
            result.map_err(|e| CliError::new(format!("{}{path}: {e}", self.base)))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| CliError::new(format!("{}{path}: {e}", self.base)))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or("request failed");
        let code = body["code"].as_str().unwrap_or("error");
        Err(CliError::new(format!(
            "{} {status}: {detail} [{code}]",
            path
        )))
    }

    fn auth(&self) -> Option<String> {
        self.key.as_ref().map(|k| format!("Bearer {k}"))
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        self.finish(path, request.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        self.finish(path, request.send_json(body))
    }
}

/// Prints an API answer as pretty JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serialises")
    );
}
