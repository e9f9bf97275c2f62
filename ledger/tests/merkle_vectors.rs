//! RFC 9162 Merkle vectors (copied from the shared `merkle.md`) and an independent reference
//! implementation over raw leaf slices, checked against the node-store based proofs.

use proptest::prelude::*;
use sck_ledger::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, required_nodes, root,
    verify_consistency, verify_inclusion, Frontier, Hash, MemoryTree, NodeSource,
};

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots for sizes 1..8 (the CT / RFC 9162 reference data set).
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

fn tree(hashes: &[Hash]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in hashes {
        t.push(*l);
    }
    t
}

// ---- reference implementation, literally RFC 9162 2.1.1 - 2.1.4 over slices ----

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => sha2_empty(),
        1 => d[0],
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn sha2_empty() -> Hash {
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
}

fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn flip_each_bit(proof: &[Hash], mut check: impl FnMut(&[Hash]) -> bool) {
    for i in 0..proof.len() {
        for bit in 0..256 {
            let mut p = proof.to_vec();
            p[i][bit / 8] ^= 1 << (bit % 8);
            assert!(check(&p), "bit flip {bit} in hash {i} was not detected");
        }
    }
}

#[test]
fn roots_match_vectors() {
    let leaves = leaf_hashes();
    for n in 1..=8 {
        let mut t = tree(&leaves[..n]);
        assert_eq!(root(&mut t, n as u64).unwrap(), h(ROOTS[n - 1]), "size {n}");
        assert_eq!(mth(&leaves[..n]), h(ROOTS[n - 1]));
        let mut f = Frontier::new();
        for l in &leaves[..n] {
            f.push(*l);
        }
        assert_eq!(f.root(), h(ROOTS[n - 1]));
    }
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(h(ROOTS[7])),
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    );
}

#[test]
fn known_rfc6962_proofs() {
    let mut t = tree(&leaf_hashes());
    assert_eq!(
        inclusion_proof(&mut t, 0, 8).unwrap(),
        vec![
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]
    );
    assert_eq!(
        consistency_proof(&mut t, 6, 8).unwrap(),
        vec![
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]
    );
    assert_eq!(
        consistency_proof(&mut t, 2, 5).unwrap(),
        vec![
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ]
    );
}

#[test]
fn every_inclusion_proof_for_sizes_1_to_8() {
    let leaves = leaf_hashes();
    let mut t = tree(&leaves);
    for n in 1..=8u64 {
        let r = h(ROOTS[n as usize - 1]);
        for i in 0..n {
            let proof = inclusion_proof(&mut t, i, n).unwrap();
            assert_eq!(proof, ref_path(i as usize, &leaves[..n as usize]));
            verify_inclusion(&leaves[i as usize], i, n, &proof, &r).unwrap();
            flip_each_bit(&proof, |p| {
                verify_inclusion(&leaves[i as usize], i, n, p, &r).is_err()
            });
            // wrong index, wrong leaf, truncated or extended proof all fail
            if n > 1 {
                let other = (i + 1) % n;
                assert!(verify_inclusion(&leaves[i as usize], other, n, &proof, &r).is_err());
            }
            assert!(verify_inclusion(&leaf_hash(b"x"), i, n, &proof, &r).is_err());
            if !proof.is_empty() {
                assert!(verify_inclusion(&leaves[i as usize], i, n, &proof[1..], &r).is_err());
            }
            let mut longer = proof.clone();
            longer.push(r);
            assert!(verify_inclusion(&leaves[i as usize], i, n, &longer, &r).is_err());
        }
        assert!(inclusion_proof(&mut t, n, n).is_err());
    }
}

#[test]
fn every_consistency_proof_for_sizes_1_to_8() {
    let leaves = leaf_hashes();
    let mut t = tree(&leaves);
    for n in 1..=8u64 {
        for m in 1..=n {
            let (rm, rn) = (h(ROOTS[m as usize - 1]), h(ROOTS[n as usize - 1]));
            let proof = consistency_proof(&mut t, m, n).unwrap();
            if m < n {
                assert_eq!(proof, ref_subproof(m as usize, &leaves[..n as usize], true));
            } else {
                assert!(proof.is_empty());
            }
            verify_consistency(m, n, &proof, &rm, &rn).unwrap();
            flip_each_bit(&proof, |p| verify_consistency(m, n, p, &rm, &rn).is_err());
            if m < n {
                // a different old root (e.g. rewritten history) must fail
                let other = h(ROOTS[(m as usize) % 8]);
                assert!(verify_consistency(m, n, &proof, &other, &rn).is_err());
                assert!(verify_consistency(m, n, &proof[..proof.len() - 1], &rm, &rn).is_err());
            }
        }
    }
    assert!(consistency_proof(&mut t, 5, 4).is_err());
}

#[test]
fn required_nodes_lists_what_a_store_must_fetch() {
    let leaves = leaf_hashes();
    let full = tree(&leaves);
    for n in 1..=8u64 {
        for i in 0..n {
            let ids = required_nodes(|src| inclusion_proof(src, i, n).map(|_| ()));
            let mut only = |id| {
                assert!(ids.contains(&id), "{id:?} was not listed");
                (&full).node(id)
            };
            inclusion_proof(&mut only, i, n).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn proofs_match_reference(n in 1usize..300, a in 0usize..300, b in 0usize..300) {
        let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut t = tree(&leaves);
        let i = a % n;
        let m = 1 + b % n;
        let r = mth(&leaves);
        prop_assert_eq!(root(&mut t, n as u64).unwrap(), r);
        let p = inclusion_proof(&mut t, i as u64, n as u64).unwrap();
        prop_assert_eq!(&p, &ref_path(i, &leaves));
        prop_assert!(verify_inclusion(&leaves[i], i as u64, n as u64, &p, &r).is_ok());
        let c = consistency_proof(&mut t, m as u64, n as u64).unwrap();
        if m < n {
            prop_assert_eq!(&c, &ref_subproof(m, &leaves, true));
        }
        prop_assert!(verify_consistency(m as u64, n as u64, &c, &mth(&leaves[..m]), &r).is_ok());
        let mut f = Frontier::new();
        for l in &leaves { f.push(*l); }
        prop_assert_eq!(f.root(), r);
        let ids = Frontier::node_ids(n as u64);
        let hashes: Vec<Hash> = ids.iter().map(|id| (&t).node(*id).unwrap()).collect();
        prop_assert_eq!(Frontier::from_nodes(n as u64, hashes).unwrap(), f);
    }

    #[test]
    fn verifiers_never_panic(idx in any::<u64>(), size in any::<u64>(), m in any::<u64>(),
                             proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70)) {
        let z = [0u8; 32];
        let _ = verify_inclusion(&z, idx, size, &proof, &z);
        let _ = verify_consistency(m, size, &proof, &z, &z);
    }
}
