//! Reads, the small single-key writes (decision, history, secret), the expiry sweep and the
//! audit of the Redis backend.

use std::collections::{BTreeMap, HashMap};

use redis::AsyncCommands;

use super::layout::{self, MICRO, SHARDS, ShardKeys};
pub use super::sticky_read::{scan_sticky, sticky};
use super::{Shared, classify};
use crate::stats::DecayedCounts;
use crate::store::records::{StoredHistory, StoredHistoryRef};
use crate::store::{
    ArmCounters, AuditReport, CounterMismatch, Decision, Epoch, EpochInfo, EpochSpec,
    ExpectationMismatch, HistoryPoint, StoreError, TokenConfirmation, TokenCredit,
};

pub(super) fn connection(shared: &Shared) -> super::connect::Connection {
    shared.link.get()
}

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what} in redis: {value:?}"))
}

/// The member of `id` in a lexicographic sorted set (`layout::SEP`), if any.
pub(super) async fn find(
    shared: &Shared,
    key: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let hit: Vec<String> = connection(shared)
        .zrangebylex_limit(key, format!("[{id}\0"), format!("({id}\x01"), 0, 1)
        .await
        .map_err(|error| classify(shared, &error))?;
    Ok(hit.into_iter().next())
}

/// One shard's share of every arm, as its hash spells it.
#[derive(Default, Clone)]
pub(super) struct ShardArm {
    n: i64,
    r: i64,
    e: i64,
    p: i64,
    mn: i64,
    mr: i64,
    t: i64,
    dn: f64,
    dr: f64,
    dt: u64,
    /// The half-life of the last write; `None`: decayed = raw.
    h: Option<u64>,
}

/// One shard's arms, by variant.
pub(super) type ShardArms = HashMap<String, ShardArm>;

async fn shard_arms(shared: &Shared, epoch: &Epoch) -> Result<Vec<ShardArms>, StoreError> {
    let replies =
        futures_util::future::join_all((0..SHARDS).map(|shard| one_shard(shared, epoch, shard)))
            .await;
    replies.into_iter().collect()
}

async fn one_shard(shared: &Shared, epoch: &Epoch, shard: u32) -> Result<ShardArms, StoreError> {
    let key = ShardKeys::of(epoch, shard).arms;
    let fields: Vec<(String, String)> = connection(shared)
        .hgetall(key)
        .await
        .map_err(|error| classify(shared, &error))?;
    let mut arms: ShardArms = HashMap::new();
    for (field, value) in fields {
        let Some((kind, variant)) = field.split_once('|') else {
            continue; // shard-level fields (`xt`, `s`, `fresh::VERSION_FIELD`)
        };
        let arm = arms.entry(variant.to_owned()).or_default();
        let int = || value.parse::<i64>().map_err(|_| corrupt(&field, &value));
        let float = || value.parse::<f64>().map_err(|_| corrupt(&field, &value));
        match kind {
            "n" => arm.n = int()?,
            "r" => arm.r = int()?,
            "e" => arm.e = int()?,
            "p" => arm.p = int()?,
            "mn" => arm.mn = int()?,
            "mr" => arm.mr = int()?,
            "t" => arm.t = int()?,
            "dn" => arm.dn = float()?,
            "dr" => arm.dr = float()?,
            "dt" => arm.dt = value.parse().map_err(|_| corrupt(&field, &value))?,
            "h" => arm.h = value.parse().ok(),
            _ => {}
        }
    }
    Ok(arms)
}

/// Sums the shards. Decayed sums are rescaled to the latest reference time of any shard
/// (exact: decay factors multiply), so the sum is what one store would hold. Shards whose
/// change counter has not moved since this replica last read them are not read again
/// (`fresh`).
pub async fn counters(
    shared: &Shared,
    epoch: &Epoch,
) -> Result<HashMap<String, ArmCounters>, StoreError> {
    shared
        .arm_copies
        .read(
            shared,
            epoch,
            |shard| one_shard(shared, epoch, shard),
            |shards| sum_shards(shards.iter().map(|shard| &**shard)),
        )
        .await
}

