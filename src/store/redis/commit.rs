//! The replica's group commit: every write of the requests in flight on this replica, folded
//! into one `apply.lua` call per epoch (per (epoch, shard) under Cluster) and sent together,
//! so a replica's write throughput is not one round trip per request. Per-request exposures
//! are aggregated in memory and ride along at least every [`FLUSH_EVERY_MS`].
//!
//! Rewards then go through their own steps (`rewards`: claim, apply, settle), and an epoch's
//! first counted write fixes its start (`read::fix_start`) before anyone is answered.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::call::{Call, Calls, Sink};
use super::gather::Recent;
use super::layout;
use super::rewards::{self, Job};
use super::timeline::{Stamps, Timeline};
use super::wait::{self, Written};
use super::{Shared, classify};
use crate::store::{Epoch, RewardOp, RewardOutcome, RewardTarget, StickyRecord, StoreError, Tally};

/// Per-request exposures are written at least this often (the stats say so too).
pub const FLUSH_EVERY_MS: u64 = 50;

/// Most commands folded into one commit.
const MAX_BATCH: usize = 4096;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A command and when it was queued (`timeline`).
pub type Queued = (Command, Instant);

/// A write waiting for the next commit.
pub enum Command {
    Insert {
        epoch: Epoch,
        unit: String,
        record: StickyRecord,
        tally: Tally,
        reply: Reply<(StickyRecord, bool)>,
    },
    Reassign {
        epoch: Epoch,
        unit: String,
        from: String,
        record: StickyRecord,
        tally: Tally,
        reply: Reply<Option<(StickyRecord, bool)>>,
    },
    Rewards {
        ops: Vec<RewardOp>,
        reply: Reply<Vec<RewardOutcome>>,
    },
    /// Flush the aggregated exposures, then stop.
    Shutdown { reply: Reply<()> },
}

/// Per-request exposures of one epoch and arm that share a moment and an allocation.
#[derive(Clone)]
pub struct ExposureGroup {
    pub epoch: Epoch,
    pub variant: String,
    pub tally: Tally,
    pub count: u64,
}

/// One flush of aggregated exposures; retried with the same id until it lands.
struct Flush {
    id: String,
    shard: u32,
    groups: Vec<ExposureGroup>,
}

/// A command's result as the replies come in.
enum Outcome {
    Insert(Option<Result<(StickyRecord, bool), StoreError>>),
    Reassign(Option<Result<Option<(StickyRecord, bool)>, StoreError>>),
    /// Index of the command's reward job.
    Rewards(usize),
    None,
}

/// The commit task: runs until [`Command::Shutdown`] or until every sender is gone.
pub async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Queued>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FLUSH_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unflushed: Option<Flush> = None;
    let mut flushes: u64 = 0;
    let mut stop: Option<Reply<()>> = None;
    let mut timeline = Timeline::from_env();
    // The last commits that answered requests, and the arrivals' count when they were
    // answered (`gather`).
    let mut recent = Recent::default();
    let mut answered_at = shared.arrivals.count();
    loop {
        let mut batch = Vec::new();
        let mut stamps = Stamps::at(Instant::now());
        tokio::select! {
            command = commands.recv() => match command {
                Some((command, queued)) => {
                    batch.push(command);
                    stamps.oldest = queued;
                }
                None => break,
            },
            _ = tick.tick() => {}
        }
        if timeline.is_on() {
            stamps.woken = Instant::now();
        }
        // Only a batch that holds requests waits; a flush alone goes at its tick.
        if !batch.is_empty() {
            shared.arrivals.gather(answered_at, &mut recent).await;
        }
        take_queued(&mut commands, &mut batch, &mut stamps);
        if timeline.is_on() {
            stamps.closed = Instant::now();
        }
        batch.retain_mut(|command| match command {
            Command::Shutdown { .. } => {
                if let Command::Shutdown { reply } = std::mem::replace(
                    command,
                    Command::Rewards {
                        ops: Vec::new(),
                        reply: oneshot::channel().0,
                    },
                ) {
                    stop = Some(reply);
                }
                false
            }
            _ => true,
        });
        if unflushed.is_none() {
            let groups = shared.take_exposures();
            if !groups.is_empty() {
                flushes += 1;
                unflushed = Some(Flush {
                    id: format!("{}:{flushes}", shared.replica_id),
                    shard: (flushes % u64::from(layout::SHARDS)) as u32,
                    groups,
                });
            }
        }
        if batch.is_empty() && unflushed.is_none() {
            if let Some(reply) = stop.take() {
                let _ = reply.send(Ok(()));
                return;
            }
            continue;
        }
        let commands_in = batch.len();
        let stamped = timeline.is_on().then_some(&mut stamps);
        let closed = Instant::now();
        let committed = commit(&shared, batch, unflushed.as_ref(), stamped).await;
        let took = closed.elapsed();
        observe(commands_in, took, committed.failed);
        let (flushed, calls) = (committed.flushed, committed.calls);
        if commands_in > 0 {
            recent.record(commands_in, took);
            answered_at = committed.answered_at;
        }
        if timeline.is_on() {
            stamps.answered = Instant::now();
            timeline.record(&stamps, commands_in, calls);
        }
        if flushed {
            unflushed = None;
        }
        if let Some(reply) = stop.take() {
            let result = match &unflushed {
                None => Ok(()),
                Some(_) => Err(shared.health.unavailable()),
            };
            let _ = reply.send(result);
            return;
        }
    }
}

