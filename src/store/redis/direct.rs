//! Rewards on a single primary (standalone or Sentinel): each judged with its event id in
//! one `apply.lua` call per epoch (op `B`), instead of the three steps of `rewards` (claim in
//! the id's slot, apply in the records' slots, settle) that Cluster needs because no call may
//! span two of its slots. A commit of a thousand rewards or more over several requests is
//! sent as two waves of such calls, split between requests (`split_at`): Redis runs the first
//! while this thread builds the second. Each request is still judged by one call, whole and
//! in its order; the requests of one commit arrived together, so no order between them is
//! promised (the second wave runs after the first on the one connection anyway).
//!
//! Why this keeps every guarantee of the three steps: the call is atomic, so the id is looked
//! up, the reward judged and the id kept (its keyed digest, in the digest set and the digest
//! list of its retention's hour, `layout::event_digest_key`) with nothing in between for another replica to meet, and a replica
//! that dies before the call leaves nothing, after it everything. A refused reward keeps no
//! id, as a refused claim frees it. An id that a claim of the three-step protocol holds (a
//! replica mid-way in it, or one that died there), and every id of a shard that still holds
//! ids of the legacy layout, is answered `F` and taken through the three steps, which finish
//! such claims and read such ids. The three steps never meet an id kept as a digest: a
//! single primary sends an id through them only when its directory holds a pending claim
//! of it or its shard legacy ids, and neither can appear once its digest is kept (a shard's
//! legacy ids are never written again; a pending claim is only made for an id answered `F`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::task::Poll;
use std::time::Instant;

use super::call::{Call, Reward, Sink};
use super::classify;
use super::rewards::{Job, OpRef};
use super::timeline::Stamps;
use super::{Shared, commit, event_digest};
use crate::store::event_ids::Digester;
use crate::store::{Epoch, RewardOutcome, RewardTarget, StoreError};

/// Judges the `open` ops of `jobs` with their ids; returns those answered `F`, in order, for
/// the three-step protocol. Records the epochs that got a credit in `counted`, and when the
/// calls were built, answered and judged in `stamps` (the commit timeline's).
pub async fn apply(
    shared: &Shared,
    jobs: &mut [Job],
    open: Vec<OpRef>,
    counted: &mut HashSet<Epoch>,
    mut stamps: Option<&mut Stamps>,
) -> Vec<OpRef> {
    let digester = match event_digest::digester(shared).await {
        Ok(digester) => digester,
        Err(error) => {
            for (job, _) in open {
                jobs[job].fail(&error);
            }
            return Vec::new();
        }
    };
    // Up to two waves of calls, split at a request's end (`split_at`): the first is handed to
    // the connection before the second is built, so Redis runs it meanwhile.
    let split = split_at(&open);
    let mut rewards: Vec<(OpRef, Epoch)> = Vec::with_capacity(open.len());
    let first = build(shared, jobs, &open[..split], &digester, &mut rewards);
    let mut first_replies = Box::pin(futures_util::future::join_all(
        first.iter().map(|call| call.invoke(shared)),
    ));
    let mut second = Vec::new();
    let mut early = None;
    if split < open.len() {
        // Polled once, its calls are queued on the connection; the yield lets the
        // connection's task write them before this one builds the second wave.
        let polled = std::future::poll_fn(|cx| Poll::Ready(first_replies.as_mut().poll(cx)));
        if let Poll::Ready(replies) = polled.await {
            early = Some(replies);
        }
        tokio::task::yield_now().await;
        second = build(shared, jobs, &open[split..], &digester, &mut rewards);
    }
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.built = Instant::now();
        stamps.rewards = rewards.len();
    }
    let second_replies =
        futures_util::future::join_all(second.iter().map(|call| call.invoke(shared)));
    let (first_replies, second_replies) = match early {
        Some(replies) => (replies, second_replies.await),
        None => futures_util::future::join(first_replies, second_replies).await,
    };
    let calls: Vec<&Call> = first.iter().chain(&second).collect();
    let replies = first_replies.into_iter().chain(second_replies);
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.rewarded = Instant::now();
    }
    let mut fallback = Vec::new();
    for (call, reply) in calls.iter().zip(replies) {
        let indexes = call.sinks.iter().filter_map(|sink| match *sink {
            Sink::Claim(index) => Some(index),
            Sink::Sticky(_) => None,
        });
        let answers = match reply {
            Ok(answers) => answers,
            Err(error) => {
                let error = classify(shared, &error);
                for index in indexes {
                    jobs[rewards[index].0.0].fail(&error);
                }
                continue;
            }
        };
        let mut answers = answers.into_iter();
        for index in indexes {
            let ((job, at), epoch) = &rewards[index];
            match answers.next().as_deref() {
                Some("F") => fallback.push((*job, *at)),
                Some(answer) => match commit::reward_reply(answer) {
                    Some(outcome) => {
                        if matches!(outcome, RewardOutcome::Applied { .. }) {
                            counted.insert(epoch.clone());
                        }
                        jobs[*job].outcomes[*at] = Some(outcome);
                    }
                    None => jobs[*job].fail(&StoreError::Corrupt(format!(
                        "unreadable reward reply {answer:?}"
                    ))),
                },
                None => jobs[*job].fail(&StoreError::Corrupt("apply.lua replied short".into())),
            }
        }
    }
    fallback.sort_unstable();
    if let Some(stamps) = stamps {
        stamps.judged = Instant::now();
    }
    fallback
}

