//! `sck bundle ...`: build, sign, verify, check, test and inspect bundles from the command line.
//!
//! Thin wrappers over `sck-bundler`: parse flags, read files, call the library, print results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sck_bundler::policy::{self, TestStatus};
use sck_bundler::signing::{decode_unverified, file_info};
use sck_bundler::{
    BuildOptions, Bundle, Limits, SckIdentity, SigningConfig, SigningKey, SourceTree,
    VerificationConfig, VerificationKey,
};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Build a bundle from a policy tree (Rego modules, data.json/data.yaml, optional .manifest).
    ///
    /// The output is byte-for-byte reproducible for the same input. Without --org/--name/--version
    /// the result is exactly what `opa build -b` produces; with them the manifest also carries
    /// `rego_version: 1` and `metadata.sck` (org, name, version, source_sha256, built_at).
    Build(BuildArgs),
    /// Verify a bundle's .signatures.json exactly as OPA does.
    ///
    /// The key is chosen by --key-id, else the signature's `kid`, else its `keyid`; the
    /// algorithm comes from the key, never from the signature header; the signed file set must
    /// equal the bundle's; a configured --scope must equal the signed scope.
    Verify(VerifyArgs),
    /// Parse and compile every module with regorus, enforce manifest roots, and refuse built-ins
    /// sck cannot evaluate (io.jwt.*, crypto.*, http.send, ...), reporting file:line:col.
    Check(TargetArgs),
    /// Run the bundle's Rego `test_*` rules with regorus and report each like `opa test`.
    ///
    /// Each test is stopped at --timeout-ms (TIMEOUT). Exits non-zero if any test fails,
    /// errors or times out.
    Test(TestArgs),
    /// Show a bundle's manifest, files with hashes, signature header and claims, and size.
    Inspect(InspectArgs),
    /// Evaluate the bundle's decision rule on an input, offline, exactly as the gateway does
    /// (compiled RVM path when possible, bounded, deny by default).
    Eval(EvalArgs),
    /// Generate an ES256 (P-256) signing key: writes PKCS#8 PEM to --out and the public key
    /// to <out>.pub.pem.
    Keygen(KeygenArgs),
    /// Compile a policy tree on a running server into a DRAFT version (runs its Rego tests).
    Compile(super::remote::CompileArgs),
    /// Sign a DRAFT on the server: it becomes PUBLISHED and immutable.
    Publish(super::remote::PublishArgs),
    /// Make a PUBLISHED version the one served and enforced for its org and bundle name.
    ///
    /// A version older than the active one needs --rollback; revoked versions never activate.
    Activate(super::remote::ActivateArgs),
    /// Revoke a version: never served or activated again. An active version needs
    /// --rollback-to ID or --allow-no-active.
    Revoke(super::remote::RevokeArgs),
    /// List versions on the server.
    List(super::remote::ListArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The policy source directory.
    dir: PathBuf,
    /// Where to write the bundle (.tar.gz).
    #[arg(short, long)]
    output: PathBuf,
    /// Manifest revision (default: the source .manifest's revision, else empty).
    #[arg(long)]
    revision: Option<String>,
    /// Organization that owns the bundle (metadata.sck.org).
    #[arg(long, requires_all = ["name", "version"])]
    org: Option<String>,
    /// Bundle name (metadata.sck.name).
    #[arg(long, requires_all = ["org", "version"])]
    name: Option<String>,
    /// Bundle version (metadata.sck.version).
    #[arg(long, requires_all = ["org", "name"])]
    version: Option<String>,
    /// metadata.sck.built_at as RFC 3339; defaults to SOURCE_DATE_EPOCH when set, else omitted.
    #[arg(long, requires = "org")]
    built_at: Option<String>,
    #[command(flatten)]
    signing: SigningArgs,
}

