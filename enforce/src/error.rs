//! `EnforceError`: the one error type of sck's services (no HTTP). A failure has a [`Kind`]
//! (what went wrong, in the domain's words), a stable machine-readable `code` (the same codes
//! clients have always seen) and a `detail` safe to show a client.
//!
//! Invariant: nothing secret and nothing about the server's internals is in `detail`. An
//! unexpected failure keeps its cause in [`EnforceError::cause`], which only the server log sees:
//! the HTTP edge logs it once, where the request's span is, and answers the generic detail.
//! Constructors never log.

/// Seconds a client is told to wait after a capacity refusal.
pub const RETRY_AFTER_SECS: u64 = 1;

/// What kind of failure: the HTTP edge maps each kind to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or names something impossible (400).
    Invalid,
    /// No valid credential (401).
    Unauthorized,
    /// A valid credential that may not do this (403).
    Forbidden,
    /// Unknown, or another org's (404).
    NotFound,
    /// The state forbids it (409).
    Conflict,
    /// Past a size limit (413).
    TooLarge,
    /// Well-formed but refused by a rule of the content (a policy, a bundle, a test) (422).
    Unprocessable,
    /// Past a rate limit; `retry_after` says when to come back (429).
    RateLimited,
    /// A dependency is unreachable or a capacity bound is reached; retrying may succeed (503).
    Unavailable,
    /// A bug or an unexpected failure of the server (500).
    Internal,
}

/// Why something unexpected failed: for the server log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub context: String,
    pub error: String,
}

/// A refused or failed service operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceError {
    pub kind: Kind,
    pub code: &'static str,
    pub detail: String,
    /// Individual problems (e.g. one per `file:line:col`), when there are several.
    pub diagnostics: Vec<String>,
    /// Seconds after which the same request may succeed (a transient refusal).
    pub retry_after: Option<u64>,
    /// The cause of an unexpected failure, logged by the edge and never answered.
    pub cause: Option<Box<Cause>>,
}

impl EnforceError {
    pub fn new(kind: Kind, code: &'static str, detail: impl Into<String>) -> Self {
        EnforceError {
            kind,
            code,
            detail: detail.into(),
            diagnostics: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, code, detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, code, detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, code, detail)
    }

    /// 404 `not_found`: unknown ids and other orgs' ids alike.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, "not_found", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, code, detail)
    }

    pub fn too_large(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::TooLarge, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(Kind::Unprocessable, code, detail)
    }

    pub fn rate_limited(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(Kind::RateLimited, code, detail).retry_after(retry_after)
    }

    /// A capacity bound is reached (concurrent compiles, the decompression budget): the same
    /// request may succeed after `retry_after` seconds.
    pub fn busy(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(Kind::Unavailable, code, detail).retry_after(retry_after)
    }

    /// 503 `decompression_busy`: the process-wide budget of decompressed bytes in flight is
    /// taken by other requests.
    pub fn decompression_busy() -> Self {
        Self::busy(
            "decompression_busy",
            "the server's budget of decompressed bytes in flight is exhausted by other requests; retry later",
            RETRY_AFTER_SECS,
        )
    }

    /// The database or ledger is unreachable: fail closed, the client may retry.
    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Self {
        Self::new(
            Kind::Unavailable,
            "unavailable",
            format!("{context} is unavailable; retry later"),
        )
        .caused_by(context, error)
    }

    /// An unexpected failure: the cause goes to the log, the client reads a generic detail.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::new(
            Kind::Internal,
            "internal_error",
            format!("{context} failed; see the server log"),
        )
        .caused_by(context, error)
    }

    pub fn with_diagnostics(mut self, diagnostics: Vec<String>) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn caused_by(mut self, context: &str, error: impl std::fmt::Display) -> Self {
        self.cause = Some(Box::new(Cause {
            context: context.to_owned(),
            error: error.to_string(),
        }));
        self
    }
}

impl std::fmt::Display for EnforceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({}): {}", self.kind, self.code, self.detail)?;
        if let Some(cause) = &self.cause {
            write!(f, " [{}: {}]", cause.context, cause.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for EnforceError {}

impl From<sqlx::Error> for EnforceError {
    fn from(e: sqlx::Error) -> Self {
        EnforceError::unavailable("database", e)
    }
}

/// Bundle refusals keep the bundler's code (`policy_invalid` is answered as `bundle_invalid`,
/// with its per-problem diagnostics).
impl From<sck_bundler::BundleError> for EnforceError {
    fn from(e: sck_bundler::BundleError) -> Self {
        let kind = match e.code() {
            "bundle_too_large" => Kind::TooLarge,
            "decompression_busy" => return EnforceError::decompression_busy(),
            "io_error" => return EnforceError::internal("bundle", e),
            _ => Kind::Unprocessable,
        };
        let code = match e.code() {
            "policy_invalid" | "bundle_invalid" => "bundle_invalid",
            other => other,
        };
        let diagnostics = match &e {
            sck_bundler::BundleError::Policy(problems) => problems.clone(),
            _ => Vec::new(),
        };
        EnforceError::new(kind, code, e.to_string()).with_diagnostics(diagnostics)
    }
}

impl From<sck_ledger::error::LedgerError> for EnforceError {
    fn from(e: sck_ledger::error::LedgerError) -> Self {
        use sck_ledger::error::LedgerError as E;
        match e {
            E::UnknownLog(org) => EnforceError::not_found(format!("no ledger log for {org}")),
            E::OutOfRange(message) => EnforceError::invalid("invalid_request", message),
            E::Proof(e) => EnforceError::invalid("invalid_request", e.to_string()),
            other => EnforceError::unavailable("ledger", other),
        }
    }
}

/// A refused signed call: malformed requests are invalid, an oversize body too large, the rest
/// unauthorized.
impl From<sck_wire::xsck::Rejection> for EnforceError {
    fn from(r: sck_wire::xsck::Rejection) -> Self {
        let kind = match r {
            sck_wire::xsck::Rejection::BodyTooLarge(_) => Kind::TooLarge,
            _ if r.is_malformed() => Kind::Invalid,
            _ => Kind::Unauthorized,
        };
        EnforceError::new(kind, r.code(), r.detail())
    }
}

/// A refused decision-log upload: too large past a size limit, busy past the shared
/// decompression budget, invalid otherwise (with the per-event problems as diagnostics).
impl From<sck_wire::opa_logs::UploadError> for EnforceError {
    fn from(e: sck_wire::opa_logs::UploadError) -> Self {
        use sck_wire::opa_logs::UploadError as E;
        let kind = match e {
            E::BudgetExhausted => return EnforceError::decompression_busy(),
            E::TooLarge(_) => Kind::TooLarge,
            E::InvalidGzip(_) | E::InvalidJson(_) | E::InvalidBatch { .. } => Kind::Invalid,
        };
        EnforceError::new(kind, e.code(), e.to_string()).with_diagnostics(e.diagnostics().to_vec())
    }
}

/// A refused gateway token: unauthorized, with the check's code.
impl From<sck_wire::token::TokenRefusal> for EnforceError {
    fn from(r: sck_wire::token::TokenRefusal) -> Self {
        EnforceError::unauthorized(r.code, r.detail)
    }
}

/// A refused status report: `invalid_status`.
impl From<sck_wire::opa_status::StatusRefused> for EnforceError {
    fn from(e: sck_wire::opa_status::StatusRefused) -> Self {
        EnforceError::invalid(e.code(), e.to_string())
    }
}

/// Result alias for service operations.
pub type EnforceResult<T> = Result<T, EnforceError>;
