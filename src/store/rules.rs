//! The rules every backend keeps, written once: pure decisions over values a backend read
//! inside its atomic write (no sled or Redis types, no I/O, the clock handed in). A backend
//! reads the records a write needs, asks these functions what the write is, and writes that,
//! all in one atomic step (sled: one request inside a group commit, `apply`; a script-based
//! backend: one script call). The contract suite (`contract`) checks every backend against
//! the outcomes.
//!
//! | rule | function | state it needs |
//! | --- | --- | --- |
//! | set-if-absent assignment: the first insert of a unit wins, a loser changes nothing | [`insert_sticky`] | the unit's record |
//! | compare-and-set re-assignment away from a retired variant; the new record has no reward, the old arm keeps its counters and records what moved away | [`reassign_sticky`] | the unit's record |
//! | an event id is applied at most once per experiment; a retry answers `Duplicate` | [`judge_reward`] | whether the id is kept |
//! | a reward is credited at most once per assignment (sticky: the record's reward; token: its mark) | [`judge_reward`] | the record / the mark |
//! | reward window measured at arrival with the server's clock; an event timestamp more than [`MAX_CLOCK_SKEW_MS`] before its assignment is refused | [`timing_refusal`] | the assignment's time |
//! | a token reward is refused once an expiry sweep passed its mark's deadline (the mark could be gone) | [`judge_reward`] | the sweep's watermark |
//! | event ids kept at least the reward window after arrival; token marks the window plus [`TOKEN_MARK_SLACK_MS`] after issue | [`Credit`] deadlines | — |
//! | exposures count raw and decayed N; rewards raw and decayed R, a reward decayed from its assignment | [`add_exposures`], [`add_reward`] (arithmetic in `decay`) | the arm's counters |
//! | expected exposures: the allocation of the moment scaled to sum to exactly the exposures counted, unusable entries 0, all to the exposed arm if nothing is usable | [`expected_exposure_shares`] | — |
//! | epoch start: set by the first write that counts anything, never moved | [`epoch_start`] | the epoch's start |
//! | stopping decision: the first one recorded holds forever | [`settle_decision`] | the epoch's decision |
//! | `exposure: on_render`, per request: a token is confirmed at most once per assignment id, within `confirm_within` of issue, refused once a sweep passed its mark's deadline; the mark is kept the longer of `confirm_within` and the reward window plus [`TOKEN_MARK_SLACK_MS`]; a reward on such a token is credited only if it was confirmed | [`judge_confirmation`], [`judge_reward`] | the confirmation mark, the sweep's watermark |
//! | guardrail halt: the first one recorded per metric and arm holds forever | `halts::settle_halt` | the halt record |
//! | guardrail events: the reward rules above, in the metric's own epoch, one credit mark per assignment and metric | `guardrail_events` (no rule of its own) | — |
//! | delay histograms: every counted exposure adds to its arm's cohort of its counting hour, every credited reward to its arm's bin of arrival − assignment (token: − issue) | `delay_histograms` ([`cohort_bin`](super::delay_histograms::cohort_bin), [`conversion_delay_bin`](super::delay_histograms::conversion_delay_bin)) | the arm's histograms (the assignment's time, for a unit) |
//! | `exposure: on_render`: a confirmation is a set-if-absent insert of the assignment into the counted epoch (at most once per unit), refused once [`confirmation_window_closed`]; it credits the expected exposures with the allocation at the assignment ([`confirmed_allocation`]) | [`insert_sticky`], [`confirmation_window_closed`], [`confirmed_allocation`] | the unit's record in the counted epoch |
//!
//! A backend whose atomic step runs outside Rust (a Redis Lua script) must mirror the rules
//! whose "state it needs" column is filled, since they read state inside the atomic step:
//! set-if-absent, compare-and-set, at-most-once ids and credits, the timing check (it needs
//! the assignment's time, which a re-assignment changes), the sweep watermark, the counter
//! arithmetic (decay reads the stored reference time), epoch start and first-write-wins. The
//! deadlines and the expected-exposure shares depend only on the request and can be computed
//! here and handed to the script. A mirrored rule needs a test that runs the mirror on the
//! worked cases of `rule_cases` (which these functions are checked against too) and compares.

use super::confirmations::{ConfirmOp, ConfirmOutcome};
use super::decay;
use super::records::Decision;
use super::types::{ArmCounters, RewardOp, RewardOutcome, RewardTarget, StickyRecord, Tally};

/// How long a token mark outlives its reward window. A token reward is accepted only while the
/// window is open by the arriving request's clock (see [`timing_refusal`]), so this is slack for
/// clocks that disagree: a server whose clock was stepped back, or a replica lagging the one
/// that ran the expiry sweep, still finds the mark (or the expiry watermark) and cannot credit
/// the assignment twice.
pub const TOKEN_MARK_SLACK_MS: u64 = 24 * 60 * 60 * 1000;

