//! What a restart leaves on the heap after the sled store replays its unit log: the sticky
//! table, and no more of the log than sled's page cache may hold.
//!
//! Its own test binary, with one test and an allocator that counts live bytes: a count shared
//! with other tests running at the same time would say nothing.
//!
//! sled 0.34 counts a page against its cache only after 64 accesses queued in the page's LRU
//! shard (one of 256); the replay's scan reads each leaf once, so before
//! `store::load::settle_pages` every page of a log of fewer than ~16,000 leaves stayed in
//! memory whatever the cache size: here ~40 MB of unit log with a 1 MiB cache
//! (`benches/load/results/marks-2026-11-30-s8.md`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use banditd::store::{Epoch, SledStore, StickyRecord, Store, StoreOptions, Tally};
use futures_util::StreamExt;

struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counter only observes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(block, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Long unit ids (the largest a unit may be is 256 bytes): ~7 per 2 KiB unit-log value, so
/// the log has enough values (~20,000, ~1,500 leaves) for sled's LRU to see its pages.
const UNITS: usize = 140_000;
const UNIT_ID_PAD: usize = 240;
const PAGE_CACHE_MB: u64 = 1;

fn options() -> StoreOptions {
    StoreOptions {
        page_cache_mb: PAGE_CACHE_MB,
        ..StoreOptions::default()
    }
}

fn fill(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let store: Arc<dyn Store> = Arc::new(SledStore::open_with(dir, options()).expect("opens"));
    let epoch = Epoch {
        experiment: "replay-memory".to_owned(),
        revision: 1,
    };
    let pad = "u".repeat(UNIT_ID_PAD);
    runtime.block_on(async {
        futures_util::stream::iter(0..UNITS)
            .map(|i| {
                let record = StickyRecord {
                    variant: ["a", "b", "c"][i % 3].to_owned(),
                    assigned_ms: 1_700_000_000_000,
                    propensity: 1.0 / 3.0,
                    reward: None,
                    rewarded_ms: None,
                };
                let tally = Tally {
                    now_ms: 1_700_000_000_000,
                    half_life_ms: None,
                    allocation: Arc::from(Vec::new()),
                };
                store.insert_sticky(&epoch, &format!("{pad}{i}"), record, tally)
            })
            .buffer_unordered(2048)
            .for_each(|inserted| async move {
                inserted.expect("inserted");
            })
            .await;
        store.shutdown().await.expect("shuts down");
    });
}

/// Live heap bytes an opened store holds: opened, then the count read, then closed.
fn held_by_open_store(dir: &std::path::Path) -> usize {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let store = SledStore::open_with(dir, options()).expect("reopens");
    let held = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    drop(store);
    held
}

#[test]
fn a_restart_keeps_no_more_of_the_unit_log_on_the_heap_than_the_page_cache_allows() {
    let empty = tempfile::tempdir().expect("a temp dir");
    let filled = tempfile::tempdir().expect("a temp dir");
    drop(SledStore::open_with(empty.path(), options()).expect("opens"));
    fill(filled.path());
    // The first open in the process allocates sled's process-wide parts; count from the second.
    let _ = held_by_open_store(empty.path());
    let empty_bytes = held_by_open_store(empty.path());
    let filled_bytes = held_by_open_store(filled.path());
    let per_unit = filled_bytes.saturating_sub(empty_bytes) as f64 / UNITS as f64;
    // The sticky table is 24-byte slots at 90% load, ~26.7 B per unit whatever the id's
    // length; the log is ~290 B per unit (a 250-byte id and its record). sled may keep its
    // 1 MiB, plus the leaves (up to 16 values of 2 KiB each) whose accesses are still queued in
    // their LRU shards: 126 B per unit in all when this test was written, against 296 B
    // before the settle, when the whole log stayed.
    assert!(
        per_unit < 150.0,
        "{per_unit:.1} B per unit held after the replay ({filled_bytes} B against {empty_bytes} B \
         for an empty store)"
    );
}
