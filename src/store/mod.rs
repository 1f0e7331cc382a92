//! Persistence behind one interface: sticky assignments, applied event ids, per-arm counters.
//!
//! The engine only sees [`Store`]; `sled` is the embedded default, and a Redis backend can
//! implement the same trait for many replicas. Writes return futures that resolve only once the
//! write is durable (group commit: many requests share one flush).

mod apply;
mod audit;
mod codec;
mod keys;
mod overlay;
mod sled;
#[cfg(test)]
mod test_support;
mod writer;

pub use self::audit::{AuditReport, CounterMismatch};
pub use self::sled::SledStore;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

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
}

/// One data epoch of one experiment: counters and assignments never cross epochs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch {
    pub experiment: String,
    pub revision: u32,
}

/// A unit's remembered assignment within an epoch.
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
    /// When the conversion happened (the event's timestamp, else arrival).
    pub occurred_ms: u64,
    /// Arrival time, from the engine's clock.
    pub now_ms: u64,
    /// `reward.window` of the experiment: rewards later than this after assignment are refused,
    /// and ids are kept at least this long.
    pub window_ms: u64,
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
    /// The conversion happened more than `window_ms` after the assignment.
    OutsideWindow,
}

/// Persistence for the engine. All writes are durable when their future resolves.
pub trait Store: Send + Sync + 'static {
    /// The unit's sticky assignment, if any. Resolves only once that record is durable, so a
    /// caller never serves an assignment that a crash could still take back.
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>>;

    /// Inserts the assignment unless the unit already has one (set-if-absent), counting one
    /// exposure of its variant in the same atomic write. Resolves to the record that holds
    /// after the call and whether it was this call's.
    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
    ) -> StoreFuture<(StickyRecord, bool)>;

    /// Counts one per-request exposure. Not individually recorded; folded into the arm's
    /// counter at the next group commit. Never blocks.
    fn count_exposure(&self, epoch: &Epoch, variant: &str);

    /// Applies rewards in order; one outcome per op. Event ids, the at-most-once marks and the
    /// counters change in one atomic, durable write.
    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>>;

    /// Current durable counters of every arm seen in the epoch, by variant id.
    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>>;

    /// Removes event ids and token marks whose retention passed `now_ms`. Returns how many.
    fn expire(&self, now_ms: u64) -> StoreFuture<u64>;

    /// A named secret kept with the data (e.g. the token key), created with `make` on first use.
    fn secret(&self, name: &str, make: &mut dyn FnMut() -> Vec<u8>) -> Result<Vec<u8>, StoreError>;

    /// Makes everything acknowledged so far durable and stops the writer.
    fn shutdown(&self) -> StoreFuture<()>;
}
