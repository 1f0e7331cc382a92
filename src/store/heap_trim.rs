//! Gives the memory a store's startup freed back to the operating system.
//!
//! A replay builds its tables by doubling (`sticky_slots`, `event_ids`) and then frees what
//! the doublings left: for 10M units the sticky table frees ~400 MB of grown shards once it is
//! fitted, and the event-id set its earlier, smaller tables. mimalloc, the binaries' allocator
//! (see `src/main.rs`), keeps freed pages committed and purges them only after a delay, from a
//! later allocation or free; a server that starts serving idle, and replay threads that have
//! exited, give it no such moment, so the process kept the freed memory as its resident size
//! (`benches/load/results/mem-2026-11-30-s6.md`). One forced collection after the replays
//! purges it at once.

// The C library that defines `mi_collect` is linked through this crate.
use mimalloc as _;

unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)` (mimalloc.h): frees the calling thread's empty
    /// pages and, with `force`, purges every freed page of the process's arenas now.
    fn mi_collect(force: bool);
}

/// Purges the allocator's freed pages (see the module docs). Harmless where mimalloc is not
/// the global allocator (the test binaries): it then collects its own, unused heaps.
pub fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointer and may be called from any thread at any time;
    // the declaration matches mimalloc.h's `void mi_collect(bool force)`.
    unsafe { mi_collect(true) }
}
