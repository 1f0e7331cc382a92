//! Unit rewards on a single primary applied as an optimistic transaction of plain commands,
//! when this replica can judge every reward of the commit: `WATCH` of every key whose content
//! decides an outcome, the reads the judging needs (in the same pipeline), the judging here
//! (`tx_plan`, with the rules every backend keeps), then `MULTI`, the writes the script would
//! have made, `EXEC`.
//!
//! Why: the script's Lua costs Redis ≥ ~24,000 machine instructions per bulk reward, the same
//! reads and writes as plain commands ~8,400 (`benches/load/results/rjudge17-2026-12-01-s17.md`),
//! and Redis's one thread is the bound of bulk ingest on Redis. The script (`direct`) stays the
//! fallback for everything else, and it keeps every guarantee:
//!
//! - a watched key changed between the read and `EXEC` (another replica's commit, a
//!   re-assignment) makes `EXEC` answer nil: nothing was written, and the commit goes through
//!   the script unchanged. Replicas ingesting into the same shards would conflict at every
//!   commit, so after an abort (or a read that found what only the script judges) the next
//!   commits take the script at once (`TxState::back_off`);
//! - a command Redis refused while queueing it (out of memory, `READONLY` from a primary
//!   demoted by a failover, a command an ACL denies) makes `EXEC` answer `EXECABORT`: Redis
//!   discarded the transaction and ran none of it, so the outcome is known and the commit
//!   goes through the script, which applies it or reports the refusal as a failed call does;
//! - any other error or an unknown outcome (the connection lost after `EXEC` was sent) fails
//!   the jobs with the store's error, as a failed script call does: `MULTI`/`EXEC` is all or
//!   nothing and applies an id with its reward, so a retry of the events finds what was applied;
//! - the connection is this path's own (`connect::Link::dedicated`: `WATCH` is per
//!   connection) and never reconnected behind its back, so an `EXEC` never runs without its
//!   `WATCH`; it is dropped on any error. One commit is in flight at a time, so one suffices.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::call::MAX_MS;
use super::rewards::{Job, OpRef};
use super::timeline::Stamps;
use super::tx_plan::Plan;
use super::{Shared, classify};
use crate::store::event_ids::Digester;
use crate::store::{Epoch, RewardOp, RewardOutcome, RewardTarget};

/// Commits that take the script after a first abort; doubled at each abort that follows the
/// back-off, up to [`BACKOFF_MAX`], and back to this after a transaction that lands.
pub const BACKOFF_FIRST: u32 = 16;
const BACKOFF_MAX: u32 = 1024;

/// The transaction's switch, connection and back-off (`Shared::tx`).
pub struct TxState {
    on: AtomicBool,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Commits left to the script before the next try.
    skip: AtomicU32,
    /// The next back-off's length.
    backoff: AtomicU32,
    /// Commits applied by a transaction, transactions aborted by a watched key, and
    /// transactions Redis discarded (`EXECABORT`): the store's stats.
    pub transacted: AtomicU64,
    pub aborted: AtomicU64,
    pub discarded: AtomicU64,
    /// The next transaction queues a command Redis refuses (wrong arity), so that Redis
    /// answers its `EXEC` with `EXECABORT` (tests).
    #[cfg(test)]
    pub refuse_next: AtomicBool,
}

impl Default for TxState {
    fn default() -> Self {
        Self {
            on: AtomicBool::new(true),
            connection: tokio::sync::Mutex::new(None),
            skip: AtomicU32::new(0),
            backoff: AtomicU32::new(BACKOFF_FIRST),
            transacted: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            #[cfg(test)]
            refuse_next: AtomicBool::new(false),
        }
    }
}

