//! The ledger handle the rest of sck holds: open, append, checkpoint, rotate keys, shut down.
//!
//! [`Ledger::append`] returns a [`Receipt`] only after the entry is durably committed (it is
//! answered by the single writer task in [`crate::writer`], which group-commits). Reads and
//! proofs go through [`Ledger::reader`].

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::entry::{format_timestamp, Event};
use crate::error::{LedgerError, Result};
use crate::keys::LedgerKey;
use crate::log_store::{Conn, KeyRecord, StoredCheckpoint};
use crate::reader::LogReader;
use crate::schema::MIGRATIONS;
use crate::store::BeginWrite;
use crate::store::Store;
use crate::writer::{Command, Receipt, Writer, WriterConfig};

/// Queue length in front of the writer task.
const QUEUE_DEPTH: usize = 65_536;

/// A running ledger: a writer task plus a reader.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Command>,
    reader: LogReader,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

fn key_record(key: &LedgerKey, from: &str) -> KeyRecord {
    KeyRecord {
        name: key.name().to_owned(),
        key_id: hex::encode(key.id()),
        verifier: key.verifier().to_string(),
        valid_from: from.to_owned(),
        valid_until: None,
    }
}

impl Ledger {
    /// Starts a ledger on `store` (running the ledger migrations) signing with `key`.
    ///
    /// The key's public half is published in `ledger_keys` if it is new.
    pub async fn open(store: Store, key: LedgerKey, config: WriterConfig) -> Result<Ledger> {
        store.migrate(MIGRATIONS).await?;
        let now = format_timestamp(OffsetDateTime::now_utc());
        let record = key_record(&key, &now);
        match &store {
            Store::Sqlite(pool) => {
                let mut c = pool.acquire().await?;
                Conn::Sqlite(&mut c).insert_key(&record).await?
            }
            Store::Postgres(pool) => {
                let mut c = pool.acquire().await?;
                Conn::Postgres(&mut c).insert_key(&record).await?
            }
        }
        let reader = LogReader::new(store.clone(), &config.deployment);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = tokio::spawn(Writer::new(store, key, config).run(rx));
        Ok(Ledger {
            inner: Arc::new(Inner {
                tx,
                reader,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Appends `event` to `org`'s log; returns once it is durably committed.
    pub async fn append(&self, org: &str, event: Event) -> Result<Receipt> {
        let started = std::time::Instant::now();
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Append {
                org: org.to_owned(),
                event,
                reply,
            })
            .await
            .map_err(|_| LedgerError::Closed)?;
        let receipt = rx.await.map_err(|_| LedgerError::Closed)?;
        metrics::histogram!("sck_ledger_append_seconds").record(started.elapsed().as_secs_f64());
        receipt
    }

    /// Signs a checkpoint of `org` now (if it has unsigned entries).
    pub async fn checkpoint(&self, org: &str) -> Result<Option<StoredCheckpoint>> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Checkpoint {
                org: org.to_owned(),
                reply,
            })
            .await
            .map_err(|_| LedgerError::Closed)?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// Rotates the signing key: publishes `key`, closes the validity window of the others, and
    /// signs every later checkpoint with `key`. Old public keys stay published.
    pub async fn rotate_key(&self, key: LedgerKey) -> Result<()> {
        let now = format_timestamp(OffsetDateTime::now_utc());
        let record = key_record(&key, &now);
        match self.inner.reader.store() {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                let mut c = Conn::Sqlite(&mut tx);
                c.insert_key(&record).await?;
                c.retire_keys_except(&record.verifier, &now).await?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                let mut c = Conn::Postgres(&mut tx);
                c.insert_key(&record).await?;
                c.retire_keys_except(&record.verifier, &now).await?;
                tx.commit().await?;
            }
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::SetKey { key, reply })
            .await
            .map_err(|_| LedgerError::Closed)?;
        rx.await.map_err(|_| LedgerError::Closed)
    }

    /// Reads entries, checkpoints, keys and proofs.
    pub fn reader(&self) -> &LogReader {
        &self.inner.reader
    }

    /// Commits everything queued, signs a final checkpoint of every touched log, and stops the
    /// writer. Later appends fail with [`LedgerError::Closed`].
    pub async fn shutdown(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .inner
            .tx
            .send(Command::Shutdown { reply })
            .await
            .is_ok();
        let result = if sent {
            rx.await.map_err(|_| LedgerError::Closed)?
        } else {
            Ok(())
        };
        if let Some(h) = self.inner.writer.lock().await.take() {
            let _ = h.await;
        }
        result
    }
}
