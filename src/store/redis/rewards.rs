//! Rewards in three steps, each one script call per slot, so that no call spans two Cluster
//! slots although an event id and the records its reward changes live in different ones
//! (`layout`): **claim** the ids (`claim.lua`), **apply** the claimed rewards in their shards
//! (`apply.lua`), **settle** the claims (`settle.lua`). On a single primary, which takes a call
//! over every slot, `direct` judges each reward with its id in one call instead, and hands
//! these steps only the ids a claim holds or a legacy layout keeps.
//!
//! Why this keeps "an event id is applied at most once" without any timing assumption: an id
//! has one claim at a time, set only where none is; a pending claim carries its whole reward,
//! so everyone who meets it applies *that* reward in *that* shard; and the shard judges one
//! claim once (its outcome is kept under the claim), so applying it again, by a helper or by
//! a stale replica, changes nothing. A claim whose replica died before settling is finished by
//! the next event that meets it. A refused claim frees the id (as one node does: only an
//! applied event is remembered), and the ops that waited on it are judged afresh.

use std::collections::{HashMap, HashSet};

use super::call::{Calls, Reward, Sink};
use super::layout;
use super::timeline::Stamps;
use super::{Shared, classify};
use crate::store::{Epoch, RewardOp, RewardOutcome, StoreError, TOKEN_MARK_SLACK_MS};

/// Rounds of claims before an id that keeps being claimed and refused by others is given up
/// (answered as unavailable, so the client retries).
const MAX_ROUNDS: usize = 16;

/// The reward ops of one command and what became of them.
pub struct Job {
    pub ops: Vec<RewardOp>,
    pub outcomes: Vec<Option<RewardOutcome>>,
    pub failed: Option<StoreError>,
}

impl Job {
    pub fn new(ops: Vec<RewardOp>) -> Self {
        let outcomes = vec![None; ops.len()];
        Self {
            ops,
            outcomes,
            failed: None,
        }
    }

    pub fn fail(&mut self, error: &StoreError) {
        self.failed.get_or_insert_with(|| error.clone());
    }
}

/// The slot of an event id: its experiment and shard.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Home {
    experiment: String,
    shard: u32,
}

impl Home {
    fn of(op: &RewardOp) -> Self {
        Self {
            experiment: op.epoch.experiment.clone(),
            shard: layout::shard_of(&op.event_id),
        }
    }

    fn due_key(&self) -> String {
        layout::event_due_key(&self.experiment, self.shard)
    }

    fn dir_key(&self) -> String {
        layout::event_dir_key(&self.experiment, self.shard)
    }

    fn index_key(&self) -> String {
        layout::event_index_key(&self.experiment, self.shard)
    }

    fn list_key(&self, reward: &Reward) -> String {
        layout::event_list_key(&self.experiment, self.shard, reward.list_end_ms())
    }
}

/// A claim to apply this round: ours, or a pending one met on the way.
struct Claimed {
    claim: String,
    reward: Reward,
    home: Home,
    /// Where a store written before the directory keeps the id (`layout::event_key`).
    event_key: String,
    event_id: String,
    /// The op that met the claim first: claims are applied in op order, so within a command
    /// each op sees the ones before it.
    order: OpRef,
    /// The apply step's reply (`A<variant>`, `N`, `P`, `O`, `B`).
    outcome: Option<String>,
    failed: Option<StoreError>,
}

pub type OpRef = (usize, usize);

/// The ops claiming ids in one slot: each with its claim id and reward.
type HomeOps = (Home, Vec<(OpRef, String, Reward)>);

/// Judges every reward op of `jobs`; records the epochs that got a credit in `counted`, and the
/// single-primary calls' moments in `stamps` (the commit timeline's).
pub async fn apply(
    shared: &Shared,
    jobs: &mut [Job],
    counted: &mut HashSet<Epoch>,
    stamps: Option<&mut Stamps>,
) {
    let mut open: Vec<OpRef> = jobs
        .iter()
        .enumerate()
        .flat_map(|(job, j)| (0..j.ops.len()).map(move |at| (job, at)))
        .collect();
    // On a single primary each reward is judged with its id in one call (`direct`); only the
    // ids a three-step claim holds, or of a legacy layout, take the steps below.
    if !shared.link.is_cluster() && !open.is_empty() {
        if let Err(error) = register(shared, jobs, &open).await {
            for (job, _) in open {
                jobs[job].fail(&error);
            }
            return;
        }
        open = super::direct::apply(shared, jobs, open, counted, stamps).await;
    }
    for _ in 0..MAX_ROUNDS {
        if open.is_empty() {
            return;
        }
        if let Err(error) = register(shared, jobs, &open).await {
            for (job, _) in open {
                jobs[job].fail(&error);
            }
            return;
        }
        open = round(shared, jobs, open, counted).await;
    }
    let error = StoreError::Unavailable("an event id stayed contended; retry".into());
    for (job, _) in open {
        jobs[job].fail(&error);
    }
}

