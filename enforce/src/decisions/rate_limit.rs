//! Per-subject and per-org request rate limits (token buckets, in memory per replica).
//!
//! A request over either limit is refused with 429 and `Retry-After` (whole seconds, at least
//! 1) before any evaluation or ledger work is spent on it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::Rate;

fn quota(rate: Rate) -> Quota {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).expect("non-zero");
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("non-zero");
    Quota::per_second(per_second).allow_burst(burst)
}

/// The two limiters a decision passes.
pub struct RateLimits {
    subjects: DefaultKeyedRateLimiter<String>,
    orgs: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

/// Which limit refused a request, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after: Duration,
}

impl RateLimits {
    pub fn new(subject: Rate, org: Rate) -> RateLimits {
        RateLimits {
            subjects: RateLimiter::keyed(quota(subject)),
            orgs: RateLimiter::keyed(quota(org)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request for `sub` in `org`, or says which limit refused it.
    pub fn check(&self, org: &str, sub: &str) -> Result<(), Limited> {
        let now = self.clock.now();
        self.orgs
            .check_key(&org.to_owned())
            .map_err(|not_until| Limited {
                scope: "organization",
                retry_after: not_until.wait_time_from(now),
            })?;
        self.subjects
            .check_key(&format!("{org}\u{0}{sub}"))
            .map_err(|not_until| Limited {
                scope: "subject",
                retry_after: not_until.wait_time_from(now),
            })
    }

    /// Forgets idle keys (call periodically so the maps do not grow without bound).
    pub fn prune(&self) {
        self.subjects.retain_recent();
        self.orgs.retain_recent();
    }
}
