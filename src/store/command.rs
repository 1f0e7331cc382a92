//! What the store handle asks of the writer thread, and how the writer answers.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::audit_report::AuditReport;
use super::confirmations::{ConfirmOp, ConfirmOutcome};
use super::error::StoreError;
use super::halts::Halt;
use super::records::Decision;
use super::reward_digests::{KeyDigest, RewardDigests};
use super::types::{Epoch, RewardOp, RewardOutcome, StickyRecord, Tally};

/// Most expiry-index entries one expire looks at per group commit (each at most one removal);
/// the rest follow in the next.
pub const MAX_EXPIRE_PER_BATCH: usize = 1024;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
pub type SyncReply<T> = mpsc::Sender<Result<T, StoreError>>;

/// Where an audit's report goes: a blocked thread (`SledStore::audit_blocking`) or a future
/// (`Store::audit`).
pub enum AuditReply {
    Blocking(SyncReply<AuditReport>),
    Async(Reply<AuditReport>),
}

impl AuditReply {
    pub fn send(self, report: Result<AuditReport, StoreError>) {
        // A caller that gave up waiting needs no answer.
        match self {
            AuditReply::Blocking(reply) => drop(reply.send(report)),
            AuditReply::Async(reply) => drop(reply.send(report)),
        }
    }
}

/// A request to the writer thread.
pub enum Command {
    InsertSticky {
        epoch: Epoch,
        /// The unit's sticky key (`keys::epoch_key(KIND_STICKY, ..)`), built once by the
        /// handle for its table lookup and moved here, so the writer does not build it again.
        key: Vec<u8>,
        /// The key's digest in the sticky table, made by the handle too.
        digest: KeyDigest,
        record: StickyRecord,
        tally: Tally,
        reply: Reply<(StickyRecord, bool)>,
    },
    ReassignSticky {
        epoch: Epoch,
        unit: String,
        from_variant: String,
        record: StickyRecord,
        tally: Tally,
        reply: Reply<Option<(StickyRecord, bool)>>,
    },
    /// Exposures are waiting in [`Shared::pending_exposures`]; sent only by the push that
    /// found that queue empty, so a stream of exposures wakes the writer once per commit
    /// instead of once per request.
    WakeForExposures,
    RecordDecision {
        epoch: Epoch,
        decision: Decision,
        reply: Reply<Decision>,
    },
    RecordHalt {
        epoch: Epoch,
        halt: Halt,
        reply: Reply<Halt>,
    },
    AppendHistory {
        epoch: Epoch,
        at_ms: u64,
        /// Compact JSON, encoded by the caller's thread rather than the writer's.
        point_json: Vec<u8>,
        reply: Reply<()>,
    },
    RecordEpochSpec {
        epoch: Epoch,
        /// Compact JSON, encoded by the caller's thread rather than the writer's.
        spec_json: Vec<u8>,
        reply: Reply<()>,
    },
    ApplyRewards {
        ops: Vec<RewardOp>,
        /// The ops' event-id and sticky-key digests, made by the handle so that the writer
        /// does not hash (`reward_digests`).
        digests: RewardDigests,
        reply: Reply<Vec<RewardOutcome>>,
    },
    ConfirmTokens {
        ops: Vec<ConfirmOp>,
        reply: Reply<Vec<ConfirmOutcome>>,
    },
    Expire {
        now_ms: u64,
        removed_before: u64,
        reply: Reply<u64>,
    },
    /// Ends the batch; answered after it commits, from a quiescent store.
    Audit { reply: AuditReply },
    /// Ends the batch; answered after it commits; then the thread exits.
    Shutdown { reply: Reply<()> },
}

impl Command {
    pub fn weight(&self) -> usize {
        match self {
            Command::ApplyRewards { ops, .. } => ops.len().max(1),
            Command::ConfirmTokens { ops, .. } => ops.len().max(1),
            Command::Expire { .. } => MAX_EXPIRE_PER_BATCH,
            _ => 1,
        }
    }
}