/// Lists the experiments (event ids) and epochs (token marks) in the registry the expiry sweep
/// walks, before anything is written; once per member and process.
async fn register(shared: &Shared, jobs: &[Job], open: &[OpRef]) -> Result<(), StoreError> {
    // Borrowed names, made once each: a bulk request's thousand ops name one experiment.
    let mut experiments: HashSet<&str> = HashSet::new();
    let mut epochs: HashSet<&Epoch> = HashSet::new();
    for &(job, at) in open {
        let op = &jobs[job].ops[at];
        experiments.insert(&op.epoch.experiment);
        if matches!(op.target, crate::store::RewardTarget::Token { .. }) {
            epochs.insert(&op.epoch);
        }
    }
    let missing: Vec<String> = {
        let known = super::lock(&shared.registered);
        experiments
            .into_iter()
            .map(str::to_owned)
            .chain(epochs.into_iter().map(layout::epoch_member))
            .filter(|m| !known.contains(m))
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let _: i64 = redis::cmd("SADD")
        .arg(layout::EPOCHS_KEY)
        .arg(&missing)
        .query_async(&mut shared.link.get())
        .await
        .map_err(|error| classify(shared, &error))?;
    super::lock(&shared.registered).extend(missing);
    Ok(())
}

/// One round: claim, apply, settle. Returns the ops to judge again (their id's claim was
/// refused while they waited on it).
async fn round(
    shared: &Shared,
    jobs: &mut [Job],
    open: Vec<OpRef>,
    counted: &mut HashSet<Epoch>,
) -> Vec<OpRef> {
    // Claim: one call per id slot, ops in order.
    let mut homes: Vec<HomeOps> = Vec::new();
    let mut home_index: HashMap<Home, usize> = HashMap::new();
    for op_ref in open {
        let op = &jobs[op_ref.0].ops[op_ref.1];
        let home = Home::of(op);
        let at = *home_index.entry(home.clone()).or_insert_with(|| {
            homes.push((home, Vec::new()));
            homes.len() - 1
        });
        homes[at]
            .1
            .push((op_ref, shared.next_claim(op.now_ms), Reward::of(op)));
    }
    let replies = futures_util::future::join_all(homes.iter().map(|(home, ops)| {
        let mut invocation = shared.scripts.claim.prepare_invoke();
        invocation
            .key(home.dir_key())
            .key(home.index_key())
            .key(home.due_key());
        // Redis keeps the lists and the directory at least a day (the tokens' slack) past
        // their ends by its own clock: a backstop, the sweep forgets them on time.
        let keep = |end: u64, reward: &Reward| {
            end.saturating_sub(reward.now_ms())
                .saturating_add(TOKEN_MARK_SLACK_MS)
                .min(super::call::MAX_MS)
        };
        let dir_keep = ops
            .iter()
            .map(|(_, _, reward)| keep(reward.list_end_ms(), reward))
            .max()
            .unwrap_or(0);
        invocation.arg(dir_keep);
        for ((job, at), claim, reward) in ops {
            let op = &jobs[*job].ops[*at];
            let end = reward.list_end_ms();
            invocation
                .key(layout::event_key(&home.experiment, &op.event_id))
                .key(home.list_key(reward))
                .arg(claim)
                .arg(reward.encode())
                .arg(&op.event_id)
                .arg(end)
                .arg(keep(end, reward));
        }
        let mut connection = shared.link.get();
        async move {
            invocation
                .invoke_async::<Vec<String>>(&mut connection)
                .await
        }
    }))
    .await;
    let mut claims: Vec<Claimed> = Vec::new();
    let mut by_claim: HashMap<String, usize> = HashMap::new();
    // (op, the claim it follows, whether the claim is the op's own)
    let mut waiting: Vec<(OpRef, usize, bool)> = Vec::new();
    for ((home, ops), reply) in homes.into_iter().zip(replies) {
        let answers = match reply {
            Ok(answers) if answers.len() == ops.len() => answers,
            Ok(_) => {
                let error = StoreError::Corrupt("claim.lua replied short".into());
                ops.iter()
                    .for_each(|((job, _), _, _)| jobs[*job].fail(&error));
                continue;
            }
            Err(error) => {
                let error = classify(shared, &error);
                ops.iter()
                    .for_each(|((job, _), _, _)| jobs[*job].fail(&error));
                continue;
            }
        };
        for (((job, at), claim, reward), answer) in ops.into_iter().zip(answers) {
            let event_id = jobs[job].ops[at].event_id.clone();
            let event_key = layout::event_key(&home.experiment, &event_id);
            if answer == "C" {
                by_claim.insert(claim.clone(), claims.len());
                claims.push(Claimed {
                    claim,
                    reward,
                    home: home.clone(),
                    event_key,
                    event_id,
                    order: (job, at),
                    outcome: None,
                    failed: None,
                });
                waiting.push(((job, at), claims.len() - 1, true));
                continue;
            }
            if answer == "D" {
                jobs[job].outcomes[at] = Some(RewardOutcome::Duplicate);
                continue;
            }
            let pending = answer
                .strip_prefix('P')
                .and_then(|rest| rest.split_once('\t'))
                .and_then(|(claim, body)| {
                    Some((claim.to_owned(), Reward::decode(&home.experiment, body)?))
                });
            let Some((other, reward)) = pending else {
                jobs[job].fail(&StoreError::Corrupt(format!(
                    "unreadable claim in redis: {answer:?}"
                )));
                continue;
            };
            let index = *by_claim.entry(other.clone()).or_insert_with(|| {
                claims.push(Claimed {
                    claim: other,
                    reward,
                    home: home.clone(),
                    event_key,
                    event_id,
                    order: (job, at),
                    outcome: None,
                    failed: None,
                });
                claims.len() - 1
            });
            waiting.push(((job, at), index, false));
        }
    }
    apply_claims(shared, &mut claims).await;
    for claimed in &claims {
        // A claim met on the way may credit a unit this replica holds in its cache.
        if claimed.reward.kind == 'U'
            && let Some(unit) = claimed.reward.fields.first()
        {
            shared.cache_forget(&claimed.reward.epoch, unit);
        }
    }
    settle(shared, &claims).await;
    let mut again = Vec::new();
    for ((job, at), index, own) in waiting {
        let claimed = &claims[index];
        if let Some(error) = &claimed.failed {
            jobs[job].fail(error);
            continue;
        }
        let applied = claimed
            .outcome
            .as_deref()
            .is_some_and(|o| o.starts_with('A'));
        if applied {
            counted.insert(claimed.reward.epoch.clone());
        }
        if own {
            match claimed
                .outcome
                .as_deref()
                .and_then(super::commit::reward_reply)
            {
                Some(outcome) => jobs[job].outcomes[at] = Some(outcome),
                None => jobs[job].fail(&StoreError::Corrupt("unreadable reward reply".into())),
            }
        } else if applied {
            jobs[job].outcomes[at] = Some(RewardOutcome::Duplicate);
        } else {
            again.push((job, at));
        }
    }
    again
}

/// Applies every claim of the round, one call per epoch (per (epoch, shard) under Cluster).
async fn apply_claims(shared: &Shared, claims: &mut [Claimed]) {
    let mut plan = Calls::new(shared);
    let mut in_order: Vec<usize> = (0..claims.len()).collect();
    in_order.sort_by_key(|&index| claims[index].order);
    for index in in_order {
        let claimed = &claims[index];
        let reward = &claimed.reward;
        let at = plan.at(&reward.epoch, reward.shard);
        plan.calls[at].reward(reward, &claimed.claim);
        plan.calls[at].sinks.push(Sink::Claim(index));
    }
    let calls = plan.calls;
    let replies =
        futures_util::future::join_all(calls.iter().map(|call| call.invoke::<Vec<String>>(shared)))
            .await;
    for (call, reply) in calls.iter().zip(replies) {
        match reply {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for sink in &call.sinks {
                    if let Sink::Claim(index) = *sink {
                        match outcomes.next() {
                            Some(outcome) => claims[index].outcome = Some(outcome),
                            None => {
                                claims[index].failed =
                                    Some(StoreError::Corrupt("apply.lua replied short".into()));
                            }
                        }
                    }
                }
            }
            Err(error) => {
                let error = classify(shared, &error);
                for sink in &call.sinks {
                    if let Sink::Claim(index) = *sink {
                        claims[index].failed = Some(error.clone());
                    }
                }
            }
        }
    }
}

/// Settles the judged claims, one call per id slot. A failed settle loses nothing: the outcome
/// is kept in the shard, and whoever meets the claim finishes it again.
async fn settle(shared: &Shared, claims: &[Claimed]) {
    let mut homes: HashMap<&Home, Vec<&Claimed>> = HashMap::new();
    for claimed in claims.iter().filter(|c| c.outcome.is_some()) {
        homes.entry(&claimed.home).or_default().push(claimed);
    }
    let results = futures_util::future::join_all(homes.into_iter().map(|(home, claims)| {
        let mut invocation = shared.scripts.settle.prepare_invoke();
        invocation.key(home.dir_key()).key(home.due_key());
        for claimed in claims {
            let applied = claimed
                .outcome
                .as_deref()
                .is_some_and(|o| o.starts_with('A'));
            invocation
                .key(&claimed.event_key)
                .arg(&claimed.claim)
                .arg(if applied { "1" } else { "0" })
                .arg(&claimed.event_id)
                .arg(claimed.reward.retain_ms());
        }
        let mut connection = shared.link.get();
        async move { invocation.invoke_async::<i64>(&mut connection).await }
    }))
    .await;
    for result in results {
        if let Err(error) = result {
            classify(shared, &error);
        }
    }
}