/// A commit of at least this many rewards, over two requests or more, is sent in two waves
/// (`split_at`).
pub const SPLIT_FROM: usize = 1024;

/// Where `open` is split into two waves: at the end of a request (job), the one nearest half
/// its ops, so that each request is judged whole by one call, in its own order; a request is
/// never split (the requests of one commit arrived together, and no order between them is
/// promised). `open.len()` (one wave) below [`SPLIT_FROM`] ops or with one request.
///
/// Why: Redis runs a call while this thread builds the next, and the thread builds a bulk
/// call's op `B` at thousands of instructions per reward, in series with Redis's run of it
/// (`benches/load/results/rbulk15-2026-12-01-s15.md`). Both waves go on the one connection
/// in order, so Redis usually runs both in one event-loop pass, under one fsync.
pub fn split_at(open: &[OpRef]) -> usize {
    if open.len() < SPLIT_FROM {
        return open.len();
    }
    // A request's ops are consecutive in `open`: its boundaries are where the job changes.
    (1..open.len())
        .filter(|&at| open[at].0 != open[at - 1].0)
        .min_by_key(|&at| at.abs_diff(open.len() / 2))
        .unwrap_or(open.len())
}

/// One call per epoch for `refs` (a single primary takes a call over every slot); each
/// reward's index in `rewards` is its call's sink.
fn build(
    shared: &Shared,
    jobs: &[Job],
    refs: &[OpRef],
    digester: &Digester,
    rewards: &mut Vec<(OpRef, Epoch)>,
) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut by_epoch: HashMap<Epoch, usize> = HashMap::new();
    for &(job, at) in refs {
        let op = &jobs[job].ops[at];
        let reward = Reward::of(op);
        // Looked up before it is inserted: the entry API would copy the epoch per op.
        let call = match by_epoch.get(&reward.epoch) {
            Some(&call) => call,
            None => {
                calls.push(Call::new(&reward.epoch, reward.shard));
                by_epoch.insert(reward.epoch.clone(), calls.len() - 1);
                calls.len() - 1
            }
        };
        let digest = digester.digest(&reward.epoch.experiment, &op.event_id);
        let expected = match &op.target {
            RewardTarget::Unit(unit) => shared.cache.get(&reward.epoch, unit),
            RewardTarget::Token { .. } => None,
        };
        calls[call].direct_reward(&reward, &op.event_id, digest, expected.as_ref());
        calls[call].sinks.push(Sink::Claim(rewards.len()));
        rewards.push(((job, at), reward.epoch));
    }
    calls
}
