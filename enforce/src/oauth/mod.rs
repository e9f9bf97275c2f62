//! OAuth 2 for machines: service accounts ([`clients`]), their `private_key_jwt` keys
//! ([`client_keys`]) and assertions ([`assertion`]), and the grants of the token endpoint
//! ([`grants`]), with its RFC 8414 metadata ([`metadata`]).
//!
//! A service account is a per-org OAuth client: a name, the token issuer it mints with (its
//! `client_id` is that issuer's id; the issuer holds its LoA ceiling and allowed scopes),
//! allowed audiences, an optional source-address allowlist and an optional expiry, and at
//! most two live secrets generated here.
//!
//! Invariants:
//! - Tokens are minted only by [`TokenService::issue`], so the one verification function,
//!   introspection and revocation treat them like every other gateway token; their
//!   `client_id` is the service account's.
//! - Secrets are shown once and stored as SHA-256 only (they are 256-bit random values, so a
//!   slow hash adds nothing); they are compared in constant time and never logged or ledgered.
//! - Every change of a service account is appended to its org's ledger
//!   (`client.created|rotated|revoked`) before the API answers. Org-scoped: every statement of
//!   a change names the acting org, and a change of another org's client commits nothing.
//! - Client authentication fails closed with one `invalid_client` refusal whatever failed
//!   (unknown, revoked or expired client, wrong secret, address outside the allowlist); a
//!   refused client assertion says which check failed, never repeating the assertion.
//! - A grant never widens: a requested scope outside the client's, or an audience it may not
//!   have, is refused (`invalid_scope`, `invalid_target`), never silently narrowed.

pub mod assertion;
pub mod client_keys;
pub mod clients;
pub mod grants;
pub mod metadata;
pub mod schema;

use sck_ledger::store::Store;
use sck_ledger::Ledger;

use crate::tokens::TokenService;

/// Service accounts and the token endpoint's grants.
#[derive(Debug, Clone)]
pub struct OAuth {
    store: Store,
    ledger: Ledger,
    tokens: TokenService,
}

impl OAuth {
    pub fn new(store: Store, ledger: Ledger, tokens: TokenService) -> OAuth {
        OAuth {
            store,
            ledger,
            tokens,
        }
    }
}
