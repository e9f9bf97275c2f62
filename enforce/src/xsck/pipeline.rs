//! The verification pipeline: one signed HTTP request in, a [`VerifiedCaller`] or a ledgered
//! [`Rejection`] out, in the spec's order (cheapest first):
//!
//! 1. every X-SCK header present once, well formed, no control characters; body size;
//! 2. `|now - timestamp| <= max_skew_secs`;
//! 3. the ANS ID has a pin, in the stated organization, not revoked;
//! 4. the signature verifies under one of the pin's live keys (no other key is ever tried);
//! 5. only then is (ANS ID, nonce) claimed in the shared replay store for twice the skew;
//!    in compat mode (no nonce header, `require_nonce = false`) the signature is the key.
//!
//! Every outcome is appended to the ledger before the caller learns it: `upstream.verified`
//! (org of the pin) or `upstream.rejected` with the reason `code` (org of the pin when one was
//! found, else the deployment's default org, since the stated org is unauthenticated). Entries
//! carry ids, method and path — never secrets, signatures or bodies.

use std::sync::Arc;

use sck_ledger::entry::EventType;
use sck_ledger::Ledger;
use serde_json::{json, Value};

use sck_wire::principal::VerifiedCaller;
use sck_wire::xsck::{self as canonical, Rejection, SignedRequest};

use super::nonces::NonceStore;
use crate::config::XsckConfig;
use crate::error::EnforceError;
use crate::identities::Identities;

/// Longest path kept in a ledger entry.
const MAX_LOGGED_PATH: usize = 256;

/// Verifies X-SCK signed requests for every route that requires them.
#[derive(Debug, Clone)]
pub struct XsckVerifier {
    /// The identity pins (also served by the identities API).
    identities: Identities,
    nonces: NonceStore,
    ledger: Ledger,
    settings: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    authority: String,
    max_skew_secs: i64,
    require_nonce: bool,
    max_body_bytes: usize,
    fallback_org: String,
}

/// The request line of a call to verify, exactly as sent.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query without `?` (empty if none).
    pub query: &'a str,
}

/// What the ledger learns about a request before it is verified (all caller-stated).
struct Claimed<'a> {
    method: &'a str,
    path: &'a str,
    ans_id: Option<&'a str>,
    organization: Option<&'a str>,
    key_id: Option<&'a str>,
}

impl<'a> Claimed<'a> {
    /// A request whose X-SCK headers were not read.
    fn unparsed(target: &Target<'a>) -> Claimed<'a> {
        Claimed {
            method: target.method,
            path: target.path,
            ans_id: None,
            organization: None,
            key_id: None,
        }
    }
}

impl XsckVerifier {
    /// A verifier for a gateway reachable at `public_url`; rejections that name no known pin
    /// are ledgered under `fallback_org`.
    pub fn new(
        identities: Identities,
        ledger: Ledger,
        config: &XsckConfig,
        public_url: &str,
        fallback_org: &str,
    ) -> XsckVerifier {
        XsckVerifier {
            nonces: NonceStore::new(identities.store().clone()),
            identities,
            ledger,
            settings: Arc::new(Settings {
                authority: canonical::authority_of(public_url),
                max_skew_secs: config.max_skew_secs as i64,
                require_nonce: config.require_nonce,
                max_body_bytes: config.max_body_bytes,
                fallback_org: fallback_org.to_owned(),
            }),
        }
    }

    /// The ANS identity pins this verifier checks against.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// Starts the replay store's sweep.
    pub fn spawn_background(&self) {
        self.nonces.spawn_sweep();
    }

    /// The authority line signatures must use.
    pub fn authority(&self) -> &str {
        &self.settings.authority
    }

    /// The largest signed body accepted.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// Ledgers and answers a request refused before its body could be read in full.
    pub async fn reject_oversized(&self, target: &Target<'_>) -> EnforceError {
        let rejection = Rejection::BodyTooLarge(self.settings.max_body_bytes);
        self.refuse(&Claimed::unparsed(target), None, rejection)
            .await
    }

    /// Verifies one request (see the module docs); `now` is unix seconds. Every outcome is
    /// ledgered: `upstream.verified`, or `upstream.rejected` with the step's reason.
    pub async fn verify<'h>(
        &self,
        target: &Target<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedCaller, EnforceError> {
        let parsed = match canonical::parse_headers(headers, self.settings.require_nonce) {
            Ok(parsed) => parsed,
            Err(rejection) => {
                return Err(self
                    .refuse(&Claimed::unparsed(target), None, rejection)
                    .await)
            }
        };
        let claimed = Claimed {
            method: target.method,
            path: target.path,
            ans_id: Some(&parsed.ans_id),
            organization: Some(&parsed.organization),
            key_id: parsed.key_id.as_deref(),
        };
        let caller = match self.check(target, &parsed, body, now).await? {
            Ok(caller) => caller,
            Err((pin_org, rejection)) => {
                return Err(self.refuse(&claimed, pin_org.as_deref(), rejection).await)
            }
        };
        self.append(
            &caller.org,
            EventType::UpstreamVerified,
            json!({
                "ans_id": caller.ans_id,
                "key_id": caller.key_id,
                "scheme": caller.scheme,
                "nonce": parsed.nonce,
                "timestamp": parsed.timestamp,
                "method": target.method,
                "path": truncate(target.path),
                "body_sha256": canonical::body_sha256(body),
            }),
        )
        .await?;
        metrics::counter!("sck_xsck_total", "result" => "verified").increment(1);
        Ok(caller)
    }