fn sum_shards<'a>(shards: impl IntoIterator<Item = &'a ShardArms>) -> HashMap<String, ArmCounters> {
    let mut by_variant: BTreeMap<&str, Vec<&ShardArm>> = BTreeMap::new();
    for shard in shards {
        for (variant, arm) in shard {
            by_variant.entry(variant).or_default().push(arm);
        }
    }
    by_variant
        .into_iter()
        .map(|(variant, arms)| {
            let at_ms = arms.iter().map(|arm| arm.dt).max().unwrap_or(0);
            let mut counters = ArmCounters {
                decayed_at_ms: at_ms,
                ..ArmCounters::default()
            };
            let (mut n, mut r, mut e) = (0i64, 0i64, 0i64);
            for arm in &arms {
                n += arm.n;
                r += arm.r;
                e += arm.e;
                let (dn, dr) = match arm.h {
                    None => (arm.n as f64, layout::from_micro(arm.r)),
                    Some(half_life) => {
                        let decayed = DecayedCounts {
                            exposures: arm.dn,
                            reward_sum: arm.dr,
                            at_ms: arm.dt,
                        }
                        .decayed_to(at_ms, half_life);
                        (decayed.exposures, decayed.reward_sum)
                    }
                };
                counters.decayed_exposures += dn;
                counters.decayed_reward_sum += dr;
            }
            counters.exposures = u64::try_from(n).unwrap_or(0);
            counters.reward_sum = layout::from_micro(r);
            counters.expected_exposures = layout::from_micro(e);
            (variant.to_owned(), counters)
        })
        .collect()
}

pub async fn epoch_info(shared: &Shared, epoch: &Epoch) -> Result<EpochInfo, StoreError> {
    let (start, decision): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(layout::info_key(epoch))
        .arg("start")
        .arg("decision")
        .query_async(&mut connection(shared))
        .await
        .map_err(|error| classify(shared, &error))?;
    let started_ms = match start {
        Some(start) => Some(start.parse().map_err(|_| corrupt("epoch start", &start))?),
        // A replica that died between a first write and fixing the start: fix it now (looked
        // for at most once a second, as an epoch nothing was counted in yet has no start).
        None if shared.should_look_for_start(epoch) => fix_start(shared, epoch).await?,
        None => None,
    };
    Ok(EpochInfo {
        started_ms,
        decision: match decision {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|_| corrupt("decision", &text))?)
            }
            None => None,
        },
    })
}

/// Fixes the epoch's start, once, at the earliest first write of any shard (each shard keeps
/// the time of its own first counted write, `s` in its arms hash, in the same script call
/// that counts it). Called before a commit that counted in the epoch answers, and by readers
/// that find no start, so the start is fixed before anybody can see a counted write and never
/// moves afterwards. `None`: nothing counted yet.
pub async fn fix_start(shared: &Shared, epoch: &Epoch) -> Result<Option<u64>, StoreError> {
    if let Some(start) = super::lock(&shared.started).get(epoch) {
        return Ok(Some(*start));
    }
    let firsts = futures_util::future::join_all((0..SHARDS).map(|shard| {
        let mut connection = connection(shared);
        let key = ShardKeys::of(epoch, shard).arms;
        async move { connection.hget::<_, _, Option<u64>>(key, "s").await }
    }))
    .await;
    let mut earliest: Option<u64> = None;
    for first in firsts {
        if let Some(first) = first.map_err(|error| classify(shared, &error))? {
            earliest = Some(earliest.map_or(first, |e| e.min(first)));
        }
    }
    let Some(earliest) = earliest else {
        return Ok(None);
    };
    let held = write_fact(shared, epoch, "start", earliest.to_string()).await?;
    let start = held.parse().map_err(|_| corrupt("epoch start", &held))?;
    super::lock(&shared.started).insert(epoch.clone(), start);
    Ok(Some(start))
}

async fn write_fact(
    shared: &Shared,
    epoch: &Epoch,
    field: &str,
    value: String,
) -> Result<String, StoreError> {
    shared
        .scripts
        .first
        .key(layout::info_key(epoch))
        .arg(field)
        .arg(value)
        .invoke_async(&mut connection(shared))
        .await
        .map_err(|error| classify(shared, &error))
}

pub async fn record_decision(
    shared: &Shared,
    epoch: &Epoch,
    decision: Decision,
) -> Result<Decision, StoreError> {
    let text = serde_json::to_string(&decision)
        .map_err(|error| StoreError::Io(format!("decision does not serialise: {error}")))?;
    let held = write_fact(shared, epoch, "decision", text).await?;
    serde_json::from_str(&held).map_err(|_| corrupt("decision", &held))
}

