//! The store's threads wake without preempting the HTTP worker: Linux's `SCHED_BATCH` for the
//! writer thread and sled's I/O pool.
//!
//! A group commit wakes threads on the server's core many times: the writer when the first
//! request of a batch arrives, and sled 0.34's I/O pool twice per commit (`apply_batch` writes
//! its batch manifest on its own, then the flush writes the batch), each time notifying every
//! idle pool thread (seven or more) through one condition variable, which wakes them one after
//! the other (sled's `threadpool.rs`). Under the ordinary policy each of those wake-ups may
//! preempt the HTTP worker in the middle of a request, which then finds its caches evicted
//! (`benches/load/PROFILES.md`, seventh round: the worker spends 12.1 µs on a known unit and
//! 23.3 µs on a new one, whose own work is ~0.7 µs).
//!
//! A `SCHED_BATCH` thread is scheduled like any other (same weight, same fair share; no
//! starvation), except that its wake-up never preempts the running thread (the kernel's
//! `check_preempt_wakeup`): it runs when the worker blocks for its next requests or its time
//! slice ends. The store's threads then run in a burst between the worker's requests instead of
//! in the middle of them, and the writer takes everything the worker handed over meanwhile into
//! one commit. Measured under load (`benches/load/results/single4-2026-11-30-s9.md`): context
//! switches per commit down by a quarter, involuntary ones nearly gone; but on that shared,
//! loaded machine a commit waited for other processes' work on the core (sled's flush and
//! `fdatasync` 9–13 ms instead of 1.4–1.8) and the server answered 2–3× fewer new units per
//! second. So it is off unless asked for (`--store-sched-batch on`).
//!
//! The price: a store thread woken while its core runs something else waits for that to block
//! or for the scheduler's tick (`StoreOptions::sched_batch`).
//!
//! Nothing here changes what is written or when an answer goes out: a commit is still durable
//! before its callers hear of it. The policy is a cost choice; failing to set it (another OS,
//! a sandbox that forbids it) leaves the ordinary policy and is logged at debug level.

/// Gives the calling thread `SCHED_BATCH`.
pub fn batch_this_thread() {
    #[cfg(target_os = "linux")]
    set_batch(0);
}

/// Gives every thread of sled's I/O pool that exists now `SCHED_BATCH`. sled starts its pool
/// (seven threads that live as long as the process) the first time it needs it, which opening
/// a store does; a thread the pool adds later inherits the policy of the thread that caused it,
/// the writer (already `SCHED_BATCH`) or a reader.
pub fn batch_sled_pool() {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for task in tasks.flatten() {
            let Ok(tid) = task.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let is_sled_io = std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with("sled-io-"));
            if is_sled_io {
                set_batch(tid);
            }
        }
    }
}

/// `sched_setscheduler(tid, SCHED_BATCH)`; `tid` 0 is the calling thread.
#[cfg(target_os = "linux")]
fn set_batch(tid: i32) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, which only reads it.
    let result = unsafe { libc::sched_setscheduler(tid, libc::SCHED_BATCH, &param) };
    if result != 0 {
        tracing::debug!(
            tid,
            error = %std::io::Error::last_os_error(),
            "cannot give a store thread SCHED_BATCH; it keeps the ordinary policy"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use crate::store::test_support::*;
    use crate::store::{SledStore, Store};

    /// The scheduling policy of thread `tid` of this process (`sched_getscheduler`).
    fn policy(tid: i32) -> i32 {
        // SAFETY: reads the policy of a thread id; no memory is passed.
        unsafe { libc::sched_getscheduler(tid) }
    }

    fn threads_named(prefix: &str) -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.starts_with(prefix))
            })
            .filter_map(|task| task.file_name().to_string_lossy().parse().ok())
            .collect()
    }

    #[test]
    fn a_store_opened_with_sched_batch_runs_its_writer_and_sleds_pool_as_sched_batch() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::store::StoreOptions {
            sched_batch: true,
            ..Default::default()
        };
        let store = SledStore::open_with(dir.path(), options).unwrap();
        block_on(store.insert_sticky(&epoch(), "u", record("control", T0_MS), tally(T0_MS)))
            .unwrap();
        let pool = threads_named("sled-io-");
        assert!(pool.len() >= 7, "{pool:?}");
        for tid in pool {
            assert_eq!(policy(tid), libc::SCHED_BATCH, "sled-io thread {tid}");
        }
        // Other tests' stores (the default: off) run in this process too; this one's writer is
        // the one with the policy.
        let writers = threads_named("banditd-store-w");
        assert!(
            writers.iter().any(|&tid| policy(tid) == libc::SCHED_BATCH),
            "{writers:?}"
        );
        // The test's own thread keeps the ordinary policy.
        assert_eq!(policy(0), libc::SCHED_OTHER);
        block_on(store.shutdown()).unwrap();
    }

    #[test]
    fn a_store_opened_by_default_leaves_its_writer_ordinary() {
        let dir = tempfile::tempdir().unwrap();
        let before = threads_named("banditd-store-w");
        let store = SledStore::open(dir.path()).unwrap();
        // Answered by the writer: it runs (and has named itself) by now.
        block_on(store.insert_sticky(&epoch(), "u", record("control", T0_MS), tally(T0_MS)))
            .unwrap();
        let ordinary = threads_named("banditd-store-w")
            .into_iter()
            .filter(|tid| !before.contains(tid))
            .filter(|&tid| policy(tid) == libc::SCHED_OTHER)
            .count();
        // Writers other tests start meanwhile are ordinary too (only the test above asks for
        // SCHED_BATCH, and its writer existed before or is not counted as ordinary).
        assert!(ordinary >= 1);
        block_on(store.shutdown()).unwrap();
    }
}
