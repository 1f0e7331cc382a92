//! What each write does, evaluated by the writer thread against a [`Txn`]: set-if-absent
//! assignment, compare-and-set re-assignment away from a retired variant, per-request
//! exposures, at-most-once rewards, epoch decisions and history. (Retention expiry
//! has its own module, `expiry`, with the index it walks.)
//!
//! Every counter change is made next to the record change that implies it, in the same
//! request, so the two always land in the same atomic commit; so is the epoch's start time.
//! What each write decides (who wins, whether a reward is credited, by how much each counter
//! moves) is `rules`, shared with every backend; this module reads and writes sled's records.

use super::codec;
use super::error::StoreError;
use super::event_log;
use super::keys::{self, KIND_STICKY};
use super::mark_log::PendingMark;
use super::overlay::{Reads, Txn};
use super::records::Decision;
use super::reward_digests::{OpDigests, RewardDigests};
use super::rules::{self, Credit, Reassignment, TargetState};
use super::sled_delay;
use super::state::ArmState;
use super::types::{
    Epoch, RewardOp, RewardOutcome, RewardTarget, StickyRecord, Tally, TokenCredit,
};

/// Inserts `record` unless the unit already has one; counts one exposure of the winner's arm
/// if this call inserted it (a losing call changes nothing). See `rules::insert_sticky`.
/// A call that fails changes nothing either: its one fallible step, reading the arm's cohort
/// bin (`sled_delay::count_cohort`), runs before any write, so a run of new units can share
/// one txn and a failing one leaves only its neighbours' changes (`writer_apply`).
/// `written`: the unit's sticky key (`keys::epoch_key(KIND_STICKY, epoch, unit)`), its digest
/// in the sticky table and the record: the store handle built the key and its digest for its
/// own lookup, and the writer reads and writes with them as they are (`reward_digests`).
pub fn insert_sticky(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    written: (Vec<u8>, u64, StickyRecord),
    tally: &Tally,
) -> Result<(StickyRecord, bool), StoreError> {
    let (key, digest, record) = written;
    let existing = txn.sticky(&key, digest);
    let (held, won) = rules::insert_sticky(existing, record);
    if won {
        count_many_exposures(txn, epoch, &held.variant, tally, false, 1)?;
        txn.put_sticky(key, digest, held.clone());
    }
    Ok((held, won))
}

/// Replaces the unit's record with `record` if it still names `from_variant` (compare-and-set,
/// see `rules::reassign_sticky`), counting one exposure of the new arm like a winning insert.
/// The old arm keeps its counters; its moved-away counts grow by what the replaced record
/// implied, in the same request, so the audit still finds counters = records. `None` when the
/// unit has no record at all; otherwise the record that holds and whether it is new.
pub fn reassign_sticky(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    unit: &str,
    from_variant: &str,
    record: StickyRecord,
    tally: &Tally,
) -> Result<Option<(StickyRecord, bool)>, StoreError> {
    let key = keys::epoch_key(KIND_STICKY, epoch, unit);
    let digest = txn.sticky_digest(&key);
    let Some(held) = txn.sticky(&key, digest) else {
        return Ok(None);
    };
    match rules::reassign_sticky(held, from_variant, record) {
        Reassignment::Keep(held) => Ok(Some((held, false))),
        Reassignment::Replace {
            record,
            old_variant,
            moved_reward,
        } => {
            txn.update_arm(epoch, &old_variant, |arm| {
                arm.moved_away.exposures += 1;
                arm.moved_away.reward_sum += moved_reward.unwrap_or(0.0);
            });
            txn.put_sticky(key, digest, record.clone());
            count_many_exposures(txn, epoch, &record.variant, tally, false, 1)?;
            Ok(Some((record, true)))
        }
    }
}

/// Counts `n` per-request exposures of `variant` that share one tally (same moment, same
/// allocation): the arm's per-request count is their only record.
pub fn count_exposures(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    variant: &str,
    tally: &Tally,
    n: u64,
) -> Result<(), StoreError> {
    count_many_exposures(txn, epoch, variant, tally, true, n)
}

