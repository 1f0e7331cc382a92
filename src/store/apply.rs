//! What each write does, evaluated by the writer thread against a [`Txn`]: set-if-absent
//! assignment, compare-and-set re-assignment away from a retired variant, per-request
//! exposures, at-most-once rewards, epoch decisions and history. (Retention expiry
//! has its own module, `expiry`, with the index it walks.)
//!
//! Every counter change is made next to the record change that implies it, in the same
//! request, so the two always land in the same atomic commit; so is the epoch's start time.

use super::codec::{self, TokenMark};
use super::decay;
use super::keys::{self, KIND_STICKY, KIND_TOKEN_MARK};
use super::overlay::Txn;
use super::{
    Decision, Epoch, RewardOp, RewardOutcome, RewardTarget, StickyRecord, StoreError, Tally,
};

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

/// Inserts `record` unless the unit already has one; counts one exposure of the winner's arm
/// if this call inserted it (a losing call changes nothing).
pub fn insert_sticky(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    unit: &str,
    record: StickyRecord,
    tally: &Tally,
) -> Result<(StickyRecord, bool), StoreError> {
    let key = keys::epoch_key(KIND_STICKY, epoch, unit);
    if let Some(existing) = txn.get(&key)? {
        return Ok((codec::decode_sticky(&existing)?.record, false));
    }
    txn.put(key, codec::encode_sticky(&record, txn.seq()));
    count_one_exposure(txn, epoch, &record.variant, tally, false);
    Ok((record, true))
}

/// Replaces the unit's record with `record` if it still names `from_variant` (compare-and-set),
/// counting one exposure of the new arm like a winning insert. The old arm keeps its counters;
/// its moved-away counts grow by what the replaced record implied (one exposure, and its reward
/// if it had one), in the same request, so the audit still finds counters = records. `None`
/// when the unit has no record at all; otherwise the record that holds and whether it is new.
pub fn reassign_sticky(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    unit: &str,
    from_variant: &str,
    mut record: StickyRecord,
    tally: &Tally,
) -> Result<Option<(StickyRecord, bool)>, StoreError> {
    let key = keys::epoch_key(KIND_STICKY, epoch, unit);
    let Some(existing) = txn.get(&key)? else {
        return Ok(None);
    };
    let held = codec::decode_sticky(&existing)?.record;
    if held.variant != from_variant {
        return Ok(Some((held, false)));
    }
    // A new assignment earns its own reward once; a reward handed in would be implied by the
    // record without ever having been counted.
    record.reward = None;
    txn.update_arm(epoch, &held.variant, |arm| {
        arm.moved_away.exposures += 1;
        if let Some(reward) = held.reward {
            arm.moved_away.reward_sum += reward;
        }
    });
    txn.put(key, codec::encode_sticky(&record, txn.seq()));
    count_one_exposure(txn, epoch, &record.variant, tally, false);
    Ok(Some((record, true)))
}

/// Counts `n` per-request exposures of `variant` that share one tally (same moment, same
/// allocation): the arm's per-request count is their only record.
pub fn count_exposures(txn: &mut Txn<'_>, epoch: &Epoch, variant: &str, tally: &Tally, n: u64) {
    count_many_exposures(txn, epoch, variant, tally, true, n);
}

/// One counted exposure: raw N, decayed N, every arm's expected exposures, the epoch start.
fn count_one_exposure(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    variant: &str,
    tally: &Tally,
    per_request: bool,
) {
    count_many_exposures(txn, epoch, variant, tally, per_request, 1);
}

/// `n` exposures at one moment under one allocation: the same as `n` single ones (all decay
/// from the same instant), in one update per arm.
fn count_many_exposures(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    variant: &str,
    tally: &Tally,
    per_request: bool,
    n: u64,
) {
    txn.update_arm(epoch, variant, |arm| {
        arm.counters.exposures += n;
        if per_request {
            arm.per_request += n;
        }
        decay::record_change(
            &mut arm.counters,
            tally.now_ms,
            tally.half_life_ms,
            n as f64,
            0.0,
        );
    });
    add_expected_exposures(txn, epoch, variant, &tally.allocation, n as f64);
    mark_started(txn, epoch, tally.now_ms);
}