/// What the writer answers once the batch is durable (or failed): a request's reply and the
/// result it gets unless the commit fails. Typed rather than a boxed closure, so that holding a
/// commit's answers costs no allocation per request (`benches/load/assign_write_cost.sh`).
pub enum Deferred {
    Sticky(
        Reply<(StickyRecord, bool)>,
        Result<(StickyRecord, bool), StoreError>,
    ),
    Reassigned(
        Reply<Option<(StickyRecord, bool)>>,
        Result<Option<(StickyRecord, bool)>, StoreError>,
    ),
    Decision(Reply<Decision>, Result<Decision, StoreError>),
    Halt(Reply<Halt>, Result<Halt, StoreError>),
    Done(Reply<()>, Result<(), StoreError>),
    Rewards(
        Reply<Vec<RewardOutcome>>,
        Result<Vec<RewardOutcome>, StoreError>,
    ),
    Confirmations(
        Reply<Vec<ConfirmOutcome>>,
        Result<Vec<ConfirmOutcome>, StoreError>,
    ),
    Removed(Reply<u64>, Result<u64, StoreError>),
}

impl Deferred {
    /// Sends the answer: the request's own result, or `failure` when the commit failed.
    pub fn answer(self, failure: Option<&StoreError>) {
        match self {
            Deferred::Sticky(reply, result) => send(reply, result, failure),
            Deferred::Reassigned(reply, result) => send(reply, result, failure),
            Deferred::Decision(reply, result) => send(reply, result, failure),
            Deferred::Halt(reply, result) => send(reply, result, failure),
            Deferred::Done(reply, result) => send(reply, result, failure),
            Deferred::Rewards(reply, result) => send(reply, result, failure),
            Deferred::Confirmations(reply, result) => send(reply, result, failure),
            Deferred::Removed(reply, result) => send(reply, result, failure),
        }
    }
}

fn send<T>(reply: Reply<T>, result: Result<T, StoreError>, failure: Option<&StoreError>) {
    // A caller that stopped waiting is not an error of the store.
    let _ = reply.send(match failure {
        Some(error) => Err(error.clone()),
        None => result,
    });
}

/// A result type the writer answers with ([`Deferred`]'s variants).
pub trait Deferrable: Sized {
    fn deferred(reply: Reply<Self>, result: Result<Self, StoreError>) -> Deferred;
}

/// Each result type's variant of [`Deferred`].
macro_rules! deferrable {
    ($($result:ty => $variant:ident,)*) => {$(
        impl Deferrable for $result {
            fn deferred(reply: Reply<Self>, result: Result<Self, StoreError>) -> Deferred {
                Deferred::$variant(reply, result)
            }
        }
    )*};
}

deferrable! {
    (StickyRecord, bool) => Sticky,
    Option<(StickyRecord, bool)> => Reassigned,
    Decision => Decision,
    Halt => Halt,
    () => Done,
    Vec<RewardOutcome> => Rewards,
    Vec<ConfirmOutcome> => Confirmations,
    u64 => Removed,
}

/// The answer the writer sends `reply` once the batch is durable: `result`, or the commit's
/// failure.
pub fn defer<T: Deferrable>(reply: Reply<T>, result: Result<T, StoreError>) -> Deferred {
    T::deferred(reply, result)
}

/// Answers a command that will not run with `error` (a commit failed, or the store is
/// reopening). An audit or shutdown gets the error too: neither can be answered truthfully
/// from a database that is not open.
pub fn refuse(command: Command, error: &StoreError) {
    let error = error.clone();
    match command {
        Command::InsertSticky { reply, .. } => drop(reply.send(Err(error))),
        Command::ReassignSticky { reply, .. } => drop(reply.send(Err(error))),
        Command::WakeForExposures => {}
        Command::RecordDecision { reply, .. } => drop(reply.send(Err(error))),
        Command::RecordHalt { reply, .. } => drop(reply.send(Err(error))),
        Command::AppendHistory { reply, .. } => drop(reply.send(Err(error))),
        Command::RecordEpochSpec { reply, .. } => drop(reply.send(Err(error))),
        Command::ApplyRewards { reply, .. } => drop(reply.send(Err(error))),
        Command::ConfirmTokens { reply, .. } => drop(reply.send(Err(error))),
        Command::Expire { reply, .. } => drop(reply.send(Err(error))),
        Command::Audit { reply } => reply.send(Err(error)),
        Command::Shutdown { reply } => drop(reply.send(Err(error))),
    }
}
