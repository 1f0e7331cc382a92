//! Persistence behind one interface: sticky assignments, applied event ids, per-arm counters
//! (raw, decayed and expected), each epoch's start and stopping decision, and its history.
//!
//! The engine only sees [`Store`]; `sled` is the embedded default, and a Redis backend can
//! implement the same trait for many replicas. Writes return futures that resolve only once the
//! write is durable (group commit: many requests share one flush).

mod apply;
mod audit;
mod codec;
mod command;
#[cfg(test)]
pub mod contract;
mod data_dir;
mod decay;
mod disk;
mod expiry;
mod expiry_index;
mod exposures;
mod health;
mod keys;
mod load;
mod overlay;
mod records;
pub(crate) mod recovery;
mod redis;
pub mod rules;
mod scan;
mod secret_file;
mod select;
mod shared;
mod sled;
mod state;
mod sticky_cache;
#[cfg(test)]
pub(crate) mod test_support;
mod writer;
mod writer_state;

pub use self::audit::{AuditReport, CounterMismatch, ExpectationMismatch};
pub use self::expiry_index::MAX_RETENTION_LAG_MS;
pub use self::health::{FailureEpisode, StoreHealth};
pub use self::records::{Decision, DecisionRule, HistoryArm, HistoryPoint};
pub use self::recovery::{RECOVERY_BACKOFF_MAX_MS, RECOVERY_BACKOFF_MIN_MS};
pub use self::redis::{EXPOSURE_FLUSH_EVERY_MS, RedisOptions, RedisStore, RedisUrlError};
pub use self::rules::{MAX_CLOCK_SKEW_MS, TOKEN_MARK_SLACK_MS};
pub use self::select::{StoreConfig, open};
pub use self::sled::{DEFAULT_PAGE_CACHE_MB, SledStore, StoreOptions};
pub use self::sticky_cache::{DEFAULT_STICKY_CACHE_ENTRIES, StickyCacheStats};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A store operation in flight. Boxed so that the trait stays object-safe (`Arc<dyn Store>`).
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A failure of the storage layer itself (never caused by request content).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("store is shutting down")]
    Closed,
    /// Writes do not reach the disk now (a failure episode, see [`Store::health`]); nothing of
    /// the request was applied. The store recovers by itself once the disk accepts writes.
    #[error("store is not accepting writes: {0}")]
    Unavailable(String),
    /// The directory holds a store this build cannot read (another layout version).
    #[error("{0}")]
    Incompatible(String),
}

/// One data epoch of one experiment: counters and assignments never cross epochs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch {
    pub experiment: String,
    pub revision: u32,
}

/// A unit's remembered assignment within an epoch. Kept for the epoch's life; only a
/// re-assignment away from a retired variant ([`Store::reassign_sticky`]) replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct StickyRecord {
    pub variant: String,
    /// Milliseconds since the Unix epoch, as handed in by the engine's clock.
    pub assigned_ms: u64,
    /// Probability the policy had of choosing `variant` at assignment time.
    pub propensity: f64,
    /// The reward credited to this assignment, if any (at most one per assignment).
    pub reward: Option<f64>,
}

/// Exposure and reward totals of one arm in one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ArmCounters {
    /// N: counted assignments.
    pub exposures: u64,
    /// R: summed rewards, each in [0, 1].
    pub reward_sum: f64,
    /// N decayed by the experiment's half-life, as of `decayed_at_ms` (see
    /// [`ArmCounters::decayed_as_of`] for its value at another time). Equals N when writes
    /// carry no half-life.
    pub decayed_exposures: f64,
    /// R decayed the same way, each reward aged from its assignment, so it never outruns
    /// `decayed_exposures` by more than rounding.
    pub decayed_reward_sum: f64,
    /// The reference time of both decayed sums: the latest write time the arm has seen.
    pub decayed_at_ms: u64,
    /// Σ over the epoch's counted exposures (of every arm) of the probability the policy gave
    /// this arm at that moment: what N would be if the traffic split exactly as the policy
    /// intended. Comparing N with it across arms is the sample-ratio-mismatch test.
    pub expected_exposures: f64,
}

/// The context every counting write carries: when it happens, how fast evidence decays, and
/// how the policy splits traffic at that moment.
#[derive(Debug, Clone)]
pub struct Tally {
    /// The engine's clock at the write. For a sticky insert this is the record's
    /// `assigned_ms`, so an exposure and its reward age from the same instant.
    pub now_ms: u64,
    /// `policy.half_life` of the experiment; `None` keeps the decayed counters equal to the
    /// raw ones.
    pub half_life_ms: Option<u64>,
    /// Variant id → allocation probability under the current posterior snapshot. Shared per
    /// snapshot, so cloning is a reference-count bump. It should sum to 1; the store scales it
    /// to sum exactly so (entries that are negative or not finite count as 0), and if nothing
    /// usable remains it credits the whole expectation to the exposed arm, so that the
    /// expected exposures of an epoch always sum to its counted exposures.
    pub allocation: Arc<[(String, f64)]>,
}

