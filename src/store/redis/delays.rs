//! Reading the delay histograms of the Redis backend: every shard's `<tag>:d` hash (written by
//! `apply.lua` in the script call that changes the counters), summed per arm.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::layout::{self, ShardKeys};
use super::{Shared, classify};
use crate::store::{DelayHistograms, Epoch, StoreError};

fn corrupt(field: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("delay histogram field {field:?} holds {value:?}"))
}

/// One field of a shard's hash: `c|<bin>|<variant>` or `d|<bin>|<variant>` (the variant is
/// last, so it may hold `|`).
fn add_field(
    arms: &mut HashMap<String, DelayHistograms>,
    field: &str,
    value: &str,
) -> Result<(), StoreError> {
    let mut parts = field.splitn(3, '|');
    let (Some(kind), Some(bin), Some(variant)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt(field, value));
    };
    let count: i64 = value.parse().map_err(|_| corrupt(field, value))?;
    let arm = arms.entry(variant.to_owned()).or_default();
    match kind {
        "c" => {
            let bin: u64 = bin.parse().map_err(|_| corrupt(field, value))?;
            *arm.cohorts.entry(bin).or_default() += u64::try_from(count).unwrap_or(0);
        }
        "d" => {
            let bin: u32 = bin.parse().map_err(|_| corrupt(field, value))?;
            *arm.delays.entry(bin).or_default() += layout::from_micro(count);
        }
        _ => return Err(corrupt(field, value)),
    }
    Ok(())
}

/// Every arm's histograms of the epoch, summed over the shards. Shards whose change counter
/// has not moved since this replica last read them are not read again (`fresh`).
pub async fn delay_histograms(
    shared: &Shared,
    epoch: &Epoch,
) -> Result<HashMap<String, DelayHistograms>, StoreError> {
    shared
        .delay_copies
        .read(
            shared,
            epoch,
            |shard| one_shard(shared, epoch, shard),
            |shards| {
                let mut arms: HashMap<String, DelayHistograms> = HashMap::new();
                for shard in shards {
                    for (variant, histograms) in shard.iter() {
                        let arm = arms.entry(variant.clone()).or_default();
                        for (bin, count) in &histograms.cohorts {
                            *arm.cohorts.entry(*bin).or_default() += count;
                        }
                        for (bin, amount) in &histograms.delays {
                            *arm.delays.entry(*bin).or_default() += amount;
                        }
                    }
                }
                arms
            },
        )
        .await
}

/// One shard's histograms, by arm.
async fn one_shard(
    shared: &Shared,
    epoch: &Epoch,
    shard: u32,
) -> Result<HashMap<String, DelayHistograms>, StoreError> {
    let key = ShardKeys::of(epoch, shard).delays;
    let fields: Vec<(String, String)> = shared
        .link
        .get()
        .hgetall(key)
        .await
        .map_err(|error| classify(shared, &error))?;
    let mut arms = HashMap::new();
    for (field, value) in fields {
        add_field(&mut arms, &field, &value)?;
    }
    Ok(arms)
}

/// The audit of one epoch's histograms against its summed counters and its records
/// (`delay_histograms::audit_epoch`).
pub async fn audit_epoch(
    shared: &Shared,
    epoch: &Epoch,
    counters: &HashMap<String, crate::store::ArmCounters>,
) -> Result<Vec<crate::store::DelayMismatch>, StoreError> {
    let histograms = delay_histograms(shared, epoch).await?;
    if histograms.is_empty() {
        return Ok(Vec::new());
    }
    let records = super::read::scan_sticky(shared, epoch, None, usize::MAX).await?;
    let marks = super::read::scan_marks(shared, epoch, None, usize::MAX).await?;
    let recorded = crate::store::delay_histograms::recorded(records.iter().map(|(_, r)| r), &marks);
    Ok(crate::store::delay_histograms::audit_epoch(
        epoch,
        &histograms,
        counters,
        &recorded,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_sum_per_arm_and_a_variant_may_hold_the_separator() {
        let mut arms = HashMap::new();
        add_field(&mut arms, "c|472222|a|b", "3").unwrap();
        add_field(&mut arms, "c|472222|a|b", "2").unwrap();
        add_field(&mut arms, "d|55|a|b", "1500000").unwrap();
        let arm = &arms["a|b"];
        assert_eq!(arm.cohorts[&472222], 5);
        assert_eq!(arm.delays[&55], 1.5);
        assert!(add_field(&mut arms, "x|1|a", "1").is_err());
        assert!(add_field(&mut arms, "c|1|a", "one").is_err());
    }
}