/// `n` exposures at one moment under one allocation: raw and decayed N, every arm's expected
/// exposures, the epoch start (see `rules`), in one update per arm, and the arm's cohort
/// (`delay_histograms`). Fails only on reading the cohort bin, before it writes anything.
fn count_many_exposures(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    variant: &str,
    tally: &Tally,
    per_request: bool,
    n: u64,
) -> Result<(), StoreError> {
    sled_delay::count_cohort(txn, epoch, variant, tally.now_ms, n)?;
    // The epoch's arms are found once for the exposed arm and every expected share; each arm
    // sees the same additions in the same order as with one `update_arm` each.
    let mut arms = txn.epoch_arms(epoch);
    arms.update(variant, |arm| {
        rules::add_exposures(&mut arm.counters, tally, n);
        if per_request {
            arm.per_request += n;
        }
    });
    rules::for_each_expected_share(
        &tally.allocation,
        variant,
        n as f64,
        |arm_variant, share| {
            arms.update(arm_variant, |arm| arm.counters.expected_exposures += share);
        },
    );
    mark_started(txn, epoch, tally.now_ms);
    Ok(())
}

/// Records the epoch's start at the first write that counts anything in it.
fn mark_started(txn: &mut Txn<'_>, epoch: &Epoch, now_ms: u64) {
    let started_ms = txn.epoch_info(epoch).and_then(|info| info.started_ms);
    if let Some(start) = rules::epoch_start(started_ms, now_ms) {
        txn.update_epoch(epoch, |info| info.started_ms = Some(start));
    }
}

/// A run of rewards in one txn: one request's, or those of consecutive single-event requests
/// of one commit sharing one txn (`writer_apply`). The delay bins are summed over the run and
/// written once (`sled_delay::DelayCounts`), an epoch's start is looked at once per run, and
/// each arm credited is read once and written once ([`RewardRun::finish`]).
///
/// One reward that fails changes nothing: its fallible reads (its delay bin, a token's
/// confirmation mark) come before anything it writes, here or in the txn, so a single-event
/// request that fails leaves only its neighbours' rewards in a shared txn. A request of several
/// rewards may fail after its first ones wrote, so it never shares its txn.
#[derive(Default)]
pub struct RewardRun {
    delays: sled_delay::DelayCounts,
    /// The arms the run credited, each as the txn held it before the run plus the run's
    /// credits, written back once by [`RewardRun::finish`]: `Txn::update_arm` per reward
    /// hashed the epoch and the variant in each layer it looked in; a run credits a few arms,
    /// found here by a comparison each, ~140 instructions of a bulk event fewer in
    /// `apply_rewards` (~200 on the writer, `benches/load/bulk_cost.sh`). Nothing else the run
    /// does reads or writes an arm's state, and nothing else runs in its txn until it ends.
    /// An epoch listed here had a reward credited in this run, so its start was looked at
    /// then (it never changes once set): the list is also the run's set of started epochs.
    arms: Vec<(Epoch, String, ArmState)>,
}