/// Durable epoch-level facts, as of the last commit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpochInfo {
    /// The `now_ms` of the first write that counted anything in the epoch (an assignment, an
    /// exposure or a reward). Set once; later writes never move it, even with an earlier clock.
    pub started_ms: Option<u64>,
    /// The stopping decision, once one was recorded (first write wins, forever).
    pub decision: Option<Decision>,
}

/// A credited per-request (token) assignment, as its at-most-once mark keeps it. Marks are the
/// only per-request records: unrewarded per-request assignments are counted, never stored, and
/// a mark is removed (its reward folded into the arm's total) once `retained_until_ms` passes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCredit {
    /// The assignment id signed into the token.
    pub assignment_id: String,
    pub variant: String,
    pub reward: f64,
    /// When the mark is due for removal: the token's reward window end plus a day's grace.
    pub retained_until_ms: u64,
    /// When the token was issued.
    pub issued_ms: u64,
    /// The policy's probability of `variant` when the token was issued.
    pub propensity: f64,
}

/// What a reward event points at.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardTarget {
    /// A sticky unit: the store looks up its assignment.
    Unit(String),
    /// A verified assign token: the engine has checked its signature and window already.
    Token {
        /// Unique per issued assignment; the at-most-once credit key.
        assignment_id: String,
        variant: String,
        issued_ms: u64,
        /// The policy's probability of this variant at issue time (signed into the token).
        propensity: f64,
    },
}

/// One reward to apply, already validated by the engine (reward in [0,1], token signature).
#[derive(Debug, Clone, PartialEq)]
pub struct RewardOp {
    pub epoch: Epoch,
    /// The pipeline's event id; applied at most once per experiment.
    pub event_id: String,
    pub target: RewardTarget,
    pub reward: f64,
    /// The event's own timestamp, if it gave one. A client's clock decides nothing: it is only
    /// checked against the assignment (see `rules::timing_refusal`).
    pub occurred_ms: Option<u64>,
    /// Arrival time, from the engine's clock: the reward window is measured with it.
    pub now_ms: u64,
    /// `reward.window` of the experiment: rewards arriving later than this after the assignment
    /// are refused, and ids are kept at least this long.
    pub window_ms: u64,
    /// `policy.half_life` of the experiment (see [`Tally::half_life_ms`]).
    pub half_life_ms: Option<u64>,
}

/// The fate of one [`RewardOp`].
#[derive(Debug, Clone, PartialEq)]
pub enum RewardOutcome {
    /// Credited to `variant`.
    Applied { variant: String },
    /// This event id was applied before (a retry).
    Duplicate,
    /// The unit has no sticky assignment in this epoch.
    UnitNotAssigned,
    /// The assignment was already credited by a different event id.
    AlreadyRewarded,
    /// The reward arrived more than `window_ms` after the assignment (by the server's clock).
    OutsideWindow,
    /// The event's timestamp lies before the assignment it would credit (beyond clock skew).
    TimestampBeforeAssignment,
}

