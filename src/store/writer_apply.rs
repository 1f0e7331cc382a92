//! One command of a group commit, evaluated against the request's [`Txn`] (`writer`: the
//! batch loop that runs these, and shares one txn among a run of new units).
//!
//! A run of consecutive new units (`Command::InsertSticky`) shares one txn: each unit's own
//! txn cost an epoch clone, an arm map and a variant string per arm counted, and
//! `BatchState::merge` folded them into the batch again, ~3,000 writer instructions per new
//! unit (`benches/load/results/unit7-2026-12-01-s12.md`). That is sound because a failing
//! insert changes nothing in its txn (`apply::insert_sticky` makes its one fallible read
//! first), so its neighbours' changes are the only ones the run's txn holds; any other command
//! that fails half-way still has a txn of its own, dropped whole. (Tested through the store,
//! `src/store/writer_apply_tests.rs`, a test module of `src/store/sled.rs`.)

use super::apply;
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
                let result = apply::apply_rewards(txn, &ops, digests);
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
