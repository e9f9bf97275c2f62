//! Read side of the ledger: entries, checkpoints, keys and proofs, straight from the store.
//!
//! Needs no signing key; used by the HTTP API, `sck ledger export|verify --db|proof` and tests.
//! Proofs are built from stored complete-subtree hashes (O(log n) rows, no rescan); a root,
//! proof or frontier reads the head and all its nodes in two statements over one connection.

use std::collections::HashMap;

use crate::entry::{genesis_prev, origin};
use crate::error::{LedgerError, Result};
use crate::log_store::{Conn, Head, KeyRecord, StoredCheckpoint};
use crate::merkle::{
    consistency_proof, inclusion_proof, required_nodes, root, Frontier, Hash, NodeId, ProofError,
};
use crate::store::Store;

/// An inclusion proof as served to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index.
    pub seq: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// The leaf hash of `seq`.
    pub leaf_hash: Hash,
    /// Audit path, deepest first.
    pub proof: Vec<Hash>,
    /// The root at `size`.
    pub root: Hash,
}

/// A consistency proof as served to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// The proof hashes.
    pub proof: Vec<Hash>,
    /// Root at `from`.
    pub from_root: Hash,
    /// Root at `to`.
    pub to_root: Hash,
}

/// Reads one deployment's logs.
#[derive(Debug, Clone)]
pub struct LogReader {
    store: Store,
    deployment: String,
}

/// Runs `$body` with `$conn` bound to a pooled connection of either backend.
macro_rules! with_conn {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store {
            Store::Sqlite(pool) => {
                let mut pc = pool.acquire().await?;
                let mut $conn = Conn::Sqlite(&mut *pc);
                $body
            }
            Store::Postgres(pool) => {
                let mut pc = pool.acquire().await?;
                let mut $conn = Conn::Postgres(&mut *pc);
                $body
            }
        }
    };
}

impl LogReader {
    /// A reader over `store` for logs of `deployment`.
    pub fn new(store: Store, deployment: &str) -> Self {
        LogReader {
            store,
            deployment: deployment.to_owned(),
        }
    }

    /// The store read from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The origin string of `org`'s log.
    pub fn origin(&self, org: &str) -> String {
        origin(&self.deployment, org)
    }

    /// The genesis `prev` of `org`'s log.
    pub fn genesis(&self, org: &str) -> Hash {
        genesis_prev(&self.origin(org))
    }

    async fn head(&self, org: &str) -> Result<Head> {
        let head = with_conn!(&self.store, c => c.find_head(org).await?);
        head.ok_or_else(|| LedgerError::UnknownLog(org.to_owned()))
    }

