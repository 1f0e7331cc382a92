//! The replica's group commit: every write of the requests in flight on this replica, folded
//! into one `apply.lua` call per (epoch, shard) and sent together, so a replica's write
//! throughput is not one round trip per request. Per-request exposures are aggregated in
//! memory and ride along at least every [`FLUSH_EVERY_MS`].
//!
//! Reward ops of one commit that repeat an earlier op's event id (same experiment) go into a
//! later wave, so that "each op sees the ones before it" holds across shards too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::layout::{self, ShardKeys};
use super::{Shared, classify};
use crate::store::{
    Epoch, MAX_CLOCK_SKEW_MS, RewardOp, RewardOutcome, RewardTarget, StickyRecord, StoreError,
    TOKEN_MARK_SLACK_MS, Tally,
};

/// Per-request exposures are written at least this often (the stats say so too).
pub const FLUSH_EVERY_MS: u64 = 50;

/// Most commands folded into one commit.
const MAX_BATCH: usize = 4096;

/// Windows and retention beyond this are clamped: Lua numbers are doubles.
const MAX_MS: u64 = 1 << 52;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

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

/// One script call: one shard of one epoch.
struct Call {
    keys: ShardKeys,
    extra_keys: Vec<String>,
    args: Vec<String>,
    /// Who gets each reply string, in order.
    sinks: Vec<Sink>,
}

#[derive(Clone, Copy)]
enum Sink {
    Sticky(usize),
    Reward(usize, usize),
}

impl Call {
    fn new(epoch: &Epoch, shard: u32) -> Self {
        Self {
            keys: ShardKeys::of(epoch, shard),
            extra_keys: Vec::new(),
            args: vec![
                MAX_CLOCK_SKEW_MS.to_string(),
                TOKEN_MARK_SLACK_MS.to_string(),
                layout::epoch_member(epoch),
            ],
            sinks: Vec::new(),
        }
    }

    /// Adds a key and returns its KEYS index (1-based, after the six fixed keys).
    fn key(&mut self, key: String) -> String {
        self.extra_keys.push(key);
        (6 + self.extra_keys.len()).to_string()
    }

    fn exposure(&mut self, variant: &str, count: u64, tally: &Tally, op: &str) {
        let shares = layout::expected_shares(variant, &tally.allocation, count);
        self.args.extend([
            op.to_owned(),
            variant.to_owned(),
            count.to_string(),
            tally.now_ms.min(MAX_MS).to_string(),
            half_life(tally.half_life_ms),
            shares.len().to_string(),
        ]);
        for (variant, micro) in shares {
            self.args.extend([variant, micro.to_string()]);
        }
    }

    fn sticky(&mut self, op: &str, unit: &str, from: &str, record: &StickyRecord, tally: &Tally) {
        let shares = layout::expected_shares(&record.variant, &tally.allocation, 1);
        self.args.extend([
            op.to_owned(),
            unit.to_owned(),
            from.to_owned(),
            record.variant.clone(),
            record.assigned_ms.min(MAX_MS).to_string(),
            record.propensity.to_string(),
            tally.now_ms.min(MAX_MS).to_string(),
            half_life(tally.half_life_ms),
            shares.len().to_string(),
        ]);
        for (variant, micro) in shares {
            self.args.extend([variant, micro.to_string()]);
        }
    }

    fn reward(&mut self, op: &RewardOp) {
        let event = self.key(layout::event_key(&op.epoch.experiment, &op.event_id));
        let due = self.key(layout::event_due_key_of(&op.epoch.experiment, &op.event_id));
        let micro = layout::to_micro(op.reward).to_string();
        let occurred = op
            .occurred_ms
            .map_or_else(String::new, |ms| ms.min(MAX_MS).to_string());
        let window = op.window_ms.min(MAX_MS);
        // Kept the reward window plus the clock slack of token marks (in Redis's clock).
        let keep = window
            .saturating_add(TOKEN_MARK_SLACK_MS)
            .max(1)
            .to_string();
        match &op.target {
            RewardTarget::Unit(unit) => self.args.extend([
                "U".to_owned(),
                event,
                due,
                unit.clone(),
                micro,
                occurred,
                op.now_ms.min(MAX_MS).to_string(),
                window.to_string(),
                half_life(op.half_life_ms),
                keep,
            ]),
            RewardTarget::Token {
                assignment_id,
                variant,
                issued_ms,
                propensity,
            } => self.args.extend([
                "T".to_owned(),
                event,
                due,
                assignment_id.clone(),
                variant.clone(),
                (*issued_ms).min(MAX_MS).to_string(),
                propensity.to_string(),
                micro,
                occurred,
                op.now_ms.min(MAX_MS).to_string(),
                window.to_string(),
                half_life(op.half_life_ms),
                keep,
            ]),
        }
    }
}

