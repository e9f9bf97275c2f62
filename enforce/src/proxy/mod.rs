//! Gateway routes and what the enforcement point needs of the services: the routes of the
//! TOML file (`[[routes]]`) and of the per-org admin API, their sealed upstream credentials,
//! the gateway's own X-SCK identity ([`signer`]), the names MCP calls are decided as
//! ([`mcp`]), and the ledger entry of each proxied call's upstream outcome.
//!
//! Invariants:
//! - An upstream credential is stored and held only sealed under the master key
//!   ([`crate::identities::sealing`], purpose `sck-route-credential`, bound to the route id
//!   and credential version); it is opened per forwarded request, never returned by the API,
//!   never logged and never ledgered (events carry the header name and version only).
//! - No two routes' prefixes overlap (one may not be a segment prefix of another), so a path
//!   belongs to at most one route and one org; checked in the inserting transaction.
//! - Every change (create, delete, credential rotation) is appended to the org's ledger.
//! - Lookups are served from a snapshot reloaded at most [`RELOAD_AFTER`] after a change on
//!   another replica (at once after a change on this one); when it is stale one lookup
//!   reloads it and concurrent ones wait for that reload rather than each querying.

pub mod mcp;
pub mod route;
pub mod schema;
pub mod signer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sck_ledger::entry::EventType;
use sck_ledger::store::Store;
use sck_ledger::Ledger;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::clock::unix_now;
use crate::db::with_pool;
use crate::error::{EnforceError, EnforceResult};
use crate::identities::sealing::MasterKey;
use route::{Route, RouteConfig, RouteKind};

/// How stale the route snapshot may get before a lookup reloads it.
pub const RELOAD_AFTER: Duration = Duration::from_secs(1);

const CREDENTIAL_PURPOSE: &str = "sck-route-credential";
const MAX_CREDENTIAL_LEN: usize = 8192;

/// Where a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The TOML file: read-only through the API.
    Config,
    Api,
}

/// A route with its sealed credential.
#[derive(Clone)]
pub struct StoredRoute {
    pub route: Route,
    pub source: Source,
    credential: Option<(i64, Vec<u8>)>,
}

impl std::fmt::Debug for StoredRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRoute")
            .field("route", &self.route)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A route as the API shows it (never the credential).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    pub id: String,
    pub organization_id: String,
    pub prefix: String,
    /// Absent for `forward_auth` routes.
    pub upstream: Option<String>,
    pub kind: RouteKind,
    pub actions: std::collections::BTreeMap<String, String>,
    pub credential_header: Option<String>,
    /// 0 when no credential is set; grows with each rotation.
    pub credential_version: i64,
    pub forward_arguments: bool,
    /// Response header the upstream reports used tokens in (counted in usage).
    pub usage_header: Option<String>,
    pub source: Source,
}

impl From<&StoredRoute> for RouteView {
    fn from(s: &StoredRoute) -> Self {
        let r = &s.route;
        RouteView {
            id: r.id.clone(),
            organization_id: r.org.clone(),
            prefix: r.prefix.clone(),
            upstream: r.upstream.as_ref().map(url::Url::to_string),
            kind: r.kind,
            actions: r.actions.clone(),
            credential_header: r.credential_header.clone(),
            credential_version: s.credential.as_ref().map_or(0, |(v, _)| *v),
            forward_arguments: r.forward_arguments,
            usage_header: r.usage_header.clone(),
            source: s.source,
        }
    }
}

/// An opened upstream credential: the header to inject and its value. Redacted in `Debug`.
pub struct Credential {
    pub header: String,
    pub value: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: redacted)", self.header)
    }
}

struct Loaded {
    at: Instant,
    routes: Vec<Arc<StoredRoute>>,
}

/// Routes: configured and API-created, their credentials, and lookups by path.
pub struct RouteService {
    store: Store,
    ledger: Ledger,
    master: MasterKey,
    configured: Vec<Arc<StoredRoute>>,
    loaded: ArcSwap<Loaded>,
    /// Held by the lookup reloading a stale snapshot.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RouteService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteService")
            .field("configured", &self.configured.len())
            .finish_non_exhaustive()
    }
}

