//! `/api/v1/ledger/{org}/...`: reading an org's trust ledger — entries, checkpoints, proofs,
//! exports — for auditors holding that org's admin key (or the root key). The checkpoint keys
//! with their validity windows are public (`/keys`), so anyone can verify what auditors receive.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use sck_ledger::KeyRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::QueryParams;
use crate::state::AppState;

/// Most entries one page returns.
const MAX_PAGE: u64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger_entries))
        .routes(routes!(ledger_entry))
        .routes(routes!(latest_checkpoint))
        .routes(routes!(ledger_checkpoints))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(export_ledger))
        .routes(routes!(ledger_keys))
}

fn b64(hash: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

fn b64_all(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|h| b64(h)).collect()
}

/// `admin` may read the ledger of `org` (404 otherwise, as for an unknown ledger).
fn authorize_ledger(admin: &AdminKey, org: &str) -> ApiResult<()> {
    admin.authorize_read(org, &format!("ledger of {org}"))
}

/// A ledger entry as served: its seq, leaf hash and JSON.
#[derive(Debug, Serialize, ToSchema)]
struct Leaf {
    seq: u64,
    /// Hex RFC 9162 leaf hash.
    leaf_hash: String,
    /// The entry (`v, seq, ts, type, org, prev` and the event body).
    entry: Value,
}

impl Leaf {
    fn new(seq: u64, bytes: &[u8], hash: &[u8]) -> Leaf {
        Leaf {
            seq,
            leaf_hash: hex::encode(hash),
            entry: serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// First seq (default 0).
    from: Option<u64>,
    /// At most this many entries (default 100, at most 1000).
    limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EntryPage {
    org: String,
    /// The ledger's size now.
    size: u64,
    entries: Vec<Leaf>,
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/entries", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), Page),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "A page of entries", body = EntryPage),
        (status = 400, description = "Bad query parameters"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No ledger of this org (or not visible to this key)"),
    ))]
async fn ledger_entries(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<EntryPage>> {
    authorize_ledger(&admin, &org)?;
    let limit = page.limit.unwrap_or(100).min(MAX_PAGE);
    let reader = state.ledger().reader();
    let rows = reader.entries(&org, page.from.unwrap_or(0), limit).await?;
    let size = reader.size(&org).await?;
    let entries = rows
        .iter()
        .map(|(seq, bytes, hash)| Leaf::new(*seq, bytes, hash))
        .collect();
    Ok(Json(EntryPage { org, size, entries }))
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/entries/{seq}", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), ("seq" = u64, Path, description = "Entry number")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The entry", body = Leaf),
        (status = 400, description = "`seq` is not a number"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such entry (or ledger not visible to this key)"),
    ))]
async fn ledger_entry(
    State(state): State<AppState>,
    admin: AdminKey,
    Path((org, seq)): Path<(String, u64)>,
) -> ApiResult<Json<Leaf>> {
    authorize_ledger(&admin, &org)?;
    let rows = state.ledger().reader().entries(&org, seq, 1).await?;
    let (seq, bytes, hash) = rows
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no entry {seq} in the ledger of {org}")))?;
    Ok(Json(Leaf::new(*seq, bytes, hash)))
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/checkpoint", tag = "ledger",
    params(("org" = String, Path, description = "Organization")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The latest checkpoint: a C2SP signed note", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No checkpoint yet (or ledger not visible to this key)"),
    ))]
async fn latest_checkpoint(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    authorize_ledger(&admin, &org)?;
    let latest = state
        .ledger()
        .reader()
        .latest_checkpoint(&org)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no checkpoint yet for {org}")))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        latest.note,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Range {
    /// Smallest tree size (default 0).
    from: Option<u64>,
    /// Largest tree size (default: the latest).
    to: Option<u64>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
struct CheckpointView {
    size: u64,
    /// Base64 Merkle root.
    root: String,
    key_name: String,
    /// RFC 3339.
    created_at: String,
    /// The C2SP signed note.
    note: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct CheckpointList {
    org: String,
    checkpoints: Vec<CheckpointView>,
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/checkpoints", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), Range),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The checkpoints in the size range", body = CheckpointList),
        (status = 400, description = "Bad query parameters"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No ledger of this org (or not visible to this key)"),
    ))]
