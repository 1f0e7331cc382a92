//! Replica reports on Redis (see `store::replica`): every replica sharing the store sees every
//! live replica's report.
//!
//! Two keys under one hash tag, so both sit in one Cluster slot and every command or script
//! here touches one slot: a hash of reports by replica id (JSON values) and a sorted set of
//! the same ids scored by expiry. An announce writes both in one script (a script, not MULTI:
//! the Cluster client routes a script by its keys' slot like any command); a read deletes the
//! expired entries and returns the rest in one script, so a dead replica's report is gone at
//! the first read after it expires. Both keys expire by themselves when no replica has
//! announced for twice the last report's lifetime, so a store whose replicas are all gone is
//! left clean.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{RedisError, Script};

use crate::store::ReplicaReport;

/// The reports, by replica id.
pub const REPORTS_KEY: &str = "{bd:replicas}:reports";
/// The replica ids, scored by when their report expires (Unix ms).
pub const EXPIRY_KEY: &str = "{bd:replicas}:expiry";

static LIVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("replicas.lua")));

/// KEYS: reports, expiry; ARGV: id, report JSON, expiry (Unix ms), keys' lifetime (ms).
static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
         redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) \
         redis.call('PEXPIRE', KEYS[1], ARGV[4]) \
         redis.call('PEXPIRE', KEYS[2], ARGV[4]) \
         return 1",
    )
});

/// KEYS: reports, expiry; ARGV: id.
static WITHDRAW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('HDEL', KEYS[1], ARGV[1]) \
         redis.call('ZREM', KEYS[2], ARGV[1]) \
         return 1",
    )
});

/// What a read can fail with: Redis, or a report that does not read back (a bug or a foreign
/// writer; the caller decides what to tell).
#[derive(Debug)]
pub enum ReplicaError {
    Redis(RedisError),
    Unreadable(String),
}

impl From<RedisError> for ReplicaError {
    fn from(error: RedisError) -> Self {
        Self::Redis(error)
    }
}

/// Publishes `report` until `expires_ms`, replacing the replica's previous report.
pub async fn announce<C: ConnectionLike + Send>(
    connection: &mut C,
    report: &ReplicaReport,
    expires_ms: u64,
) -> Result<(), ReplicaError> {
    let json = serde_json::to_string(report)
        .map_err(|error| ReplicaError::Unreadable(error.to_string()))?;
    let keep_keys_ms = expires_ms.saturating_sub(report.reported_ms).max(1) * 2;
    ANNOUNCE
        .key(REPORTS_KEY)
        .key(EXPIRY_KEY)
        .arg(&report.id)
        .arg(json)
        .arg(expires_ms)
        .arg(keep_keys_ms)
        .invoke_async::<()>(connection)
        .await?;
    Ok(())
}

/// Removes replica `id`'s report.
pub async fn withdraw<C: ConnectionLike + Send>(
    connection: &mut C,
    id: &str,
) -> Result<(), ReplicaError> {
    WITHDRAW
        .key(REPORTS_KEY)
        .key(EXPIRY_KEY)
        .arg(id)
        .invoke_async::<()>(connection)
        .await?;
    Ok(())
}

/// Every report that expires after `now_ms`, by id; the expired ones are deleted.
pub async fn live<C: ConnectionLike + Send>(
    connection: &mut C,
    now_ms: u64,
) -> Result<Vec<ReplicaReport>, ReplicaError> {
    let found: Vec<String> = LIVE
        .key(REPORTS_KEY)
        .key(EXPIRY_KEY)
        .arg(now_ms)
        .invoke_async(connection)
        .await?;
    found
        .iter()
        .map(|json| {
            serde_json::from_str(json).map_err(|error| {
                ReplicaError::Unreadable(format!("a replica report in {REPORTS_KEY}: {error}"))
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;
