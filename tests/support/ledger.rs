//! A ledger as an auditor checks it: exports (`sck ledger export` from the database, or the
//! HTTP export route), offline verification with the published keys and verification in the
//! database (`sck ledger verify`, which must succeed), the entries of an export, and sizes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cli;
use super::http::{get, get_as};

/// Exports `org`'s ledger from `database_url` with `sck ledger export` to a new file in `dir`.
pub fn export(database_url: &str, org: &str, dir: &Path) -> PathBuf {
    let file = dir.join(format!("export-{org}-{}.tar.gz", unique_suffix()));
    let path = file.display().to_string();
    cli::ok(&[
        "ledger",
        "export",
        "--org",
        org,
        "--database-url",
        database_url,
        "-o",
        &path,
    ]);
    file
}

/// `org`'s ledger as `GET /api/v1/ledger/{org}/export` serves it to admin key `key`, saved to
/// a new file in `dir`.
pub fn api_export(url: &str, key: &str, org: &str, dir: &Path) -> PathBuf {
    let reply = get_as(&format!("{url}/api/v1/ledger/{org}/export"), key);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let file = dir.join(format!("api-export-{org}-{}.tar.gz", unique_suffix()));
    std::fs::write(&file, &reply.body).unwrap();
    file
}

/// The verifier keys the server at `url` publishes for `org`'s ledger.
pub fn published_keys(url: &str, org: &str) -> Vec<String> {
    let keys = get(&format!("{url}/api/v1/ledger/{org}/keys"), &[]).expect(200);
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["verifier"].as_str().unwrap().to_owned())
        .collect()
}

/// `sck ledger verify --quiet` of `export` with `keys`, which must succeed; what it printed.
pub fn verify_export(export: &Path, keys: &[String]) -> String {
    let file = export.display().to_string();
    let mut args = vec!["ledger", "verify", "--quiet", file.as_str()];
    for key in keys {
        args.extend(["--key", key.as_str()]);
    }
    let verified = cli::ok(&args);
    assert!(verified.starts_with("OK:"), "{verified}");
    verified
}

/// `sck ledger verify --db` of `org`'s log in `database_url`, which must succeed.
pub fn verify_db(database_url: &str, org: &str) {
    cli::ok(&[
        "ledger",
        "verify",
        "--db",
        "--org",
        org,
        "--quiet",
        "--database-url",
        database_url,
    ]);
}

/// The bytes of file `name` of a ledger export.
pub fn member(export: &Path, name: &str) -> Vec<u8> {
    let file = std::fs::File::open(export).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with(name) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("no {name} in {}", export.display())
}

/// The leaf bytes of every entry of a ledger export, by seq (its `entries.jsonl`).
pub fn leaves(export: &Path) -> Vec<Vec<u8>> {
    member(export, "entries.jsonl")
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Every entry of a ledger export, parsed.
pub fn entries(export: &Path) -> Vec<Value> {
    leaves(export)
        .iter()
        .map(|leaf| serde_json::from_slice(leaf).unwrap())
        .collect()
}

/// Every entry of `org`'s ledger in `database_url`, read from an export written to `dir`.
pub fn exported_entries(database_url: &str, org: &str, dir: &Path) -> Vec<Value> {
    entries(&export(database_url, org, dir))
}

/// The entries of type `kind`.
pub fn of_type<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["type"] == kind).collect()
}

/// The number of entries in `org`'s log, read with admin key `key`; `None` when the org has no
/// log yet (404).
pub fn size_if_any(url: &str, key: &str, org: &str) -> Option<u64> {
    let reply = get_as(&format!("{url}/api/v1/ledger/{org}/entries?limit=0"), key);
    if reply.status == 404 {
        return None;
    }
    Some(reply.expect(200)["size"].as_u64().expect("a ledger size"))
}

/// The number of entries in `org`'s log, read with admin key `key`.
pub fn size(url: &str, key: &str, org: &str) -> u64 {
    size_if_any(url, key, org).unwrap_or_else(|| panic!("{org} has no ledger log"))
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Now, as the ledger writes timestamps (RFC 3339 with microseconds, the precision decision
/// inputs are stored with).
pub fn now_timestamp() -> String {
    sck_ledger::entry::format_timestamp(time::OffsetDateTime::now_utc())
}
