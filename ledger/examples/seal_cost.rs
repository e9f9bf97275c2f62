//! Measures the CPU cost of sealing one entry (JCS + SHA-256) — a profiling aid for benches.
use sck_ledger::entry::seal;
use sck_ledger::{Event, EventType};
fn main() {
    let ev = Event::new(
        EventType::DecisionAllowed,
        serde_json::json!({
            "decision_id": "d-1",
            "bundle": {"org": "acme", "name": "authz", "version": "1.2.3", "sha256": "ab".repeat(32)},
            "entrypoint": "authz/allow", "result": true, "reasons": [],
            "token": {"jti": "j-1", "sub": "svc-a", "loa": 2},
            "request": {"method": "GET", "path": "/v1/things"},
            "input_sha256": "cd".repeat(32),
        }),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let n = 100_000u64;
    let t = std::time::Instant::now();
    let mut prev = [0u8; 32];
    for i in 0..n {
        prev = seal("acme", i, now, &prev, &ev).unwrap().1;
    }
    println!("seal: {:?} per entry", t.elapsed() / n as u32);
}