/// A commit in the store's metrics, the families the embedded store's writer records too: the
/// requests it carried, its time from closing to answering (the Redis round, the reward steps,
/// the replicas' wait), and whether any of its writes failed.
fn observe(commands: usize, took: Duration, failed: bool) {
    let Some(metrics) = crate::metrics::get() else {
        return;
    };
    metrics.store_commit_batch_size.observe(commands as f64);
    metrics.store_commit_seconds.observe(took.as_secs_f64());
    if failed {
        metrics.store_commit_failures.inc();
    }
}

/// Takes what is queued (up to [`MAX_BATCH`]), noting the oldest queueing time.
fn take_queued(
    commands: &mut mpsc::UnboundedReceiver<Queued>,
    batch: &mut Vec<Command>,
    stamps: &mut Stamps,
) {
    while batch.len() < MAX_BATCH {
        match commands.try_recv() {
            Ok((command, queued)) => {
                if batch.is_empty() {
                    stamps.oldest = queued;
                }
                batch.push(command);
            }
            Err(_) => break,
        }
    }
}

/// What one group commit did.
struct Committed {
    /// Whether the exposure flush (if any) landed.
    flushed: bool,
    /// Script calls sent.
    calls: usize,
    /// The arrivals' count just before the answers went out (`gather`).
    answered_at: u64,
    /// Whether any of its writes failed (its callers were answered with the error).
    failed: bool,
}