/// Adds the allocation of this moment to each arm's expected exposures, scaled to sum to
/// exactly `exposures` (see [`Tally::allocation`]), so that Σₖ expectedₖ = N for the epoch.
fn add_expected_exposures(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    exposed: &str,
    allocation: &[(String, f64)],
    exposures: f64,
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
        txn.update_arm(epoch, exposed, |arm| {
            arm.counters.expected_exposures += exposures
        });
        return;
    }
    for (variant, probability) in allocation {
        let share = exposures * usable(*probability) / total;
        if share > 0.0 {
            txn.update_arm(epoch, variant, |arm| {
                arm.counters.expected_exposures += share
            });
        }
    }
}

/// Records the epoch's start at the first write that counts anything in it.
fn mark_started(txn: &mut Txn<'_>, epoch: &Epoch, now_ms: u64) {
    if txn
        .epoch_info(epoch)
        .is_none_or(|info| info.started_ms.is_none())
    {
        txn.update_epoch(epoch, |info| info.started_ms = Some(now_ms));
    }
}

/// Credits `reward` for an assignment made at `assigned_ms` to the arm's raw and decayed R.
fn credit_reward(txn: &mut Txn<'_>, op: &RewardOp, variant: &str, assigned_ms: u64) {
    let weighted = decay::reward_weight(op.reward, assigned_ms, op.now_ms, op.half_life_ms);
    txn.update_arm(&op.epoch, variant, |arm| {
        arm.counters.reward_sum += op.reward;
        decay::record_change(&mut arm.counters, op.now_ms, op.half_life_ms, 0.0, weighted);
    });
    mark_started(txn, &op.epoch, op.now_ms);
}

/// Applies rewards in order, each seeing the ones before it.
pub fn apply_rewards(
    txn: &mut Txn<'_>,
    ops: &[RewardOp],
) -> Result<Vec<RewardOutcome>, StoreError> {
    ops.iter().map(|op| apply_reward(txn, op)).collect()
}

fn apply_reward(txn: &mut Txn<'_>, op: &RewardOp) -> Result<RewardOutcome, StoreError> {
    let id_key = keys::event_id_key(&op.epoch.experiment, &op.event_id);
    if txn.get(&id_key)?.is_some() {
        return Ok(RewardOutcome::Duplicate);
    }
    let outcome = match &op.target {
        RewardTarget::Unit(unit) => apply_unit_reward(txn, op, unit)?,
        RewardTarget::Token {
            assignment_id,
            variant,
            issued_ms,
            propensity,
        } => apply_token_reward(txn, op, assignment_id, variant, *issued_ms, *propensity)?,
    };
    if matches!(outcome, RewardOutcome::Applied { .. }) {
        // Kept a full window after arrival (and up to `expiry::MAX_RETENTION_LAG_MS` more): a
        // retry within the window is always recognised.
        let expiry_ms = op.now_ms.saturating_add(op.window_ms);
        txn.index_expiry(&id_key, expiry_ms);
        txn.put(id_key, codec::encode_u64(expiry_ms).to_vec());
    }
    Ok(outcome)
}

/// The timing rules of every reward, for every backend and both kinds of target, measured
/// against the assignment's time (the sticky record's, or the token's signed issue time):
///
/// - the window is measured with the server's clock at arrival (`now_ms`), whatever the event's
///   timestamp says, so a client cannot reopen a closed window by backdating its events;
/// - a timestamp more than [`MAX_CLOCK_SKEW_MS`] before the assignment is refused: an event
///   cannot have converted an assignment not yet made, and such a timestamp (0, seconds taken
///   for milliseconds) is a pipeline bug worth reporting rather than crediting.
///
/// The timestamp is used for nothing else; decay ages a reward from its assignment.
fn timing_refusal(op: &RewardOp, assigned_ms: u64) -> Option<RewardOutcome> {
    if op
        .occurred_ms
        .is_some_and(|occurred_ms| occurred_ms.saturating_add(MAX_CLOCK_SKEW_MS) < assigned_ms)
    {
        return Some(RewardOutcome::TimestampBeforeAssignment);
    }
    (op.now_ms > assigned_ms.saturating_add(op.window_ms)).then_some(RewardOutcome::OutsideWindow)
}

