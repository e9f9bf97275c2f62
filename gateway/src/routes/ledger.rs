//! `/api/v1/ledger/{org}/...`: reading an org's trust ledger — entries, checkpoints, proofs,
//! exports — for auditors holding that org's admin key (or the root key). The checkpoint keys
//! with their validity windows are public (`/keys`), so anyone can verify what auditors receive.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::QueryParams;
use crate::state::AppState;

/// Most entries one page returns.
const MAX_PAGE: u64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ledger/{org}/entries", get(entries))
        .route("/api/v1/ledger/{org}/entries/{seq}", get(entry))
        .route("/api/v1/ledger/{org}/checkpoint", get(checkpoint))
        .route("/api/v1/ledger/{org}/checkpoints", get(checkpoints))
        .route("/api/v1/ledger/{org}/proof/inclusion", get(inclusion))
        .route("/api/v1/ledger/{org}/proof/consistency", get(consistency))
        .route("/api/v1/ledger/{org}/export", get(export))
        .route("/api/v1/ledger/{org}/keys", get(keys))
}

fn b64(hash: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// A leaf as served: its JSON, its seq and leaf hash.
fn leaf(seq: u64, bytes: &[u8], hash: &[u8]) -> Value {
    json!({
        "seq": seq,
        "leaf_hash": hex::encode(hash),
        "entry": serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    from: Option<u64>,
    limit: Option<u64>,
}

async fn entries(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<Value>> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let limit = page.limit.unwrap_or(100).min(MAX_PAGE);
    let reader = state.lifecycle.ledger.reader();
    let rows = reader.entries(&org, page.from.unwrap_or(0), limit).await?;
    let size = reader.size(&org).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(seq, bytes, hash)| leaf(*seq, bytes, hash))
        .collect();
    Ok(Json(json!({"org": org, "size": size, "entries": items})))
}

async fn entry(
    State(state): State<AppState>,
    admin: AdminKey,
    Path((org, seq)): Path<(String, u64)>,
) -> ApiResult<Json<Value>> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let rows = state
        .lifecycle
        .ledger
        .reader()
        .entries(&org, seq, 1)
        .await?;
    let (seq, bytes, hash) = rows
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no entry {seq} in the ledger of {org}")))?;
    Ok(Json(leaf(*seq, bytes, hash)))
}

async fn checkpoint(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let latest = state
        .lifecycle
        .ledger
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Option<u64>,
    to: Option<u64>,
}

async fn checkpoints(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(range): QueryParams<Range>,
) -> ApiResult<Json<Value>> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let list = state
        .lifecycle
        .ledger
        .reader()
        .checkpoints(&org, range.from.unwrap_or(0), range.to.unwrap_or(u64::MAX))
        .await?;
    let items: Vec<Value> = list
        .iter()
        .map(|c| json!({"size": c.size, "root": b64(&c.root), "key_name": c.key_name, "created_at": c.created_at, "note": c.note}))
        .collect();
    Ok(Json(json!({"org": org, "checkpoints": items})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    size: Option<u64>,
}

async fn inclusion(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> ApiResult<Json<Value>> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let reader = state.lifecycle.ledger.reader();
    let size = match q.size {
        Some(size) => size,
        None => reader.size(&org).await?,
    };
    let proof = reader.inclusion_proof(&org, q.seq, size).await?;
    Ok(Json(json!({
        "seq": proof.seq, "size": proof.size, "leaf_hash": hex::encode(proof.leaf_hash),
        "proof": proof.proof.iter().map(|h| b64(h)).collect::<Vec<_>>(), "root": b64(&proof.root),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

async fn consistency(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> ApiResult<Json<Value>> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let reader = state.lifecycle.ledger.reader();
    let to = match q.to {
        Some(to) => to,
        None => reader.size(&org).await?,
    };
    let proof = reader.consistency_proof(&org, q.from, to).await?;
    Ok(Json(json!({
        "from": proof.from, "to": proof.to,
        "proof": proof.proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
        "from_root": b64(&proof.from_root), "to_root": b64(&proof.to_root),
    })))
}

async fn export(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(org): Path<String>,
    QueryParams(range): QueryParams<Range>,
) -> ApiResult<Response> {
    admin.authorize_read(&org, &format!("ledger of {org}"))?;
    let mut archive = Vec::new();
    sck_ledger::export::write_export(
        state.lifecycle.ledger.reader(),
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

async fn keys(State(state): State<AppState>, Path(org): Path<String>) -> ApiResult<Json<Value>> {
    let keys = state.lifecycle.ledger.reader().keys().await?;
    Ok(Json(
        json!({"org": org, "origin": state.lifecycle.ledger.reader().origin(&org), "keys": keys}),
    ))
}
