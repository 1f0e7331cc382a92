//! What the store reads at open: the small, whole-in-memory part of its state (arm and epoch
//! records, the last commit's sequence number, the expiry watermark), so that startup time does
//! not depend on how many units or events are stored.

use std::sync::Arc;

use super::StoreError;
use super::codec;
use super::keys::{self, KIND_ARM, KIND_EPOCH, KIND_FOLDED, KIND_MOVED_AWAY, KIND_PER_REQUEST};
use super::overlay::{ArmMap, DurableState, EpochMap, io};
use super::writer::CounterMap;

/// Loads what the writer needs at open: the arm and epoch states (few keys, so startup does
/// not depend on how many units are stored), the last commit's sequence number and the expiry
/// watermark.
pub fn load(db: &sled::Db) -> Result<(DurableState, u64, u64), StoreError> {
    let mut arms = ArmMap::new();
    for kind in [KIND_ARM, KIND_PER_REQUEST, KIND_FOLDED, KIND_MOVED_AWAY] {
        for item in db.scan_prefix([kind]) {
            let (key, value) = item.map_err(io)?;
            let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
            let arm = arms.entry(epoch).or_default().entry(variant).or_default();
            match kind {
                KIND_ARM => arm.counters = codec::decode_arm(&value)?,
                KIND_PER_REQUEST => {
                    arm.per_request = codec::decode_u64(&value, "per-request exposures")?
                }
                KIND_FOLDED => arm.folded_reward = codec::decode_f64(&value, "folded reward")?,
                _ => arm.moved_away = codec::decode_moved_away(&value)?,
            }
        }
    }
    let mut epochs = EpochMap::new();
    for item in db.scan_prefix([KIND_EPOCH]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, _) = keys::parse_epoch_key(&key)?;
        epochs.insert(epoch, codec::decode_epoch_info(&value)?);
    }
    let meta = |key: &[u8], what: &str| -> Result<u64, StoreError> {
        match db.get(key).map_err(io)? {
            Some(value) => codec::decode_u64(&value, what),
            None => Ok(0),
        }
    };
    let last_seq = meta(keys::META_SEQ, "commit sequence number")?;
    let expired_through = meta(keys::META_EXPIRED_THROUGH, "expiry watermark")?;
    Ok((DurableState { arms, epochs }, last_seq, expired_through))
}

/// The published view of freshly loaded arm states.
pub fn counter_view(arms: &ArmMap) -> CounterMap {
    arms.iter()
        .map(|(epoch, arms)| {
            let view = arms
                .iter()
                .map(|(variant, arm)| (variant.clone(), arm.counters))
                .collect();
            (epoch.clone(), Arc::new(view))
        })
        .collect()
}
