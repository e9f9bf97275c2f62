//! Who a request is for once it has been verified: a [`VerifiedToken`] (a gateway token that
//! passed the gateway's one token verification) or a [`VerifiedCaller`] (an upstream caller
//! whose X-SCK signature verified against its pinned identity).
//!
//! Invariant: the serialized form of each is exactly what policies see (`input.token`,
//! `input.caller`) — verified facts only; what is not a policy fact is `serde(skip)`.

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

/// One link of the `act` claim (RFC 8693 §4.1): who acts, and (nested) who acted before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain holds (this one included).
    pub fn depth(&self) -> usize {
        1 + self.act.as_deref().map_or(0, Actor::depth)
    }
}

/// A verified gateway token: the facts a policy may rely on (`input.token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerifiedToken {
    pub jti: String,
    pub sub: String,
    pub org: String,
    pub loa: u8,
    pub acr: String,
    pub scope: Vec<String>,
    pub artifact_id: String,
    pub artifact_type: String,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    /// RFC 8693 §4.1: who acts for `sub`, the current actor outermost (delegated tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub act: Option<Actor>,
    /// Not part of the policy input; introspection reports them.
    #[serde(skip)]
    pub nbf: i64,
    #[serde(skip)]
    pub aud: String,
    #[serde(skip)]
    pub client_id: String,
    #[serde(skip)]
    pub kid: String,
    /// The algorithm of the key that signed it.
    #[serde(skip)]
    pub alg: Algorithm,
    /// The `jti` of every token this one was delegated from, root first (empty if none).
    #[serde(skip)]
    pub delegated_from: Vec<String>,
}

impl VerifiedToken {
    /// True if the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// An upstream caller whose X-SCK signature was verified against its pinned ANS identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerifiedCaller {
    pub ans_id: String,
    pub org: String,
    pub key_id: String,
    /// `hmac-sha256` or `ed25519`.
    pub scheme: String,
}