impl TxState {
    /// Turns the path on or off (tests compare it with the script's).
    #[cfg(test)]
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Whether this commit may try a transaction: the path is on and no back-off runs (a
    /// commit in a back-off counts it down). Only the commit task asks, one commit at a time.
    fn take_turn(&self) -> bool {
        if !self.on.load(Ordering::Relaxed) {
            return false;
        }
        let skip = self.skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.skip.store(skip - 1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The next commits take the script at once: a read found what only the script judges
    /// (an upgrade's directory of whole ids stays for the window and an hour), and a read
    /// that cannot be used is a round trip wasted per commit.
    fn back_off(&self) {
        let length = self.backoff.load(Ordering::Relaxed);
        self.skip.store(length, Ordering::Relaxed);
        self.backoff
            .store((length * 2).min(BACKOFF_MAX), Ordering::Relaxed);
    }

    fn aborted(&self) {
        self.back_off();
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }

    /// Redis discarded the transaction: the next commits take the script, since a refusal
    /// while queueing (out of memory, a demoted primary) lasts longer than one commit.
    fn discarded(&self) {
        self.back_off();
        self.discarded.fetch_add(1, Ordering::Relaxed);
    }

    /// `writes` with a command Redis refuses while queueing it (wrong arity) when a test asked
    /// for one (`refuse_next`), so that Redis discards the transaction.
    #[cfg(test)]
    fn refused_if_asked(&self, mut writes: redis::Pipeline) -> redis::Pipeline {
        if self.refuse_next.swap(false, Ordering::Relaxed) {
            writes.cmd("HSET").arg("banditd-test-wrong-arity").ignore();
        }
        writes
    }

    fn landed(&self) {
        self.backoff.store(BACKOFF_FIRST, Ordering::Relaxed);
        self.transacted.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether the transaction can judge `op` without reading anything: a unit reward without a
/// half-life (a decayed sum is a float the script sums in its own order: those calls keep the
/// script), its times within what the script's doubles hold.
fn eligible(op: &RewardOp) -> bool {
    matches!(op.target, RewardTarget::Unit(_))
        && op.half_life_ms.is_none()
        && [op.now_ms, op.window_ms, op.occurred_ms.unwrap_or(0)]
            .iter()
            .all(|&ms| ms < MAX_MS)
}

/// Whether Redis answered the transaction's `EXEC` with `EXECABORT`: a command was refused
/// while queued, and Redis discarded the transaction without running any of it. (An error of
/// a command run by `EXEC` is another kind: the commands before and after it ran.)
fn discarded(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort)
}

/// Applies `open`'s rewards as one transaction if this replica can judge them all. True: the
/// commit is done (every reward answered, or the jobs failed with the store's error); false:
/// nothing was written, the caller takes them through the script.
pub async fn apply(
    shared: &Shared,
    jobs: &mut [Job],
    open: &[OpRef],
    digester: &Digester,
    counted: &mut HashSet<Epoch>,
    mut stamps: Option<&mut Stamps>,
) -> bool {
    if open.is_empty()
        || !open.iter().all(|&(job, at)| eligible(&jobs[job].ops[at]))
        || !shared.tx.take_turn()
    {
        return false;
    }
    let plan = Plan::of(jobs, open, digester);
    let mut held = shared.tx.connection.lock().await;
    if held.is_none() {
        match shared.link.dedicated().await {
            Ok(Some(connection)) => *held = Some(connection),
            // The script's call reports what is wrong with Redis.
            Ok(None) | Err(_) => return false,
        }
    }
    let Some(connection) = held.as_mut() else {
        return false;
    };
    let read: Vec<Value> = match plan.read().query_async(connection).await {
        Ok(read) => read,
        Err(_) => {
            // Nothing written: the script's call reads again (and reports the error).
            *held = None;
            return false;
        }
    };
    #[cfg(test)]
    shared.after_judged_read();
    // A record, a counter or a directory this path does not judge: the script's.
    let Some(judged) = plan.judge(read) else {
        shared.tx.back_off();
        return false;
    };
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.built = Instant::now();
        stamps.rewards = open.len();
    }
    let writes = judged.writes(&plan);
    #[cfg(test)]
    let writes = shared.tx.refused_if_asked(writes);
    let result: Result<Option<Vec<Value>>, _> = writes.query_async(connection).await;
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.rewarded = Instant::now();
    }
    match result {
        Ok(Some(_)) => {
            shared.tx.landed();
            // The plan reads the jobs' ops: the credited epochs are taken from it first.
            for (outcome, &epoch) in judged.outcomes.iter().zip(&judged.epochs) {
                let epoch = plan.epoch(epoch);
                if matches!(outcome, RewardOutcome::Applied { .. }) && !counted.contains(epoch) {
                    counted.insert(epoch.clone());
                }
            }
            for (&(job, at), outcome) in open.iter().zip(judged.outcomes) {
                jobs[job].outcomes[at] = Some(outcome);
            }
        }
        Ok(None) => {
            shared.tx.aborted();
            return false;
        }
        Err(error) if discarded(&error) => {
            // Nothing ran. A `READONLY` connection points at a replica now: the next
            // transaction asks the link for the primary's.
            *held = None;
            shared.tx.discarded();
            return false;
        }
        Err(error) => {
            // Sent and unanswered, or answered with an error: the outcome is unknown, as a
            // failed script call's. The jobs fail; a retry finds what was applied.
            *held = None;
            let error = classify(shared, &error);
            for &(job, _) in open {
                jobs[job].fail(&error);
            }
        }
    }
    if let Some(stamps) = stamps {
        stamps.judged = Instant::now();
    }
    true
}