/// How far apart two clocks may be: an event's timestamp may lie this far in the future of its
/// arrival, or this far before its assignment, before the event is refused. Pipelines stamp
/// events with their own clocks, which a few minutes of NTP drift do not make wrong.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Set-if-absent: the record that holds after an insert of `record`, and whether the insert
/// won (and so counts one exposure of its variant).
pub fn insert_sticky(existing: Option<StickyRecord>, record: StickyRecord) -> (StickyRecord, bool) {
    match existing {
        Some(held) => (held, false),
        None => (record, true),
    }
}

/// What a compare-and-set re-assignment does to a unit that has a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Reassignment {
    /// The record names another variant: the call lost, nothing changes.
    Keep(StickyRecord),
    /// Write `record` (reward cleared) and count one exposure of its variant; the old arm's
    /// moved-away counts grow by one exposure and `moved_reward`, if the old record had one.
    Replace {
        record: StickyRecord,
        old_variant: String,
        moved_reward: Option<f64>,
    },
}

/// Compare-and-set: `held` is replaced by `record` only if it still names `from_variant`. A
/// new assignment earns its own reward once, so a reward handed in is dropped: the record
/// would otherwise imply a reward that was never counted.
pub fn reassign_sticky(
    held: StickyRecord,
    from_variant: &str,
    mut record: StickyRecord,
) -> Reassignment {
    if held.variant != from_variant {
        return Reassignment::Keep(held);
    }
    record.reward = None;
    record.rewarded_ms = None;
    Reassignment::Replace {
        record,
        old_variant: held.variant,
        moved_reward: held.reward,
    }
}

/// What a backend found for a reward's target, read in the same atomic step as the write.
#[derive(Debug, Clone, Copy)]
pub enum TargetState<'a> {
    /// A unit reward: the unit's sticky record, if it has one.
    Unit(Option<&'a StickyRecord>),
    /// A token reward: whether the assignment's credit mark exists, and the expiry sweep's
    /// watermark (every retained record due at or before it may be gone). `confirmed`: whether
    /// its confirmation mark exists (read only for a token that needs one, see
    /// `RewardTarget::Token::confirmed_only`).
    Token {
        marked: bool,
        expired_through: u64,
        confirmed: bool,
    },
}

/// A reward to credit: what to write besides the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    pub variant: String,
    /// The assignment's time: the reward decays from it (see [`add_reward`]).
    pub assigned_ms: u64,
    /// Keep the event id until then (arrival plus the window): a retry within the window is
    /// always recognised.
    pub event_id_retained_until_ms: u64,
    /// For a token: keep its credit mark until then (issue plus the window plus
    /// [`TOKEN_MARK_SLACK_MS`]).
    pub mark_retained_until_ms: Option<u64>,
}

/// The fate of one reward, given whether its event id is kept already and what its target
/// holds: at-most-once per event id, at-most-once per assignment, the timing rules and the
/// sweep watermark, in this order (a retry is `Duplicate` whatever else changed; a token
/// already credited is `AlreadyRewarded` even once its window closed).
pub fn judge_reward(
    op: &RewardOp,
    event_id_seen: bool,
    target: TargetState<'_>,
) -> Result<Credit, RewardOutcome> {
    if event_id_seen {
        return Err(RewardOutcome::Duplicate);
    }
    let event_id_retained_until_ms = op.now_ms.saturating_add(op.window_ms);
    match (&op.target, target) {
        (RewardTarget::Unit(_), TargetState::Unit(record)) => {
            let record = record.ok_or(RewardOutcome::UnitNotAssigned)?;
            judge_unit_record(op, record.assigned_ms, record.reward.is_some())?;
            Ok(Credit {
                variant: record.variant.clone(),
                assigned_ms: record.assigned_ms,
                event_id_retained_until_ms,
                mark_retained_until_ms: None,
            })
        }
        (
            RewardTarget::Token {
                variant,
                issued_ms,
                confirmed_only,
                ..
            },
            TargetState::Token {
                marked,
                expired_through,
                confirmed,
            },
        ) => {
            if marked {
                return Err(RewardOutcome::AlreadyRewarded);
            }
            if let Some(refusal) = timing_refusal(op, *issued_ms) {
                return Err(refusal);
            }
            let mark_retained_until_ms = token_mark_retained_until(*issued_ms, op.window_ms);
            if mark_retained_until_ms <= expired_through {
                return Err(RewardOutcome::OutsideWindow);
            }
            if *confirmed_only && !confirmed {
                return Err(RewardOutcome::NotConfirmed);
            }
            Ok(Credit {
                variant: variant.clone(),
                assigned_ms: *issued_ms,
                event_id_retained_until_ms,
                mark_retained_until_ms: Some(mark_retained_until_ms),
            })
        }
        // A backend hands in the state of the op's own target; a mismatch is its bug, and
        // crediting nothing is the safe answer.
        (RewardTarget::Unit(_), TargetState::Token { .. }) => Err(RewardOutcome::UnitNotAssigned),
        (RewardTarget::Token { .. }, TargetState::Unit(_)) => Err(RewardOutcome::OutsideWindow),
    }
}

