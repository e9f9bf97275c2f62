//! RFC 8693 token exchange as a pure rule: the verified subject token, who asks (the
//! authenticated client, or the subject of its actor token) and what for, the org's limits
//! and `now` in; the delegated token's facts ([`Grant`]) or why it is refused
//! ([`ExchangeRefused`]) out.
//!
//! Invariant: a grant only ever narrows. Its scopes are a subset of both the subject's and the
//! requesting client's (by default every subject scope the client may hold), its LoA is the
//! lower of the subject's and the client's ceiling, its `exp` is at most the subject's, the
//! org's TTL from `now` and the client's own expiry, its org and audience are the subject's,
//! and its `act` chain (RFC 8693 §4.1: the current actor outermost, prior actors nested
//! inside) is one deeper than the subject's and no deeper than the configured maximum. Its
//! `delegated_from` lists every ancestor's `jti` (root first), so revoking any ancestor
//! refuses it. A request for anything wider is refused, never silently narrowed. Error codes
//! follow RFC 8693 §2.2.2: an unacceptable subject token is `invalid_request`, an audience
//! other than the subject's `invalid_target`, scopes beyond what may be held RFC 6749 §5.2
//! `invalid_scope`.

use crate::principal::{Actor, VerifiedToken};

/// The exchange asked for: in which org, by which client (its scopes, LoA ceiling and expiry
/// bound the grant), for which actor, scopes and audiences.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub org: &'a str,
    /// The `act.sub` of the new token: the actor token's subject, else the client's id.
    pub actor_sub: &'a str,
    pub client_scopes: &'a [String],
    pub client_loa_ceiling: u8,
    pub client_expires_at: Option<i64>,
    /// Empty: every subject scope the client may hold.
    pub scope: &'a [String],
    /// RFC 8693 `resource` / `audience` values; each must be the subject's audience.
    pub targets: &'a [&'a str],
}

/// The org's bounds on delegated tokens.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The lifetime a new token of the org gets (its default TTL).
    pub ttl_secs: i64,
    /// The most actors an `act` chain may hold.
    pub max_depth: usize,
}

/// The facts of the token to issue (its `sub`, artifact and audience are the subject's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Vec<String>,
    pub loa: u8,
    pub exp: i64,
    pub act: Actor,
    /// Every ancestor's `jti`, root first, the subject's last.
    pub delegated_from: Vec<String>,
}

/// Why an exchange is refused; `code()` is the RFC error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeRefused {
    OtherOrg,
    SubjectExpired,
    ClientExpired,
    ChainTooDeep,
    /// Scopes the subject does not hold or the client may not have.
    ScopeWidened(Vec<String>),
    /// None of the subject's scopes may be held by the client.
    NoCommonScope,
    OtherAudience,
}

impl ExchangeRefused {
    pub fn code(&self) -> &'static str {
        match self {
            ExchangeRefused::ScopeWidened(_) | ExchangeRefused::NoCommonScope => "invalid_scope",
            ExchangeRefused::OtherAudience => "invalid_target",
            _ => "invalid_request",
        }
    }
}

impl std::fmt::Display for ExchangeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeRefused::OtherOrg => f.write_str("the subject token belongs to another org"),
            ExchangeRefused::SubjectExpired => f.write_str("the subject token has expired"),
            ExchangeRefused::ClientExpired => f.write_str("the client has expired"),
            ExchangeRefused::ChainTooDeep => {
                f.write_str("the delegation chain would exceed its maximum depth")
            }
            ExchangeRefused::ScopeWidened(outside) => write!(
                f,
                "scopes neither held by the subject token nor allowed to the client: {}",
                outside.join(" ")
            ),
            ExchangeRefused::NoCommonScope => {
                f.write_str("the client may hold none of the subject token's scopes")
            }
            ExchangeRefused::OtherAudience => {
                f.write_str("a delegated token keeps the subject token's audience")
            }
        }
    }
}

