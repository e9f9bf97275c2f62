//! The gzip-compressed tar container: a deterministic writer and a defensive reader.
//!
//! The writer produces what OPA produces — one regular-file entry per file, names with a
//! leading `/`, mode 0600, mtime 0, uid/gid 0, no directory entries — and, given the same files
//! in the same order, the same bytes. The reader treats its input as hostile: it refuses links
//! and special files, unsafe or duplicate paths, and more files or decompressed bytes than the
//! configured [`Limits`], before any content is interpreted; a [`Meter`] (in the server, the
//! process-wide budget of decompressed bytes in flight) can be charged for every decompressed
//! byte before it is used. Tar parsing itself is the `tar` crate's.

use std::collections::BTreeSet;
use std::io::{self, Read};

use bytes::Bytes;
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{BundleError, Result};

/// Bounds on what the reader accepts from an untrusted tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most regular files in one bundle.
    pub max_files: usize,
    /// Most decompressed bytes (the whole tar stream, headers included).
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 10_000,
            max_decompressed_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One file of a bundle: its name relative to the bundle root (no leading `/`) and content.
/// The content is shared, not copied, by clones and by the data tree built over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub name: String,
    pub bytes: Bytes,
}

impl BundleFile {
    pub fn new(name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        BundleFile {
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}

/// Writes `files` (in the given order) as a gzip-compressed tar, OPA style.
pub fn write_tarball(files: &[BundleFile]) -> Result<Vec<u8>> {
    let io_err = |e: io::Error| BundleError::Archive(format!("writing tarball: {e}"));
    let encoder = GzEncoder::new(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for file in files {
        // The tar crate refuses to set absolute names, and OPA's names start with `/`, so the
        // name bytes go into the header directly (with a GNU long-name entry when needed).
        let name = format!("/{}", file.name);
        if name.len() > NAME_FIELD_LEN {
            let mut long = new_header(tar::EntryType::GNULongName, name.len() as u64 + 1);
            set_name(&mut long, b"././@LongLink");
            long.set_cksum();
            let mut bytes = name.clone().into_bytes();
            bytes.push(0);
            builder.append(&long, bytes.as_slice()).map_err(io_err)?;
        }
        let mut header = new_header(tar::EntryType::Regular, file.bytes.len() as u64);
        set_name(
            &mut header,
            &name.as_bytes()[..name.len().min(NAME_FIELD_LEN)],
        );
        header.set_cksum();
        builder
            .append(&header, file.bytes.as_ref())
            .map_err(io_err)?;
    }
    let encoder = builder.into_inner().map_err(io_err)?;
    encoder.finish().map_err(io_err)
}

/// Size of the name field of a tar header.
const NAME_FIELD_LEN: usize = 100;

fn new_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header
}

fn set_name(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

/// Where decompressed bytes are accounted as they are produced: in the server, a process-wide
/// budget shared by every request in flight.
pub trait Meter {
    /// Called before `bytes` more decompressed bytes are handed on; `false` refuses them and
    /// stops the reader with [`BundleError::BudgetExhausted`].
    fn charge(&mut self, bytes: u64) -> bool;
}

/// A closure is a meter: `|bytes| ...` answers whether to accept them.
impl<F: FnMut(u64) -> bool> Meter for F {
    fn charge(&mut self, bytes: u64) -> bool {
        self(bytes)
    }
}

/// Reads every regular file of an untrusted gzip-compressed tarball, enforcing `limits`.
/// Directory entries are skipped; anything else that is not a regular file is refused, and so
/// is any data after the archive.
pub fn read_tarball(gzipped: &[u8], limits: &Limits) -> Result<Vec<BundleFile>> {
    read_tarball_metered(gzipped, limits, &mut |_| true)
}

/// [`read_tarball`], charging every decompressed byte to `meter` before it is used.
pub fn read_tarball_metered(
    gzipped: &[u8],
    limits: &Limits,
    meter: &mut dyn Meter,
) -> Result<Vec<BundleFile>> {
    let counted = CappedReader {
        inner: GzDecoder::new(gzipped),
        remaining: limits.max_decompressed_bytes,
        meter,
    };
    let mut archive = tar::Archive::new(counted);
    let files = read_entries(&mut archive, limits)?;
    // Nothing may hide after the archive: the rest of the tar stream must be zero padding, and
    // the gzip stream must end (its CRC checked) exactly where the input ends.
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(|e| archive_error(e, limits))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(BundleError::Archive(
                "unexpected data after the end of the tar archive".into(),
            ));
        }
    }
    if !rest.inner.into_inner().is_empty() {
        return Err(BundleError::Archive(
            "unexpected data after the end of the gzip stream".into(),
        ));
    }
    Ok(files)
}

fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    limits: &Limits,
) -> Result<Vec<BundleFile>> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    // What the entries read so far took of the decompressed budget.
    let mut taken = 0u64;
    let entries = archive.entries().map_err(|e| archive_error(e, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(e, limits))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(BundleError::EntryType {
                    path: raw_path,
                    kind: entry_kind(other),
                })
            }
        }
        let name = normalize_path(&entry.path_bytes())?;
        if files.len() >= limits.max_files {
            return Err(BundleError::LimitExceeded {
                what: "files",
                limit: limits.max_files as u64,
            });
        }
        if !seen.insert(name.clone()) {
            return Err(BundleError::DuplicateEntry(name));
        }
        // Exactly the declared size, so a large file is not grown by doubling (and held twice
        // while it grows); never more than the budget left, whatever the header claims.
        let budget = limits.max_decompressed_bytes.saturating_sub(taken);
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size().min(budget)).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| archive_error(e, limits))?;
        taken = taken.saturating_add(bytes.len() as u64);
        files.push(BundleFile {
            name,
            bytes: Bytes::from(bytes),
        });
    }
    Ok(files)
}