#[derive(Debug, Args)]
struct SigningArgs {
    /// Sign with this key: a PEM private key file (RSA or EC), or an HMAC secret given as a
    /// file, as env:NAME, or as the value itself.
    #[arg(long)]
    signing_key: Option<String>,
    /// Signing algorithm (ES256, RS256, HS256, ...); default: from the key type.
    #[arg(long, requires = "signing_key")]
    signing_alg: Option<String>,
    /// Key id written to the signature header (`kid`) and payload (`keyid`).
    #[arg(long, requires = "signing_key")]
    key_id: Option<String>,
    /// JSON file of extra signature claims (e.g. {"scope": "prod", "iss": "ci"}).
    #[arg(long, requires = "signing_key")]
    claims_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (.tar.gz).
    bundle: PathBuf,
    /// A PEM public key file, or an HMAC secret given as a file, as env:NAME, or as the value.
    #[arg(long)]
    verification_key: String,
    /// Id of the verification key; it is used whatever id the signature names, as in OPA.
    #[arg(long, default_value = "default")]
    key_id: String,
    /// Algorithm to pin for the key (default: from the key type; RSA keys default to RS256).
    #[arg(long)]
    signing_alg: Option<String>,
    /// The scope the signature must carry.
    #[arg(long)]
    scope: Option<String>,
    /// Files to leave out of the comparison (glob; `*` does not cross `/`). Repeatable.
    #[arg(long)]
    exclude_files: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A policy source directory or a bundle (.tar.gz).
    target: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Time limit of each test in milliseconds (opa test's default).
    #[arg(long, default_value_t = policy::DEFAULT_TEST_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle (.tar.gz).
    bundle: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A policy source directory or a bundle (.tar.gz).
    target: PathBuf,
    /// JSON file holding the input document (`-` for standard input).
    #[arg(long)]
    input: PathBuf,
    /// Rule to evaluate, e.g. data.sck.gateway.decision (default: the manifest's entrypoint).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Force the interpreter instead of the compiled VM.
    #[arg(long)]
    interpreter: bool,
    /// Evaluation time limit in milliseconds.
    #[arg(long, default_value_t = 100)]
    timeout_ms: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600).
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Refuse bundles with more files than this.
    #[arg(long, default_value_t = Limits::default().max_files)]
    max_files: usize,
    /// Refuse bundles that decompress to more bytes than this.
    #[arg(long, default_value_t = Limits::default().max_decompressed_bytes)]
    max_bytes: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_files: self.max_files,
            max_decompressed_bytes: self.max_bytes,
        }
    }
}

