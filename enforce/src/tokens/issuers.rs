//! Token issuers and per-org token settings in the database.
//!
//! An issuer belongs to one org and carries the highest Level of Assurance it may mint (1–4),
//! the scopes it may grant, and the algorithm its tokens are signed with (`EdDSA`, or `HS256`
//! when the deployment configured a shared secret). Org settings hold the default and maximum
//! TTL; an org without a row uses the deployment defaults.

use std::collections::HashMap;

use sck_ledger::store::Store;
use serde::Serialize;
use sqlx::Row;

use crate::db::{new_id, with_pool};
use crate::error::{EnforceError, EnforceResult};

/// A token issuer of one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issuer {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub loa_ceiling: u8,
    pub scopes: Vec<String>,
    pub algorithm: String,
    pub created_at: i64,
}

/// TTL settings of one org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgTokenSettings {
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
}

/// Scope tokens: RFC 6749 `scope-token` characters (printable ASCII but space, `"` and `\`).
pub fn check_scope(scope: &str) -> EnforceResult<()> {
    let ok = !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EnforceError::invalid(
            "invalid_request",
            format!("scope {scope:?} is not a valid scope token (1-128 printable characters, no spaces, quotes or backslashes)"),
        ))
    }
}

fn issuer_from(
    id: String,
    org: String,
    name: String,
    loa: i64,
    scopes: String,
    algorithm: String,
    created_at: i64,
) -> EnforceResult<Issuer> {
    let scopes: Vec<String> = serde_json::from_str(&scopes)
        .map_err(|e| EnforceError::internal("read issuer", format!("issuer {id} scopes: {e}")))?;
    Ok(Issuer {
        loa_ceiling: u8::try_from(loa).unwrap_or(0),
        id,
        organization_id: org,
        name,
        scopes,
        algorithm,
        created_at,
    })
}

macro_rules! issuer_row {
    ($row:expr) => {{
        let row = $row;
        issuer_from(
            row.try_get("id")?,
            row.try_get("org_id")?,
            row.try_get("name")?,
            row.try_get("loa_ceiling")?,
            row.try_get("scopes")?,
            row.try_get("algorithm")?,
            row.try_get("created_at")?,
        )?
    }};
}

/// Creates an issuer; the name must be new in its org.
pub async fn create(
    store: &Store,
    org: &str,
    name: &str,
    loa_ceiling: u8,
    scopes: &[String],
    algorithm: &str,
) -> EnforceResult<Issuer> {
    let id = new_id("iss");
    let created_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let scopes_json =
        serde_json::to_string(scopes).map_err(|e| EnforceError::internal("issuer", e))?;
    let inserted = with_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO token_issuers (id, org_id, name, loa_ceiling, scopes, algorithm, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, name) DO NOTHING",
        )
        .bind(&id)
        .bind(org)
        .bind(name)
        .bind(i64::from(loa_ceiling))
        .bind(&scopes_json)
        .bind(algorithm)
        .bind(created_at)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 0 {
        return Err(EnforceError::conflict(
            "issuer_exists",
            format!("organization {org} already has an issuer named {name}"),
        ));
    }
    Ok(Issuer {
        id,
        organization_id: org.to_owned(),
        name: name.to_owned(),
        loa_ceiling,
        scopes: scopes.to_vec(),
        algorithm: algorithm.to_owned(),
        created_at,
    })
}

/// `org`'s issuer `id` (`None` for an id of another org, as for an unknown one).
pub async fn get(store: &Store, org: &str, id: &str) -> EnforceResult<Option<Issuer>> {
    let sql = "SELECT id, org_id, name, loa_ceiling, scopes, algorithm, created_at FROM token_issuers WHERE id = $1 AND org_id = $2";
    let found = with_pool!(store, pool => {
        match sqlx::query(sql).bind(id).bind(org).fetch_optional(pool).await? {
            Some(row) => Some(issuer_row!(row)),
            None => None,
        }
    });
    Ok(found)
}

/// Issuers of `org` (all orgs when `None`), by name.
pub async fn list(store: &Store, org: Option<&str>) -> EnforceResult<Vec<Issuer>> {
    let issuers = with_pool!(store, pool => {
        let rows = sqlx::query(
            "SELECT id, org_id, name, loa_ceiling, scopes, algorithm, created_at FROM token_issuers \
             WHERE ($1 IS NULL OR org_id = $1) ORDER BY org_id, name",
        )
        .bind(org)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(issuer_row!(row));
        }
        out
    });
    Ok(issuers)
}

macro_rules! settings_row {
    ($row:expr) => {{
        let row = $row;
        OrgTokenSettings {
            default_ttl_seconds: row.try_get("default_ttl_seconds")?,
            max_ttl_seconds: row.try_get("max_ttl_seconds")?,
        }
    }};
}

/// The TTL settings of every org that has its own.
pub async fn all_settings(store: &Store) -> EnforceResult<HashMap<String, OrgTokenSettings>> {
    let all = with_pool!(store, pool => {
        let rows = sqlx::query("SELECT org_id, default_ttl_seconds, max_ttl_seconds FROM token_org_settings")
            .fetch_all(pool)
            .await?;
        let mut all = HashMap::with_capacity(rows.len());
        for row in rows {
            all.insert(row.try_get::<String, _>("org_id")?, settings_row!(&row));
        }
        all
    });
    Ok(all)
}

/// The TTL settings of `org`, or `defaults`.
pub async fn settings(
    store: &Store,
    org: &str,
    defaults: OrgTokenSettings,
) -> EnforceResult<OrgTokenSettings> {
    let found = with_pool!(store, pool => {
        match sqlx::query("SELECT default_ttl_seconds, max_ttl_seconds FROM token_org_settings WHERE org_id = $1")
            .bind(org)
            .fetch_optional(pool)
            .await?
        {
            Some(row) => Some(settings_row!(row)),
            None => None,
        }
    });
    Ok(found.unwrap_or(defaults))
}

/// Stores the TTL settings of `org`.
pub async fn set_settings(store: &Store, org: &str, value: OrgTokenSettings) -> EnforceResult<()> {
    with_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO token_org_settings (org_id, default_ttl_seconds, max_ttl_seconds) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id) DO UPDATE SET default_ttl_seconds = EXCLUDED.default_ttl_seconds, \
             max_ttl_seconds = EXCLUDED.max_ttl_seconds",
        )
        .bind(org)
        .bind(value.default_ttl_seconds)
        .bind(value.max_ttl_seconds)
        .execute(pool)
        .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(check_scope("mcp:invoke").is_ok());
        assert!(check_scope("tools/read.all").is_ok());
        for bad in ["", "a b", "quote\"", "back\\slash", "tab\t", "é"] {
            assert!(check_scope(bad).is_err(), "{bad:?}");
        }
    }
}
