//! Service accounts: create, list, rotate and revoke them (admin operations, ledgered), and
//! authenticate one by its secret (the token endpoint). See the module docs of [`super`] for
//! the invariants.

use std::net::IpAddr;

use ipnet::IpNet;
use rand::RngCore;
use sck_ledger::entry::{Event, EventType};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::Row;
use subtle::ConstantTimeEq;

use super::client_keys::{
    check_distinct, insert_key, key_event, key_exists, parse_key, ClientKeySpec, ClientKeyView,
};
use super::OAuth;
use crate::clock::unix_now;
use crate::db::{new_id, with_pool};
use crate::error::{EnforceError, EnforceResult};
use crate::tokens::{RevokeTarget, TokenService};

/// Prefix of the issuer a service account mints with (`client.<name>`).
const ISSUER_PREFIX: &str = "client.";

/// Longest service account name (its issuer's name must stay within 128 characters).
const MAX_NAME_LEN: usize = 128 - ISSUER_PREFIX.len();

/// Most entries of a source-address allowlist.
const MAX_SOURCE_RANGES: usize = 64;

/// What an admin asks for when creating a service account.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub loa_ceiling: i64,
    pub scopes: Vec<String>,
    /// Among the deployment's audiences; `None`: its own (`SCK_TOKENS_AUDIENCE`).
    pub audiences: Option<Vec<String>>,
    /// IP addresses or CIDR ranges; empty: any address.
    pub source_ranges: Vec<String>,
    /// Unix seconds after which the client authenticates no more.
    pub expires_at: Option<i64>,
    /// Public keys for `private_key_jwt`; with any, the client gets no secret (a rotation can
    /// add one).
    pub keys: Vec<ClientKeySpec>,
}

/// A service account as the API lists it (no secrets).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    pub client_id: String,
    pub organization_id: String,
    pub name: String,
    pub loa_ceiling: u8,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub source_ranges: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub secrets: Vec<SecretView>,
    /// Live `private_key_jwt` keys.
    pub keys: Vec<ClientKeyView>,
}

/// One secret of a service account as the API lists it: its id and lifetime only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub secret_id: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A secret just generated: shown this once.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSecret {
    pub secret_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

/// A client whose authentication succeeded: what its grants may give.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub org: String,
    pub loa_ceiling: u8,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub expires_at: Option<i64>,
}

/// The one refusal of client authentication (RFC 6749 §5.2), whatever failed.
pub fn invalid_client() -> EnforceError {
    EnforceError::unauthorized("invalid_client", "client authentication failed")
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("sckc_{}", hex::encode(bytes));
    let digest = sha256_hex(&secret);
    (secret, digest)
}

fn unix_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

fn parse_ranges(ranges: &[String]) -> EnforceResult<Vec<IpNet>> {
    if ranges.len() > MAX_SOURCE_RANGES {
        return Err(EnforceError::invalid(
            "invalid_request",
            format!("sourceRanges holds at most {MAX_SOURCE_RANGES} entries"),
        ));
    }
    ranges
        .iter()
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    EnforceError::invalid(
                        "invalid_request",
                        format!("sourceRanges: {text:?} is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

fn json_list(text: &str) -> EnforceResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| EnforceError::internal("read service account", e))
}

fn to_json(list: &[String]) -> EnforceResult<String> {
    serde_json::to_string(list).map_err(|e| EnforceError::internal("service account", e))
}

/// Whether `address` is in one of `ranges` (an IPv4-mapped IPv6 address counts as IPv4).
fn allowed(ranges: &[IpNet], address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    };
    ranges.iter().any(|range| range.contains(&address))
}