/// A unit reward whose id is not kept, against the unit's record (assigned at
/// `assigned_ms`, `rewarded` or not): the timing rules, then at-most-once per assignment, as
/// [`judge_reward`] judges it. Shared with a backend that judges a reward before its atomic
/// step from the record it read, and has the step verify that record (the Redis store's
/// `src/store/redis/call_judged.rs`): it reads the record's fields without building one.
pub fn judge_unit_record(
    op: &RewardOp,
    assigned_ms: u64,
    rewarded: bool,
) -> Result<(), RewardOutcome> {
    if let Some(refusal) = timing_refusal(op, assigned_ms) {
        return Err(refusal);
    }
    if rewarded {
        return Err(RewardOutcome::AlreadyRewarded);
    }
    Ok(())
}

/// When a token's credit mark may be removed.
pub fn token_mark_retained_until(issued_ms: u64, window_ms: u64) -> u64 {
    issued_ms
        .saturating_add(window_ms)
        .saturating_add(TOKEN_MARK_SLACK_MS)
}

/// The timing rules of every reward, for both kinds of target, measured against the
/// assignment's time (the sticky record's, or the token's signed issue time):
///
/// - the window is measured with the server's clock at arrival (`now_ms`), whatever the event's
///   timestamp says, so a client cannot reopen a closed window by backdating its events;
/// - a timestamp more than [`MAX_CLOCK_SKEW_MS`] before the assignment is refused: an event
///   cannot have converted an assignment not yet made, and such a timestamp (0, seconds taken
///   for milliseconds) is a pipeline bug worth reporting rather than crediting.
///
/// The timestamp is used for nothing else; decay ages a reward from its assignment.
pub fn timing_refusal(op: &RewardOp, assigned_ms: u64) -> Option<RewardOutcome> {
    if op
        .occurred_ms
        .is_some_and(|occurred_ms| occurred_ms.saturating_add(MAX_CLOCK_SKEW_MS) < assigned_ms)
    {
        return Some(RewardOutcome::TimestampBeforeAssignment);
    }
    (op.now_ms > assigned_ms.saturating_add(op.window_ms)).then_some(RewardOutcome::OutsideWindow)
}

/// Counts `n` exposures of one arm made at one moment: raw N, and decayed N as of the tally's
/// time (`n` single exposures at one instant decay alike, so this is `n` single updates).
pub fn add_exposures(counters: &mut ArmCounters, tally: &Tally, n: u64) {
    counters.exposures += n;
    decay::record_change(counters, tally.now_ms, tally.half_life_ms, n as f64, 0.0);
}

/// Credits `reward` (arriving at `now_ms`) for an assignment made at `assigned_ms`: raw R, and
/// decayed R with the reward aged from its assignment (see `decay::reward_weight`).
pub fn add_reward(
    counters: &mut ArmCounters,
    reward: f64,
    assigned_ms: u64,
    now_ms: u64,
    half_life_ms: Option<u64>,
) {
    let weighted = decay::reward_weight(reward, assigned_ms, now_ms, half_life_ms);
    counters.reward_sum += reward;
    decay::record_change(counters, now_ms, half_life_ms, 0.0, weighted);
}

/// How `exposures` counted exposures of `exposed` add to each arm's expected exposures: the
/// allocation of the moment scaled to sum to exactly `exposures` (entries negative or not
/// finite count as 0), or everything to the exposed arm if nothing usable remains. So the
/// expected exposures of an epoch always sum to its counted exposures (what the audit checks).
/// Arms whose share is 0 are left out.
pub fn expected_exposure_shares<'a>(
    allocation: &'a [(String, f64)],
    exposed: &'a str,
    exposures: f64,
) -> Vec<(&'a str, f64)> {
    let mut shares = Vec::with_capacity(allocation.len().max(1));
    for_each_expected_share(allocation, exposed, exposures, |variant, share| {
        shares.push((variant, share))
    });
    shares
}