    /// Current number of entries in `org`'s log (0 when the log does not exist).
    pub async fn size(&self, org: &str) -> Result<u64> {
        match self.head(org).await {
            Ok(h) => Ok(h.size),
            Err(LedgerError::UnknownLog(_)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` entries from `from`, as (seq, leaf bytes, stored leaf hash).
    pub async fn entries(
        &self,
        org: &str,
        from: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>, Hash)>> {
        let head = self.head(org).await?;
        with_conn!(&self.store, c => c.entries(head.log_id, from, limit).await)
    }

    /// Checkpoints with `from <= size <= to`.
    pub async fn checkpoints(
        &self,
        org: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredCheckpoint>> {
        let head = self.head(org).await?;
        with_conn!(&self.store, c => c.checkpoints(head.log_id, from, to).await)
    }

    /// The latest checkpoint, if any.
    pub async fn latest_checkpoint(&self, org: &str) -> Result<Option<StoredCheckpoint>> {
        let head = self.head(org).await?;
        let last = with_conn!(&self.store, c => c.last_checkpoint(head.log_id).await?);
        match last {
            None => Ok(None),
            Some((size, _)) => Ok(self.checkpoints(org, size, size).await?.pop()),
        }
    }

    /// Every published checkpoint key with its validity window.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>> {
        with_conn!(&self.store, c => c.keys().await)
    }

    /// Reads `org`'s head, then the nodes `ids` names for it, over one pooled connection
    /// (each acquisition is a round trip of its own). `ids` also checks the request against
    /// the head.
    async fn head_and_nodes(
        &self,
        org: &str,
        ids: impl FnOnce(&Head) -> Result<Vec<NodeId>>,
    ) -> Result<HashMap<NodeId, Hash>> {
        with_conn!(&self.store, c => {
            let head = c
                .find_head(org)
                .await?
                .ok_or_else(|| LedgerError::UnknownLog(org.to_owned()))?;
            let ids = ids(&head)?;
            c.nodes(head.log_id, &ids).await
        })
    }

    /// The Merkle root of the first `size` entries.
    pub async fn root_at(&self, org: &str, size: u64) -> Result<Hash> {
        let nodes = self
            .head_and_nodes(org, |head| {
                within(head, size)?;
                Ok(required_nodes(|s| root(s, size).map(|_| ())))
            })
            .await?;
        Ok(root(&mut |id| nodes.get(&id).copied(), size)?)
    }

    /// The inclusion proof of `seq` in the tree of `size` entries.
    pub async fn inclusion_proof(&self, org: &str, seq: u64, size: u64) -> Result<InclusionProof> {
        let nodes = self
            .head_and_nodes(org, |head| {
                within(head, size)?;
                if seq >= size {
                    return Err(ProofError::IndexOutOfRange { index: seq, size }.into());
                }
                let mut ids = required_nodes(|s| inclusion_proof(s, seq, size).map(|_| ()));
                ids.extend(required_nodes(|s| root(s, size).map(|_| ())));
                ids.push(NodeId {
                    level: 0,
                    index: seq,
                });
                ids.sort_unstable();
                ids.dedup();
                Ok(ids)
            })
            .await?;
        let mut src = |id: NodeId| nodes.get(&id).copied();
        let proof = inclusion_proof(&mut src, seq, size)?;
        let r = root(&mut src, size)?;
        let leaf_hash = src(NodeId {
            level: 0,
            index: seq,
        })
        .ok_or(ProofError::MissingNode {
            level: 0,
            index: seq,
        })?;
        Ok(InclusionProof {
            seq,
            size,
            leaf_hash,
            proof,
            root: r,
        })
    }

    /// The consistency proof between sizes `from` and `to`.
    pub async fn consistency_proof(
        &self,
        org: &str,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof> {
        let nodes = self
            .head_and_nodes(org, |head| {
                within(head, to)?;
                if from > to {
                    return Err(ProofError::InvalidSizes {
                        first: from,
                        second: to,
                    }
                    .into());
                }
                let mut ids = required_nodes(|s| consistency_proof(s, from, to).map(|_| ()));
                ids.extend(required_nodes(|s| root(s, from).map(|_| ())));
                ids.extend(required_nodes(|s| root(s, to).map(|_| ())));
                ids.sort_unstable();
                ids.dedup();
                Ok(ids)
            })
            .await?;
        let mut src = |id: NodeId| nodes.get(&id).copied();
        Ok(ConsistencyProof {
            from,
            to,
            proof: consistency_proof(&mut src, from, to)?,
            from_root: root(&mut src, from)?,
            to_root: root(&mut src, to)?,
        })
    }

    /// The frontier (compact range) of the first `size` entries, for partial exports.
    pub async fn frontier(&self, org: &str, size: u64) -> Result<Frontier> {
        let ids = Frontier::node_ids(size);
        let nodes = self
            .head_and_nodes(org, |head| {
                within(head, size)?;
                Ok(ids.clone())
            })
            .await?;
        let hashes = ids
            .iter()
            .map(|id| {
                nodes.get(id).copied().ok_or(ProofError::MissingNode {
                    level: id.level,
                    index: id.index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Frontier::from_nodes(size, hashes)?)
    }
}

/// Refuses a tree size beyond the log's.
fn within(head: &Head, size: u64) -> Result<()> {
    if size > head.size {
        return Err(LedgerError::OutOfRange(format!(
            "size {size} exceeds the log size {}",
            head.size
        )));
    }
    Ok(())
}
