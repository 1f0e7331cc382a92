//! Rewards on a single primary (standalone or Sentinel): each judged with its event id in
//! one `apply.lua` call per epoch (op `B`), instead of the three steps of `rewards` (claim in
//! the id's slot, apply in the records' slots, settle) that Cluster needs because no call may
//! span two of its slots.
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
use std::time::Instant;

use super::call::{Call, Reward, Sink};
use super::classify;
use super::rewards::{Job, OpRef};
use super::timeline::Stamps;
use super::{Shared, commit, event_digest, judged, tx};
use crate::store::event_ids::Digester;
use crate::store::{Epoch, RewardOutcome, StoreError};

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
    // When this replica can judge every reward: plain commands in one transaction (`tx`).
    if tx::apply(
        shared,
        jobs,
        &open,
        &digester,
        counted,
        stamps.as_deref_mut(),
    )
    .await
    {
        return Vec::new();
    }
    let mut rewards: Vec<OpRef> = Vec::with_capacity(open.len());
    let held = judged::fetch(shared, jobs, &open).await;
    let judge = shared.judges_rewards();
    let calls = build(jobs, &open, &held, judge, &digester, &mut rewards);
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.built = Instant::now();
        stamps.rewards = rewards.len();
    }
    let replies = futures_util::future::join_all(
        calls.iter().map(|call| call.invoke::<Vec<Vec<u8>>>(shared)),
    )
    .await;
    if let Some(stamps) = stamps.as_deref_mut() {
        stamps.rewarded = Instant::now();
    }
    let mut fallback = Vec::new();
    for (call, reply) in calls.iter().zip(replies) {
        let indexes = call.sinks.iter().filter_map(|sink| match *sink {
            Sink::Claim(index) => Some(index),
            Sink::Sticky(_) => None,
        });
        let answers: Vec<Vec<u8>> = match reply {
            Ok(answers) => answers,
            Err(error) => {
                let error = classify(shared, &error);
                for index in indexes {
                    jobs[rewards[index].0].fail(&error);
                }
                continue;
            }
        };
        let count = indexes.clone().count();
        let Some(reply) = answers.last().and_then(|reply| Reply::read(reply, count)) else {
            let error = StoreError::Corrupt("unreadable reply of apply.lua's op B".into());
            for index in indexes {
                jobs[rewards[index].0].fail(&error);
            }
            continue;
        };
        let mut credited = false;
        for (at, index) in indexes.enumerate() {
            let (job, op) = rewards[index];
            let answer = reply.answer(at);
            #[cfg(test)]
            if call.predicted_variant(at).is_some() && answer != Some(Answer::Predicted) {
                shared
                    .taken_back
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match answer {
                Some(Answer::Fallback) => fallback.push((job, op)),
                Some(Answer::Predicted) => match call.predicted_variant(at) {
                    Some(variant) => {
                        credited = true;
                        #[cfg(test)]
                        shared
                            .predicted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        jobs[job].outcomes[op] = Some(RewardOutcome::Applied {
                            variant: variant.to_owned(),
                        });
                    }
                    None => jobs[job].fail(&StoreError::Corrupt(
                        "a reward answered V was not predicted".into(),
                    )),
                },
                Some(Answer::Outcome(outcome)) => {
                    credited |= matches!(outcome, RewardOutcome::Applied { .. });
                    jobs[job].outcomes[op] = Some(outcome);
                }
                None => jobs[job].fail(&StoreError::Corrupt(format!(
                    "unreadable reward reply {:?}",
                    reply.codes.get(at)
                ))),
            }
        }
        // A call is one epoch's: its epoch is copied once, not per credited reward.
        if credited && !counted.contains(call.epoch()) {
            counted.insert(call.epoch().clone());
        }
    }
    fallback.sort_unstable();
    if let Some(stamps) = stamps {
        stamps.judged = Instant::now();
    }
    fallback
}

