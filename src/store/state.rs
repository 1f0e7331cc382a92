//! The store's in-memory state types, shared by the writer, its transactions, the loader and
//! the codec: plain data with no behaviour of their own, in one module so that the modules
//! using them depend on it and not on each other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::types::{ArmCounters, Epoch, EpochInfo};

/// Everything the store keeps about one arm of one epoch.
///
/// `counters` is what the engine reads; the others are the records that `counters` must
/// agree with (besides sticky records and token marks), see `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ArmState {
    pub counters: ArmCounters,
    /// Per-request exposures: part of `counters.exposures`, but kept apart because they have
    /// no record of their own.
    pub per_request: u64,
    /// Rewards of token marks that expired, part of `counters.reward_sum`.
    pub folded_reward: f64,
    /// What re-assignments moved off this (retired) arm: still part of `counters`, since
    /// history is not rewritten, but no sticky record names this arm for them any more.
    pub moved_away: MovedAway,
}

/// The exposures and rewards of an arm whose units were re-assigned to another arm: one
/// exposure per moved unit, plus the reward its old assignment had been credited, if any.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MovedAway {
    pub exposures: u64,
    pub reward_sum: f64,
}

/// The hasher of the writer's in-memory maps: foldhash instead of std's SipHash-1-3. Their
/// keys are the experiments' ids and variant ids from the operator's folder, never a client's
/// input, so nothing needs SipHash's resistance to chosen keys; and the writer hashes them for
/// every arm of every new unit and event (SipHash was ~5,300 instructions per new unit on the
/// writer, `benches/load/assign_write_cost.sh`).
pub type FastHash = foldhash::fast::RandomState;

/// One arm state per variant of an epoch.
pub type ArmStates = HashMap<String, ArmState, FastHash>;

/// Arm states by epoch, then variant (nested so lookups need no owned key).
pub type ArmMap = HashMap<Epoch, ArmStates, FastHash>;

/// Epoch-level records by epoch.
pub type EpochMap = HashMap<Epoch, EpochInfo, FastHash>;

/// The writer's authoritative, committed state: small enough to keep whole in memory (a few
/// values per arm and per epoch), so the per-request path never reads them from sled.
#[derive(Debug, Default)]
pub struct DurableState {
    pub arms: ArmMap,
    pub epochs: EpochMap,
    /// The applied event ids, replayed from the event log (`event_log`).
    pub event_ids: super::event_ids::EventIdSet,
    /// Every durable sticky record (`sticky_table`), shared with the readers.
    pub sticky: Arc<super::sticky_table::StickyTable>,
    /// Entries the unit log holds, live or superseded (`unit_log`: what starts a compaction).
    pub unit_log_entries: u64,
}

/// One stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Key → new value, or `None` for a removal.
pub type WriteMap = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Published counters: epoch → variant → counters, swapped whole after each commit.
pub type CounterMap = HashMap<Epoch, Arc<HashMap<String, ArmCounters>>>;
