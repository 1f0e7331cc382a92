//! Per-request token confirmations (`exposure: on_render`, see `store::confirmations`): one
//! `apply.lua` call per (epoch, shard of the assignment id), the mark and its exposure in that
//! one script call. They go straight to Redis rather than through the group commit: a page
//! confirms once per render, and the call already carries every confirmation of the request
//! for that slot.

use std::collections::HashMap;

use super::call::Call;
use super::layout;
use super::{Shared, classify};
use crate::store::{ConfirmOp, ConfirmOutcome, Epoch, StoreError};

/// Confirms `ops` in order within each shard; answers once every counted one is on Redis and
/// its epoch's start is fixed.
pub async fn confirm(
    shared: &Shared,
    ops: Vec<ConfirmOp>,
) -> Result<Vec<ConfirmOutcome>, StoreError> {
    register(shared, &ops).await?;
    let mut calls: Vec<Call> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut call_index: HashMap<(Epoch, u32), usize> = HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        let shard = layout::shard_of(&op.assignment_id);
        let at = *call_index
            .entry((op.epoch.clone(), shard))
            .or_insert_with(|| {
                calls.push(Call::new(&op.epoch, shard));
                members.push(Vec::new());
                calls.len() - 1
            });
        calls[at].confirmation(op);
        members[at].push(index);
    }
    let replies =
        futures_util::future::join_all(calls.iter().map(|call| call.invoke::<Vec<String>>(shared)))
            .await;
    let mut outcomes = vec![None; ops.len()];
    let mut counted: Vec<Epoch> = Vec::new();
    for ((call, indices), reply) in calls.iter().zip(&members).zip(replies) {
        let reply = reply.map_err(|error| classify(shared, &error))?;
        if reply.len() != indices.len() {
            return Err(StoreError::Corrupt("apply.lua replied short".into()));
        }
        for (&index, answer) in indices.iter().zip(reply) {
            let outcome = match answer.as_str() {
                "C" => ConfirmOutcome::Confirmed,
                "D" => ConfirmOutcome::AlreadyConfirmed,
                "O" => ConfirmOutcome::OutsideWindow,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "unreadable confirmation reply {answer:?}"
                    )));
                }
            };
            if outcome == ConfirmOutcome::Confirmed && !counted.contains(call.epoch()) {
                counted.push(call.epoch().clone());
            }
            outcomes[index] = Some(outcome);
        }
    }
    // As in a group commit: the start is fixed before a write that counted is acknowledged.
    for epoch in &counted {
        super::read::fix_start(shared, epoch).await?;
    }
    shared.commit_succeeded();
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| StoreError::Corrupt("a confirmation got no reply".into()))
        })
        .collect()
}

/// Lists the epochs in the registry the expiry sweep walks (their marks must be removed in
/// time), before anything is written; once per epoch and process.
async fn register(shared: &Shared, ops: &[ConfirmOp]) -> Result<(), StoreError> {
    let mut missing: Vec<String> = Vec::new();
    {
        let known = super::lock(&shared.registered);
        for op in ops {
            let member = layout::epoch_member(&op.epoch);
            if !known.contains(&member) && !missing.contains(&member) {
                missing.push(member);
            }
        }
    }
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