fn overlaps(a: &str, b: &str) -> bool {
    let under = |long: &str, short: &str| {
        long == short || long.strip_prefix(short).is_some_and(|r| r.starts_with('/'))
    };
    under(a, b) || under(b, a)
}

fn credential_value(value: &str) -> EnforceResult<&str> {
    if value.is_empty()
        || value.len() > MAX_CREDENTIAL_LEN
        || !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(EnforceError::invalid(
            "invalid_route",
            format!("credential must be 1 to {MAX_CREDENTIAL_LEN} bytes of visible ASCII"),
        ));
    }
    Ok(value)
}

impl RouteService {
    /// The service over `store` with the routes of the configuration file (validated; each
    /// `credential_env` read now and sealed).
    pub fn open(
        store: Store,
        ledger: Ledger,
        master: MasterKey,
        configs: &[RouteConfig],
    ) -> Result<RouteService, String> {
        let mut configured: Vec<Arc<StoredRoute>> = Vec::new();
        for config in configs {
            let route = Route::from_config(config)
                .map_err(|e| format!("routes: {}: {}", config.id, e.detail))?;
            if let Some(other) = configured
                .iter()
                .find(|o| o.route.id == route.id || overlaps(&o.route.prefix, &route.prefix))
            {
                return Err(format!(
                    "routes: {} and {} share an id or overlapping prefixes",
                    other.route.id, route.id
                ));
            }
            let credential = match (&config.credential_env, &route.credential_header) {
                (None, _) => None,
                (Some(_), None) => {
                    return Err(format!(
                        "routes: {}: credential_env needs credential_header",
                        route.id
                    ))
                }
                (Some(var), Some(_)) => {
                    let value = std::env::var(var)
                        .map_err(|_| format!("routes: {}: {var} is not set", route.id))?;
                    credential_value(&value)
                        .map_err(|e| format!("routes: {}: {var}: {}", route.id, e.detail))?;
                    Some((1, seal(&master, &route.id, 1, &value)?))
                }
            };
            configured.push(Arc::new(StoredRoute {
                route,
                source: Source::Config,
                credential,
            }));
        }
        Ok(RouteService {
            store,
            ledger,
            master,
            loaded: ArcSwap::from_pointee(Loaded {
                at: Instant::now() - RELOAD_AFTER * 2,
                routes: configured.clone(),
            }),
            configured,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Every route: the configured ones, then the stored ones.
    async fn load(&self) -> EnforceResult<Vec<Arc<StoredRoute>>> {
        let rows: Vec<(String, Option<Vec<u8>>, i64)> = with_pool!(&self.store, pool => {
            sqlx::query("SELECT config, credential, credential_version FROM proxy_routes ORDER BY id")
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        });
        let mut routes = self.configured.clone();
        for (config, credential, version) in rows {
            let config: RouteConfig = serde_json::from_str(&config)
                .map_err(|e| EnforceError::internal("stored route", e))?;
            let route = Route::from_config(&config)
                .map_err(|e| EnforceError::internal("stored route", e.detail))?;
            routes.push(Arc::new(StoredRoute {
                route,
                source: Source::Api,
                credential: credential.map(|c| (version, c)),
            }));
        }
        Ok(routes)
    }

    async fn reload(&self) -> EnforceResult<()> {
        let routes = self.load().await?;
        self.loaded.store(Arc::new(Loaded {
            at: Instant::now(),
            routes,
        }));
        Ok(())
    }

    /// The snapshot, reloaded first if it is older than [`RELOAD_AFTER`] (by one lookup at a
    /// time: the others wait and use what it loaded).
    async fn snapshot(&self) -> EnforceResult<Arc<Loaded>> {
        let fresh = |loaded: &Loaded| loaded.at.elapsed() <= RELOAD_AFTER;
        let loaded = self.loaded.load_full();
        if fresh(&loaded) {
            return Ok(loaded);
        }
        let _reloading = self.reloading.lock().await;
        let loaded = self.loaded.load_full();
        if fresh(&loaded) {
            return Ok(loaded);
        }
        self.reload().await?;
        Ok(self.loaded.load_full())
    }

    /// The route `path` is under, with the rest of the path below its prefix.
    pub async fn resolve(&self, path: &str) -> EnforceResult<Option<(Arc<StoredRoute>, String)>> {
        Ok(self.snapshot().await?.routes.iter().find_map(|r| {
            let rest = r.route.match_path(path)?.to_owned();
            Some((Arc::clone(r), rest))
        }))
    }

    /// The route with `id`, if it is `org`'s (another org's is answered as unknown; `None`:
    /// any org's).
    pub async fn get(&self, org: Option<&str>, id: &str) -> EnforceResult<RouteView> {
        self.load()
            .await?
            .iter()
            .find(|r| r.route.id == id && org.is_none_or(|o| r.route.org == o))
            .map(|r| RouteView::from(r.as_ref()))
            .ok_or_else(|| EnforceError::not_found(format!("route {id} not found")))
    }

    /// The routes of `org` (every org's for `None`).
    pub async fn list(&self, org: Option<&str>) -> EnforceResult<Vec<RouteView>> {
        Ok(self
            .load()
            .await?
            .iter()
            .filter(|r| org.is_none_or(|o| r.route.org == o))
            .map(|r| RouteView::from(r.as_ref()))
            .collect())
    }

    /// Creates a route of `config.org` (with `credential`, if given, sealed as version 1).
    pub async fn create(
        &self,
        config: RouteConfig,
        credential: Option<&str>,
        actor: &str,
    ) -> EnforceResult<RouteView> {
        if config.credential_env.is_some() {
            return Err(EnforceError::invalid(
                "invalid_route",
                "credential_env is for the configuration file; send credential",
            ));
        }
        let route = Route::from_config(&config)?;
        if credential.is_some() && route.credential_header.is_none() {
            return Err(EnforceError::invalid(
                "invalid_route",
                "a credential needs credentialHeader",
            ));
        }
        let sealed = credential
            .map(|c| {
                credential_value(c)?;
                seal(&self.master, &route.id, 1, c)
                    .map_err(|e| EnforceError::internal("sealing", e))
            })
            .transpose()?;
        if let Some(other) = self
            .configured
            .iter()
            .find(|o| o.route.id == route.id || overlaps(&o.route.prefix, &route.prefix))
        {
            return Err(clash(&other.route.id, &route.id));
        }
        let stored_config = serde_json::to_string(&config)
            .map_err(|e| EnforceError::internal("route config", e))?;
        let now = unix_now();
        let version = i64::from(sealed.is_some());
        let clashing: Option<(String, String)> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin().await?;
            if matches!(&self.store, Store::Postgres(_)) {
                sqlx::query("LOCK TABLE proxy_routes IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            // Inserting first takes SQLite's write lock, so the overlap check below sees
            // every committed route and no other insert can commit meanwhile.
            let inserted = sqlx::query(
                "INSERT INTO proxy_routes (id, org_id, prefix, config, credential, credential_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&route.id)
            .bind(&route.org)
            .bind(&route.prefix)
            .bind(&stored_config)
            .bind(sealed.as_deref())
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let others: Vec<(String, String)> =
                sqlx::query("SELECT id, prefix FROM proxy_routes WHERE id <> $1")
                    .bind(&route.id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
            let clash = if inserted.rows_affected() == 0 {
                Some((route.id.clone(), route.prefix.clone()))
            } else {
                others.into_iter().find(|(_, p)| overlaps(p, &route.prefix))
            };
            if clash.is_none() {
                tx.commit().await?;
            }
            clash
        });
        if let Some((id, _)) = clashing {
            return Err(clash(&id, &route.id));
        }
        crate::events::record(
&self.ledger,
            &route.org,
            EventType::RouteCreated,
            json!({"route": route.id, "prefix": route.prefix, "upstream": route.upstream.as_ref().map(url::Url::as_str),
                   "kind": route.kind.as_str(), "credential_header": route.credential_header,
                   "credential_version": version, "actor": actor}),
        )
        .await?;
        self.reload().await?;
        self.get(Some(&route.org), &route.id).await
    }

    /// Deletes `org`'s route `id` (a configured route cannot be deleted through the API).
    pub async fn delete(&self, org: &str, id: &str, actor: &str) -> EnforceResult<()> {
        self.refuse_configured(org, id)?;
        let deleted = with_pool!(&self.store, pool => {
            sqlx::query("DELETE FROM proxy_routes WHERE id = $1 AND org_id = $2")
                .bind(id)
                .bind(org)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(EnforceError::not_found(format!("route {id} not found")));
        }
        crate::events::record(
            &self.ledger,
            org,
            EventType::RouteDeleted,
            json!({"route": id, "actor": actor}),
        )
        .await?;
        self.reload().await?;
        Ok(())
    }

    /// Replaces the upstream credential of `org`'s route `id` (the next version).
    pub async fn rotate_credential(
        &self,
        org: &str,
        id: &str,
        credential: &str,
        actor: &str,
    ) -> EnforceResult<RouteView> {
        self.refuse_configured(org, id)?;
        credential_value(credential)?;
        let current = self.get(Some(org), id).await?;
        let Some(header) = current.credential_header else {
            return Err(EnforceError::invalid(
                "invalid_route",
                "this route has no credentialHeader to inject a credential as",
            ));
        };
        let version = current.credential_version + 1;
        let sealed = seal(&self.master, id, version, credential)
            .map_err(|e| EnforceError::internal("sealing", e))?;
        let updated = with_pool!(&self.store, pool => {
            sqlx::query("UPDATE proxy_routes SET credential = $1, credential_version = $2, updated_at = $3 WHERE id = $4 AND org_id = $5 AND credential_version = $6")
                .bind(&sealed)
                .bind(version)
                .bind(unix_now())
                .bind(id)
                .bind(org)
                .bind(current.credential_version)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(EnforceError::conflict(
                "route_changed",
                "the route changed meanwhile; retry",
            ));
        }
        crate::events::record(
&self.ledger,
            org,
            EventType::RouteCredentialRotated,
            json!({"route": id, "credential_header": header, "credential_version": version, "actor": actor}),
        )
        .await?;
        self.reload().await?;
        self.get(Some(org), id).await
    }

    fn refuse_configured(&self, org: &str, id: &str) -> EnforceResult<()> {
        if self
            .configured
            .iter()
            .any(|r| r.route.id == id && r.route.org == org)
        {
            return Err(EnforceError::conflict(
                "route_configured",
                format!("route {id} comes from the configuration file; change it there"),
            ));
        }
        Ok(())
    }

    /// The route's upstream credential, opened for one forwarded request.
    pub fn credential(&self, route: &StoredRoute) -> EnforceResult<Option<Credential>> {
        let (Some((version, sealed)), Some(header)) =
            (&route.credential, &route.route.credential_header)
        else {
            return Ok(None);
        };
        let value = self
            .master
            .open_for(
                CREDENTIAL_PURPOSE,
                &[&route.route.id, &version.to_string()],
                sealed,
            )
            .map_err(|e| EnforceError::internal("route credential", e))?;
        let value =
            String::from_utf8(value).map_err(|e| EnforceError::internal("route credential", e))?;
        Ok(Some(Credential {
            header: header.clone(),
            value,
        }))
    }

    /// Records the upstream outcome of a proxied call, bound to the decisions it forwarded.
    pub async fn record_outcome(&self, org: &str, outcome: serde_json::Value) -> EnforceResult<()> {
        crate::events::record(&self.ledger, org, EventType::ProxyCompleted, outcome).await?;
        Ok(())
    }
}

fn seal(master: &MasterKey, route: &str, version: i64, value: &str) -> Result<Vec<u8>, String> {
    master.seal_for(
        CREDENTIAL_PURPOSE,
        &[route, &version.to_string()],
        value.as_bytes(),
    )
}

fn clash(existing: &str, new: &str) -> EnforceError {
    EnforceError::conflict(
        "route_exists",
        format!("route {new} clashes with route {existing}: ids are unique and prefixes may not overlap"),
    )
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn prefixes_overlap_on_segment_boundaries_only() {
        assert!(overlaps("/a", "/a"));
        assert!(overlaps("/a", "/a/b"));
        assert!(overlaps("/a/b", "/a"));
        assert!(!overlaps("/a", "/ab"));
        assert!(!overlaps("/a/b", "/a/c"));
    }
}