fn half_life(half_life_ms: Option<u64>) -> String {
    half_life_ms.map_or_else(String::new, |ms| ms.min(MAX_MS).to_string())
}

/// A command's result as the replies come in.
enum Outcome {
    Insert(Option<Result<(StickyRecord, bool), StoreError>>),
    Reassign(Option<Result<Option<(StickyRecord, bool)>, StoreError>>),
    Rewards(Vec<Option<RewardOutcome>>, Option<StoreError>),
}

/// The commit task: runs until [`Command::Shutdown`] or until every sender is gone.
pub async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FLUSH_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unflushed: Option<Flush> = None;
    let mut flushes: u64 = 0;
    let mut stop: Option<Reply<()>> = None;
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => batch.push(command),
                None => break,
            },
            _ = tick.tick() => {}
        }
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
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
        let flushed = commit(&shared, batch, unflushed.as_ref()).await;
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

/// One group commit. Returns whether the exposure flush (if any) landed.
async fn commit(shared: &Shared, batch: Vec<Command>, flush: Option<&Flush>) -> bool {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    // Calls of each wave, by (epoch, shard), in order of their first op.
    let mut waves: Vec<Vec<Call>> = vec![Vec::new()];
    let mut wave_index: Vec<HashMap<(Epoch, u32), usize>> = vec![HashMap::new()];
    let mut wave_events: Vec<HashSet<(String, String)>> = vec![HashSet::new()];
    let mut call_for = |wave: usize, epoch: &Epoch, shard: u32, waves: &mut Vec<Vec<Call>>| {
        while waves.len() <= wave {
            waves.push(Vec::new());
            wave_index.push(HashMap::new());
        }
        let index = wave_index[wave]
            .entry((epoch.clone(), shard))
            .or_insert_with(|| {
                waves[wave].push(Call::new(epoch, shard));
                waves[wave].len() - 1
            });
        *index
    };
    // The calls that carry the exposure flush (wave 0).
    let mut flush_calls: HashSet<usize> = HashSet::new();
    if let Some(flush) = flush {
        for group in &flush.groups {
            let at = call_for(0, &group.epoch, flush.shard, &mut waves);
            let call = &mut waves[0][at];
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
                let at = call_for(0, &epoch, layout::shard_of(&unit), &mut waves);
                let call = &mut waves[0][at];
                call.sticky("I", &unit, "", &record, &tally);
                call.sinks.push(Sink::Sticky(index));
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
                let at = call_for(0, &epoch, layout::shard_of(&unit), &mut waves);
                let call = &mut waves[0][at];
                call.sticky("R", &unit, &from, &record, &tally);
                call.sinks.push(Sink::Sticky(index));
                outcomes.push(Outcome::Reassign(None));
                replies.push(Replier::Reassign(reply, epoch, unit));
            }
            Command::Rewards { ops, reply } => {
                let mut units = Vec::new();
                for (position, op) in ops.iter().enumerate() {
                    let id = (op.epoch.experiment.clone(), op.event_id.clone());
                    let mut wave = 0;
                    while wave_events.get(wave).is_some_and(|seen| seen.contains(&id)) {
                        wave += 1;
                    }
                    while wave_events.len() <= wave {
                        wave_events.push(HashSet::new());
                    }
                    wave_events[wave].insert(id);
                    let shard = match &op.target {
                        RewardTarget::Unit(unit) => {
                            units.push((op.epoch.clone(), unit.clone()));
                            layout::shard_of(unit)
                        }
                        RewardTarget::Token { assignment_id, .. } => {
                            layout::shard_of(assignment_id)
                        }
                    };
                    let at = call_for(wave, &op.epoch, shard, &mut waves);
                    let call = &mut waves[wave][at];
                    call.reward(op);
                    call.sinks.push(Sink::Reward(index, position));
                }
                outcomes.push(Outcome::Rewards(vec![None; ops.len()], None));
                replies.push(Replier::Rewards(reply, units));
            }
            Command::Shutdown { reply } => {
                // Taken out by `run`; answer anyway rather than drop it.
                let _ = reply.send(Ok(()));
                outcomes.push(Outcome::Rewards(Vec::new(), None));
                replies.push(Replier::None);
            }
        }
    }
    let mut flush_failed = false;
    let mut failure: Option<StoreError> = None;
    for (wave, calls) in waves.into_iter().enumerate() {
        let results = futures_util::future::join_all(calls.iter().map(|call| {
            let mut connection = shared.connection.clone();
            let mut invocation = shared.scripts.apply.prepare_invoke();
            invocation
                .key(&call.keys.sticky)
                .key(&call.keys.arms)
                .key(&call.keys.marks)
                .key(&call.keys.marks_due)
                .key(&call.keys.info)
                .key(layout::EPOCHS_KEY);
            for key in &call.extra_keys {
                invocation.key(key);
            }
            for arg in &call.args {
                invocation.arg(arg);
            }
            async move {
                invocation
                    .invoke_async::<Vec<String>>(&mut connection)
                    .await
            }
        }))
        .await;
        for (at, (call, result)) in calls.iter().zip(results).enumerate() {
            match result {
                Ok(replies) => {
                    deliver(call, replies, &mut outcomes);
                }
                Err(error) => {
                    let error = classify(shared, &error);
                    if wave == 0 && flush_calls.contains(&at) {
                        flush_failed = true;
                    }
                    for sink in &call.sinks {
                        fail(*sink, &error, &mut outcomes);
                    }
                    failure.get_or_insert(error);
                }
            }
        }
    }
    if failure.is_none() {
        shared.commit_succeeded();
    }
    for (outcome, replier) in outcomes.into_iter().zip(replies) {
        replier.send(shared, outcome);
    }
    !flush_failed
}