/// Writes the row of a live client of `org` first in a transaction of either backend (in
/// `with_pool!` bodies), which serialises every change of that client; `false` if there is no
/// such live client.
macro_rules! lock_live_client {
    ($tx:expr, $client_id:expr, $org:expr, $now:expr) => {
        sqlx::query(
            "UPDATE oauth_clients SET updated_at = $1 WHERE client_id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind($now)
        .bind($client_id)
        .bind($org)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1
    };
}
pub(super) use lock_live_client;

/// The refusal of a change of a client that is not a live one of the acting org.
pub(super) fn no_live_client() -> EnforceError {
    EnforceError::not_found("no live service account with this client id in this organization")
}

/// Inserts a live secret row inside a transaction of either backend (in `with_pool!` bodies).
macro_rules! insert_secret {
    ($tx:expr, $secret_id:expr, $client_id:expr, $digest:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO oauth_client_secrets (secret_id, client_id, secret_sha256, created_at, created_us) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($secret_id)
        .bind($client_id)
        .bind($digest)
        .bind($now)
        .bind(unix_micros())
        .execute(&mut *$tx)
        .await?
    };
}

impl OAuth {
    pub(super) async fn record(
        &self,
        org: &str,
        kind: EventType,
        body: Value,
    ) -> EnforceResult<()> {
        let event =
            Event::new(kind, body).map_err(|e| EnforceError::internal("ledger event", e))?;
        self.ledger.append(org, event).await?;
        Ok(())
    }

    /// The token service grants mint with.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// Creates a service account of `org` (the caller has checked the org exists and may be
    /// acted on) with its issuer, its keys, and its first secret if it has no key.
    pub async fn create(
        &self,
        org: &str,
        request: &NewClient,
        actor: &str,
    ) -> EnforceResult<(ClientView, Option<NewSecret>)> {
        crate::lifecycle::check_name("name", &request.name)?;
        if request.name.len() > MAX_NAME_LEN {
            return Err(EnforceError::invalid(
                "invalid_request",
                format!("name is at most {MAX_NAME_LEN} characters"),
            ));
        }
        let settings = self.tokens.settings();
        let audiences = request
            .audiences
            .clone()
            .unwrap_or_else(|| vec![settings.verify.audience.clone()]);
        if audiences.is_empty() || audiences.iter().any(|a| !settings.audiences.contains(a)) {
            return Err(EnforceError::invalid(
                "invalid_request",
                format!(
                    "audiences must be among this deployment's {:?} (SCK_TOKENS_AUDIENCE, SCK_TOKENS_EXTRA_AUDIENCES)",
                    settings.audiences
                ),
            ));
        }
        let ranges = parse_ranges(&request.source_ranges)?;
        let ranges: Vec<String> = ranges.iter().map(IpNet::to_string).collect();
        let keys = request
            .keys
            .iter()
            .map(parse_key)
            .collect::<EnforceResult<Vec<_>>>()?;
        check_distinct(&keys)?;
        let now = unix_now();
        if request.expires_at.is_some_and(|at| at <= now) {
            return Err(EnforceError::invalid(
                "invalid_request",
                "expiresAt must be in the future",
            ));
        }
        let issuer = self
            .tokens
            .create_issuer(
                org,
                &format!("{ISSUER_PREFIX}{}", request.name),
                request.loa_ceiling,
                &request.scopes,
                None,
            )
            .await
            .map_err(|e| match e.code {
                "issuer_exists" => EnforceError::conflict(
                    "client_exists",
                    format!(
                        "organization {org} already has a service account named {}",
                        request.name
                    ),
                ),
                _ => e,
            })?;
        let secret = keys.is_empty().then(|| {
            let (secret, digest) = generate_secret();
            (new_id("cs"), secret, digest)
        });
        let (audiences_json, ranges_json) = (to_json(&audiences)?, to_json(&ranges)?);
        with_pool!(&self.store, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO oauth_clients (client_id, org_id, name, audiences, source_cidrs, expires_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&issuer.id)
            .bind(org)
            .bind(&request.name)
            .bind(&audiences_json)
            .bind(&ranges_json)
            .bind(request.expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some((secret_id, _, digest)) = &secret {
                insert_secret!(tx, secret_id, &issuer.id, digest, now);
            }
            for key in &keys {
                insert_key!(tx, &issuer.id, key, now).map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => key_exists(&key.kid),
                    e => e.into(),
                })?;
            }
            tx.commit().await?;
        });
        let secret = secret.map(|(secret_id, client_secret, _)| NewSecret {
            secret_id,
            client_secret,
        });
        self.record(
            org,
            EventType::ClientCreated,
            json!({
                "client_id": issuer.id, "name": request.name, "loa_ceiling": issuer.loa_ceiling,
                "scopes": issuer.scopes, "audiences": audiences, "source_ranges": ranges,
                "expires_at": request.expires_at,
                "secret_id": secret.as_ref().map(|s| &s.secret_id),
                "keys": keys.iter().map(key_event).collect::<Vec<_>>(), "actor": actor,
            }),
        )
        .await?;
        let view = self.get(org, &issuer.id).await?;
        Ok((view, secret))
    }

    /// Adds a secret to a live client of `org`; if it then had three live secrets, retires
    /// `retire` (or the oldest). `retire` may also name a secret to retire when fewer are live.
    pub async fn rotate(
        &self,
        org: &str,
        client_id: &str,
        retire: Option<&str>,
        actor: &str,
    ) -> EnforceResult<(ClientView, NewSecret, Vec<String>)> {
        let (secret, digest) = generate_secret();
        let secret_id = new_id("cs");
        let now = unix_now();
        let outcome: Result<Vec<String>, EnforceError> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin().await?;
            if !lock_live_client!(tx, client_id, org, now) {
                Err(no_live_client())
            } else {
                let live: Vec<String> = sqlx::query(
                    "SELECT secret_id FROM oauth_client_secrets WHERE client_id = $1 AND retired_at IS NULL \
                     AND client_id IN (SELECT client_id FROM oauth_clients WHERE org_id = $2) ORDER BY created_us, secret_id",
                )
                .bind(client_id)
                .bind(org)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
                if retire.is_some_and(|r| !live.iter().any(|s| s == r)) {
                    Err(EnforceError::not_found("retireSecretId is not a live secret of this client"))
                } else {
                    let retired: Vec<String> = match retire {
                        Some(r) => vec![r.to_owned()],
                        None if live.len() >= 2 => vec![live[0].clone()],
                        None => Vec::new(),
                    };
                    for id in &retired {
                        sqlx::query(
                            "UPDATE oauth_client_secrets SET retired_at = $1 WHERE secret_id = $2 AND client_id = $3 \
                             AND client_id IN (SELECT client_id FROM oauth_clients WHERE org_id = $4)",
                        )
                        .bind(now)
                        .bind(id)
                        .bind(client_id)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?;
                    }
                    insert_secret!(tx, &secret_id, client_id, &digest, now);
                    tx.commit().await?;
                    Ok(retired)
                }
            }
        });
        let retired = outcome?;
        self.record(
            org,
            EventType::ClientRotated,
            json!({"client_id": client_id, "secret_id": secret_id, "retired": retired, "actor": actor}),
        )
        .await?;
        let view = self.get(org, client_id).await?;
        Ok((
            view,
            NewSecret {
                secret_id,
                client_secret: secret,
            },
            retired,
        ))
    }

    /// Revokes a client of `org`: it authenticates no more, and every unexpired token it was
    /// issued is revoked (on every replica, as any revocation).
    pub async fn revoke(
        &self,
        org: &str,
        client_id: &str,
        actor: &str,
    ) -> EnforceResult<ClientView> {
        let now = unix_now();
        let revoked = with_pool!(&self.store, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE oauth_clients SET revoked_at = $1, updated_at = $1 WHERE client_id = $2 AND org_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(client_id)
            .bind(org)
            .execute(&mut *tx)
            .await?;
            // Not a live client of this org: dropping the transaction rolls it back.
            let revoked = done.rows_affected() == 1;
            if revoked {
                sqlx::query(
                    "UPDATE oauth_client_secrets SET retired_at = $1 WHERE client_id = $2 AND retired_at IS NULL \
                     AND client_id IN (SELECT client_id FROM oauth_clients WHERE org_id = $3)",
                )
                .bind(now)
                .bind(client_id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            revoked
        });
        if !revoked {
            return Err(no_live_client());
        }
        let live_tokens: Vec<String> = with_pool!(&self.store, pool => {
            sqlx::query("SELECT jti FROM issued_tokens WHERE issuer_id = $1 AND org_id = $2 AND expires_at >= $3")
                .bind(client_id)
                .bind(org)
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect()
        });
        let mut tokens_revoked = 0;
        for jti in live_tokens {
            if self
                .tokens
                .revoke(&RevokeTarget::TokenId(jti), Some(org), actor)
                .await?
            {
                tokens_revoked += 1;
            }
        }
        self.record(
            org,
            EventType::ClientRevoked,
            json!({"client_id": client_id, "tokens_revoked": tokens_revoked, "actor": actor}),
        )
        .await?;
        self.get(org, client_id).await
    }

    /// `org`'s client `client_id` (404 for another org's, as for an unknown one).
    pub async fn get(&self, org: &str, client_id: &str) -> EnforceResult<ClientView> {
        self.views(Some(org), Some(client_id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                EnforceError::not_found(
                    "no service account with this client id in this organization",
                )
            })
    }

    /// Service accounts of `org` (every org when `None`), by org and name.
    pub async fn list(&self, org: Option<&str>) -> EnforceResult<Vec<ClientView>> {
        self.views(org, None).await
    }

    async fn views(
        &self,
        org: Option<&str>,
        client_id: Option<&str>,
    ) -> EnforceResult<Vec<ClientView>> {
        let (clients, secrets) = with_pool!(&self.store, pool => {
            let clients = sqlx::query(
                "SELECT c.client_id, c.org_id, c.name, c.audiences, c.source_cidrs, c.expires_at, c.created_at, \
                 c.revoked_at, i.loa_ceiling, i.scopes FROM oauth_clients c JOIN token_issuers i ON i.id = c.client_id \
                 WHERE (CAST($1 AS TEXT) IS NULL OR c.org_id = $1) AND (CAST($2 AS TEXT) IS NULL OR c.client_id = $2) \
                 ORDER BY c.org_id, c.name",
            )
            .bind(org)
            .bind(client_id)
            .fetch_all(pool)
            .await?;
            let secrets = sqlx::query(
                "SELECT s.client_id, s.secret_id, s.created_at, s.retired_at FROM oauth_client_secrets s \
                 JOIN oauth_clients c ON c.client_id = s.client_id \
                 WHERE (CAST($1 AS TEXT) IS NULL OR c.org_id = $1) AND (CAST($2 AS TEXT) IS NULL OR c.client_id = $2) \
                 ORDER BY s.created_us, s.secret_id",
            )
            .bind(org)
            .bind(client_id)
            .fetch_all(pool)
            .await?;
            let mut views = Vec::with_capacity(clients.len());
            for row in clients {
                views.push(ClientView {
                    client_id: row.try_get("client_id")?,
                    organization_id: row.try_get("org_id")?,
                    name: row.try_get("name")?,
                    loa_ceiling: u8::try_from(row.try_get::<i64, _>("loa_ceiling")?).unwrap_or(0),
                    scopes: json_list(&row.try_get::<String, _>("scopes")?)?,
                    audiences: json_list(&row.try_get::<String, _>("audiences")?)?,
                    source_ranges: json_list(&row.try_get::<String, _>("source_cidrs")?)?,
                    expires_at: row.try_get("expires_at")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    secrets: Vec::new(),
                    keys: Vec::new(),
                });
            }
            let mut listed = Vec::with_capacity(secrets.len());
            for row in secrets {
                listed.push((
                    row.try_get::<String, _>("client_id")?,
                    SecretView {
                        secret_id: row.try_get("secret_id")?,
                        created_at: row.try_get("created_at")?,
                        retired_at: row.try_get("retired_at")?,
                    },
                ));
            }
            (views, listed)
        });
        let mut views = clients;
        for (owner, secret) in secrets {
            if let Some(view) = views.iter_mut().find(|v| v.client_id == owner) {
                view.secrets.push(secret);
            }
        }
        for (owner, key) in self.key_views(org, client_id).await? {
            if let Some(view) = views.iter_mut().find(|v| v.client_id == owner) {
                view.keys.push(key);
            }
        }
        Ok(views)
    }

    /// Authenticates `client_id` by `secret` from `peer` (`None`: unknown, which no allowlist
    /// admits). Every failure is the same [`invalid_client`].
    pub async fn authenticate_secret(
        &self,
        client_id: &str,
        secret: &str,
        peer: Option<IpAddr>,
    ) -> EnforceResult<AuthenticatedClient> {
        if client_id.is_empty() || client_id.len() > 128 || secret.len() > 256 {
            return Err(invalid_client());
        }
        let digests: Vec<String> = with_pool!(&self.store, pool => {
            sqlx::query(
                "SELECT s.secret_sha256 FROM oauth_client_secrets s JOIN oauth_clients c ON c.client_id = s.client_id \
                 WHERE s.client_id = $1 AND s.retired_at IS NULL AND c.revoked_at IS NULL",
            )
            .bind(client_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
        });
        let presented = sha256_hex(secret);
        let matched = digests.iter().fold(false, |found, stored| {
            found | bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
        });
        if !matched {
            return Err(invalid_client());
        }
        self.live_client(client_id, peer).await
    }

    /// The live client `client_id` if it has not expired and `peer` is allowed.
    pub(super) async fn live_client(
        &self,
        client_id: &str,
        peer: Option<IpAddr>,
    ) -> EnforceResult<AuthenticatedClient> {
        let row = with_pool!(&self.store, pool => {
            match sqlx::query(
                "SELECT c.org_id, c.audiences, c.source_cidrs, c.expires_at, i.loa_ceiling, i.scopes \
                 FROM oauth_clients c JOIN token_issuers i ON i.id = c.client_id AND i.org_id = c.org_id \
                 WHERE c.client_id = $1 AND c.revoked_at IS NULL",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some((
                    row.try_get::<String, _>("org_id")?,
                    row.try_get::<String, _>("audiences")?,
                    row.try_get::<String, _>("source_cidrs")?,
                    row.try_get::<Option<i64>, _>("expires_at")?,
                    row.try_get::<i64, _>("loa_ceiling")?,
                    row.try_get::<String, _>("scopes")?,
                )),
                None => None,
            }
        });
        let (org, audiences, ranges, expires_at, loa, scopes) = row.ok_or_else(invalid_client)?;
        if expires_at.is_some_and(|at| at <= unix_now()) {
            return Err(invalid_client());
        }
        let ranges = parse_ranges(&json_list(&ranges)?)?;
        if !ranges.is_empty() && !peer.is_some_and(|address| allowed(&ranges, address)) {
            return Err(invalid_client());
        }
        Ok(AuthenticatedClient {
            client_id: client_id.to_owned(),
            org,
            loa_ceiling: u8::try_from(loa).unwrap_or(0),
            scopes: json_list(&scopes)?,
            audiences: json_list(&audiences)?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_match_addresses_and_ranges() {
        let ranges = parse_ranges(&["10.1.0.0/16".into(), "2001:db8::1".into()]).unwrap();
        assert!(allowed(&ranges, "10.1.200.3".parse().unwrap()));
        assert!(allowed(&ranges, "::ffff:10.1.0.9".parse().unwrap()));
        assert!(allowed(&ranges, "2001:db8::1".parse().unwrap()));
        assert!(!allowed(&ranges, "10.2.0.1".parse().unwrap()));
        assert!(!allowed(&ranges, "2001:db8::2".parse().unwrap()));
        assert!(parse_ranges(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_ranges(&["example.com".into()]).is_err());
    }

    #[test]
    fn secrets_are_random_and_only_their_digest_is_kept() {
        let (a, digest) = generate_secret();
        let (b, _) = generate_secret();
        assert_ne!(a, b);
        assert_eq!(digest, sha256_hex(&a));
        assert!(!digest.contains(&a[5..]));
    }
}
