//! `exposure: on_render` with `assignment: per_request`: the values of a token confirmation.
//! A per-request assignment is counted in the ledger epoch only (its "assigned" tally); its
//! exposure is counted when the page confirms the token, at most once per assignment id, by a
//! confirmation mark written in the same atomic step as the exposure (README, "Exposure
//! modes"). The mark is what a reward on such a token needs: an unconfirmed token is refused
//! (`RewardOutcome::NotConfirmed`). The decisions are `rules::judge_confirmation` and
//! `rules::judge_reward`; the marks expire like token credit marks (`rules` says when).

use super::types::{Epoch, Tally};

/// One confirmation of a per-request token, already verified by the engine (signature,
/// experiment, revision).
#[derive(Debug, Clone)]
pub struct ConfirmOp {
    /// The counted epoch (not the ledger).
    pub epoch: Epoch,
    /// The assignment id signed into the token: the at-most-once key.
    pub assignment_id: String,
    pub variant: String,
    /// When the token was issued (its signed time).
    pub issued_ms: u64,
    /// The policy's probability of `variant` at issue.
    pub propensity: f64,
    /// Arrival, by the engine's clock: `confirm_within` is measured with it.
    pub now_ms: u64,
    /// `confirm_within` of the experiment.
    pub confirm_within_ms: u64,
    /// `reward.window` of the experiment: the mark must outlive every reward that needs it.
    pub reward_window_ms: u64,
    /// The exposure's context: `now_ms` is the issue time (an exposure ages from its
    /// assignment), the allocation the one at issue (`rules::confirmed_allocation`).
    pub tally: Tally,
}

/// The fate of one [`ConfirmOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Counted now: one exposure of the token's variant, durable before the answer.
    Confirmed,
    /// The assignment id was confirmed before (a retry, a second render): nothing counted.
    AlreadyConfirmed,
    /// More than `confirm_within` after issue, or past a sweep that may have removed its mark.
    OutsideWindow,
}

/// A confirmation mark still retained, as an export or an audit reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenConfirmation {
    pub assignment_id: String,
    pub variant: String,
    pub issued_ms: u64,
    pub propensity: f64,
    /// When the confirmation arrived, by the engine's clock.
    pub confirmed_ms: u64,
    /// When the mark is due for removal (see `rules::confirmation_mark_retained_until`).
    pub retained_until_ms: u64,
}