fn deliver(call: &Call, replies: Vec<String>, outcomes: &mut [Outcome]) {
    let mut replies = replies.into_iter();
    for sink in &call.sinks {
        let Some(reply) = replies.next() else {
            fail(
                *sink,
                &StoreError::Corrupt("apply.lua replied short".into()),
                outcomes,
            );
            continue;
        };
        match *sink {
            Sink::Sticky(index) => match outcomes.get_mut(index) {
                Some(Outcome::Insert(slot)) => {
                    *slot = Some(sticky_reply(&reply).and_then(|held| {
                        held.ok_or_else(|| StoreError::Corrupt("insert found no record".into()))
                    }));
                }
                Some(Outcome::Reassign(slot)) => *slot = Some(sticky_reply(&reply)),
                _ => {}
            },
            Sink::Reward(index, position) => {
                if let Some(Outcome::Rewards(slots, _)) = outcomes.get_mut(index)
                    && let Some(slot) = slots.get_mut(position)
                {
                    *slot = reward_reply(&reply);
                }
            }
        }
    }
}

fn fail(sink: Sink, error: &StoreError, outcomes: &mut [Outcome]) {
    match sink {
        Sink::Sticky(index) => match outcomes.get_mut(index) {
            Some(Outcome::Insert(slot)) => *slot = Some(Err(error.clone())),
            Some(Outcome::Reassign(slot)) => *slot = Some(Err(error.clone())),
            _ => {}
        },
        Sink::Reward(index, _) => {
            if let Some(Outcome::Rewards(_, failed)) = outcomes.get_mut(index) {
                failed.get_or_insert_with(|| error.clone());
            }
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

fn reward_reply(reply: &str) -> Option<RewardOutcome> {
    Some(match reply.split_at_checked(1)? {
        ("A", variant) => RewardOutcome::Applied {
            variant: variant.to_owned(),
        },
        ("D", "") => RewardOutcome::Duplicate,
        ("N", "") => RewardOutcome::UnitNotAssigned,
        ("P", "") => RewardOutcome::AlreadyRewarded,
        ("O", "") => RewardOutcome::OutsideWindow,
        ("B", "") => RewardOutcome::TimestampBeforeAssignment,
        _ => return None,
    })
}

/// Where a command's result goes, with what the sticky cache needs to know.
enum Replier {
    Insert(Reply<(StickyRecord, bool)>, Epoch, String),
    Reassign(Reply<Option<(StickyRecord, bool)>>, Epoch, String),
    /// The units whose records a reward may have changed.
    Rewards(Reply<Vec<RewardOutcome>>, Vec<(Epoch, String)>),
    None,
}

impl Replier {
    fn send(self, shared: &Shared, outcome: Outcome) {
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
            (Replier::Rewards(reply, units), Outcome::Rewards(slots, failed)) => {
                for (epoch, unit) in &units {
                    shared.cache_forget(epoch, unit);
                }
                let result = match failed {
                    Some(error) => Err(error),
                    None => slots
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
