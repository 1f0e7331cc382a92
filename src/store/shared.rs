//! State shared by the store handle (readers) and the writer thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;

use super::disk::OpenDb;
use super::error::StoreError;
use super::exposures::PendingExposure;
use super::health::HealthState;
use super::state::{CounterMap, EpochMap};
use super::sticky_table::StickyTable;

/// How far the disk has come, as readers that wait for a commit see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableMark {
    /// Sequence number of the last commit known to be on disk.
    pub seq: u64,
    /// How many times the database was dropped after a failed commit (see
    /// [`Shared::generation`]).
    pub generation: u64,
}

/// State shared by the store handle (readers) and the writer thread.
pub struct Shared {
    /// The open database; `None` while the writer reopens it after a failed commit, so that
    /// nobody reads a database holding a batch that never reached the disk (see `disk`).
    pub db: ArcSwapOption<OpenDb>,
    /// Sequence number of the last commit known to be on disk. Records written by a later
    /// commit are not shown yet.
    pub durable_seq: AtomicU64,
    /// Bumped (before readers can reach a reopened database) each time a failed commit's
    /// database is dropped. A reader that read a not-yet-durable record and then sees the
    /// generation move reads again: the record may belong to the failed batch.
    pub generation: AtomicU64,
    /// [`DurableMark`]s, for readers that must wait. Closed when the writer stops.
    pub durable_rx: watch::Receiver<DurableMark>,
    pub counters: ArcSwap<CounterMap>,
    /// Published epoch records, swapped whole after a commit that changed one (rare: an
    /// epoch's first write and its decision).
    pub epochs: ArcSwap<EpochMap>,
    pub flush_count: AtomicU64,
    /// Heap bytes of the kept event-id digests (`event_ids`), which only the writer reads:
    /// stored after every commit for the store's stats (`TableBytes`).
    pub event_id_bytes: AtomicU64,
    /// Held for writing while the writer applies a commit to sled op by op, and for reading by
    /// every reader of sled for its whole read, so that no reader sees part of a commit
    /// (`wal::Wal::apply_last`).
    pub apply_lock: std::sync::RwLock<()>,
    /// Commits whose redo record was `fdatasync`ed (equals `flush_count`).
    #[cfg(test)]
    pub data_sync_count: AtomicU64,
    /// Per-request exposures not yet taken into a batch.
    /// Every batch takes all of them.
    pub pending_exposures: std::sync::Mutex<Vec<PendingExposure>>,
    /// Whether writes reach the disk, and the failure episodes so far.
    pub health: HealthState,
    /// Every durable sticky record, for `sticky()`: the writer applies each commit's sticky
    /// writes to it after the fsync and before `durable_seq` moves, and swaps in a table
    /// loaded afresh when it reopens the database (see `sticky_table`).
    pub sticky: ArcSwap<StickyTable>,
    /// Sorted unit ids of the epochs being exported (see `export_index`).
    pub export_indexes: super::export_index::ExportIndexes,
    /// Test hook: held by a test to freeze the writer between applying a batch to sled (its
    /// redo record durable already) and publishing it.
    #[cfg(test)]
    pub flush_gate: std::sync::Mutex<()>,
    /// Test hook: commits and reopens to fail (see [`Faults`]).
    #[cfg(test)]
    pub faults: std::sync::Mutex<Faults>,
}

/// A reader's handle on the open database: an `arc_swap` guard, so that concurrent readers
/// do not all bump one reference count (the read path had no shared write before the
/// database became swappable, and keeps none).
pub struct DbRef(arc_swap::Guard<Option<Arc<OpenDb>>>);

impl std::ops::Deref for DbRef {
    type Target = OpenDb;

    fn deref(&self) -> &OpenDb {
        match &*self.0 {
            Some(open) => open,
            // `Shared::sled` builds a `DbRef` only from a guard holding a database.
            None => unreachable!("a DbRef always holds a database"),
        }
    }
}

impl Shared {
    /// The open database, or the error of a store that is reopening it. Hold the handle only
    /// for one read, never across an `.await`: while any handle lives, the directory lock
    /// stays taken and a reopen has to wait.
    pub fn sled(&self) -> Result<DbRef, StoreError> {
        let guard = self.db.load();
        if guard.is_none() {
            return Err(self.health.unavailable());
        }
        Ok(DbRef(guard))
    }

    /// The current [`Shared::generation`]; load it before [`Shared::sled`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The error for a request that found the writer gone or failing.
    pub fn stopped_error(&self) -> StoreError {
        if self.health.writable() {
            StoreError::Closed
        } else {
            self.health.unavailable()
        }
    }
}

/// Faults a test injects into the writer (`Shared::faults`; `recovery` takes them).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Faults {
    /// Commits to fail before anything is written (the redo log nor sled).
    pub fail_before_apply: u32,
    /// Commits whose redo record's `pwrite` fails for real (the segment's descriptor pointed
    /// at `/dev/full`): nothing of them is durable, nothing reaches sled.
    pub fail_log_write: u32,
    /// Commits whose redo record is written but whose `fdatasync` fails for real: the record
    /// sits in the page cache, valid, and the reopen must not replay it.
    pub fail_log_sync: u32,
    /// Commits to report as failed after they were durable and applied (as when a step after
    /// the redo log's `fdatasync` fails): the reopen replays them.
    pub fail_after_sync: u32,
    /// Checkpoints whose sled flush fails for real (sled's log file broken first): sled records
    /// its global error, and the store reopens.
    pub fail_checkpoint: u32,
    /// Reopen attempts to fail.
    pub fail_reopens: u32,
}
