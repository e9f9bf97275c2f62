//! Histogram samples recorded while nobody scrapes `/metrics` are released by the recorder's
//! upkeep, so memory stays flat under load without a Prometheus server attached. Without the
//! upkeep thread that `server::metrics_handle` starts, the recorder keeps every raw sample until
//! the next scrape and this test fails at its deadline.
//!
//! Live heap bytes are counted by a wrapping global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use sck_gateway::server::{metrics_handle, METRICS_UPKEEP_INTERVAL};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SAMPLES: usize = 1_000_000;

#[test]
fn unscraped_histogram_samples_are_released_by_the_upkeep() {
    let _handle = metrics_handle().expect("install the recorder");
    let histogram = metrics::histogram!("sck_http_request_duration_seconds", "route" => "/test");
    histogram.record(0.0); // registers the series before the baseline
    let baseline = LIVE.load(Ordering::Relaxed);
    for i in 0..SAMPLES {
        histogram.record((i % 1000) as f64 * 1e-5);
    }
    let buffered = LIVE.load(Ordering::Relaxed) - baseline;
    // Raw samples are 8 bytes each until the upkeep folds them into buckets.
    assert!(
        buffered >= (SAMPLES * 8) as isize,
        "expected the samples to be buffered first, live heap grew only {buffered} bytes"
    );
    // Load goes on at a low rate (as in a server: recording is also what lets the epoch-based
    // reclamation behind the recorder free drained blocks). A bound on how long to wait, not a
    // speed assertion: a handful of upkeep rounds.
    let deadline = Instant::now() + METRICS_UPKEEP_INTERVAL * 12;
    loop {
        let live = LIVE.load(Ordering::Relaxed) - baseline;
        if live < buffered / 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{live} of {buffered} bytes of histogram samples are still held without a scrape"
        );
        for i in 0..1000 {
            histogram.record(i as f64 * 1e-5);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
