//! The commit task: several group commits in flight on the replica's one connection.
//!
//! With `appendfsync always` a group commit's latency is mostly Redis's fsync and the round
//! trip around it; with one commit in flight, the requests that arrive meanwhile wait for it
//! and then for their own, and Redis idles while the replica answers one commit and sends the
//! next. So up to [`MAX_IN_FLIGHT`] commits are sent one after another on the connection. Redis
//! runs one connection's commands in the order they were sent, and replies to a command only
//! after the fsync of the event-loop pass that ran it (so after every command it ran before
//! it): pipelined calls that reach Redis in one pass share its fsync, and a reply never rests
//! on a write that is not on disk.
//!
//! What keeps the guarantees of one commit at a time:
//! - Commits are sent in order (each is polled once as it starts, which puts its calls on the
//!   connection) and answered in that order ([`FuturesOrdered`]), so the sticky cache is filled
//!   in the order Redis ran the writes.
//! - A sticky write for a unit that an in-flight commit writes waits for that commit to settle:
//!   no answer ever rests on the record of an earlier commit that has not been acknowledged
//!   itself (with `--redis-wait-replicas`, that commit's `WAIT` may not have counted it yet, and a
//!   reconnect between the two would leave the later one's `WAIT` blind to it).
//! - Rewards run alone, as before: their claim, apply and settle steps are several round trips
//!   that forget cached records at the end, so a reward commit starts only with nothing in
//!   flight and nothing starts while it runs.
//! - One exposure flush is in flight at a time and is sent again, with its id, until it lands.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;

use super::Shared;
use super::commit::{self, Command, FLUSH_EVERY_MS, Flush, MAX_BATCH, Reply, Settled};
use super::layout;
use crate::store::Epoch;

/// Most group commits in flight at once on one replica.
pub const MAX_IN_FLIGHT: usize = 4;

/// Fewest queued commands that start a commit while another is in flight: a smaller one would
/// add a script call (its counter reads and writes) for little, and waits for the next to settle.
/// Measured at 16 connections without this floor: 0.29 script calls per new unit instead of
/// ~0.14, and Redis CPU per new unit up accordingly (`benches/load/results/rnew-2026-11-30-s6.md`).
pub const FOLLOW_AT: usize = 8;

/// A commit in flight with what it holds back from later ones.
type InFlight = Pin<Box<dyn Future<Output = (Settled, Ticket)> + Send>>;

/// What a commit in flight holds: the units it writes (hashed), whether it carries rewards or
/// the exposure flush.
struct Ticket {
    units: Vec<u64>,
    rewards: bool,
    flush: bool,
}

/// The units written by commits in flight, as hashes of (epoch, unit) with how many commits
/// write each: a collision only holds a write back one commit longer.
#[derive(Default)]
struct Pending {
    hasher: std::collections::hash_map::RandomState,
    units: HashMap<u64, u32>,
    rewards: bool,
    flush: bool,
}

impl Pending {
    fn key(&self, epoch: &Epoch, unit: &str) -> u64 {
        self.hasher.hash_one((epoch, unit))
    }

    fn holds(&self, key: u64) -> bool {
        self.units.contains_key(&key)
    }

    fn take(&mut self, ticket: &Ticket) {
        for key in &ticket.units {
            *self.units.entry(*key).or_insert(0) += 1;
        }
        self.rewards |= ticket.rewards;
        self.flush |= ticket.flush;
    }

    fn release(&mut self, ticket: &Ticket) {
        for key in &ticket.units {
            if let Some(count) = self.units.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    self.units.remove(key);
                }
            }
        }
        if ticket.rewards {
            self.rewards = false;
        }
        if ticket.flush {
            self.flush = false;
        }
    }
}

