//! `--redis-wait-replicas`: a write is acknowledged only once that many Redis replicas hold it.
//!
//! Redis replicates asynchronously: a primary that fails over right after a write can lose it
//! although the client was answered (README, "Scaling out"). With this option on, every group
//! commit (and every other write a client is answered for: confirmations, decisions, halts)
//! ends with `WAIT <replicas> <timeout>` on the connection that made the writes, before anybody
//! is answered. Fewer acknowledgements within the timeout and the writes' callers get
//! [`StoreError::Unavailable`] (events 503 with `Retry-After`, assign its degraded answer),
//! never an acknowledgement, and the store stays unready until a write is acknowledged again
//! (`probe`).
//!
//! The writes are not undone: the primary keeps them, and a retry finds them (the event id is
//! a duplicate, the unit holds its record) unless a failover lost them, which is what WAIT
//! guards against. WAIT does not make Redis strongly consistent: a replica that acknowledged
//! can still lose the write if it dies before it is promoted, and Sentinel may promote one that
//! did not acknowledge. It bounds the common case: a primary that dies with writes it
//! acknowledged only to its clients.
//!
//! Under Cluster, WAIT goes to the primary of each slot the commit wrote (a slot's node took
//! its writes over the cluster client's connection to that node); a commit whose writes are
//! spread by steps this module does not see (the reward steps) waits on every primary.

use std::collections::HashSet;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::connect::Connection;
use super::{Shared, classify};
use crate::store::StoreError;

/// How many replicas must hold a write before it is acknowledged, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaWait {
    /// 0: off (acknowledge once the primary has the write, as Redis does).
    pub replicas: u32,
    /// How long `WAIT` may block (ms); kept well under the connection's response timeout.
    pub timeout_ms: u64,
}

impl ReplicaWait {
    pub fn is_on(&self) -> bool {
        self.replicas > 0
    }
}

/// Where the writes to wait for went: the slots named (by a key or a hash tag) and whether
/// some went where this module cannot name (then every primary is asked).
#[derive(Default)]
pub struct Written {
    routes: HashSet<Route>,
    anywhere: bool,
}

impl Written {
    /// Writes to the slot of `key` only.
    pub fn at(key: &str) -> Self {
        let mut written = Self::default();
        written.slot_of(key);
        written
    }

    /// Writes anywhere: every primary is asked.
    pub fn everywhere() -> Self {
        Self {
            routes: HashSet::new(),
            anywhere: true,
        }
    }

    /// Writes went to the slot of `key` (a key or a bare hash tag `{…}`).
    pub fn slot_of(&mut self, key: &str) {
        self.routes.insert(Route::with_key(key, SlotAddr::Master));
    }

    /// Writes went to slots not named here.
    pub fn anywhere(&mut self) {
        self.anywhere = true;
    }

    fn is_empty(&self) -> bool {
        self.routes.is_empty() && !self.anywhere
    }
}

/// Waits until `shared`'s replica count holds the writes made so far on the store's
/// connection. `Ok` at once when the option is off or nothing was written.
pub async fn acknowledged(shared: &Shared, written: &Written) -> Result<(), StoreError> {
    let wait = shared.wait;
    if !wait.is_on() || written.is_empty() {
        return Ok(());
    }
    let acknowledged = match replicas_holding(shared, written).await {
        Ok(count) => count,
        Err(error) => return Err(classify(shared, &error)),
    };
    if acknowledged >= i64::from(wait.replicas) {
        return Ok(());
    }
    let cause = format!(
        "redis: {acknowledged} replica(s) acknowledged the writes within {} ms, {} required (--redis-wait-replicas)",
        wait.timeout_ms, wait.replicas
    );
    if shared.health.writable() {
        shared.health.begin(&cause);
    }
    Err(StoreError::Unavailable(cause))
}

/// Whether a write would be acknowledged now, for the probe of a failing store: the probe's
/// own write (or, under Cluster, any earlier one) held by enough replicas. Always true with
/// the option off.
pub async fn probe(shared: &Shared) -> Result<bool, redis::RedisError> {
    if !shared.wait.is_on() {
        return Ok(true);
    }
    Ok(replicas_holding(shared, &Written::everywhere()).await? >= i64::from(shared.wait.replicas))
}

/// The fewest replicas that hold this connection's writes on any primary asked.
async fn replicas_holding(shared: &Shared, written: &Written) -> redis::RedisResult<i64> {
    let mut command = redis::cmd("WAIT");
    command
        .arg(shared.wait.replicas)
        .arg(shared.wait.timeout_ms);
    match shared.link.get() {
        // One connection to one primary: its last write covers every write of the commit.
        Connection::Single(mut connection) => command.query_async(&mut connection).await,
        // The cluster client sends WAIT to every primary and answers the smallest count.
        Connection::Cluster(mut cluster) if written.anywhere => {
            command.query_async(&mut cluster).await
        }
        Connection::Cluster(cluster) => {
            let replies = futures_util::future::join_all(written.routes.iter().map(|route| {
                let mut cluster = cluster.clone();
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(*route));
                let command = command.clone();
                async move {
                    let value = cluster.route_command(command, routing).await?;
                    redis::from_redis_value::<i64>(value).map_err(redis::RedisError::from)
                }
            }))
            .await;
            let mut fewest = i64::MAX;
            for reply in replies {
                fewest = fewest.min(reply?);
            }
            Ok(fewest)
        }
    }
}