pub async fn append_history(
    shared: &Shared,
    epoch: &Epoch,
    point: HistoryPoint,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(&StoredHistoryRef { arms: &point.arms })
        .map_err(|error| StoreError::Io(format!("history point does not serialise: {error}")))?;
    let _: i64 = shared
        .scripts
        .history
        .key(layout::history_key(epoch))
        .arg(point.at_ms)
        .arg(shared.history_interval_ms)
        .arg(text)
        .invoke_async(&mut connection(shared))
        .await
        .map_err(|error| classify(shared, &error))?;
    Ok(())
}

pub async fn history(
    shared: &Shared,
    epoch: &Epoch,
    since_ms: u64,
    limit: usize,
    newest_first: bool,
) -> Result<Vec<HistoryPoint>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let count = isize::try_from(limit).unwrap_or(isize::MAX);
    let key = layout::history_key(epoch);
    let members: Vec<String> = if newest_first {
        connection(shared)
            .zrevrangebyscore_limit(key, "+inf", since_ms, 0, count)
            .await
    } else {
        connection(shared)
            .zrangebyscore_limit(key, since_ms, "+inf", 0, count)
            .await
    }
    .map_err(|error| classify(shared, &error))?;
    members
        .iter()
        .map(|member| {
            let (at, point) = member
                .split_once('\t')
                .ok_or_else(|| corrupt("history point", member))?;
            let stored: StoredHistory =
                serde_json::from_str(point).map_err(|_| corrupt("history point", point))?;
            Ok(HistoryPoint {
                at_ms: at.parse().map_err(|_| corrupt("history time", at))?,
                arms: stored.arms,
            })
        })
        .collect()
}

pub async fn record_epoch_spec(
    shared: &Shared,
    epoch: &Epoch,
    spec: EpochSpec,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(&spec)
        .map_err(|error| StoreError::Io(format!("epoch spec does not serialise: {error}")))?;
    let _: () = connection(shared)
        .set(layout::spec_key(epoch), text)
        .await
        .map_err(|error| classify(shared, &error))?;
    Ok(())
}

pub async fn epoch_spec(shared: &Shared, epoch: &Epoch) -> Result<Option<EpochSpec>, StoreError> {
    let text: Option<String> = connection(shared)
        .get(layout::spec_key(epoch))
        .await
        .map_err(|error| classify(shared, &error))?;
    text.map(|text| serde_json::from_str(&text).map_err(|_| corrupt("epoch spec", &text)))
        .transpose()
}

/// Up to `limit` members of each shard after `after`, merged in id order.
pub(super) async fn scan_members(
    shared: &Shared,
    keys: Vec<String>,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let low = after.map_or_else(|| "-".to_owned(), |after| format!("[{after}\x01"));
    let count = isize::try_from(limit).unwrap_or(isize::MAX);
    let replies = futures_util::future::join_all(keys.into_iter().map(|key| {
        let mut connection = connection(shared);
        let low = low.clone();
        async move {
            connection
                .zrangebylex_limit::<_, _, _, Vec<String>>(key, low, "+", 0, count)
                .await
        }
    }))
    .await;
    let mut members = Vec::new();
    for reply in replies {
        for member in reply.map_err(|error| classify(shared, &error))? {
            let (id, value) =
                layout::split_member(&member).ok_or_else(|| corrupt("member", &member))?;
            members.push((id.to_owned(), value.to_owned()));
        }
    }
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    members.truncate(limit);
    Ok(members)
}

