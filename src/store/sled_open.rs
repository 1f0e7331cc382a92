//! Opening a [`SledStore`]: its options, the load of the durable state and the start of its
//! writer thread (which, with sled's I/O pool, may run as `SCHED_BATCH`: `thread_policy`). A child
//! of `sled` (the handle's fields stay private to the two), apart from the `Store` methods that
//! make up the rest of the handle.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;

use super::SledStore;
use crate::store::data_dir;
use crate::store::disk::Location;
use crate::store::error::StoreError;
use crate::store::health::HealthState;
use crate::store::load;
use crate::store::replica::LocalReplica;
use crate::store::shared::{DurableMark, Shared};
use crate::store::thread_policy;
use crate::store::writer_state::Writer;

/// Default of [`StoreOptions::page_cache_mb`]. sled's own default (1 GiB) let a server under
/// a steady mixed load grow by ~50 MiB a minute without levelling off (`run.sh --soak`).
pub const DEFAULT_PAGE_CACHE_MB: u64 = 32;

/// How a [`SledStore`] is opened, beyond its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in MiB. sled treats it as a soft limit and its real memory use runs
    /// several times higher, so the default is small: the sticky table serves the hot reads,
    /// and the OS page cache still holds the files.
    pub page_cache_mb: u64,
    /// Superseded unit-log entries (beyond half the units stored) before the writer compacts
    /// the log (see `unit_log`).
    pub compact_min_entries: u64,
    /// Run the writer thread and sled's I/O pool as `SCHED_BATCH` (see `thread_policy`); off by
    /// default: fewer context switches per commit, but commits that wait for the core's other
    /// work (`benches/load/results/single4-2026-11-30-s9.md`).
    pub sched_batch: bool,
    /// Redo-log bytes after which the writer starts a checkpoint (sled flushed in the
    /// background, the log's segments freed: `wal_checkpoint`). Smaller: shorter replays at
    /// restart, more sled flushes.
    pub checkpoint_bytes: u64,
    /// Payload bytes from which a commit is made durable by sled's flush instead of a redo-log
    /// record (`wal_through_sled`): big group commits, written once instead of twice.
    pub sled_commit_bytes: u64,
    /// Seal the event log's generations into files beside sled (`sealed_log`), which a
    /// restart reads instead of their sled values while they match.
    pub seal_event_log: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            page_cache_mb: DEFAULT_PAGE_CACHE_MB,
            compact_min_entries: crate::store::unit_log::DEFAULT_COMPACT_MIN_ENTRIES,
            sched_batch: false,
            checkpoint_bytes: crate::store::wal::DEFAULT_CHECKPOINT_BYTES,
            sled_commit_bytes: crate::store::wal::DEFAULT_SLED_COMMIT_BYTES,
            seal_event_log: true,
        }
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir` with the default [`StoreOptions`] and
    /// starts its writer thread.
    ///
    /// Startup reads the per-arm counters, the epoch records, two meta values, the event log
    /// and every sticky assignment (into the in-memory table, `sticky_table`), never the
    /// history; its time grows with the units stored.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, StoreOptions::default())
    }

    /// As [`SledStore::open`], with explicit options.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<SledStore, StoreError> {
        data_dir::prepare(dir)?;
        let location = Location {
            dir: dir.to_path_buf(),
            page_cache_mb: options.page_cache_mb,
        };
        let opened = location.open()?;
        let digester = opened.durable.event_ids.digester;
        let (last_seq, expired_through) = (opened.last_seq, opened.expired_through);
        let (durable_tx, durable_rx) = watch::channel(DurableMark {
            seq: last_seq,
            generation: 0,
        });
        let open = Arc::new(opened.open);
        let shared = Arc::new(Shared {
            db: ArcSwapOption::new(Some(Arc::clone(&open))),
            #[cfg(test)]
            data_sync_count: AtomicU64::new(0),
            // Everything on disk at open is durable: a record's commit wrote the sequence
            // number in the same atomic batch.
            durable_seq: AtomicU64::new(last_seq),
            generation: AtomicU64::new(0),
            durable_rx,
            counters: ArcSwap::from_pointee(load::counter_view(&opened.durable.arms)),
            epochs: ArcSwap::from_pointee(opened.durable.epochs.clone()),
            flush_count: AtomicU64::new(0),
            event_id_bytes: AtomicU64::new(opened.durable.event_ids.kept.heap_bytes() as u64),
            apply_lock: std::sync::RwLock::new(()),
            pending_exposures: Mutex::new(Vec::new()),
            health: HealthState::default(),
            sticky: ArcSwap::new(Arc::clone(&opened.durable.sticky)),
            export_indexes: Default::default(),
            #[cfg(test)]
            flush_gate: Mutex::new(()),
            #[cfg(test)]
            faults: Mutex::new(crate::store::recovery::Faults::default()),
        });
        let (commands, receiver) = mpsc::channel();
        let mut writer = Writer::new(
            Arc::clone(&shared),
            durable_tx,
            location,
            opened.durable,
            opened.wal,
            last_seq,
            expired_through,
        );
        writer.compact_min_entries = options.compact_min_entries;
        writer.checkpoint_bytes = options.checkpoint_bytes;
        writer.wal.set_checkpoint_bytes(options.checkpoint_bytes);
        writer.sled_commit_bytes = options.sled_commit_bytes;
        writer.wal.set_sled_commit_bytes(options.sled_commit_bytes);
        let sched_batch = options.sched_batch;
        if sched_batch {
            // sled's I/O pool exists once the open above wrote or read its log.
            thread_policy::batch_sled_pool();
        }
        let handle = std::thread::Builder::new()
            .name("banditd-store-writer".to_owned())
            .spawn(move || {
                if sched_batch {
                    thread_policy::batch_this_thread();
                }
                writer.run(receiver)
            })
            .map_err(|error| StoreError::Io(format!("cannot start the store writer: {error}")))?;
        // The sealed files are a cache (`sealed_log`): a store whose sealer cannot start
        // serves all the same, and its restarts read sled.
        let sealer = options
            .seal_event_log
            .then(|| {
                crate::store::sealed_log::Sealer::start(
                    Arc::clone(&shared),
                    dir.join(crate::store::sealed_log::DIR_NAME),
                    digester,
                    (
                        crate::store::sealed_log::FIRST_PASS_DELAY,
                        crate::store::sealed_log::PASS_INTERVAL,
                    ),
                    crate::store::health::wall_clock_ms,
                )
                .map_err(|error| tracing::warn!(%error, "the event-log sealer did not start"))
                .ok()
            })
            .flatten();
        Ok(SledStore {
            dir: dir.to_owned(),
            shared,
            commands,
            writer: Mutex::new(Some(handle)),
            replica: LocalReplica::default(),
            sealer: Mutex::new(sealer),
        })
    }
}
