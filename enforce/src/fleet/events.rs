//! Decision-log uploads at the gateway's edge: `sck_wire::opa_logs` (the pure parsing) with
//! the shared decompression budget as its meter and its refusals as problem answers.
//!
//! Invariant: every decompressed byte is charged to the request's [`Reservation`] before it
//! is kept, and every refusal keeps the code `sck_wire` gives it (status from
//! `From<UploadError> for EnforceError`).

use sck_wire::opa_logs::{self, InputPolicy, SidecarDecision, Uploader};

use crate::budget::Reservation;
use crate::error::EnforceError;

/// [`opa_logs::gunzip_bounded`] charging `reservation`; past the shared budget, 503
/// `decompression_busy`.
pub fn gunzip_bounded(
    body: &[u8],
    max_bytes: u64,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, EnforceError> {
    Ok(opa_logs::gunzip_bounded(body, max_bytes, &mut |n| {
        reservation.charge(n)
    })?)
}

/// [`opa_logs::parse_batch`] with its refusal as a problem answer.
pub fn parse_batch(
    json: &[u8],
    uploader: &Uploader<'_>,
    policy: &InputPolicy,
    max_events: usize,
) -> Result<Vec<SidecarDecision>, EnforceError> {
    Ok(opa_logs::parse_batch(json, uploader, policy, max_events)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::error::Kind;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_charges_the_shared_budget_and_refuses_past_it() {
        let budget = Budget::new("test_budget", 15_000);
        let body = gz(&vec![b' '; 10_000]);
        let mut first = budget.reservation();
        assert_eq!(
            gunzip_bounded(&body, 10_000, &mut first).unwrap().len(),
            10_000
        );
        assert_eq!(budget.in_use(), 10_000);
        let refused = gunzip_bounded(&body, 10_000, &mut budget.reservation()).unwrap_err();
        assert_eq!(
            (refused.kind, refused.code, refused.retry_after),
            (Kind::Unavailable, "decompression_busy", Some(1))
        );
        drop(first);
        assert_eq!(budget.in_use(), 0);
        gunzip_bounded(&body, 10_000, &mut budget.reservation()).unwrap();
    }
}