async fn ledger_checkpoints(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(range): QueryParams<Range>,
) -> ApiResult<Json<CheckpointList>> {
    authorize_ledger(&admin, &org)?;
    let list = state
        .ledger()
        .reader()
        .checkpoints(&org, range.from.unwrap_or(0), range.to.unwrap_or(u64::MAX))
        .await?;
    let checkpoints = list
        .into_iter()
        .map(|c| CheckpointView {
            size: c.size,
            root: b64(&c.root),
            key_name: c.key_name,
            created_at: c.created_at,
            note: c.note,
        })
        .collect();
    Ok(Json(CheckpointList { org, checkpoints }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InclusionQuery {
    /// The entry.
    seq: u64,
    /// The tree size (default: the current size).
    size: Option<u64>,
}

/// An RFC 9162 inclusion proof (hashes base64, the leaf hash hex).
#[derive(Debug, Serialize, ToSchema)]
struct InclusionAnswer {
    seq: u64,
    size: u64,
    leaf_hash: String,
    proof: Vec<String>,
    root: String,
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/proof/inclusion", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), InclusionQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The inclusion proof of `seq` in the tree of `size`", body = InclusionAnswer),
        (status = 400, description = "Missing or out-of-range `seq`/`size`"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No ledger of this org (or not visible to this key)"),
    ))]
async fn inclusion_proof(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> ApiResult<Json<InclusionAnswer>> {
    authorize_ledger(&admin, &org)?;
    let reader = state.ledger().reader();
    let size = match q.size {
        Some(size) => size,
        None => reader.size(&org).await?,
    };
    let proof = reader.inclusion_proof(&org, q.seq, size).await?;
    Ok(Json(InclusionAnswer {
        seq: proof.seq,
        size: proof.size,
        leaf_hash: hex::encode(proof.leaf_hash),
        proof: b64_all(&proof.proof),
        root: b64(&proof.root),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsistencyQuery {
    /// The older tree size.
    from: u64,
    /// The newer tree size (default: the current size).
    to: Option<u64>,
}

/// An RFC 9162 consistency proof (hashes base64).
#[derive(Debug, Serialize, ToSchema)]
struct ConsistencyAnswer {
    from: u64,
    to: u64,
    proof: Vec<String>,
    from_root: String,
    to_root: String,
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/proof/consistency", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), ConsistencyQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The consistency proof between two tree sizes", body = ConsistencyAnswer),
        (status = 400, description = "Missing or out-of-range sizes"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No ledger of this org (or not visible to this key)"),
    ))]
async fn consistency_proof(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyAnswer>> {
    authorize_ledger(&admin, &org)?;
    let reader = state.ledger().reader();
    let to = match q.to {
        Some(to) => to,
        None => reader.size(&org).await?,
    };
    let proof = reader.consistency_proof(&org, q.from, to).await?;
    Ok(Json(ConsistencyAnswer {
        from: proof.from,
        to: proof.to,
        proof: b64_all(&proof.proof),
        from_root: b64(&proof.from_root),
        to_root: b64(&proof.to_root),
    }))
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/export", tag = "ledger",
    params(("org" = String, Path, description = "Organization"), Range),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The entries and checkpoints as a `.tar.gz` for `sck ledger verify`",
            body = Vec<u8>, content_type = "application/gzip"),
        (status = 400, description = "Bad query parameters"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No ledger of this org (or not visible to this key)"),
    ))]
async fn export_ledger(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(range): QueryParams<Range>,
) -> ApiResult<Response> {
    authorize_ledger(&admin, &org)?;
    let mut archive = Vec::new();
    sck_ledger::export::write_export(
        state.ledger().reader(),
        &org,
        range.from.unwrap_or(0),
        range.to,
        &mut archive,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"ledger-{org}.tar.gz\""),
            ),
        ],
        Body::from(archive),
    )
        .into_response())
}

/// A checkpoint signing key with its validity window.
#[derive(ToSchema)]
pub struct CheckpointKey {
    pub name: String,
    /// Hex key id.
    pub key_id: String,
    /// Verifier key text `<name>+<id>+<base64>`.
    pub verifier: String,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339; absent while current.
    pub valid_until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct LedgerKeys {
    org: String,
    /// The checkpoint origin `<deployment>/<org>`.
    origin: String,
    #[schema(value_type = Vec<CheckpointKey>)]
    keys: Vec<KeyRecord>,
}

#[utoipa::path(get, path = "/api/v1/ledger/{org}/keys", tag = "ledger",
    params(("org" = String, Path, description = "Organization")),
    responses((status = 200, description = "The checkpoint keys (public), to verify checkpoints with", body = LedgerKeys)))]
async fn ledger_keys(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> ApiResult<Json<LedgerKeys>> {
    let reader = state.ledger().reader();
    Ok(Json(LedgerKeys {
        origin: reader.origin(&org),
        keys: reader.keys().await?,
        org,
    }))
}
