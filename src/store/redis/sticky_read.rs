//! Sticky records as readers see them: a unit's record (`sticky`) and a page of an export
//! (`scan_sticky`), from the shard's records hash and unit index (filled from the shard's list
//! of new units first, `index_pending`), and from the sorted set of the earlier layout for
//! records not rewritten since (`layout`, the key table).

use redis::AsyncCommands;

use super::layout::{self, SHARDS, ShardKeys};
use super::read::{connection, corrupt, find, scan_members};
use super::{Shared, classify};
use crate::store::{Epoch, StickyRecord, StoreError};

pub async fn sticky(
    shared: &Shared,
    epoch: &Epoch,
    unit: &str,
) -> Result<Option<StickyRecord>, StoreError> {
    let keys = ShardKeys::of(epoch, layout::shard_of(unit));
    let record: Option<String> = connection(shared)
        .hget(&keys.records, unit)
        .await
        .map_err(|error| classify(shared, &error))?;
    if let Some(record) = record {
        return layout::decode_sticky(&record)
            .map(Some)
            .ok_or_else(|| corrupt("sticky record", &record));
    }
    // A record of the earlier layout, not rewritten since.
    let Some(member) = find(shared, &keys.sticky, unit).await? else {
        return Ok(None);
    };
    layout::split_member(&member)
        .and_then(|(_, value)| layout::decode_sticky(value))
        .map(Some)
        .ok_or_else(|| corrupt("sticky record", &member))
}

/// Names moved per `index.lua` call: a call is atomic, so this bounds how long one blocks Redis.
pub(super) const INDEX_CHUNK: usize = 4096;

/// Moves every shard's new units (the names `apply.lua` appended to `<tag>:p`) into the shard's
/// unit index, so that a page read next sees every unit written before it began. A shard whose
/// list keeps growing under new units is drained as far as it held at the first call (units
/// written during a page may or may not be on it, as on sled).
pub async fn index_pending(shared: &Shared, epoch: &Epoch) -> Result<(), StoreError> {
    let drains = futures_util::future::join_all((0..SHARDS).map(|shard| async move {
        let keys = ShardKeys::of(epoch, shard);
        let mut calls_left: Option<usize> = None;
        loop {
            let left: usize = shared
                .scripts
                .index
                .key(&keys.pending)
                .key(&keys.units)
                .arg(INDEX_CHUNK)
                .invoke_async(&mut connection(shared))
                .await?;
            let calls = calls_left.get_or_insert(left.div_ceil(INDEX_CHUNK));
            if left == 0 || *calls == 0 {
                return Ok::<_, redis::RedisError>(());
            }
            *calls -= 1;
        }
    }))
    .await;
    for drained in drains {
        drained.map_err(|error| classify(shared, &error))?;
    }
    Ok(())
}

/// Up to `limit` records of each shard after `after`, in unit order: a page of each shard's
/// unit index and those units' records (one `ZRANGEBYLEX` and one `HMGET` per shard), merged
/// with the records the shards still hold in the earlier layout. New units are moved into the
/// index first (`index_pending`).
pub async fn scan_sticky(
    shared: &Shared,
    epoch: &Epoch,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<(String, StickyRecord)>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    index_pending(shared, epoch).await?;
    let legacy = (0..SHARDS)
        .map(|s| ShardKeys::of(epoch, s).sticky)
        .collect();
    let mut members = scan_members(shared, legacy, after.clone(), limit).await?;
    let low = after.map_or_else(|| "-".to_owned(), |after| format!("({after}"));
    let count = isize::try_from(limit).unwrap_or(isize::MAX);
    let pages = futures_util::future::join_all((0..SHARDS).map(|shard| {
        let mut connection = connection(shared);
        let keys = ShardKeys::of(epoch, shard);
        let low = low.clone();
        async move {
            let units: Vec<String> = connection
                .zrangebylex_limit(&keys.units, low, "+", 0, count)
                .await?;
            if units.is_empty() {
                return Ok((units, Vec::new()));
            }
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&keys.records)
                .arg(&units)
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>((units, records))
        }
    }))
    .await;
    for page in pages {
        let (units, records) = page.map_err(|error| classify(shared, &error))?;
        for (unit, record) in units.into_iter().zip(records) {
            // Index and record are written by one script call: one without the other is damage.
            let record = record.ok_or_else(|| corrupt("unit index entry", &unit))?;
            members.push((unit, record));
        }
    }
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    members.truncate(limit);
    members
        .into_iter()
        .map(|(unit, value)| {
            let record = layout::decode_sticky(&value).ok_or_else(|| corrupt("sticky", &value))?;
            Ok((unit, record))
        })
        .collect()
}