/// A unit's reward lives in its sticky record, which is never removed: so the at-most-once
/// guarantee for units does not depend on event-id retention at all.
fn apply_unit_reward(
    txn: &mut Txn<'_>,
    op: &RewardOp,
    unit: &str,
) -> Result<RewardOutcome, StoreError> {
    let key = keys::epoch_key(KIND_STICKY, &op.epoch, unit);
    let Some(bytes) = txn.get(&key)? else {
        return Ok(RewardOutcome::UnitNotAssigned);
    };
    let mut record = codec::decode_sticky(&bytes)?.record;
    if let Some(refusal) = timing_refusal(op, record.assigned_ms) {
        return Ok(refusal);
    }
    if record.reward.is_some() {
        return Ok(RewardOutcome::AlreadyRewarded);
    }
    record.reward = Some(op.reward);
    // Rewritten with this commit's sequence number: `sticky()` must not show the reward
    // before it is durable either.
    txn.put(key, codec::encode_sticky(&record, txn.seq()));
    credit_reward(txn, op, &record.variant, record.assigned_ms);
    Ok(RewardOutcome::Applied {
        variant: record.variant,
    })
}

/// A token assignment has no record besides its mark, and the mark expires. So a token reward
/// is refused once its window has closed, and also once an `expire` already worked on an index
/// value due at or after its mark (the watermark, kept by whichever clock ran the sweep);
/// otherwise a late retry could be credited twice.
fn apply_token_reward(
    txn: &mut Txn<'_>,
    op: &RewardOp,
    assignment_id: &str,
    variant: &str,
    issued_ms: u64,
    propensity: f64,
) -> Result<RewardOutcome, StoreError> {
    let mark_key = keys::epoch_key(KIND_TOKEN_MARK, &op.epoch, assignment_id);
    if txn.get(&mark_key)?.is_some() {
        return Ok(RewardOutcome::AlreadyRewarded);
    }
    if let Some(refusal) = timing_refusal(op, issued_ms) {
        return Ok(refusal);
    }
    let mark_expiry_ms = issued_ms
        .saturating_add(op.window_ms)
        .saturating_add(TOKEN_MARK_SLACK_MS);
    if mark_expiry_ms <= txn.expired_through() {
        return Ok(RewardOutcome::OutsideWindow);
    }
    let mark = TokenMark {
        expiry_ms: mark_expiry_ms,
        reward: op.reward,
        issued_ms,
        propensity,
        variant: variant.to_owned(),
    };
    txn.index_expiry(&mark_key, mark_expiry_ms);
    txn.put(mark_key, codec::encode_token_mark(&mark));
    credit_reward(txn, op, variant, issued_ms);
    Ok(RewardOutcome::Applied {
        variant: variant.to_owned(),
    })
}

/// Stores `decision` as the epoch's decision unless it has one; returns the one that holds.
pub fn record_decision(txn: &mut Txn<'_>, epoch: &Epoch, decision: Decision) -> Decision {
    if let Some(held) = txn
        .epoch_info(epoch)
        .and_then(|info| info.decision.as_ref())
    {
        return held.clone();
    }
    let held = decision.clone();
    txn.update_epoch(epoch, |info| info.decision = Some(decision));
    held
}

/// Stores one history point (compact JSON), replacing a point at the same time.
pub fn append_history(txn: &mut Txn<'_>, epoch: &Epoch, at_ms: u64, point_json: &[u8]) {
    let value = codec::encode_history(point_json, txn.seq());
    txn.put(keys::history_key(epoch, at_ms), value);
}