impl RewardRun {
    /// Applies one request's rewards in order. A unit's slots in the sticky table are asked
    /// for `sticky_table::PREFETCH_AHEAD` events before its turn: in a batch of rewards to
    /// units spread over millions, waiting for memory is most of a lookup. Each op's event-id
    /// digest and its unit's sticky key and key digest come made by the store handle
    /// (`digests`, checked against the writer's key: `reward_digests`), so the writer hashes
    /// nothing.
    pub fn apply(
        &mut self,
        txn: &mut Txn<'_>,
        ops: &[RewardOp],
        digests: RewardDigests,
    ) -> Result<Vec<RewardOutcome>, StoreError> {
        let ahead = super::sticky_table::PREFETCH_AHEAD;
        let (events, sticky) = txn.digesters();
        let mut digests = digests.for_writer(&events, &sticky, ops);
        let prefetch = |txn: &Txn<'_>, digests: Option<&OpDigests>| {
            if let Some((_, digest)) = digests.and_then(|digests| digests.sticky.as_ref()) {
                txn.prefetch_sticky(*digest);
            }
        };
        for at in 0..ahead {
            prefetch(txn, digests.get(at));
        }
        txn.reserve_rewards(ops.len());
        let mut outcomes = Vec::with_capacity(ops.len());
        for (at, op) in ops.iter().enumerate() {
            prefetch(txn, digests.get(at + ahead));
            // The key moves into the request's writes; its place is not read again. (There is
            // a digest per op: `for_writer`.)
            let (event_id, sticky) = match digests.get_mut(at) {
                Some(op_digests) => (
                    op_digests.event_id,
                    op_digests
                        .sticky
                        .as_mut()
                        .map(|(key, digest)| (std::mem::take(key), *digest)),
                ),
                None => (events.digest(&op.epoch.experiment, &op.event_id), None),
            };
            outcomes.push(self.apply_reward(txn, op, event_id, sticky)?);
        }
        Ok(outcomes)
    }

    /// Writes the run's delay bins and arms into the txn; the run's last step.
    pub fn finish(self, txn: &mut Txn<'_>) {
        self.delays.write(txn);
        for (epoch, variant, state) in self.arms {
            txn.update_arm(&epoch, &variant, |arm| *arm = state);
        }
    }

    /// The run's copy of the arm, read from the txn's layers on its first credit.
    fn arm(&mut self, txn: &Txn<'_>, epoch: &Epoch, variant: &str) -> &mut ArmState {
        let found = self
            .arms
            .iter()
            .position(|(held, held_variant, _)| held_variant == variant && held == epoch);
        let at = found.unwrap_or_else(|| {
            let state = txn.arm(epoch, variant);
            self.arms.push((epoch.clone(), variant.to_owned(), state));
            self.arms.len() - 1
        });
        &mut self.arms[at].2
    }

    /// Reads what `rules::judge_reward` needs, and writes what it decides: the credit (a
    /// unit's record rewritten with its reward, or a token's mark, see `mark_log`), the
    /// counters, the delay bin and the event id (in memory and in the commit's event log, see
    /// `event_ids`). Every read that can fail comes before the first write (see [`RewardRun`]).
    /// `digest`: the event id's (`Digester::digest`); `sticky`: a unit target's sticky key and
    /// its digest (`reward_digests`).
    fn apply_reward(
        &mut self,
        txn: &mut Txn<'_>,
        op: &RewardOp,
        digest: u64,
        sticky: Option<(Vec<u8>, u64)>,
    ) -> Result<RewardOutcome, StoreError> {
        let event_id_seen = txn.event_id_seen(digest);
        let credit = match &op.target {
            RewardTarget::Unit(unit) => {
                let judged = if event_id_seen {
                    rules::judge_reward(op, event_id_seen, TargetState::Unit(None))
                } else {
                    let (key, key_digest) = sticky.unwrap_or_else(|| {
                        let key = keys::epoch_key(KIND_STICKY, &op.epoch, unit);
                        let digest = txn.digesters().1.digest_bytes(&key);
                        (key, digest)
                    });
                    let delays = &mut self.delays;
                    txn.update_sticky(key, key_digest, |record, reads| {
                        let judged =
                            rules::judge_reward(op, false, TargetState::Unit(record.as_ref()));
                        let credit = match judged {
                            Ok(credit) => credit,
                            Err(outcome) => return (None, Ok(Err(outcome))),
                        };
                        // The delay bin is read (and counted) before the record is written.
                        if let Err(error) = count_delay(delays, reads, op, &credit) {
                            return (None, Err(error));
                        }
                        // Rewritten with this commit's sequence number: `sticky()` must not
                        // show the reward before it is durable either.
                        let write = record.map(|mut record| {
                            record.reward = Some(op.reward);
                            record.rewarded_ms = Some(op.now_ms);
                            record
                        });
                        (write, Ok(Ok(credit)))
                    })?
                };
                match judged {
                    Ok(credit) => credit,
                    Err(outcome) => return Ok(outcome),
                }
            }
            RewardTarget::Token {
                assignment_id,
                variant,
                issued_ms,
                propensity,
                ..
            } => {
                let mark_digest = txn.token_mark_digest(&op.epoch, assignment_id);
                let confirmed_only = matches!(
                    op.target,
                    RewardTarget::Token {
                        confirmed_only: true,
                        ..
                    }
                );
                let target = TargetState::Token {
                    marked: !event_id_seen && txn.token_marked(mark_digest),
                    expired_through: txn.expired_through(),
                    confirmed: confirmed_only
                        && super::confirm_apply::is_confirmed(txn, &op.epoch, assignment_id)?,
                };
                let credit = match rules::judge_reward(op, event_id_seen, target) {
                    Ok(credit) => credit,
                    Err(outcome) => return Ok(outcome),
                };
                // The delay bin is read (and counted) before the mark is written.
                count_delay(&mut self.delays, &txn.reads(), op, &credit)?;
                let retained_until_ms = credit.mark_retained_until_ms.unwrap_or(u64::MAX);
                txn.add_token_mark(PendingMark {
                    due_ms: event_log::generation_due(retained_until_ms),
                    epoch: op.epoch.clone(),
                    digest: mark_digest,
                    credit: TokenCredit {
                        assignment_id: assignment_id.clone(),
                        variant: variant.clone(),
                        reward: op.reward,
                        retained_until_ms,
                        issued_ms: *issued_ms,
                        propensity: *propensity,
                        credited_ms: Some(op.now_ms),
                    },
                });
                credit
            }
        };
        // Looked at before this credit lists the epoch (see `arms`).
        let started = self.arms.iter().any(|(epoch, _, _)| *epoch == op.epoch);
        credit_reward(self.arm(txn, &op.epoch, &credit.variant), op, &credit);
        if !started {
            mark_started(txn, &op.epoch, op.now_ms);
        }
        // Kept a full window after arrival (and up to `event_log::GENERATION_MS` more): a retry
        // within the window is always recognised.
        let due_ms = event_log::generation_due(credit.event_id_retained_until_ms);
        txn.add_event_id(due_ms, digest);
        Ok(RewardOutcome::Applied {
            variant: credit.variant,
        })
    }
}