/// One group commit; notes when its calls were sent and answered in `stamps` (the
/// timeline's).
async fn commit(
    shared: &Shared,
    batch: Vec<Command>,
    flush: Option<&Flush>,
    mut stamps: Option<&mut Stamps>,
) -> Committed {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut jobs: Vec<Job> = Vec::new();
    // Sticky writes and the exposure flush.
    let mut plan = Calls::new(shared);
    // The calls that carry the exposure flush.
    let mut flush_calls: HashSet<usize> = HashSet::new();
    let mut counted: HashSet<Epoch> = HashSet::new();
    // The slots written, for --redis-wait-replicas (named only when it is on).
    let waits = shared.wait.is_on();
    let mut written = Written::default();
    if let Some(flush) = flush {
        for group in &flush.groups {
            if waits {
                written.slot_of(&layout::tag(&group.epoch, flush.shard));
            }
            let at = plan.at(&group.epoch, flush.shard);
            let call = &mut plan.calls[at];
            if flush_calls.insert(at) {
                let key = call.key(layout::flush_key(&group.epoch, flush.shard, &flush.id));
                call.args.extend(["F".to_owned(), key]);
            }
            call.exposure(&group.variant, group.count, &group.tally, "X");
        }
    }
    for (index, command) in batch.into_iter().enumerate() {
        match command {
            Command::Insert {
                epoch,
                unit,
                record,
                tally,
                reply,
            } => {
                let at = plan.at(&epoch, layout::shard_of(&unit));
                if waits {
                    written.slot_of(&layout::tag(&epoch, layout::shard_of(&unit)));
                }
                plan.calls[at].sticky("I", &unit, "", &record, &tally);
                plan.calls[at].sinks.push(Sink::Sticky(index));
                outcomes.push(Outcome::Insert(None));
                replies.push(Replier::Insert(reply, epoch, unit));
            }
            Command::Reassign {
                epoch,
                unit,
                from,
                record,
                tally,
                reply,
            } => {
                let at = plan.at(&epoch, layout::shard_of(&unit));
                if waits {
                    written.slot_of(&layout::tag(&epoch, layout::shard_of(&unit)));
                }
                plan.calls[at].sticky("R", &unit, &from, &record, &tally);
                plan.calls[at].sinks.push(Sink::Sticky(index));
                outcomes.push(Outcome::Reassign(None));
                replies.push(Replier::Reassign(reply, epoch, unit));
            }
            Command::Rewards { ops, reply } => {
                // The reward steps write the ids' slots and the records': wait on every primary.
                written.anywhere();
                outcomes.push(Outcome::Rewards(jobs.len()));
                jobs.push(Job::new(ops));
                replies.push(Replier::Rewards(reply));
            }
            Command::Shutdown { reply } => {
                // Taken out by `run`; answer anyway rather than drop it.
                let _ = reply.send(Ok(()));
                outcomes.push(Outcome::None);
                replies.push(Replier::None);
            }
        }
    }
    let calls = plan.calls;
    let mut flush_failed = false;
    let mut failure: Option<StoreError> = None;
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.sent = Instant::now();
    }
    let results =
        futures_util::future::join_all(calls.iter().map(|call| call.invoke::<Vec<String>>(shared)))
            .await;
    #[cfg(test)]
    shared.arrivals.hold_round().await;
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.replied = Instant::now();
    }
    let sent_calls = calls.len();
    for (at, (call, result)) in calls.iter().zip(results).enumerate() {
        match result {
            Ok(replies) => {
                if flush_calls.contains(&at) {
                    counted.insert(call.epoch().clone());
                }
                deliver(call, replies, &mut outcomes, &mut counted);
            }
            Err(error) => {
                let error = classify(shared, &error);
                if flush_calls.contains(&at) {
                    flush_failed = true;
                }
                for sink in &call.sinks {
                    fail(*sink, &error, &mut outcomes);
                }
                failure.get_or_insert(error);
            }
        }
    }
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.no_rewards();
    }
    if !jobs.is_empty() {
        if let Some(stamps) = stamps.as_deref_mut() {
            stamps.begun = Instant::now();
        }
        rewards::apply(shared, &mut jobs, &mut counted, stamps).await;
        if let Some(error) = jobs.iter().find_map(|job| job.failed.clone()) {
            failure.get_or_insert(error);
        }
    }
    // An epoch's start is fixed before any write that counted in it is acknowledged, so no
    // later write (on any replica, with any clock) can move it.
    for epoch in counted {
        // Fixing the start writes the epoch's info key once; later commits only read the
        // start this process keeps.
        if waits && !super::lock(&shared.started).contains_key(&epoch) {
            written.slot_of(&layout::info_key(&epoch));
        }
        if let Err(error) = super::read::fix_start(shared, &epoch).await {
            failure.get_or_insert(error.clone());
            fail_everything(&mut outcomes, &mut jobs, &error);
        }
    }
    // With --redis-wait-replicas, nothing is acknowledged before enough replicas hold it; an
    // exposure flush that is not is sent again (its id makes that count once).
    if let Err(error) = wait::acknowledged(shared, &written).await {
        flush_failed = true;
        failure.get_or_insert(error.clone());
        fail_everything(&mut outcomes, &mut jobs, &error);
    }
    let failed = failure.is_some();
    if !failed {
        shared.commit_succeeded();
    }
    // Counted before anybody is answered: what arrives after it is what the gather waits for.
    let answered_at = shared.arrivals.count();
    for (outcome, replier) in outcomes.into_iter().zip(replies) {
        replier.send(shared, outcome, &mut jobs);
    }
    Committed {
        flushed: !flush_failed,
        calls: sent_calls,
        answered_at,
        failed,
    }
}

/// A start that could not be fixed fails the commit's answers: nothing is acknowledged that
/// could let the start move later.
fn fail_everything(outcomes: &mut [Outcome], jobs: &mut [Job], error: &StoreError) {
    for outcome in outcomes.iter_mut() {
        match outcome {
            Outcome::Insert(slot) => *slot = Some(Err(error.clone())),
            Outcome::Reassign(slot) => *slot = Some(Err(error.clone())),
            Outcome::Rewards(_) | Outcome::None => {}
        }
    }
    for job in jobs {
        job.failed.get_or_insert_with(|| error.clone());
    }
}