pub async fn scan_marks(
    shared: &Shared,
    epoch: &Epoch,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<TokenCredit>, StoreError> {
    let keys = (0..SHARDS).map(|s| ShardKeys::of(epoch, s).marks).collect();
    scan_members(shared, keys, after, limit)
        .await?
        .into_iter()
        .map(|(id, value)| layout::decode_mark(&id, &value).ok_or_else(|| corrupt("mark", &value)))
        .collect()
}

pub async fn scan_confirmations(
    shared: &Shared,
    epoch: &Epoch,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<TokenConfirmation>, StoreError> {
    let keys = (0..SHARDS)
        .map(|s| layout::confirms_key(epoch, s))
        .collect();
    scan_members(shared, keys, after, limit)
        .await?
        .into_iter()
        .map(|(id, value)| {
            layout::decode_confirmation(&id, &value).ok_or_else(|| corrupt("confirmation", &value))
        })
        .collect()
}

/// Sweeps the event ids of every experiment and the token marks of every epoch that has any,
/// by the engine's clock.
pub async fn expire(shared: &Shared, now_ms: u64) -> Result<u64, StoreError> {
    let members: Vec<String> = connection(shared)
        .smembers(layout::EPOCHS_KEY)
        .await
        .map_err(|error| classify(shared, &error))?;
    let mut removed = 0;
    for experiment in members.iter().filter(|member| !member.contains('\t')) {
        for shard in 0..SHARDS {
            let count: u64 = shared
                .scripts
                .expire_events
                .key(layout::event_dir_key(experiment, shard))
                .key(layout::event_index_key(experiment, shard))
                .key(layout::event_due_key(experiment, shard))
                .key(layout::event_digest_key(experiment, shard))
                .key(layout::event_digest_index_key(experiment, shard))
                .arg(now_ms)
                .invoke_async(&mut connection(shared))
                .await
                .map_err(|error| classify(shared, &error))?;
            removed += count;
        }
    }
    for epoch in members.iter().filter_map(|m| layout::parse_epoch_member(m)) {
        for shard in 0..SHARDS {
            let keys = ShardKeys::of(&epoch, shard);
            let count: u64 = shared
                .scripts
                .expire
                .key(&keys.marks)
                .key(&keys.marks_due)
                .key(&keys.arms)
                .key(layout::confirms_key(&epoch, shard))
                .key(layout::confirms_due_key(&epoch, shard))
                .arg(now_ms)
                .invoke_async(&mut connection(shared))
                .await
                .map_err(|error| classify(shared, &error))?;
            removed += count;
        }
    }
    Ok(removed)
}

pub async fn secret(shared: &Shared, key: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let mut connection = connection(shared);
    let _: bool = connection
        .set_nx(key, candidate)
        .await
        .map_err(|error| classify(shared, &error))?;
    let held: Option<Vec<u8>> = connection
        .get(key)
        .await
        .map_err(|error| classify(shared, &error))?;
    held.ok_or_else(|| StoreError::Corrupt(format!("secret {key} vanished")))
}

/// The ids one event-id shard keeps: its directory's fields, its legacy keys and its digests.
async fn event_ids(shared: &Shared, experiment: &str, shard: u32) -> Result<u64, StoreError> {
    let mut connection = connection(shared);
    let fields: u64 = connection
        .hlen(layout::event_dir_key(experiment, shard))
        .await
        .map_err(|error| classify(shared, &error))?;
    let legacy: u64 = connection
        .zcard(layout::event_due_key(experiment, shard))
        .await
        .map_err(|error| classify(shared, &error))?;
    let digests: u64 = connection
        .scard(layout::event_digest_key(experiment, shard))
        .await
        .map_err(|error| classify(shared, &error))?;
    Ok(fields + legacy + digests)
}

/// Every epoch that has arm counters, found by scanning for `<tag>:a` keys.
async fn epochs(shared: &Shared) -> Result<Vec<Epoch>, StoreError> {
    let keys = shared
        .link
        .scan("{bd:*}:a")
        .await
        .map_err(|error| classify(shared, &error))?;
    let mut found = std::collections::BTreeSet::new();
    for key in keys {
        let Some(tag) = key.strip_prefix("{bd:").and_then(|k| k.strip_suffix("}:a")) else {
            continue;
        };
        let mut parts = tag.rsplitn(3, ':');
        let (_shard, revision, experiment) = (parts.next(), parts.next(), parts.next());
        if let (Some(revision), Some(experiment)) = (revision, experiment)
            && let Ok(revision) = revision.parse()
        {
            found.insert(Epoch {
                experiment: experiment.to_owned(),
                revision,
            });
        }
    }
    Ok(found.into_iter().collect())
}

/// Recomputes every arm's raw counters from the records, shard by shard, and checks that
/// each epoch's expected exposures add up to its exposures exactly (fixed point).
///
/// Implied N is the sticky records, plus the per-request count, plus the units re-assigned
/// away; implied R is the sticky rewards, plus the token credits, plus the rewards of
/// re-assigned records. Not atomic across shards: run it on a quiescent store (no replica
/// serving), like the sled audit.
pub async fn audit(shared: &Shared) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    let registered: Vec<String> = connection(shared)
        .smembers(layout::EPOCHS_KEY)
        .await
        .map_err(|error| classify(shared, &error))?;
    for experiment in registered.iter().filter(|member| !member.contains('\t')) {
        for shard in 0..SHARDS {
            report.event_ids += event_ids(shared, experiment, shard).await?;
        }
    }
    for epoch in epochs(shared).await? {
        let shards = shard_arms(shared, &epoch).await?;
        let mut exposures = 0i64;
        let mut expected = 0i64;
        let mut stored_by_variant: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut implied_by_variant: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (shard, arms) in shards.iter().enumerate() {
            let keys = ShardKeys::of(&epoch, shard as u32);
            let mut values: Vec<String> = connection(shared)
                .hvals(&keys.records)
                .await
                .map_err(|error| classify(shared, &error))?;
            let members: Vec<String> = connection(shared)
                .zrange(&keys.sticky, 0, -1)
                .await
                .map_err(|error| classify(shared, &error))?;
            for member in &members {
                let (_, value) =
                    layout::split_member(member).ok_or_else(|| corrupt("sticky", member))?;
                values.push(value.to_owned());
            }
            for value in &values {
                let record =
                    layout::decode_sticky(value).ok_or_else(|| corrupt("sticky", value))?;
                let implied = implied_by_variant.entry(record.variant).or_default();
                implied.0 += 1;
                implied.1 += record.reward.map_or(0, layout::to_micro);
                report.sticky_records += 1;
            }
            let marks: u64 = connection(shared)
                .zcard(&keys.marks)
                .await
                .map_err(|error| classify(shared, &error))?;
            report.live_token_marks += marks;
            let confirmations: u64 = connection(shared)
                .zcard(layout::confirms_key(&epoch, shard as u32))
                .await
                .map_err(|error| classify(shared, &error))?;
            report.live_confirmation_marks += confirmations;
            for (variant, arm) in arms {
                let implied = implied_by_variant.entry(variant.clone()).or_default();
                implied.0 += arm.p + arm.mn;
                implied.1 += arm.t + arm.mr;
                let stored = stored_by_variant.entry(variant.clone()).or_default();
                stored.0 += arm.n;
                stored.1 += arm.r;
                exposures += arm.n;
                expected += arm.e;
            }
        }
        let summed = sum_shards(&shards);
        report
            .delay_mismatches
            .extend(super::delays::audit_epoch(shared, &epoch, &summed).await?);
        for (variant, implied) in &implied_by_variant {
            report.arms_checked += 1;
            let stored = stored_by_variant.get(variant).copied().unwrap_or_default();
            if stored != *implied {
                report.mismatches.push(CounterMismatch {
                    epoch: epoch.clone(),
                    variant: variant.clone(),
                    stored: summed.get(variant).copied().unwrap_or_default(),
                    implied: ArmCounters {
                        exposures: u64::try_from(implied.0).unwrap_or(0),
                        reward_sum: layout::from_micro(implied.1),
                        ..ArmCounters::default()
                    },
                });
            }
        }
        if expected != exposures * MICRO {
            report.expectation_mismatches.push(ExpectationMismatch {
                epoch: epoch.clone(),
                exposures: u64::try_from(exposures).unwrap_or(0),
                expected_exposures: layout::from_micro(expected),
            });
        }
        report.epoch_records += 1;
    }
    Ok(report)
}

/// One shard's arm for tests: (variant, n, decayed n, reference time, half-life).
#[cfg(test)]
pub(super) type TestArm<'a> = (&'a str, i64, f64, u64, Option<u64>);

#[cfg(test)]
pub(super) fn sum_for_test(shards: Vec<Vec<TestArm<'_>>>) -> HashMap<String, ArmCounters> {
    let shards: Vec<ShardArms> = shards
        .into_iter()
        .map(|arms| {
            arms.into_iter()
                .map(|(variant, n, dn, dt, h)| {
                    (
                        variant.to_owned(),
                        ShardArm {
                            n,
                            dn,
                            dt,
                            h,
                            ..ShardArm::default()
                        },
                    )
                })
                .collect()
        })
        .collect();
    sum_shards(&shards)
}