/// The commit task: runs until [`Command::Shutdown`] or until every sender is gone.
pub async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FLUSH_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queue: Vec<Command> = Vec::new();
    let mut in_flight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut pending = Pending::default();
    let mut unflushed: Option<Arc<Flush>> = None;
    let mut flushes: u64 = 0;
    let mut stop: Option<Reply<()>> = None;
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            Some((settled, ticket)) = in_flight.next(), if !in_flight.is_empty() => {
                pending.release(&ticket);
                if ticket.flush && settled.flushed {
                    unflushed = None;
                }
                settled.answer(&shared);
            }
            command = commands.recv(), if open && stop.is_none() => match command {
                Some(Command::Shutdown { reply }) => stop = Some(reply),
                Some(command) => queue.push(command),
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        while open && stop.is_none() && queue.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(Command::Shutdown { reply }) => stop = Some(reply),
                Ok(command) => queue.push(command),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if unflushed.is_none() {
            let groups = shared.take_exposures();
            if !groups.is_empty() {
                flushes += 1;
                unflushed = Some(Arc::new(Flush {
                    id: format!("{}:{flushes}", shared.replica_id),
                    shard: (flushes % u64::from(layout::SHARDS)) as u32,
                    groups,
                }));
            }
        }
        let worth_it = in_flight.is_empty() || queue.len() >= FOLLOW_AT;
        if in_flight.len() < MAX_IN_FLIGHT && !pending.rewards && worth_it {
            let flush = unflushed.clone().filter(|_| !pending.flush);
            let (batch, ticket) = take_batch(&mut queue, &pending, in_flight.is_empty());
            if !batch.is_empty() || flush.is_some() {
                let ticket = Ticket {
                    flush: flush.is_some(),
                    ..ticket
                };
                pending.take(&ticket);
                let shared = shared.clone();
                let mut started: InFlight =
                    Box::pin(async move { (commit::commit(shared, batch, flush).await, ticket) });
                // The first poll sends the commit's calls: before any later commit's.
                let first = std::future::poll_fn(|cx| Poll::Ready(started.as_mut().poll(cx))).await;
                match first {
                    Poll::Ready(done) => in_flight.push_back(Box::pin(std::future::ready(done))),
                    Poll::Pending => in_flight.push_back(started),
                }
            }
        }
        if !in_flight.is_empty() || !queue.is_empty() {
            continue;
        }
        if let Some(reply) = stop.take() {
            let _ = reply.send(last_flush(&shared, unflushed, flushes + 1).await);
            return;
        }
        if !open {
            return;
        }
    }
}

/// The commands of the next commit, in arrival order: a sticky write whose unit is written by
/// a commit in flight stays queued (two writes of one unit in one commit are one script's, as
/// before), and rewards go only into a commit that starts with nothing
/// in flight (the batch ends before them otherwise).
fn take_batch(queue: &mut Vec<Command>, pending: &Pending, alone: bool) -> (Vec<Command>, Ticket) {
    let mut ticket = Ticket {
        units: Vec::new(),
        rewards: false,
        flush: false,
    };
    let mut batch = Vec::new();
    let mut kept = Vec::new();
    let mut commands = std::mem::take(queue).into_iter();
    for command in commands.by_ref() {
        if batch.len() >= MAX_BATCH {
            kept.push(command);
            break;
        }
        match &command {
            Command::Insert { epoch, unit, .. } | Command::Reassign { epoch, unit, .. } => {
                let key = pending.key(epoch, unit);
                if pending.holds(key) {
                    kept.push(command);
                } else {
                    ticket.units.push(key);
                    batch.push(command);
                }
            }
            Command::Rewards { .. } if alone => {
                ticket.rewards = true;
                batch.push(command);
            }
            Command::Rewards { .. } => {
                kept.push(command);
                break;
            }
            Command::Shutdown { reply: _ } => batch.push(command),
        }
    }
    kept.extend(commands);
    *queue = kept;
    (batch, ticket)
}

/// The exposures still held at shutdown, flushed once more: `Ok` once none is left unwritten.
async fn last_flush(
    shared: &Arc<Shared>,
    unflushed: Option<Arc<Flush>>,
    number: u64,
) -> Result<(), crate::store::StoreError> {
    let flush = unflushed.or_else(|| {
        let groups = shared.take_exposures();
        (!groups.is_empty()).then(|| {
            Arc::new(Flush {
                id: format!("{}:{number}", shared.replica_id),
                shard: (number % u64::from(layout::SHARDS)) as u32,
                groups,
            })
        })
    });
    let Some(flush) = flush else {
        return Ok(());
    };
    let settled = commit::commit(shared.clone(), Vec::new(), Some(flush)).await;
    let flushed = settled.flushed;
    settled.answer(shared);
    if flushed {
        Ok(())
    } else {
        Err(shared.health.unavailable())
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