/// Counts the credited reward in its delay bin (`sled_delay::DelayCounts::count`: fails only
/// on reading the bin, and then counts nothing).
fn count_delay(
    delays: &mut sled_delay::DelayCounts,
    reads: &Reads<'_>,
    op: &RewardOp,
    credit: &Credit,
) -> Result<(), StoreError> {
    let (epoch, variant) = (&op.epoch, &credit.variant);
    delays.count(
        reads,
        epoch,
        variant,
        op.reward,
        credit.assigned_ms,
        op.now_ms,
    )
}

/// Credits the reward to the arm's raw and decayed R (the epoch's start: `apply_reward`).
fn credit_reward(arm: &mut ArmState, op: &RewardOp, credit: &Credit) {
    rules::add_reward(
        &mut arm.counters,
        op.reward,
        credit.assigned_ms,
        op.now_ms,
        op.half_life_ms,
    );
}

/// Stores `decision` as the epoch's decision unless it has one (see `rules::settle_decision`);
/// returns the one that holds.
pub fn record_decision(txn: &mut Txn<'_>, epoch: &Epoch, decision: Decision) -> Decision {
    let held = txn
        .epoch_info(epoch)
        .and_then(|info| info.decision.as_ref());
    let (held, won) = rules::settle_decision(held, decision);
    if won {
        let recorded = held.clone();
        txn.update_epoch(epoch, |info| info.decision = Some(recorded));
    }
    held
}

/// Stores one history point (compact JSON), replacing a point at the same time.
/// Stores the spec the epoch is served under, replacing the earlier one.
pub fn record_epoch_spec(txn: &mut Txn<'_>, epoch: &Epoch, spec_json: &[u8]) {
    let value = codec::encode_epoch_spec(spec_json, txn.seq());
    txn.put(keys::epoch_spec_key(epoch), value);
}

pub fn append_history(txn: &mut Txn<'_>, epoch: &Epoch, at_ms: u64, point_json: &[u8]) {
    let value = codec::encode_history(point_json, txn.seq());
    txn.put(keys::history_key(epoch, at_ms), value);
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