/// The most rewards a call's sets of ids and units are made room for up front.
const MAX_EXPECTED: usize = 4096;

/// One call per epoch for `refs` (a single primary takes a call over every slot); each
/// reward's index in `rewards` is its call's sink. `held`: what is known of each ref's record
/// (`judged::fetch`), judged first when `judge` is on (`Call::judged_reward`).
fn build(
    jobs: &[Job],
    refs: &[OpRef],
    held: &[judged::Held],
    judge: bool,
    digester: &Digester,
    rewards: &mut Vec<OpRef>,
) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut by_epoch: HashMap<Epoch, usize> = HashMap::new();
    let mut last: Option<usize> = None;
    for (&(job, at), held) in refs.iter().zip(held) {
        let op = &jobs[job].ops[at];
        // The previous op's call when it is of the same epoch (a bulk request's thousand ops
        // are one experiment's): no hash of the epoch per op. Otherwise looked up before it
        // is inserted: the entry API would copy the epoch per op.
        let call = match last.filter(|&call| *calls[call].epoch() == op.epoch) {
            Some(call) => call,
            None => match by_epoch.get(&op.epoch) {
                Some(&call) => call,
                None => {
                    let mut new = Call::new(&op.epoch, Reward::kind_and_shard(&op.target).1);
                    if judge {
                        // At most the commit's rewards (a commit takes at most 4,096 requests).
                        new.expect_judged(refs.len().min(MAX_EXPECTED));
                    }
                    calls.push(new);
                    by_epoch.insert(op.epoch.clone(), calls.len() - 1);
                    calls.len() - 1
                }
            },
        };
        last = Some(call);
        let digest = digester.digest(&op.epoch.experiment, &op.event_id);
        calls[call].judged_reward(op, digest, &held.known(), judge);
        calls[call].sinks.push(Sink::Claim(rewards.len()));
        rewards.push((job, at));
    }
    calls
}

/// Op `B`'s reply (`judge_packed` in `apply_rewards.lua`): one byte per reward, in the call's
/// order (a refusal's letter, or 128 + the place of the credited variant among the names
/// that follow the bytes, each ending in a tab), read in place: one string for the call,
/// where an array of a string per reward cost Redis an element's encoding and redis-rs a
/// parse and an allocation apiece.
pub(super) struct Reply<'a> {
    codes: &'a [u8],
    variants: Vec<&'a str>,
}

/// What op `B` said of one reward.
#[derive(Debug, PartialEq)]
pub(super) enum Answer {
    /// `F`: the id is held by the three-step protocol (or a legacy layout): judge it there.
    Fallback,
    /// `V`: applied as this replica judged it (`Call::judged_reward`): the variant it
    /// predicted.
    Predicted,
    Outcome(RewardOutcome),
}

impl<'a> Reply<'a> {
    /// The reply of a call of `count` rewards; None if it is not one.
    pub(super) fn read(reply: &'a [u8], count: usize) -> Option<Self> {
        let (codes, names) = reply.split_at_checked(count)?;
        let names = std::str::from_utf8(names).ok()?;
        if !names.is_empty() && !names.ends_with('\t') {
            return None;
        }
        Some(Self {
            codes,
            variants: names.split_terminator('\t').collect(),
        })
    }

    /// The answer for the call's `at`th reward; None if its byte means nothing.
    pub(super) fn answer(&self, at: usize) -> Option<Answer> {
        match *self.codes.get(at)? {
            b'F' => Some(Answer::Fallback),
            b'V' => Some(Answer::Predicted),
            // `A` is always followed by its variant: never a byte of its own.
            b'A' => None,
            code @ 128.. => self.variants.get(usize::from(code - 128)).map(|variant| {
                Answer::Outcome(RewardOutcome::Applied {
                    variant: (*variant).to_owned(),
                })
            }),
            code => std::str::from_utf8(std::slice::from_ref(&code))
                .ok()
                .and_then(commit::reward_reply)
                .map(Answer::Outcome),
        }
    }
}