/// Decides an exchange: the narrowed [`Grant`] or why it is refused.
pub fn exchange(
    subject: &VerifiedToken,
    request: Request<'_>,
    limits: Limits,
    now: i64,
) -> Result<Grant, ExchangeRefused> {
    if subject.org != request.org {
        return Err(ExchangeRefused::OtherOrg);
    }
    if subject.exp <= now {
        return Err(ExchangeRefused::SubjectExpired);
    }
    if request.client_expires_at.is_some_and(|at| at <= now) {
        return Err(ExchangeRefused::ClientExpired);
    }
    if request.targets.iter().any(|t| *t != subject.aud) {
        return Err(ExchangeRefused::OtherAudience);
    }
    let act = Actor {
        sub: request.actor_sub.to_owned(),
        act: subject.act.clone().map(Box::new),
    };
    if act.depth() > limits.max_depth {
        return Err(ExchangeRefused::ChainTooDeep);
    }
    let holdable = |s: &String| subject.scope.contains(s) && request.client_scopes.contains(s);
    let scope: Vec<String> = if request.scope.is_empty() {
        subject
            .scope
            .iter()
            .filter(|s| holdable(s))
            .cloned()
            .collect()
    } else {
        let outside: Vec<String> = request
            .scope
            .iter()
            .filter(|s| !holdable(s))
            .cloned()
            .collect();
        if !outside.is_empty() {
            return Err(ExchangeRefused::ScopeWidened(outside));
        }
        request.scope.to_vec()
    };
    if scope.is_empty() {
        return Err(ExchangeRefused::NoCommonScope);
    }
    let mut exp = subject.exp.min(now.saturating_add(limits.ttl_secs));
    if let Some(at) = request.client_expires_at {
        exp = exp.min(at);
    }
    let mut delegated_from = subject.delegated_from.clone();
    delegated_from.push(subject.jti.clone());
    Ok(Grant {
        scope,
        loa: subject.loa.min(request.client_loa_ceiling),
        exp,
        act,
        delegated_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const LIMITS: Limits = Limits {
        ttl_secs: 600,
        max_depth: 2,
    };

    fn scopes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn subject(scope: &[&str], act: Option<Actor>) -> VerifiedToken {
        VerifiedToken {
            jti: "parent".into(),
            sub: "alice".into(),
            org: "acme".into(),
            loa: 3,
            acr: "urn:sck:loa:3".into(),
            scope: scopes(scope),
            artifact_id: "a".into(),
            artifact_type: "t".into(),
            iss: "https://sck.test".into(),
            exp: NOW + 3600,
            iat: NOW - 10,
            act,
            nbf: NOW - 10,
            aud: "urn:sck:enforcement".into(),
            client_id: "iss_a".into(),
            kid: "k".into(),
            alg: jsonwebtoken::Algorithm::EdDSA,
            delegated_from: Vec::new(),
        }
    }

    const CLIENT_SCOPES: &[&str] = &["read", "write", "tools"];

    fn request<'a>(client_scopes: &'a [String], scope: &'a [String]) -> Request<'a> {
        Request {
            org: "acme",
            actor_sub: "agent-b",
            client_scopes,
            client_loa_ceiling: 4,
            client_expires_at: None,
            scope,
            targets: &[],
        }
    }

    #[test]
    fn default_grant_keeps_the_scopes_both_may_hold_and_caps_exp_at_the_org_ttl() {
        let client = scopes(CLIENT_SCOPES);
        let held = subject(&["read", "write", "admin"], None);
        let grant = exchange(&held, request(&client, &[]), LIMITS, NOW).unwrap();
        assert_eq!(grant.scope, scopes(&["read", "write"]));
        assert_eq!(grant.loa, 3);
        assert_eq!(grant.exp, NOW + 600);
        assert_eq!(grant.delegated_from, ["parent"]);
        assert_eq!(
            grant.act,
            Actor {
                sub: "agent-b".into(),
                act: None
            }
        );
        let none_common = subject(&["admin"], None);
        assert_eq!(
            exchange(&none_common, request(&client, &[]), LIMITS, NOW),
            Err(ExchangeRefused::NoCommonScope)
        );
    }

    #[test]
    fn loa_and_exp_are_bounded_by_the_subject_and_the_client() {
        let client = scopes(CLIENT_SCOPES);
        let mut held = subject(&["read"], None);
        held.exp = NOW + 60;
        let low_ceiling = Request {
            client_loa_ceiling: 2,
            client_expires_at: Some(NOW + 30),
            ..request(&client, &[])
        };
        let grant = exchange(&held, low_ceiling, LIMITS, NOW).unwrap();
        assert_eq!((grant.loa, grant.exp), (2, NOW + 30));
        assert_eq!(
            exchange(&held, request(&client, &[]), LIMITS, NOW)
                .unwrap()
                .exp,
            NOW + 60
        );
        let expired_client = Request {
            client_expires_at: Some(NOW),
            ..request(&client, &[])
        };
        assert_eq!(
            exchange(&held, expired_client, LIMITS, NOW),
            Err(ExchangeRefused::ClientExpired)
        );
    }

    #[test]
    fn a_subset_is_granted_and_anything_wider_refused_never_narrowed() {
        let client = scopes(CLIENT_SCOPES);
        let held = subject(&["read", "write", "admin"], None);
        let narrow = scopes(&["read"]);
        let grant = exchange(&held, request(&client, &narrow), LIMITS, NOW).unwrap();
        assert_eq!(grant.scope, narrow);
        let not_held = scopes(&["read", "tools"]);
        assert_eq!(
            exchange(&held, request(&client, &not_held), LIMITS, NOW),
            Err(ExchangeRefused::ScopeWidened(scopes(&["tools"])))
        );
        let not_allowed = scopes(&["admin"]);
        let refused = exchange(&held, request(&client, &not_allowed), LIMITS, NOW).unwrap_err();
        assert_eq!(refused.code(), "invalid_scope");
        assert!(refused.to_string().contains("admin"));
    }

    #[test]
    fn another_org_an_expired_subject_and_another_audience_are_refused() {
        let client = scopes(CLIENT_SCOPES);
        let held = subject(&["read"], None);
        let other = Request {
            org: "globex",
            ..request(&client, &[])
        };
        let refused = exchange(&held, other, LIMITS, NOW).unwrap_err();
        assert_eq!(
            (refused.clone(), refused.code()),
            (ExchangeRefused::OtherOrg, "invalid_request")
        );
        let mut expired = subject(&["read"], None);
        expired.exp = NOW;
        assert_eq!(
            exchange(&expired, request(&client, &[]), LIMITS, NOW),
            Err(ExchangeRefused::SubjectExpired)
        );
        let same = Request {
            targets: &["urn:sck:enforcement"],
            ..request(&client, &[])
        };
        assert!(exchange(&held, same, LIMITS, NOW).is_ok());
        let elsewhere = Request {
            targets: &["urn:sck:enforcement", "https://elsewhere.example"],
            ..request(&client, &[])
        };
        let refused = exchange(&held, elsewhere, LIMITS, NOW).unwrap_err();
        assert_eq!(refused.code(), "invalid_target");
    }

    #[test]
    fn the_current_actor_is_outermost_and_the_chain_depth_is_bounded() {
        let client = scopes(CLIENT_SCOPES);
        let first = exchange(
            &subject(&["read"], None),
            request(&client, &[]),
            LIMITS,
            NOW,
        )
        .unwrap();
        let mut child = subject(&["read"], Some(first.act.clone()));
        child.jti = "child".into();
        child.delegated_from = first.delegated_from.clone();
        let second = exchange(
            &child,
            Request {
                actor_sub: "agent-c",
                ..request(&client, &[])
            },
            LIMITS,
            NOW,
        )
        .unwrap();
        assert_eq!(second.act.sub, "agent-c");
        assert_eq!(second.act.act.as_deref(), Some(&first.act));
        assert_eq!(second.act.depth(), 2);
        assert_eq!(second.delegated_from, ["parent", "child"]);
        let mut grandchild = subject(&["read"], Some(second.act));
        grandchild.delegated_from = second.delegated_from;
        let third = exchange(&grandchild, request(&client, &[]), LIMITS, NOW);
        assert_eq!(third, Err(ExchangeRefused::ChainTooDeep));
        assert_eq!(ExchangeRefused::ChainTooDeep.code(), "invalid_request");
    }

    #[test]
    fn act_serializes_as_rfc_8693_nested_objects() {
        let chain = Actor {
            sub: "agent-c".into(),
            act: Some(Box::new(Actor {
                sub: "agent-b".into(),
                act: None,
            })),
        };
        let json = serde_json::to_value(&chain).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sub": "agent-c", "act": {"sub": "agent-b"}})
        );
        assert_eq!(serde_json::from_value::<Actor>(json).unwrap(), chain);
    }
}
