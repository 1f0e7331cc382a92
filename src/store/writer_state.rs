//! The writer thread's state, apart from what it does (`writer`: the group-commit loop;
//! `recovery`: what follows a failed commit), so that both depend on this module and not on
//! each other.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use super::command::Command;
use super::disk::{Location, OpenDb};
use super::error::StoreError;
use super::exposures::ExposureGroups;
use super::shared::{DurableMark, Shared};
use super::state::DurableState;
use super::unit_log::CompactionPass;
use super::wal::Wal;

/// The writer thread's own state: the authoritative, durable arm and epoch states.
pub struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) durable_tx: watch::Sender<DurableMark>,
    /// The database commits go to; `None` only inside `recover`.
    pub(super) open: Option<Arc<OpenDb>>,
    /// Where to reopen the database after a failed commit.
    pub(super) location: Location,
    pub(super) durable: DurableState,
    pub(super) last_seq: u64,
    pub(super) expired_through: u64,
    /// Expire commands that hit their per-commit limit, resumed before new commands.
    pub(super) carry: VecDeque<Command>,
    /// Per-request exposures of a failed commit: their tokens are out, so they are counted by
    /// the first commit after recovery instead of being dropped. Bounded by what one batch
    /// took: while the store fails, `count_exposure` queues nothing.
    pub(super) unfolded: ExposureGroups,
    /// The unit log's compaction pass under way, if any (`unit_log`).
    pub(super) compaction: Option<CompactionPass>,
    /// Superseded unit-log entries tolerated before a pass starts (`StoreOptions`).
    pub(super) compact_min_entries: u64,
    /// Requests somebody waited for in the last batch taken (`wave`).
    pub(super) previous_waited_for: usize,
    /// The redo log every commit goes to before sled (`wal`); replaced by each reopen.
    pub(super) wal: Wal,
    /// Record bytes between checkpoints (`StoreOptions::checkpoint_bytes`), kept for the
    /// logs of later reopens.
    pub(super) checkpoint_bytes: u64,
    /// Payload bytes from which a commit goes to sled's flush instead of the log
    /// (`StoreOptions::sled_commit_bytes`), kept for the logs of later reopens.
    pub(super) sled_commit_bytes: u64,
}

/// A commit that did not reach the disk.
pub(super) struct FailedCommit {
    /// The sequence number the batch would have had.
    pub seq: u64,
    pub cause: StoreError,
}

impl Writer {
    /// The writer of the database `shared` holds (`shared.db`, as the opener installed it).
    pub fn new(
        shared: Arc<Shared>,
        durable_tx: watch::Sender<DurableMark>,
        location: Location,
        durable: DurableState,
        wal: Wal,
        last_seq: u64,
        expired_through: u64,
    ) -> Self {
        Writer {
            open: shared.db.load_full(),
            shared,
            durable_tx,
            location,
            durable,
            last_seq,
            expired_through,
            carry: VecDeque::new(),
            unfolded: ExposureGroups::default(),
            compaction: None,
            compact_min_entries: super::unit_log::DEFAULT_COMPACT_MIN_ENTRIES,
            previous_waited_for: 0,
            wal,
            checkpoint_bytes: super::wal::DEFAULT_CHECKPOINT_BYTES,
            sled_commit_bytes: super::wal::DEFAULT_SLED_COMMIT_BYTES,
        }
    }
}