/// Persistence for the engine. All writes are durable when their future resolves.
pub trait Store: Send + Sync + 'static {
    /// The unit's sticky assignment, if any. Resolves only once that record is durable, so a
    /// caller never serves an assignment that a crash could still take back.
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>>;

    /// Inserts the assignment unless the unit already has one (set-if-absent), counting one
    /// exposure of its variant (raw, decayed and expected, see [`Tally`]) in the same atomic
    /// write. Resolves to the record that holds after the call and whether it was this call's;
    /// a call that lost changes nothing.
    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)>;

    /// Re-assigns `unit` from `from_variant` (a retired variant) to `record.variant` if, and
    /// only if, its current record still names `from_variant`: a compare-and-set, so among
    /// racing re-assignments of one unit exactly one wins.
    ///
    /// The winner counts one exposure of the new variant (raw, decayed and expected, see
    /// [`Tally`]) in the same atomic write, exactly like a winning `insert_sticky`, and the
    /// new record starts with `reward: None` (any reward in `record` is ignored): the new
    /// assignment can earn its own reward once. The retired arm's counters keep the old
    /// exposure and any reward credited to the old assignment; history is not rewritten.
    ///
    /// Resolves, once durable, to `Some((record that holds, whether this call wrote it))`. A
    /// unit whose record names another variant is left alone (`Some((its record, false))`).
    /// A unit with no record resolves to `None`: there is nothing to re-assign, and a fresh
    /// assignment is `insert_sticky`'s job, so the caller decides rather than the store.
    fn reassign_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        from_variant: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<Option<(StickyRecord, bool)>>;

    /// Queues one per-request exposure, folded into the arm's counters at the next group
    /// commit. Never blocks. Returns false, queuing nothing, while the store is not writable:
    /// the caller must then promise nothing for it (no token). A queued exposure whose commit
    /// fails is kept and counted once the store recovers; it is lost only if the process
    /// ends first (see the README's Durability section).
    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) -> bool;

    /// Applies rewards in order; one outcome per op. Event ids, the at-most-once marks and the
    /// counters change in one atomic, durable write.
    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>>;

    /// Current durable counters of every arm seen in the epoch, by variant id.
    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>>;

    /// The epoch's durable start time and decision (defaults for an epoch never written).
    fn epoch_info(&self, epoch: &Epoch) -> StoreFuture<EpochInfo>;

    /// Records the epoch's stopping decision unless it has one: the first write wins forever,
    /// so a decision is never silently reversed. Resolves, once durable, to the decision that
    /// holds.
    fn record_decision(&self, epoch: &Epoch, decision: Decision) -> StoreFuture<Decision>;

    /// Stores one history point of the epoch, replacing any point with the same `at_ms`.
    /// Resolves once durable.
    fn append_history(&self, epoch: &Epoch, point: HistoryPoint) -> StoreFuture<()>;

    /// Up to `limit` history points at or after `since_ms`, oldest first. Resolves only once
    /// every returned point is durable.
    fn history(&self, epoch: &Epoch, since_ms: u64, limit: usize)
    -> StoreFuture<Vec<HistoryPoint>>;

    /// Up to `limit` sticky assignments of the epoch whose unit sorts after `after_unit` (byte
    /// order of the UTF-8 unit; `None`: from the first), in that order: one page of an export.
    /// Pass the last unit of a page to get the next; a short page is the last. Resolves only
    /// once every returned record is durable, like [`Store::sticky`].
    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>>;

    /// Up to `limit` token credit marks of the epoch still retained, by assignment id after
    /// `after_id`, paginated like [`Store::scan_sticky`]. Resolves only once every returned
    /// mark is durable.
    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenCredit>>;

    /// Removes event ids and token marks whose retention passed `now_ms`. Returns how many.
    fn expire(&self, now_ms: u64) -> StoreFuture<u64>;

    /// A named secret kept with the data (e.g. the token key), created with `make` on first use.
    /// Every caller, on every replica sharing the store, gets the same bytes: if two create it
    /// at once, one creation wins and both answer it. Never readable by other local users: the
    /// sled backend keeps it in its own 0600 file.
    fn secret(&self, name: &str, make: SecretMaker) -> StoreFuture<Vec<u8>>;

    /// What an operator sizing the store needs: commits so far, the durable position and the
    /// backend's own figures. Cheap (counters only), so it can be polled.
    fn stats(&self) -> StoreStats;

    /// Recomputes every arm's counters from the stored records and compares them with the
    /// stored counters ("counters always equal what the records imply", after any crash). A
    /// full scan, for operators (`banditd audit`) and tests; it sees a consistent store (writes
    /// wait or are excluded while it runs).
    fn audit(&self) -> StoreFuture<AuditReport>;

    /// Whether writes reach the disk now. Cheap enough for every request (one atomic load).
    fn writable(&self) -> bool;

    /// Whether writes reach the disk, why not while they do not, and the failure episodes
    /// so far (for `/readyz` and operators).
    fn health(&self) -> StoreHealth;

    /// Makes everything acknowledged so far durable and stops the writer.
    fn shutdown(&self) -> StoreFuture<()>;
}

/// Creates a secret's bytes the first time it is asked for (see [`Store::secret`]).
pub type SecretMaker = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// Counters of a running store, since it was opened: a few figures every backend has, and the
/// backend's own in [`BackendStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// Atomic durable writes made (sled: group commits, each one batch and one fsync; a
    /// backend that batches requests into one round trip counts the round trips).
    pub commits: u64,
    /// A position that only grows, as of the last write known to be durable (sled: the
    /// sequence number of the last commit on disk).
    pub durable_position: u64,
    pub backend: BackendStats,
}

/// The figures only one backend has.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendStats {
    /// The embedded store: how well the cache of durable sticky records serves the traffic.
    Sled { sticky_cache: StickyCacheStats },
    /// Redis: the replica's cache of known sticky units, and how stale the counters of
    /// per-request exposures may be (they are aggregated in the replica and written at least
    /// this often).
    Redis {
        sticky_cache: StickyCacheStats,
        exposure_flush_ms: u64,
    },
}

impl BackendStats {
    /// The backend's name, as `GET /v1/admin/store` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            BackendStats::Sled { .. } => "sled",
            BackendStats::Redis { .. } => "redis",
        }
    }
}