    /// The spec's steps after the headers: body size → skew → pin (exists, same org, not
    /// revoked) → signature against only the pinned keys → nonce. A refusal names the pin's
    /// org when one was found (its log records it).
    async fn check(
        &self,
        target: &Target<'_>,
        parsed: &canonical::XsckHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<Result<VerifiedCaller, (Option<String>, Rejection)>, EnforceError> {
        if body.len() > self.settings.max_body_bytes {
            return Ok(Err((
                None,
                Rejection::BodyTooLarge(self.settings.max_body_bytes),
            )));
        }
        if let Err(rejection) =
            canonical::check_skew(&parsed.timestamp, now, self.settings.max_skew_secs)
        {
            return Ok(Err((None, rejection)));
        }
        let pin = match self.identities.lookup(&parsed.ans_id).await? {
            None => return Ok(Err((None, Rejection::UnknownIdentity))),
            Some(pin) if pin.org != parsed.organization => {
                return Ok(Err((Some(pin.org), Rejection::OrgMismatch)))
            }
            Some(pin) if pin.revoked => {
                return Ok(Err((Some(pin.org), Rejection::IdentityRevoked)))
            }
            Some(pin) => pin,
        };
        let request = SignedRequest {
            method: target.method,
            authority: &self.settings.authority,
            path: target.path,
            query: target.query,
            body,
        };
        let message = canonical::string_to_sign_for(&request, parsed);
        let key = match canonical::verify_signature(
            message.as_bytes(),
            &parsed.signature,
            &pin.keys,
            parsed.key_id.as_deref(),
        ) {
            Ok(key) => key,
            Err(rejection) => return Ok(Err((Some(pin.org), rejection))),
        };
        let replay_key = match &parsed.nonce {
            Some(nonce) => format!("n:{nonce}"),
            None => format!("s:{}", parsed.signature.header_value()),
        };
        let fresh = self
            .nonces
            .claim(
                &parsed.ans_id,
                &replay_key,
                now,
                2 * self.settings.max_skew_secs,
            )
            .await
            .map_err(|e| EnforceError::unavailable("replay store", e))?;
        if !fresh {
            return Ok(Err((Some(pin.org), Rejection::ReplayedNonce)));
        }
        Ok(Ok(VerifiedCaller {
            key_id: key.key_id.clone(),
            ans_id: pin.ans_id,
            org: pin.org,
            scheme: parsed.signature.scheme().as_str().to_owned(),
        }))
    }

    /// Ledgers a refusal (under the pin's org, else the fallback org) and returns the error
    /// to answer: the refusal, or the ledger's failure if it could not be recorded.
    async fn refuse(
        &self,
        claimed: &Claimed<'_>,
        pin_org: Option<&str>,
        rejection: Rejection,
    ) -> EnforceError {
        match self.record_rejection(claimed, pin_org, &rejection).await {
            Ok(()) => rejection.into(),
            Err(e) => e,
        }
    }

    async fn record_rejection(
        &self,
        claimed: &Claimed<'_>,
        pin_org: Option<&str>,
        rejection: &Rejection,
    ) -> Result<(), EnforceError> {
        metrics::counter!("sck_xsck_total", "result" => rejection.code()).increment(1);
        let org = pin_org.unwrap_or(&self.settings.fallback_org);
        let header = match rejection {
            Rejection::MissingHeader(h)
            | Rejection::DuplicateHeader(h)
            | Rejection::InvalidHeader(h, _) => Value::String((*h).to_owned()),
            _ => Value::Null,
        };
        self.append(
            org,
            EventType::UpstreamRejected,
            json!({
                "reason": rejection.code(),
                "header": header,
                "ans_id": claimed.ans_id,
                "organization": claimed.organization,
                "key_id": claimed.key_id,
                "method": claimed.method,
                "path": truncate(claimed.path),
            }),
        )
        .await
    }

    async fn append(&self, org: &str, kind: EventType, body: Value) -> Result<(), EnforceError> {
        crate::events::record(&self.ledger, org, kind, body).await?;
        Ok(())
    }
}

fn truncate(path: &str) -> &str {
    if path.len() <= MAX_LOGGED_PATH {
        return path;
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}