/// [`expected_exposure_shares`] without the list: calls `each` with every arm and its share,
/// in the allocation's order. The sled writer counts every new unit through it, so it
/// allocates nothing.
pub fn for_each_expected_share<'a>(
    allocation: &'a [(String, f64)],
    exposed: &'a str,
    exposures: f64,
    mut each: impl FnMut(&'a str, f64),
) {
    let usable = |probability: f64| {
        if probability.is_finite() && probability > 0.0 {
            probability
        } else {
            0.0
        }
    };
    let total: f64 = allocation
        .iter()
        .map(|(_, probability)| usable(*probability))
        .sum();
    if !(total.is_finite() && total > 0.0) {
        each(exposed, exposures);
        return;
    }
    for (variant, probability) in allocation {
        let share = exposures * usable(*probability) / total;
        if share > 0.0 {
            each(variant.as_str(), share);
        }
    }
}

/// The epoch's start after a write at `now_ms` that counts something: the first such write
/// sets it, later ones (even with an earlier clock) never move it. `None` when it is already
/// set (nothing to write).
pub fn epoch_start(started_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    started_ms.is_none().then_some(now_ms)
}

/// First write wins: the decision that holds after `proposed` is offered, and whether it is
/// `proposed` (to be written).
pub fn settle_decision(held: Option<&Decision>, proposed: Decision) -> (Decision, bool) {
    match held {
        Some(held) => (held.clone(), false),
        None => (proposed, true),
    }
}

/// Whether a confirmation arriving at `now_ms` (the server's clock) of an assignment made at
/// `assigned_ms` comes too late: more than `within_ms` (`confirm_within`) after it. The
/// boundary itself is still open, like the reward window's.
pub fn confirmation_window_closed(assigned_ms: u64, now_ms: u64, within_ms: u64) -> bool {
    now_ms > assigned_ms.saturating_add(within_ms)
}

/// When a per-request token's confirmation mark may be removed: issue plus the longer of
/// `confirm_within` and the reward window, plus [`TOKEN_MARK_SLACK_MS`]. At-most-once
/// confirmation needs it for `confirm_within`; a reward on the token needs it for its whole
/// window, and the slack covers clocks that disagree, as for credit marks.
pub fn confirmation_mark_retained_until(
    issued_ms: u64,
    confirm_within_ms: u64,
    reward_window_ms: u64,
) -> u64 {
    issued_ms
        .saturating_add(confirm_within_ms.max(reward_window_ms))
        .saturating_add(TOKEN_MARK_SLACK_MS)
}

/// The fate of one per-request token confirmation, given whether its assignment id is marked
/// confirmed already and the expiry sweep's watermark: a mark means `AlreadyConfirmed` (even
/// once the window closed, like a credited token); then more than `confirm_within` after
/// issue ([`confirmation_window_closed`]), or a mark a sweep may have removed, is
/// `OutsideWindow`. `Ok` holds when the new mark is due for removal; the write is the mark and
/// one exposure of the token's variant, with the allocation at issue.
pub fn judge_confirmation(
    op: &ConfirmOp,
    marked: bool,
    expired_through: u64,
) -> Result<u64, ConfirmOutcome> {
    if marked {
        return Err(ConfirmOutcome::AlreadyConfirmed);
    }
    if confirmation_window_closed(op.issued_ms, op.now_ms, op.confirm_within_ms) {
        return Err(ConfirmOutcome::OutsideWindow);
    }
    let retained_until_ms =
        confirmation_mark_retained_until(op.issued_ms, op.confirm_within_ms, op.reward_window_ms);
    if retained_until_ms <= expired_through {
        return Err(ConfirmOutcome::OutsideWindow);
    }
    Ok(retained_until_ms)
}

/// The allocation a confirmed exposure credits to the expected exposures: the one at its
/// assignment. A fresh assignment's token carries it (`carried`), which is exact. Otherwise
/// (a unit's confirmation, or a returning unit's token) only the chosen arm's propensity
/// `propensity` is known from the record: it keeps that share, and the rest is spread over the
/// other arms of `current` (the allocation now) in their current proportions; with two arms
/// that is exact too, with more it approximates the split of the moment.
pub fn confirmed_allocation(
    carried: Option<&[(String, f64)]>,
    variant: &str,
    propensity: f64,
    current: &[(String, f64)],
) -> Vec<(String, f64)> {
    if let Some(carried) = carried {
        return carried.to_vec();
    }
    let propensity = if propensity.is_finite() {
        propensity.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let others: f64 = current
        .iter()
        .filter(|(v, p)| v != variant && p.is_finite() && *p > 0.0)
        .map(|(_, p)| p)
        .sum();
    let mut allocation = vec![(variant.to_owned(), propensity)];
    if others > 0.0 {
        allocation.extend(
            current
                .iter()
                .filter(|(v, p)| v != variant && p.is_finite() && *p > 0.0)
                .map(|(v, p)| (v.clone(), (1.0 - propensity) * (p / others))),
        );
    }
    allocation
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
