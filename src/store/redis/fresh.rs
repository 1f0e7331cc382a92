//! The posterior refresh's reads without re-reading what has not changed.
//!
//! Every replica rebuilds each live experiment's snapshot at least every 100 ms
//! (`engine::SNAPSHOT_REFRESH_MS`), and each rebuild used to read every shard's arms hash and
//! delay histograms whole (`HGETALL` ×8 each) and parse them, even when nothing had been
//! written since: on an idle replica or under known-unit assign, most of the store thread's
//! time. The commit script bumps a change counter, field [`VERSION_FIELD`] of the arms hash of
//! the shard whose counters and histograms it writes (`apply_ops.lua`, in the same `HSET` as
//! the counters, so the counter and what it guards change atomically). A refresh reads the
//! eight counters (one pipeline on a single primary) and re-reads only the shards whose counter
//! moved since this replica last read them; the rest come from the parsed copy kept here.
//!
//! Why it is as fresh as before: a shard's counter is read before its data, and every write of
//! the data bumps the counter in the same script call, so a copy kept under counter `v` is at
//! least as new as `v`; a later write raises the counter past `v` and is read at the next
//! refresh. Nothing is ever answered from the copy without reading the counters first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::AsyncCommands;

use super::layout::{self, SHARDS};
use super::{Shared, classify, lock};
use crate::store::{Epoch, StoreError};

/// The arms hash's change counter: bumped by every commit script call that writes the shard's
/// counters or delay histograms. Shard-level, so the readers of arm fields (`kind|variant`)
/// skip it.
pub(super) const VERSION_FIELD: &str = "v";

/// One shard's change counter as read (`None`: the shard has never been written).
type Version = Option<i64>;

/// What one reader keeps per epoch: the counters it last read, each shard's parsed data, and
/// what the shards sum to.
struct Kept<S, C> {
    versions: Vec<Version>,
    shards: Vec<Arc<S>>,
    combined: C,
}

/// Parsed shards and their combination, per epoch, for one kind of read (the counters, or the
/// delay histograms).
pub(super) struct ShardCopies<S, C> {
    epochs: Mutex<HashMap<Epoch, Kept<S, C>>>,
}

impl<S, C> Default for ShardCopies<S, C> {
    fn default() -> Self {
        Self {
            epochs: Mutex::new(HashMap::new()),
        }
    }
}

/// The eight shards' change counters of `epoch`: one pipeline on a single primary; one command
/// per shard under Cluster, where the shards live in different slots.
async fn versions(shared: &Shared, epoch: &Epoch) -> Result<Vec<Version>, StoreError> {
    let keys = (0..SHARDS).map(|shard| format!("{}:a", layout::tag(epoch, shard)));
    if shared.link.is_cluster() {
        let replies = futures_util::future::join_all(keys.map(|key| {
            let mut connection = shared.link.get();
            async move { connection.hget::<_, _, Version>(key, VERSION_FIELD).await }
        }))
        .await;
        replies
            .into_iter()
            .map(|reply| reply.map_err(|error| classify(shared, &error)))
            .collect()
    } else {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hget(key, VERSION_FIELD);
        }
        pipe.query_async(&mut shared.link.get())
            .await
            .map_err(|error| classify(shared, &error))
    }
}

impl<S, C: Clone> ShardCopies<S, C> {
    /// The combination of every shard of `epoch` as Redis holds it now: the change counters are
    /// read, the shards whose counter moved are read with `read_shard` (all of them the first
    /// time), and `combine` sums the shards unless none moved.
    pub(super) async fn read<R, F, Fut>(
        &self,
        shared: &Shared,
        epoch: &Epoch,
        read_shard: R,
        combine: F,
    ) -> Result<C, StoreError>
    where
        R: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<S, StoreError>>,
        F: FnOnce(&[Arc<S>]) -> C,
    {
        let now = versions(shared, epoch).await?;
        let mut shards: Vec<Option<Arc<S>>> = vec![None; now.len()];
        if let Some(kept) = lock(&self.epochs).get(epoch) {
            if kept.versions == now {
                return Ok(kept.combined.clone());
            }
            for (shard, slot) in shards.iter_mut().enumerate() {
                if kept.versions.get(shard) == now.get(shard) {
                    *slot = kept.shards.get(shard).cloned();
                }
            }
        }
        let stale: Vec<u32> = (0..SHARDS)
            .filter(|shard| shards[*shard as usize].is_none())
            .collect();
        let fetched =
            futures_util::future::join_all(stale.iter().map(|shard| read_shard(*shard))).await;
        for (shard, data) in stale.into_iter().zip(fetched) {
            shards[shard as usize] = Some(Arc::new(data?));
        }
        let shards: Vec<Arc<S>> = shards.into_iter().flatten().collect();
        let combined = combine(&shards);
        lock(&self.epochs).insert(
            epoch.clone(),
            Kept {
                versions: now,
                shards,
                combined: combined.clone(),
            },
        );
        Ok(combined)
    }
}
