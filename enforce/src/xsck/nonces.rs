//! The replay store: a (ANS ID, nonce) pair is accepted once within its window.
//!
//! Pairs live in the `xsck_nonces` table, so every replica sharing a PostgreSQL database (and
//! a restarted server on SQLite) sees them. Inserts are group-committed by one writer task per
//! process: concurrent verifications share a transaction (one disk sync on SQLite), each
//! learning from its own `INSERT ... ON CONFLICT` whether the pair was fresh. A row whose
//! window has passed is taken over by the next use; a periodic sweep deletes old rows.
//! The writer starts with the first claim; the sweep with [`NonceStore::spawn_sweep`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sck_ledger::store::BeginWrite;
use sck_ledger::store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::db::with_pool;

/// Most inserts committed in one transaction.
const MAX_BATCH: usize = 256;

struct Claim {
    ans_id: String,
    nonce: String,
    now: i64,
    expires_at: i64,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// Handle to the replay store's writer.
#[derive(Debug, Clone)]
pub struct NonceStore {
    store: Store,
    writer: Arc<OnceLock<mpsc::Sender<Claim>>>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claim")
    }
}

const CLAIM_SQL: &str = "INSERT INTO xsck_nonces (ans_id, nonce, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (ans_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE xsck_nonces.expires_at <= $4";

impl NonceStore {
    /// The replay store on `store` (nothing started yet).
    pub fn new(store: Store) -> NonceStore {
        NonceStore {
            store,
            writer: Arc::default(),
        }
    }

    /// The writer task's queue, starting the task on first use.
    fn writer(&self) -> &mpsc::Sender<Claim> {
        self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Claim>(8192);
            tokio::spawn(write_batches(self.store.clone(), rx));
            tx
        })
    }

    /// Starts the sweep that deletes rows whose window has passed, every minute.
    pub fn spawn_sweep(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let swept: Result<_, sqlx::Error> = with_pool!(&store, pool => {
                    sqlx::query("DELETE FROM xsck_nonces WHERE expires_at <= $1")
                        .bind(now)
                        .execute(pool)
                        .await
                        .map(|_| ())
                });
                if let Err(e) = swept {
                    tracing::warn!(error = %e, "sweeping expired X-SCK nonces");
                }
            }
        });
    }

    /// Records the pair until `now + window`; `Ok(false)` if it is already recorded and live.
    pub async fn claim(
        &self,
        ans_id: &str,
        nonce: &str,
        now: i64,
        window: i64,
    ) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.writer()
            .send(Claim {
                ans_id: ans_id.to_owned(),
                nonce: nonce.to_owned(),
                now,
                expires_at: now.saturating_add(window),
                reply,
            })
            .await
            .map_err(|_| "nonce writer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "nonce writer stopped".to_owned())?
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Claim>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result: Result<Vec<bool>, sqlx::Error> = with_pool!(&store, pool => {
            async {
                let mut tx = pool.begin_write().await?;
                let mut fresh = Vec::with_capacity(batch.len());
                for claim in &batch {
                    let done = sqlx::query(CLAIM_SQL)
                        .bind(&claim.ans_id)
                        .bind(&claim.nonce)
                        .bind(claim.expires_at)
                        .bind(claim.now)
                        .execute(&mut *tx)
                        .await?;
                    fresh.push(done.rows_affected() == 1);
                }
                tx.commit().await?;
                Ok(fresh)
            }
            .await
        });
        match result {
            Ok(fresh) => {
                for (claim, fresh) in batch.drain(..).zip(fresh) {
                    let _ = claim.reply.send(Ok(fresh));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "recording X-SCK nonces");
                for claim in batch.drain(..) {
                    let _ = claim.reply.send(Err("replay store unavailable".into()));
                }
            }
        }
    }
}
