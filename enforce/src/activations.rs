//! Wakes waiters (OPA long polls) when any active bundle changes, on every replica.
//!
//! A process-wide counter in a `watch` channel is bumped on each change; waiters re-read the
//! state they care about. On PostgreSQL, changes are also published with `NOTIFY` on
//! [`CHANNEL`] and a listener task bumps the counter of every other replica, so a long poll on
//! replica B returns within about a second of an activation on replica A.

use sck_ledger::store::Store;
use tokio::sync::watch;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "sck_activations";

/// Fan-out of "something was activated" signals.
#[derive(Debug, Clone)]
pub struct ActivationHub {
    tx: watch::Sender<u64>,
    store: Store,
}

impl ActivationHub {
    /// A hub for `store`; it hears other replicas once [`Self::listen`] runs.
    pub fn new(store: Store) -> ActivationHub {
        let (tx, _) = watch::channel(0u64);
        ActivationHub { tx, store }
    }

    /// On PostgreSQL, starts listening for other replicas' changes (a no-op on SQLite).
    pub async fn listen(&self) -> Result<(), sqlx::Error> {
        if let Store::Postgres(pool) = &self.store {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(CHANNEL).await?;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                loop {
                    match listener.recv().await {
                        Ok(_) => {
                            tx.send_modify(|n| *n += 1);
                        }
                        Err(e) => {
                            // recv reconnects by itself; wake everyone so nothing is missed.
                            tracing::warn!(error = %e, "activation listener interrupted");
                            tx.send_modify(|n| *n += 1);
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        }
                    }
                }
            });
        }
        Ok(())
    }

    /// Announces a change of `org`/`name` to this and (on PostgreSQL) every other replica.
    pub async fn announce(&self, org: &str, name: &str) {
        self.tx.send_modify(|n| *n += 1);
        if let Store::Postgres(pool) = &self.store {
            let payload = format!("{org}/{name}");
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, "could not notify other replicas");
            }
        }
    }

    /// How many changes this replica has made or heard of: a reader that takes it before
    /// reading the active state knows its reading is current while this has not moved.
    pub fn generation(&self) -> u64 {
        *self.tx.borrow()
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
