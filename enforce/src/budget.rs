//! Process-wide capacity bounds on the work requests bring in: a [`Budget`] of some unit, and
//! [`Reservation`]s that take from it and give everything back when dropped (when the work is
//! done, whether or not anyone still waits for its result).
//!
//! Two budgets exist: decompressed bytes in flight (`[http] decompression_budget_bytes`; every
//! path that inflates client input — compile uploads, bundles read back for publish and
//! activation, sidecar gzip uploads — charges each byte before using it) and compiles running
//! (`[bundles] max_concurrent_compiles`, one unit each). Invariant: what is reserved at any
//! moment never exceeds the capacity, whatever the number of concurrent requests; work that
//! would pass it is refused with 503, a stable code and `Retry-After`, never queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{EnforceError, EnforceResult};

/// A shared capacity; what is in use is published as the gauge `gauge`.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    gauge: &'static str,
    capacity: u64,
    in_use: AtomicU64,
}

impl Budget {
    pub fn new(gauge: &'static str, capacity: u64) -> Self {
        Budget {
            inner: Arc::new(Inner {
                gauge,
                capacity,
                in_use: AtomicU64::new(0),
            }),
        }
    }

    /// An empty reservation, to grow as the work needs.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
            used: 0,
        }
    }

    /// A reservation for inflating the gzip stream `gzipped`, holding up front the size its
    /// trailer declares (RFC 1952 `ISIZE`, capped at `max_bytes`), so that concurrent uploads
    /// are admitted whole or refused at once instead of starving each other halfway. The
    /// trailer is the client's word: bytes beyond it are charged as they are inflated.
    pub fn reserve_for_gzip(&self, gzipped: &[u8], max_bytes: u64) -> EnforceResult<Reservation> {
        let declared = gzipped
            .last_chunk::<4>()
            .map_or(0, |isize| u32::from_le_bytes(*isize) as u64);
        let mut reservation = self.reservation();
        if reservation.grow(declared.min(max_bytes)) {
            Ok(reservation)
        } else {
            Err(EnforceError::decompression_busy())
        }
    }

    /// What is reserved right now, by every request together.
    pub fn in_use(&self) -> u64 {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// Takes `units` if they fit under the capacity; all or nothing.
    fn take(&self, units: u64) -> bool {
        let capacity = self.inner.capacity;
        let taken = self
            .inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(units).filter(|&total| total <= capacity)
            });
        match taken {
            Ok(before) => {
                self.publish(before + units);
                true
            }
            Err(_) => false,
        }
    }

    fn give_back(&self, units: u64) {
        let before = self.inner.in_use.fetch_sub(units, Ordering::AcqRel);
        self.publish(before - units);
    }

    fn publish(&self, in_use: u64) {
        metrics::gauge!(self.inner.gauge).set(in_use as f64);
    }
}

/// What one piece of work holds of a budget; all given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    /// Taken from the budget.
    held: u64,
    /// Of `held`, what [`Reservation::charge`] has used.
    used: u64,
}

impl Reservation {
    /// Takes `units` more; `false` (and nothing taken) when the budget cannot cover them.
    pub fn grow(&mut self, units: u64) -> bool {
        if units == 0 || self.budget.take(units) {
            self.held += units;
            true
        } else {
            false
        }
    }

    /// Uses `units` of what is held, taking what is missing from the budget; `false` (and
    /// nothing used) when the budget cannot cover it.
    pub fn charge(&mut self, units: u64) -> bool {
        let total = self.used.saturating_add(units);
        if !self.grow(total.saturating_sub(self.held)) {
            return false;
        }
        self.used = total;
        true
    }
}

/// A byte budget meters the bundle reader.
impl sck_bundler::tarball::Meter for Reservation {
    fn charge(&mut self, bytes: u64) -> bool {
        Reservation::charge(self, bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_capacity_and_give_it_back_when_dropped() {
        let budget = Budget::new("test_budget", 100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert!(a.grow(60));
        assert!(!b.grow(41), "only 40 bytes are left");
        assert!(b.grow(40));
        assert_eq!(budget.in_use(), 100);
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(budget.in_use(), 40);
        let mut c = budget.reservation();
        assert!(c.grow(60));
        drop((b, c));
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn charges_use_what_is_held_before_taking_more() {
        let budget = Budget::new("test_budget", 100);
        let mut a = budget.reservation();
        assert!(a.grow(50));
        assert!(a.charge(30));
        assert_eq!(budget.in_use(), 50);
        assert!(a.charge(40));
        assert_eq!(budget.in_use(), 70);
        assert!(!a.charge(31), "101 bytes in use would pass the capacity");
        assert!(a.charge(30));
        assert_eq!(budget.in_use(), 100);
    }

    #[test]
    fn a_gzip_reservation_holds_the_declared_size_up_to_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[b' '; 300]).unwrap();
        let gzipped = gz.finish().unwrap();
        let budget = Budget::new("test_budget", 1000);
        let whole = budget.reserve_for_gzip(&gzipped, 1000).unwrap();
        assert_eq!(budget.in_use(), 300);
        let capped = budget.reserve_for_gzip(&gzipped, 200).unwrap();
        assert_eq!(budget.in_use(), 500);
        let _third = budget.reserve_for_gzip(&gzipped, 1000).unwrap();
        let refused = budget.reserve_for_gzip(&gzipped, 1000).unwrap_err();
        assert_eq!(refused.code, "decompression_busy");
        assert_eq!(budget.in_use(), 800, "a refusal takes nothing");
        drop((whole, capped));
        assert_eq!(budget.in_use(), 300);
        assert_eq!(budget.reserve_for_gzip(b"x", 10).unwrap().held, 0);
    }
}
