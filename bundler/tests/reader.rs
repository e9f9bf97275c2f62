//! The untrusted-bundle reader refuses every malformed or hostile bundle with a precise error
//! and never panics. One test per refusal.

use std::io::Write;

use sck_bundler::{
    build, BuildOptions, Bundle, BundleError, Limits, SigningConfig, SigningKey, SourceTree,
};

/// A tar entry as an attacker may write it: any name, type and content.
struct RawEntry {
    name: Vec<u8>,
    kind: tar::EntryType,
    link: Option<&'static str>,
    bytes: Vec<u8>,
}

fn file(name: &str, bytes: &[u8]) -> RawEntry {
    RawEntry {
        name: name.as_bytes().to_vec(),
        kind: tar::EntryType::Regular,
        link: None,
        bytes: bytes.to_vec(),
    }
}

fn tar_gz(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry.kind);
        header.set_size(entry.bytes.len() as u64);
        header.set_mode(0o600);
        let name = &mut header.as_old_mut().name;
        name[..entry.name.len()].copy_from_slice(&entry.name);
        if let Some(link) = entry.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, entry.bytes.as_slice()).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const MODULE: &[u8] = b"package app\n\nallow := true\n";

fn read(entries: &[RawEntry]) -> Result<Bundle, BundleError> {
    Bundle::read(&tar_gz(entries), &Limits::default())
}

