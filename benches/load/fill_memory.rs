//! `banditd-fill --memory-report`: what the process holds once a data dir is open, for
//! `benches/load/restart.sh`'s per-unit and per-id figures to be split into their parts.
//!
//! Opening a `SledStore` replays its logs into the sticky table and the event-id set, as
//! `banditd serve` does at start. The report then says, after a settle: the resident set
//! (`VmRSS`, and `RssAnon` of it), the bytes live on the heap (every allocation not yet freed,
//! counted by this binary's global allocator while the report is asked for) and their peak.
//! Resident anonymous memory that is neither live heap nor the tables' own mappings (their
//! sizes are in the replays' log lines, `table_bytes`) is what the allocator holds freed, or
//! what sled and the threads hold outside the heap.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// mimalloc, as banditd uses (Cargo.toml), counting live bytes once [`start_counting`] was
/// called: a relaxed load per allocation until then, so a fill does not pay for the count.
pub struct CountingMiMalloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts from now on. Blocks allocated before and freed after make the count low by their
/// size (a few kilobytes of argument parsing), never negative: it saturates at zero.
pub fn start_counting() {
    COUNTING.store(true, Ordering::SeqCst);
}

fn added(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

fn removed(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let _ = LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
            Some(live.saturating_sub(bytes))
        });
    }
}

// SAFETY: every call is passed to mimalloc unchanged; the counters only observe it.
unsafe impl GlobalAlloc for CountingMiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !block.is_null() {
            added(layout.size());
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !block.is_null() {
            added(layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.dealloc(block, layout) };
        removed(layout.size());
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { mimalloc::MiMalloc.realloc(block, layout, new_size) };
        if !moved.is_null() {
            removed(layout.size());
            added(new_size);
        }
        moved
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// The report line (`MEMORY key=value ...`), read now.
pub fn report_line() -> String {
    format!(
        "MEMORY rss_kib={} anon_kib={} hwm_kib={} heap_live_bytes={} heap_peak_bytes={}",
        status_kib("VmRSS"),
        status_kib("RssAnon"),
        status_kib("VmHWM"),
        LIVE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed)
    )
}
