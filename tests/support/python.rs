//! Real peers written in Python (PyJWT, Authlib, requests): their packages installed with pip
//! when missing, so a test that needs one fails with the reason instead of skipping.

use std::process::Command;

/// True once `python3 -c check` succeeds, installing `packages` (pinned specs) with pip first
/// if it does not; `false` if that is impossible.
pub fn available(check: &str, packages: &[&str]) -> bool {
    let ok = || {
        Command::new("python3")
            .args(["-c", check])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok() {
        return true;
    }
    for extra in [&[][..], &["--break-system-packages"][..]] {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .args(extra)
            .status();
        if ok() {
            return true;
        }
    }
    false
}

/// The OAuth peers of `tests/oauth_*.py`: Authlib (pinned), requests and PyJWT (with
/// cryptography), installed if missing; `false` if that is impossible.
pub fn oauth_clients_available() -> bool {
    available(
        "import authlib, requests, jwt, cryptography; assert authlib.__version__ == '1.9.6'",
        &[
            "authlib==1.9.6",
            "requests==2.34.2",
            "pyjwt==2.15.1",
            "cryptography",
        ],
    )
}