fn deliver(
    call: &Call,
    replies: Vec<String>,
    outcomes: &mut [Outcome],
    counted: &mut HashSet<Epoch>,
) {
    let mut replies = replies.into_iter();
    for sink in &call.sinks {
        let Sink::Sticky(index) = *sink else {
            continue;
        };
        let Some(reply) = replies.next() else {
            fail(
                *sink,
                &StoreError::Corrupt("apply.lua replied short".into()),
                outcomes,
            );
            continue;
        };
        if reply.starts_with('1') {
            counted.insert(call.epoch().clone());
        }
        match outcomes.get_mut(index) {
            Some(Outcome::Insert(slot)) => {
                *slot = Some(sticky_reply(&reply).and_then(|held| {
                    held.ok_or_else(|| StoreError::Corrupt("insert found no record".into()))
                }));
            }
            Some(Outcome::Reassign(slot)) => *slot = Some(sticky_reply(&reply)),
            _ => {}
        }
    }
}

fn fail(sink: Sink, error: &StoreError, outcomes: &mut [Outcome]) {
    if let Sink::Sticky(index) = sink {
        match outcomes.get_mut(index) {
            Some(Outcome::Insert(slot)) => *slot = Some(Err(error.clone())),
            Some(Outcome::Reassign(slot)) => *slot = Some(Err(error.clone())),
            _ => {}
        }
    }
}

/// `1<record>`: written by this call; `0<record>`: held already; `-`: no record.
fn sticky_reply(reply: &str) -> Result<Option<(StickyRecord, bool)>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unreadable sticky reply {reply:?}"));
    match reply.split_at_checked(1) {
        Some(("-", "")) => Ok(None),
        Some((written @ ("0" | "1"), record)) => layout::decode_sticky(record)
            .map(|record| Some((record, written == "1")))
            .ok_or_else(corrupt),
        _ => Err(corrupt()),
    }
}

/// The apply step's verdict on one reward.
pub fn reward_reply(reply: &str) -> Option<RewardOutcome> {
    Some(match reply.split_at_checked(1)? {
        ("A", variant) => RewardOutcome::Applied {
            variant: variant.to_owned(),
        },
        ("D", "") => RewardOutcome::Duplicate,
        ("N", "") => RewardOutcome::UnitNotAssigned,
        ("P", "") => RewardOutcome::AlreadyRewarded,
        ("O", "") => RewardOutcome::OutsideWindow,
        ("B", "") => RewardOutcome::TimestampBeforeAssignment,
        ("R", "") => RewardOutcome::NotConfirmed,
        _ => return None,
    })
}

/// Where a command's result goes, with what the sticky cache needs to know.
enum Replier {
    Insert(Reply<(StickyRecord, bool)>, Epoch, String),
    Reassign(Reply<Option<(StickyRecord, bool)>>, Epoch, String),
    /// The units whose records a reward may have changed are its job's unit ops.
    Rewards(Reply<Vec<RewardOutcome>>),
    None,
}

impl Replier {
    fn send(self, shared: &Shared, outcome: Outcome, jobs: &mut [Job]) {
        let missing = || StoreError::Corrupt("a write got no reply".into());
        match (self, outcome) {
            (Replier::Insert(reply, epoch, unit), Outcome::Insert(result)) => {
                let result = result.unwrap_or_else(|| Err(missing()));
                if let Ok((record, _)) = &result {
                    shared.cache_put(&epoch, &unit, record);
                }
                let _ = reply.send(result);
            }
            (Replier::Reassign(reply, epoch, unit), Outcome::Reassign(result)) => {
                let result = result.unwrap_or_else(|| Err(missing()));
                match &result {
                    Ok(Some((record, _))) => shared.cache_put(&epoch, &unit, record),
                    _ => shared.cache_forget(&epoch, &unit),
                }
                let _ = reply.send(result);
            }
            (Replier::Rewards(reply), Outcome::Rewards(index)) => {
                let Some(job) = jobs.get_mut(index) else {
                    let _ = reply.send(Err(missing()));
                    return;
                };
                // Read from the job's own ops rather than copied per op when the commit was
                // built (two allocations per event of a bulk request).
                shared
                    .cache
                    .forget_units(job.ops.iter().filter_map(|op| match &op.target {
                        RewardTarget::Unit(unit) => Some((&op.epoch, unit.as_str())),
                        RewardTarget::Token { .. } => None,
                    }));
                let result = match job.failed.take() {
                    Some(error) => Err(error),
                    None => std::mem::take(&mut job.outcomes)
                        .into_iter()
                        .map(|slot| slot.ok_or_else(missing))
                        .collect(),
                };
                let _ = reply.send(result);
            }
            _ => {}
        }
    }
}
