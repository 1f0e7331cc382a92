//! The values that cross the [`super::Store`] trait: epochs, sticky records, counters, the
//! context of a counting write, rewards and their outcomes. Plain data, shared by the engine,
//! the rules and every backend.

use std::sync::Arc;

use super::records::Decision;

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
    /// When that reward arrived, by the engine's clock (the time to convert is this minus
    /// `assigned_ms`). `None` while unrewarded, and for rewards stored by builds that did not
    /// keep it.
    pub rewarded_ms: Option<u64>,
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

/// One page of an epoch's token credit marks ([`super::Store::scan_token_credits`]): the marks,
/// and where the next page starts (`None`: this was the last). The cursor is the backend's
/// own (sled: a place in its mark log; Redis: the last assignment id), opaque to callers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenCreditPage {
    pub credits: Vec<TokenCredit>,
    pub next: Option<String>,
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
    /// When the reward arrived, by the engine's clock; `None` for marks stored by builds that
    /// did not keep it.
    pub credited_ms: Option<u64>,
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
        /// `exposure: on_render`: credited only once the token was confirmed (its
        /// confirmation mark exists, see `confirmations`).
        confirmed_only: bool,
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
    /// `exposure: on_render`: the token's assignment was never confirmed as shown, so it is no
    /// exposure and earns no reward.
    NotConfirmed,
}