/// Runs one `sck bundle` subcommand.
pub fn run(command: BundleCommand) -> Result<ExitCode, CliError> {
    match command {
        BundleCommand::Build(args) => build(args),
        BundleCommand::Verify(args) => verify(args),
        BundleCommand::Check(args) => check(args),
        BundleCommand::Test(args) => test(args),
        BundleCommand::Inspect(args) => inspect(args),
        BundleCommand::Eval(args) => eval(args),
        BundleCommand::Keygen(args) => keygen(args),
        BundleCommand::Compile(args) => super::remote::compile(args),
        BundleCommand::Publish(args) => super::remote::publish(args),
        BundleCommand::Activate(args) => super::remote::activate(args),
        BundleCommand::Revoke(args) => super::remote::revoke(args),
        BundleCommand::List(args) => super::remote::list(args),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// Key material given on the command line: a file's contents, `env:NAME` for an environment
/// variable, or the value itself (a secret). A value with a `/` that names no file is refused
/// rather than silently used as a secret.
fn key_material(value: &str) -> Result<Vec<u8>, CliError> {
    let path = Path::new(value);
    if path.is_file() {
        return read_file(path);
    }
    if let Some(name) = value.strip_prefix("env:") {
        return std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| CliError::new(format!("environment variable {name} is not set")));
    }
    if value.contains('/') && !value.trim_start().starts_with("-----BEGIN") {
        return Err(CliError::new(format!("key file {value}: no such file")));
    }
    Ok(value.as_bytes().to_vec())
}

fn algorithm(name: Option<&str>) -> Result<Option<sck_bundler::keys::Algorithm>, CliError> {
    Ok(name.map(sck_bundler::keys::parse_algorithm).transpose()?)
}

fn build(args: BuildArgs) -> Result<ExitCode, CliError> {
    let source = SourceTree::from_dir(&args.dir)?;
    let identity = match (args.org, args.name, args.version) {
        (Some(org), Some(name), Some(version)) => Some(SckIdentity { org, name, version }),
        _ => None,
    };
    let built_at = match args.built_at {
        Some(at) => Some(at),
        None if identity.is_some() => source_date_epoch()?,
        None => None,
    };
    let signing = match &args.signing.signing_key {
        Some(key) => {
            let key = SigningKey::from_material(
                &key_material(key)?,
                algorithm(args.signing.signing_alg.as_deref())?,
            )?;
            let claims = match &args.signing.claims_file {
                Some(path) => match serde_json::from_slice(&read_file(path)?) {
                    Ok(serde_json::Value::Object(map)) => map,
                    Ok(_) => {
                        return Err(CliError::new(format!(
                            "{}: claims must be a JSON object",
                            path.display()
                        )))
                    }
                    Err(e) => return Err(CliError::new(format!("{}: {e}", path.display()))),
                },
                None => Default::default(),
            };
            Some(SigningConfig {
                key,
                key_id: args.signing.key_id.clone(),
                claims,
            })
        }
        None => None,
    };
    let options = BuildOptions {
        revision: args.revision,
        identity,
        built_at,
        signing,
    };
    let built = sck_bundler::build(&source, &options)?;
    write_file(&args.output, &built.tarball)?;
    println!(
        "built {} ({} bytes, {} files, sha256 {}{})",
        args.output.display(),
        built.tarball.len(),
        built.bundle.files.len(),
        built.sha256,
        if options.signing.is_some() {
            ", signed"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) as RFC 3339, when set.
fn source_date_epoch() -> Result<Option<String>, CliError> {
    let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let seconds: i64 = value.trim().parse().map_err(|_| {
        CliError::new(format!(
            "SOURCE_DATE_EPOCH {value:?} is not a number of seconds"
        ))
    })?;
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| CliError::new(format!("SOURCE_DATE_EPOCH: {e}")))?;
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CliError::new(format!("SOURCE_DATE_EPOCH: {e}")))?;
    Ok(Some(text))
}

fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let bundle = Bundle::read(&read_file(&args.bundle)?, &args.limits.limits())?;
    let key = VerificationKey::from_material(
        &key_material(&args.verification_key)?,
        algorithm(args.signing_alg.as_deref())?,
    )?;
    let config = VerificationConfig {
        keys: [(args.key_id.clone(), key)].into_iter().collect(),
        key_id: Some(args.key_id),
        scope: args.scope,
        exclude_files: args.exclude_files,
    };
    let verified = bundle.verify(&config)?;
    println!(
        "verified {}: {} files signed with {} key {:?}{}",
        args.bundle.display(),
        verified.files,
        verified.algorithm,
        verified.key_id,
        verified
            .scope
            .map(|s| format!(", scope {s:?}"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads a directory (built in memory, unsigned) or a bundle file.
fn load_target(target: &Path, limits: &Limits) -> Result<Bundle, CliError> {
    if target.is_dir() {
        let source = SourceTree::from_dir(target)?;
        Ok(sck_bundler::build(&source, &BuildOptions::default())?.bundle)
    } else {
        Ok(Bundle::read(&read_file(target)?, limits)?)
    }
}

fn check(args: TargetArgs) -> Result<ExitCode, CliError> {
    let bundle = load_target(&args.target, &args.limits.limits())?;
    let report = policy::check(&bundle)?;
    println!(
        "ok: {} modules in {} packages compile; roots {:?}; entrypoint {} {}",
        report.modules,
        report.packages.len(),
        bundle.manifest.roots,
        report.entrypoint,
        if report.entrypoint_defined {
            "(defined)"
        } else {
            "(not defined)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn test(args: TestArgs) -> Result<ExitCode, CliError> {
    let bundle = load_target(&args.target.target, &args.target.limits.limits())?;
    policy::check(&bundle)?;
    let limits = sck_bundler::decision::EvalLimits {
        time: std::time::Duration::from_millis(args.timeout_ms),
        ..Default::default()
    };
    let outcomes = policy::run_tests(&bundle, &limits, &|| false)?;
    let rule = "-".repeat(80);
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != TestStatus::Pass)
        .collect();
    if !failed.is_empty() {
        println!("FAILURES\n{rule}");
        for o in &failed {
            println!("{}: {}\n", o.name, status_text(&o.status, o.duration));
        }
        println!("SUMMARY\n{rule}");
    }
    let mut file = "";
    for o in &outcomes {
        if o.file != file {
            file = &o.file;
            println!("{file}:");
        }
        let status = match o.status {
            TestStatus::Pass => "PASS",
            TestStatus::Fail => "FAIL",
            TestStatus::Error(_) => "ERROR",
            TestStatus::Timeout(_) => "TIMEOUT",
        };
        println!("{}: {status} ({:?})", o.name, o.duration);
    }
    let total = outcomes.len();
    let pass = total - failed.len();
    let errors = failed
        .iter()
        .filter(|o| matches!(o.status, TestStatus::Error(_)))
        .count();
    let timeouts = failed
        .iter()
        .filter(|o| matches!(o.status, TestStatus::Timeout(_)))
        .count();
    println!("{rule}");
    if total == 0 {
        println!("no tests found");
        return Ok(ExitCode::SUCCESS);
    }
    if pass > 0 {
        println!("PASS: {pass}/{total}");
    }
    if failed.len() > errors + timeouts {
        println!("FAIL: {}/{total}", failed.len() - errors - timeouts);
    }
    if errors > 0 {
        println!("ERROR: {errors}/{total}");
    }
    if timeouts > 0 {
        println!("TIMEOUT: {timeouts}/{total}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn status_text(status: &TestStatus, duration: std::time::Duration) -> String {
    match status {
        TestStatus::Pass => format!("PASS ({duration:?})"),
        TestStatus::Fail => format!("FAIL ({duration:?})"),
        TestStatus::Error(e) => format!("ERROR ({duration:?})\n  {e}"),
        TestStatus::Timeout(limit) => {
            format!("TIMEOUT ({duration:?})\n  stopped at the time limit of {limit:?}")
        }
    }
}

fn inspect(args: InspectArgs) -> Result<ExitCode, CliError> {
    let bytes = read_file(&args.bundle)?;
    let bundle = Bundle::read(&bytes, &args.limits.limits())?;
    let mut files = Vec::new();
    for file in &bundle.files {
        let info = file_info(file)?;
        files.push(serde_json::json!({
            "name": file.name, "size": file.bytes.len(), "sha256": info.hash,
        }));
    }
    let signature = match &bundle.signature {
        Some(jws) => {
            let (header, payload) = decode_unverified(jws)?;
            serde_json::json!({
                "verified": false,
                "header": {"alg": format!("{:?}", header.alg), "kid": header.kid},
                "claims": {"keyid": payload.keyid, "scope": payload.scope, "iss": payload.iss,
                           "iat": payload.iat, "files": payload.files.len()},
            })
        }
        None => serde_json::Value::Null,
    };
    let manifest_bytes = bundle
        .files
        .iter()
        .find(|f| f.name == ".manifest")
        .map(|f| serde_json::from_slice(&f.bytes).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Null);
    let report = serde_json::json!({
        "path": args.bundle.display().to_string(),
        "size": bytes.len(),
        "sha256": sck_bundler::sha256_hex(&bytes),
        "manifest": manifest_bytes,
        "entrypoint": bundle.manifest.entrypoint(),
        "files": files,
        "signature": signature,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON serialises")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("bundle:     {}", args.bundle.display());
    println!("size:       {} bytes", bytes.len());
    println!(
        "sha256:     {}",
        report["sha256"].as_str().unwrap_or_default()
    );
    println!("revision:   {}", bundle.manifest.revision);
    println!("roots:      {:?}", bundle.manifest.roots);
    println!("entrypoint: {}", bundle.manifest.entrypoint());
    println!("manifest:   {}", report["manifest"]);
    println!("files (sha256 as signed):");
    for f in &files {
        println!(
            "  {:<64} {:>10}  {}",
            f["sha256"].as_str().unwrap_or_default(),
            f["size"],
            f["name"].as_str().unwrap_or_default()
        );
    }
    match &bundle.signature {
        Some(_) => println!(
            "signature (not verified; use `sck bundle verify`):\n  header {}\n  claims {}",
            report["signature"]["header"], report["signature"]["claims"]
        ),
        None => println!("signature:  none"),
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(args: EvalArgs) -> Result<ExitCode, CliError> {
    use sck_bundler::decision::{EvalLimits, Evaluator, Mode};
    let bundle = load_target(&args.target, &args.limits.limits())?;
    let text = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::new(format!("stdin: {e}")))?;
        s
    } else {
        String::from_utf8(read_file(&args.input)?)
            .map_err(|_| CliError::new(format!("{}: not UTF-8", args.input.display())))?
    };
    let input = sck_bundler::decision::parse_input(text.as_bytes())
        .map_err(|e| CliError::new(format!("{}: {e} [{}]", args.input.display(), e.code())))?;
    let limits = EvalLimits {
        time: std::time::Duration::from_millis(args.timeout_ms),
        ..EvalLimits::default()
    };
    let mode = if args.interpreter {
        Mode::Interpreter
    } else {
        Mode::Fastest
    };
    let evaluator = Evaluator::new(&bundle, args.entrypoint.as_deref(), limits, mode)?;
    let decision = evaluator.decide(input);
    let report = serde_json::json!({
        "allow": decision.allow,
        "reasons": decision.reasons,
        "outcome": decision.outcome,
        "entrypoint": evaluator.entrypoint(),
        "engine": evaluator.mode(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("JSON serialises")
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: KeygenArgs) -> Result<ExitCode, CliError> {
    let (key, pem) = SigningKey::generate_es256()?;
    sck_enforce::files::write_private(&args.out, pem.as_bytes()).map_err(CliError::new)?;
    let public_path = PathBuf::from(format!("{}.pub.pem", args.out.display()));
    let public = key.public_key_pem().unwrap_or_default();
    write_file(&public_path, public.as_bytes())?;
    println!(
        "wrote ES256 private key {} and public key {}",
        args.out.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
