//! Organization ids: the names sck keeps for itself, which no new organization may take.
//!
//! An org id is a URL path segment (`/bundles/{org}/...`, `/api/v1/ledger/{org}/...`) and the
//! name of the org's ledger log. Invariant: every org created through the API,
//! `sck admin create-org` or the first-start bootstrap passed [`check_new_org`], so no org's
//! log is the deployment-wide `system` log and no org id is a fixed segment of a route.

use crate::error::{EnforceError, EnforceResult};

/// Names no new organization may have (in any letter case): `system` is the ledger's
/// deployment-wide log (an org of that name would read and write it); `sha256` is the fixed
/// segment of the bundle service's digest paths (`/bundles/{org}/sha256/{hex}.tar.gz`), kept
/// out of the org namespace so that path rules written against it never match an org.
pub const RESERVED_ORG_NAMES: &[&str] = &["system", "sha256"];

/// Accepts `org` as the id of a new organization: a valid name
/// ([`crate::lifecycle::check_name`]) that is not reserved (`400 reserved_name`).
pub fn check_new_org(org: &str) -> EnforceResult<()> {
    crate::lifecycle::check_name("organizationId", org)?;
    if RESERVED_ORG_NAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(org))
    {
        return Err(EnforceError::invalid(
            "reserved_name",
            format!(
                "organization id {org:?} is reserved by sck (reserved: {})",
                RESERVED_ORG_NAMES.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_refused_in_any_case_and_others_pass() {
        for name in ["system", "System", "SYSTEM", "sha256", "SHA256"] {
            assert_eq!(
                check_new_org(name).unwrap_err().code,
                "reserved_name",
                "{name}"
            );
        }
        for name in ["default", "org-a", "systems", "system-1", "sha256x"] {
            assert!(check_new_org(name).is_ok(), "{name}");
        }
        assert_eq!(check_new_org("a/b").unwrap_err().code, "invalid_request");
    }
}
