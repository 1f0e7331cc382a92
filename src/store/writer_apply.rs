//! One command of a group commit, evaluated against the request's [`Txn`] (`writer`: the
//! batch loop that runs these, and shares one txn among a [`Run`]).
//!
//! A run of consecutive new units (`Command::InsertSticky`) shares one txn: each unit's own
//! txn cost an epoch clone, an arm map and a variant string per arm counted, and
//! `BatchState::merge` folded them into the batch again, ~3,000 writer instructions per new
//! unit (`benches/load/results/unit7-2026-12-01-s12.md`). That is sound because a failing
//! insert changes nothing in its txn (`apply::insert_sticky` makes its one fallible read
//! first), so its neighbours' changes are the only ones the run's txn holds.
//!
//! A run of consecutive single-event requests (`Command::ApplyRewards` of one op) shares one
//! txn and one `apply::RewardRun` the same way: each request's own txn and run read its delay
//! bin from sled, copied its arm, and were merged into the batch, ~12,000 writer instructions
//! per event more than a bulk event costs (`benches/load/results/event15-2026-12-01-s15.md`).
//! A reward that fails changes nothing (`apply::RewardRun` makes its fallible reads first). A
//! request of several rewards, and any other command, that fails half-way still has a txn of
//! its own, dropped whole. (Tested through the store, `src/store/writer_apply_tests.rs`, a
//! test module of `src/store/sled.rs`.)

use super::apply::{self, RewardRun};
use super::command::{Command, Deferred, MAX_EXPIRE_PER_BATCH, defer};
use super::expiry::{self, ExpireProgress};
use super::overlay::Txn;
use super::writer::Barrier;

/// What a command may leave for the batch besides its changes and its answer.
pub(super) struct Step<'b> {
    /// The batch ends with a shutdown: a partial expiry pass answers instead of resuming.
    pub stopping: bool,
    /// Expire commands that hit their per-commit limit, resumed by the next commit.
    pub continued: &'b mut Vec<Command>,
    /// The audit or shutdown that ends the batch.
    pub barrier: &'b mut Option<Barrier>,
    /// The rewards of the txn's requests (one request's, or a run's), written into the txn
    /// by `RewardRun::finish` once its last request was applied.
    pub rewards: RewardRun,
}

/// Consecutive commands of one kind that share one txn (see the module's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    NewUnits,
    SingleEvents,
}

impl Run {
    /// The run `command` may share a txn in, if any.
    pub fn of(command: &Command) -> Option<Run> {
        match command {
            Command::InsertSticky { .. } => Some(Run::NewUnits),
            Command::ApplyRewards { ops, .. } if ops.len() == 1 => Some(Run::SingleEvents),
            _ => None,
        }
    }
}

impl Step<'_> {
    /// Evaluates `command` against `txn`: whether its changes join the batch, and how to
    /// answer it once the commit is durable (or failed).
    pub fn apply(&mut self, txn: &mut Txn<'_>, command: Command) -> (bool, Option<Deferred>) {
        match command {
            Command::InsertSticky {
                epoch,
                key,
                digest,
                record,
                tally,
                reply,
            } => {
                let digest = digest.for_writer(&txn.digesters().1, &key);
                let written = (key, digest, record);
                let result = apply::insert_sticky(txn, &epoch, written, &tally);
                (result.is_ok(), Some(defer(reply, result)))
            }
            Command::ReassignSticky {
                epoch,
                unit,
                from_variant,
                record,
                tally,
                reply,
            } => {
                let result =
                    apply::reassign_sticky(txn, &epoch, &unit, &from_variant, record, &tally);
                (result.is_ok(), Some(defer(reply, result)))
            }
            Command::WakeForExposures => (true, None),
            Command::RecordDecision {
                epoch,
                decision,
                reply,
            } => {
                let held = apply::record_decision(txn, &epoch, decision);
                (true, Some(defer(reply, Ok(held))))
            }
            Command::RecordHalt { epoch, halt, reply } => {
                let result = super::halts::record_in_txn(txn, &epoch, halt);
                (result.is_ok(), Some(defer(reply, result)))
            }
            Command::AppendHistory {
                epoch,
                at_ms,
                point_json,
                reply,
            } => {
                apply::append_history(txn, &epoch, at_ms, &point_json);
                (true, Some(defer(reply, Ok(()))))
            }
            Command::RecordEpochSpec {
                epoch,
                spec_json,
                reply,
            } => {
                apply::record_epoch_spec(txn, &epoch, &spec_json);
                (true, Some(defer(reply, Ok(()))))
            }
            Command::ApplyRewards {
                ops,
                digests,
                reply,
            } => {
                let result = self.rewards.apply(txn, &ops, digests);
                (result.is_ok(), Some(defer(reply, result)))
            }
            Command::ConfirmTokens { ops, reply } => {
                let result = super::confirm_apply::confirm_tokens(txn, &ops);
                (result.is_ok(), Some(defer(reply, result)))
            }
            Command::Expire {
                now_ms,
                removed_before,
                reply,
            } => {
                match expiry::expire(txn, now_ms, MAX_EXPIRE_PER_BATCH) {
                    Ok(ExpireProgress::More(removed)) if !self.stopping => {
                        let removed_before = removed_before + removed;
                        self.continued.push(Command::Expire {
                            now_ms,
                            removed_before,
                            reply,
                        });
                        (true, None)
                    }
                    // At shutdown, a partial pass reports what it removed.
                    Ok(ExpireProgress::More(removed) | ExpireProgress::Done(removed)) => {
                        (true, Some(defer(reply, Ok(removed_before + removed))))
                    }
                    Err(error) => (false, Some(defer(reply, Err(error)))),
                }
            }
            Command::Audit { reply } => {
                *self.barrier = Some(Barrier::Audit(reply));
                (false, None)
            }
            Command::Shutdown { reply } => {
                *self.barrier = Some(Barrier::Shutdown(reply));
                (false, None)
            }
        }
    }
}
