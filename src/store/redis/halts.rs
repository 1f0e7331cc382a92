//! Guardrail halts on Redis: one hash per epoch (`layout::halts_key`), one field per metric
//! and arm, written with the same first-write-wins script as the epoch's decision
//! (`first.lua`, HSETNX then HGET in one call), so two replicas halting one arm at once
//! agree on the record that holds.

use super::layout;
use super::{Shared, classify};
use crate::store::{Epoch, Halt, StoreError, halt_name};

fn unreadable(value: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable guardrail halt in redis: {value:?}"))
}

/// Writes `halt` unless its metric and arm hold one; answers the one that holds.
pub async fn record(shared: &Shared, epoch: &Epoch, halt: Halt) -> Result<Halt, StoreError> {
    let text = serde_json::to_string(&halt)
        .map_err(|error| StoreError::Io(format!("halt does not serialise: {error}")))?;
    let held: String = shared
        .scripts
        .first
        .key(layout::halts_key(epoch))
        .arg(halt_name(&halt.metric, &halt.variant))
        .arg(text)
        .invoke_async(&mut shared.link.get())
        .await
        .map_err(|error| classify(shared, &error))?;
    serde_json::from_str(&held).map_err(|_| unreadable(&held))
}

/// Every halt of the epoch, by metric then arm.
pub async fn read(shared: &Shared, epoch: &Epoch) -> Result<Vec<Halt>, StoreError> {
    let fields: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(layout::halts_key(epoch))
        .query_async(&mut shared.link.get())
        .await
        .map_err(|error| classify(shared, &error))?;
    fields
        .values()
        .map(|text| serde_json::from_str(text).map_err(|_| unreadable(text)))
        .collect()
}