/// Turns a tar entry name into a clean bundle-relative name. OPA writes names with one
/// leading `/` meaning the bundle root; anything that is still absolute after that, contains
/// `.`, `..` or empty segments, backslashes, NUL or is not UTF-8 is refused.
pub fn normalize_path(raw: &[u8]) -> Result<String> {
    let lossy = String::from_utf8_lossy(raw).into_owned();
    let unsafe_path = |reason| BundleError::UnsafePath {
        path: lossy.clone(),
        reason,
    };
    let text = std::str::from_utf8(raw).map_err(|_| unsafe_path("not UTF-8"))?;
    if text.contains('\0') {
        return Err(unsafe_path("contains NUL"));
    }
    if text.contains('\\') {
        return Err(unsafe_path("contains a backslash"));
    }
    let relative = text.strip_prefix('/').unwrap_or(text);
    if relative.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    if relative.len() >= 2 && relative.as_bytes()[1] == b':' {
        return Err(unsafe_path("absolute path (drive letter)"));
    }
    let relative = relative.strip_prefix("./").unwrap_or(relative);
    if relative.is_empty() {
        return Err(unsafe_path("empty name"));
    }
    for segment in relative.split('/') {
        match segment {
            ".." => return Err(unsafe_path("escapes the bundle root (..)")),
            "." => return Err(unsafe_path("contains a '.' segment")),
            "" => return Err(unsafe_path("contains an empty segment")),
            _ => {}
        }
    }
    Ok(relative.to_owned())
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
}

/// The marker errors [`CappedReader`] returns once the decompressed limit is passed or its
/// meter refuses more bytes.
const OVER_LIMIT: &str = "sck: decompressed size limit exceeded";
const METER_REFUSED: &str = "sck: decompression budget exhausted";

fn archive_error(e: io::Error, limits: &Limits) -> BundleError {
    let is = |marker: &str| {
        e.get_ref().is_some_and(|inner| inner.to_string() == marker)
            || e.to_string().contains(marker)
    };
    if is(OVER_LIMIT) {
        BundleError::LimitExceeded {
            what: "decompressed bytes",
            limit: limits.max_decompressed_bytes,
        }
    } else if is(METER_REFUSED) {
        BundleError::BudgetExhausted
    } else {
        BundleError::Archive(e.to_string())
    }
}

/// Reads at most `remaining` bytes from `inner`, then fails: a gzip bomb stops here instead of
/// filling memory. Every byte read is charged to `meter` first.
struct CappedReader<'m, R> {
    inner: R,
    remaining: u64,
    meter: &'m mut dyn Meter,
}

impl<R: Read> Read for CappedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Only an error if there is more to read.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(OVER_LIMIT)),
            };
        }
        let cap = buf.len().min(self.remaining as usize);
        let n = self.inner.read(&mut buf[..cap])?;
        if !self.meter.charge(n as u64) {
            return Err(io::Error::other(METER_REFUSED));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let long = format!("{}/x.rego", "d".repeat(150));
        let files = vec![
            BundleFile::new("data.json", &b"{}\n"[..]),
            BundleFile::new("a/b.rego", &b"package a\n"[..]),
            BundleFile::new(long, &b"package d\n"[..]),
        ];
        let one = write_tarball(&files).unwrap();
        let two = write_tarball(&files).unwrap();
        assert_eq!(one, two);
        assert_eq!(read_tarball(&one, &Limits::default()).unwrap(), files);
    }

    #[test]
    fn every_decompressed_byte_is_charged_and_a_refusal_stops_the_reader() {
        let files = vec![BundleFile::new("data.json", vec![b' '; 100_000])];
        let tarball = write_tarball(&files).unwrap();
        let mut charged = 0;
        let mut count = |bytes| {
            charged += bytes;
            true
        };
        let read = read_tarball_metered(&tarball, &Limits::default(), &mut count).unwrap();
        assert_eq!(read, files);
        // The whole tar stream: header, content padded to 512-byte blocks, end-of-archive blocks.
        assert!(charged >= 100_000 + 512, "{charged}");

        let mut left = charged - 1;
        let mut short = |bytes| {
            let fits = bytes <= left;
            if fits {
                left -= bytes;
            }
            fits
        };
        let err = read_tarball_metered(&tarball, &Limits::default(), &mut short).unwrap_err();
        assert!(matches!(err, BundleError::BudgetExhausted), "{err:?}");
        assert_eq!(err.code(), "decompression_busy");
    }

    #[test]
    fn normalizes_opa_style_names_and_refuses_unsafe_ones() {
        assert_eq!(normalize_path(b"/a/b.rego").unwrap(), "a/b.rego");
        assert_eq!(normalize_path(b"a/b.rego").unwrap(), "a/b.rego");
        for bad in [
            &b"//etc/passwd"[..],
            b"/../x",
            b"a/../../x",
            b"a/./b",
            b"a//b",
            b"C:/x",
            b"a\\b",
            b"\xff",
            b"/",
        ] {
            assert!(
                normalize_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
