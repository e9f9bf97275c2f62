//! RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and proof verifiers.
//!
//! This module never does I/O. Trees are addressed by *complete subtrees*: the node at
//! `(level, index)` is the root of leaves `index * 2^level .. (index + 1) * 2^level`. The store
//! keeps every complete subtree hash, so any proof is assembled from O(log n) stored nodes
//! through a [`NodeSource`]; [`required_nodes`] tells a store which nodes to fetch first.
//!
//! Verifiers are pure functions of bytes (`verify_inclusion`, `verify_consistency`) and follow
//! RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a proof did not verify or could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The sizes of a consistency proof are not `0 <= first <= second`.
    #[error("invalid consistency sizes {first} -> {second}")]
    InvalidSizes { first: u64, second: u64 },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The recomputed root does not match the expected root.
    #[error("recomputed root does not match")]
    RootMismatch,
    /// A node needed to build the proof is not available.
    #[error("tree node level {level} index {index} is missing")]
    MissingNode { level: u32, index: u64 },
}

/// SHA-256(0x00 || leaf bytes): the hash of one leaf.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// SHA-256(0x01 || left || right): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// SHA-256 of the empty string: the root of an empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The address of a complete subtree: `level` 0 is a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves.
    pub level: u32,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

/// Anything that can return the hash of a stored complete subtree.
pub trait NodeSource {
    /// The hash of the complete subtree `id`, or `None` when it is unknown.
    fn node(&mut self, id: NodeId) -> Option<Hash>;
}

impl<F: FnMut(NodeId) -> Option<Hash>> NodeSource for F {
    fn node(&mut self, id: NodeId) -> Option<Hash> {
        self(id)
    }
}

/// MTH(D[lo:hi]) from complete subtrees (every range reached by the RFC recursion is aligned).
fn range_hash(src: &mut dyn NodeSource, lo: u64, hi: u64) -> Result<Hash, ProofError> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let id = NodeId {
            level: n.trailing_zeros(),
            index: lo >> n.trailing_zeros(),
        };
        return src.node(id).ok_or(ProofError::MissingNode {
            level: id.level,
            index: id.index,
        });
    }
    let k = split_point(n);
    let left = range_hash(src, lo, lo + k)?;
    let right = range_hash(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the first `size` leaves.
pub fn root(src: &mut dyn NodeSource, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// RFC 9162 2.1.3.1 PATH(m, D[lo:hi]) appended to `out` (deepest hash first).
fn path(
    src: &mut dyn NodeSource,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, lo, lo + k, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        path(src, m - k, lo + k, hi, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// RFC 9162 2.1.4.1 SUBPROOF(m, D[lo:hi], b) appended to `out`.
fn subproof(
    src: &mut dyn NodeSource,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_hash(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, lo, lo + k, complete, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        subproof(src, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1).
pub fn inclusion_proof(
    src: &mut dyn NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

/// The consistency proof from size `first` to size `second` (RFC 9162 2.1.4.1).
///
/// Empty when `first == second` or `first == 0`.
pub fn consistency_proof(
    src: &mut dyn NodeSource,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    if first > second {
        return Err(ProofError::InvalidSizes { first, second });
    }
    let mut out = Vec::new();
    if first == 0 || first == second {
        return Ok(out);
    }
    subproof(src, first, 0, second, true, &mut out)?;
    Ok(out)
}

/// The nodes a store must fetch to run `build` (which calls the proof functions above).
pub fn required_nodes(
    build: impl FnOnce(&mut dyn NodeSource) -> Result<(), ProofError>,
) -> Vec<NodeId> {
    let mut ids = Vec::new();
    let mut recorder = |id: NodeId| {
        ids.push(id);
        Some([0u8; 32])
    };
    // The recorder never fails, so neither does `build` except on bad arguments, which the
    // real run reports again.
    let _ = build(&mut recorder);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Verifies an inclusion proof (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 2.1.4.2).
///
/// `first == second` requires an empty proof and equal roots; `first == 0` requires an empty
/// proof (every tree extends the empty tree).
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::InvalidSizes { first, second });
    }
    if first == 0 || first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if first == second && first_root != second_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != first_root || &sr != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree: the complete subtrees covering leaves `0..size`, largest first.
///
/// Appending a leaf touches only this frontier and yields the new complete subtrees to store,
/// which is what makes an append O(1) amortised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The frontier of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node ids of the frontier of a tree of `size` leaves, largest first.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                ids.push(NodeId {
                    level,
                    index: start >> level,
                });
                start += 1u64 << level;
            }
        }
        ids
    }

    /// Rebuilds a frontier from its node hashes (as listed by [`Frontier::node_ids`]).
    pub fn from_nodes(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let ids = Self::node_ids(size);
        if ids.len() != hashes.len() {
            return Err(ProofError::WrongLength);
        }
        Ok(Frontier {
            size,
            nodes: ids.into_iter().zip(hashes).collect(),
        })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier node hashes, largest subtree first.
    pub fn hashes(&self) -> Vec<Hash> {
        self.nodes.iter().map(|(_, h)| *h).collect()
    }

    /// Appends a leaf hash; returns every new complete subtree (the leaf itself first).
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut created = vec![(
            NodeId {
                level: 0,
                index: self.size,
            },
            leaf,
        )];
        self.nodes.push(created[0]);
        while self.nodes.len() >= 2 {
            let (rid, rh) = self.nodes[self.nodes.len() - 1];
            let (lid, lh) = self.nodes[self.nodes.len() - 2];
            if lid.level != rid.level {
                break;
            }
            self.nodes.truncate(self.nodes.len() - 2);
            let parent = (
                NodeId {
                    level: rid.level + 1,
                    index: rid.index / 2,
                },
                node_hash(&lh, &rh),
            );
            self.nodes.push(parent);
            created.push(parent);
        }
        self.size += 1;
        created
    }

    /// The root hash of the tree this frontier covers.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some((_, last)) => iter.fold(*last, |acc, (_, h)| node_hash(h, &acc)),
        }
    }
}

/// A whole tree held in memory: every complete subtree of every level.
///
/// Used by tests, benchmarks and offline tools; the store keeps the same nodes in a table.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

impl NodeSource for MemoryTree {
    fn node(&mut self, id: NodeId) -> Option<Hash> {
        self.levels
            .get(id.level as usize)
            .and_then(|l| l.get(id.index as usize))
            .copied()
    }
}

impl NodeSource for &MemoryTree {
    fn node(&mut self, id: NodeId) -> Option<Hash> {
        self.levels
            .get(id.level as usize)
            .and_then(|l| l.get(id.index as usize))
            .copied()
    }
}
