//! Now, in Unix seconds: the one reading of the wall clock for expiries, leases, `iat`/`exp`
//! checks and the `now` policies see (storage and tokens keep whole seconds).

/// The current time in Unix seconds (UTC).
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