fn error(entries: &[RawEntry]) -> String {
    match read(entries) {
        Ok(_) => panic!("bundle was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_well_formed_bundle_is_accepted() {
    let bundle = read(&[
        file("/data.json", b"{\"app\": {\"x\": 1}}"),
        file("/app/policy.rego", MODULE),
        file("/.manifest", br#"{"revision": "r1", "roots": ["app"]}"#),
    ])
    .unwrap();
    assert_eq!(bundle.manifest.revision, "r1");
    assert_eq!(bundle.modules().count(), 1);
}

#[test]
fn symlinks_are_refused() {
    let entry = RawEntry {
        name: b"/app/link.rego".to_vec(),
        kind: tar::EntryType::Symlink,
        link: Some("/etc/passwd"),
        bytes: vec![],
    };
    assert_eq!(
        error(&[entry]),
        "bundle entry \"/app/link.rego\" is a symbolic link; only regular files are allowed"
    );
}

#[test]
fn hard_links_are_refused() {
    let entry = RawEntry {
        name: b"/app/hard.rego".to_vec(),
        kind: tar::EntryType::Link,
        link: Some("app/policy.rego"),
        bytes: vec![],
    };
    assert_eq!(
        error(&[file("/app/policy.rego", MODULE), entry]),
        "bundle entry \"/app/hard.rego\" is a hard link; only regular files are allowed"
    );
}

#[test]
fn absolute_paths_are_refused() {
    assert_eq!(
        error(&[file("//etc/cron.d/x.rego", MODULE)]),
        "bundle entry \"//etc/cron.d/x.rego\" has an unsafe path: absolute path"
    );
}

#[test]
fn parent_directory_paths_are_refused() {
    assert_eq!(
        error(&[file("/app/../../evil.rego", MODULE)]),
        "bundle entry \"/app/../../evil.rego\" has an unsafe path: escapes the bundle root (..)"
    );
}

#[test]
fn duplicate_entries_are_refused() {
    assert_eq!(
        error(&[file("/app/p.rego", MODULE), file("app/p.rego", MODULE)]),
        "bundle entry \"app/p.rego\" appears more than once"
    );
}

#[test]
fn too_many_files_are_refused() {
    let entries: Vec<RawEntry> = (0..5)
        .map(|i| file(&format!("/app/m{i}.rego"), MODULE))
        .collect();
    let limits = Limits {
        max_files: 4,
        ..Limits::default()
    };
    let err = Bundle::read(&tar_gz(&entries), &limits).unwrap_err();
    assert_eq!(err.to_string(), "bundle exceeds the limit of 4 files");
    assert_eq!(err.code(), "bundle_too_large");
}

#[test]
fn gzip_bombs_are_refused() {
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = tar_gz(&[file("/data.json", &vec![b' '; 64 << 20])]);
    assert!(bomb.len() < 512 << 10, "bomb is {} bytes", bomb.len());
    let limits = Limits {
        max_decompressed_bytes: 8 << 20,
        ..Limits::default()
    };
    let err = Bundle::read(&bomb, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bundle exceeds the limit of {} decompressed bytes", 8 << 20)
    );
}

#[test]
fn invalid_utf8_rego_is_refused() {
    assert_eq!(
        error(&[file("/app/bad.rego", b"package app\n\xff\xfe := 1\n")]),
        "app/bad.rego: Rego source is not valid UTF-8"
    );
}

#[test]
fn a_root_data_document_that_is_not_an_object_is_refused() {
    assert_eq!(
        error(&[file("/data.json", b"[1, 2, 3]")]),
        "data.json: the root data document must be a JSON object"
    );
}

#[test]
fn malformed_data_json_is_refused() {
    let message = error(&[file("/data.json", b"{\"a\": }")]);
    assert!(message.starts_with("data.json: invalid JSON"), "{message}");
}

#[test]
fn overlapping_roots_are_refused() {
    assert_eq!(
        error(&[file("/.manifest", br#"{"roots": ["app", "app/sub"]}"#)]),
        "manifest: roots \"app\" and \"app/sub\" overlap"
    );
}

#[test]
fn packages_outside_the_roots_are_refused() {
    assert_eq!(
        error(&[
            file("/.manifest", br#"{"roots": ["app"]}"#),
            file("/other/p.rego", b"package other\n\nx := 1\n"),
        ]),
        "other/p.rego: package other is outside the manifest roots [\"app\"]"
    );
}

#[test]
fn data_outside_the_roots_is_refused() {
    assert_eq!(
        error(&[
            file("/.manifest", br#"{"roots": ["app"]}"#),
            file("/data.json", br#"{"app": {}, "billing": {"x": 1}}"#),
        ]),
        "data at /billing is outside the manifest roots [\"app\"]"
    );
}

#[test]
fn signatures_files_without_exactly_one_signature_are_refused() {
    assert_eq!(
        error(&[file("/.signatures.json", br#"{"signatures": []}"#)]),
        "signature verification failed: .signatures.json contains no signature"
    );
    assert_eq!(
        error(&[file("/.signatures.json", br#"{"signatures": ["a.b.c", "d.e.f"]}"#)]),
        "signature verification failed: .signatures.json contains 2 signatures; exactly one is supported"
    );
}

#[test]
fn wasm_modules_are_refused() {
    let message = error(&[file("/policy.wasm", b"\0asm")]);
    assert!(message.contains("Wasm"), "{message}");
}

#[test]
fn data_after_the_archive_is_refused() {
    let mut tarball = tar_gz(&[file("/app/p.rego", MODULE)]);
    tarball.extend_from_slice(b"smuggled");
    assert_eq!(
        Bundle::read(&tarball, &Limits::default())
            .unwrap_err()
            .to_string(),
        "bundle archive is malformed: unexpected data after the end of the gzip stream"
    );
}

#[test]
fn truncated_and_non_gzip_input_is_refused() {
    let tarball = tar_gz(&[file("/app/p.rego", MODULE)]);
    for bad in [
        &tarball[..tarball.len() / 2],
        b"not a bundle".as_slice(),
        b"",
    ] {
        let err = Bundle::read(bad, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "bundle_invalid", "{err}");
    }
}

#[test]
fn conflicting_data_documents_are_refused() {
    assert_eq!(
        error(&[
            file("/data.json", br#"{"app": {"x": 1}}"#),
            file("/app/data.json", br#"{"x": 2}"#),
        ]),
        "app/data.json: data at /app/x conflicts with data.json"
    );
}

#[test]
fn a_signed_build_survives_a_read() {
    let mut files = std::collections::BTreeMap::new();
    files.insert("app/p.rego".to_string(), MODULE.to_vec());
    files.insert("app/data.json".to_string(), br#"{"limit": 1.50}"#.to_vec());
    let source = SourceTree::from_files(files).unwrap();
    let built = build(
        &source,
        &BuildOptions {
            signing: Some(SigningConfig {
                key: SigningKey::from_material(b"secret", None).unwrap(),
                key_id: Some("k".into()),
                claims: Default::default(),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let read = Bundle::read(&built.tarball, &Limits::default()).unwrap();
    let data = read.files.iter().find(|f| f.name == "data.json").unwrap();
    // Numbers are written as plain decimals.
    assert_eq!(&data.bytes[..], b"{\"app\":{\"limit\":1.5}}\n");
    assert_eq!(read.all_files(), built.bundle.all_files());
    assert!(read.signature.is_some());
}
