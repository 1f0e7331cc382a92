//! Where the Redis backend keeps what, and how its values are spelled.
//!
//! **The slot rule**: every script call names keys of one hash tag, so it touches one Redis
//! Cluster slot (and a standalone or Sentinel primary takes it just the same). Every key of an
//! experiment epoch carries the hash tag `{bd:<experiment>:<revision>:<shard>}`, with each unit
//! (and each token's assignment id) hashed to one of [`SHARDS`] shards, so one hot experiment
//! spreads over several slots (and Cluster nodes) and readers sum the shards. Per shard:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<tag>:u` | sorted set, all scores 0 | one member per sticky unit: `unit \0 record` (lexicographic, so a lookup and a page of an export are `ZRANGEBYLEX`) |
//! | `<tag>:a` | hash | the shard's share of every arm's counters: `n|v`, `r|v`, `e|v`, ... (see `read::ShardArm`), and `s`, the time of the shard's first counted write |
//! | `<tag>:t` | sorted set, all scores 0 | one member per credited token: `assignment id \0 mark` |
//! | `<tag>:x` | sorted set | token assignment id → when its mark is removed |
//! | `<tag>:d` | hash | the shard's share of every arm's delay histograms (`store::delay_histograms`): `c|<cohort bin>|v` exposures, `d|<delay bin>|v` reward micro-units |
//! | `<tag>:c:<claim>` | string, PX | the outcome of one claimed reward (see below) |
//!
//! Epoch facts (start, decision), history and the epoch's spec live in shard 0's slot
//! (`<tag0>:i`, `<tag0>:h`, `<tag0>:s`),
//! written by single-key calls of their own: the start is the earliest of the shards' `s`
//! fields, fixed there once (`read::fix_start`), the decision is first-write-wins.
//!
//! Event ids are per experiment (not per epoch: an id is applied at most once whatever the
//! revision), at `{bd:<experiment>:e<k>}:i:<event id>` with `k` the id's shard, so they live in
//! other slots than the records a reward changes. A reward is therefore applied in two steps
//! (`rewards`): the id is **claimed** in its slot (`claim.lua`: the key then holds `P<claim>`
//! and the whole reward, so anyone can finish it), the reward is **applied** in its unit's or
//! token's shard under that claim (`apply.lua`, which keeps the outcome at `<tag>:c:<claim>`,
//! so applying one claim twice changes nothing), and the claim is **settled** (`settle.lua`:
//! `A` for applied, removed when refused). Whoever meets a pending claim finishes it first, so
//! a claim whose replica died is never lost nor applied twice.
//!
//! Money-like quantities are fixed-point integers: rewards and expected exposures are counted
//! in micro-units ([`MICRO`]) with `HINCRBY`, so sums never drift, and the expected exposures
//! of one exposure are split into integers that add up to exactly [`MICRO`].

use crate::store::{Epoch, rules};

/// Shards per epoch. Part of the layout: a unit's shard must not change while its epoch lives.
pub const SHARDS: u32 = 8;

/// Fixed-point scale of rewards and expected exposures: 1 = 1,000,000 micro-units.
pub const MICRO: i64 = 1_000_000;

/// Separates a member's id (unit, assignment id) from its value. Units and assignment ids
/// have no control characters (`engine::unit`), so every member of one id sorts between
/// `id \0` and `id \x01`, and members sort by id.
pub const SEP: char = '\0';

/// What the expiry sweep walks: epochs that hold token marks (`experiment \t revision`) and
/// experiments that hold event ids (`experiment`).
pub const EPOCHS_KEY: &str = "bd:epochs";

/// The shard of a unit or an assignment id: FNV-1a, stable across builds and replicas.
pub fn shard_of(id: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(SHARDS)) as u32
}

/// The hash tag of one shard of an epoch.
pub fn tag(epoch: &Epoch, shard: u32) -> String {
    format!("{{bd:{}:{}:{}}}", epoch.experiment, epoch.revision, shard)
}

/// The keys one shard's script touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardKeys {
    pub sticky: String,
    pub arms: String,
    pub marks: String,
    pub marks_due: String,
    pub delays: String,
}

impl ShardKeys {
    pub fn of(epoch: &Epoch, shard: u32) -> Self {
        let tag = tag(epoch, shard);
        Self {
            sticky: format!("{tag}:u"),
            arms: format!("{tag}:a"),
            marks: format!("{tag}:t"),
            marks_due: format!("{tag}:x"),
            delays: format!("{tag}:d"),
        }
    }
}

/// Where one claimed reward's outcome is kept, in the shard the reward changes.
pub fn claim_key(epoch: &Epoch, shard: u32, claim: &str) -> String {
    format!("{}:c:{claim}", tag(epoch, shard))
}

/// The epoch's facts (start, decision), in shard 0's slot.
pub fn info_key(epoch: &Epoch) -> String {
    format!("{}:i", tag(epoch, 0))
}

/// Shard 0's copy of the spec the epoch is served under (JSON of `records::EpochSpec`).
pub fn spec_key(epoch: &Epoch) -> String {
    format!("{}:s", tag(epoch, 0))
}

pub fn history_key(epoch: &Epoch) -> String {
    format!("{}:h", tag(epoch, 0))
}

/// The key that marks `event_id` applied in `experiment`.
pub fn event_key(experiment: &str, event_id: &str) -> String {
    format!("{{bd:{experiment}:e{}}}:i:{event_id}", shard_of(event_id))
}

/// The index of one event-id shard: event key → when the engine's clock may forget it (the
/// keys also carry a PX expiry, a day later, in case no sweep runs).
pub fn event_due_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:due")
}

/// The key that marks one flush of per-request exposures applied (so a flush retried after a
/// lost reply counts nothing twice).
pub fn flush_key(epoch: &Epoch, shard: u32, flush_id: &str) -> String {
    format!("{}:f:{flush_id}", tag(epoch, shard))
}

pub fn secret_key(name: &str) -> String {
    format!("bd:secret:{name}")
}

/// An epoch as a member of [`EPOCHS_KEY`].
pub fn epoch_member(epoch: &Epoch) -> String {
    format!("{}\t{}", epoch.experiment, epoch.revision)
}

pub fn parse_epoch_member(member: &str) -> Option<Epoch> {
    let (experiment, revision) = member.split_once('\t')?;
    Some(Epoch {
        experiment: experiment.to_owned(),
        revision: revision.parse().ok()?,
    })
}

/// A reward in micro-units (rewards are in [0, 1]; anything else is clamped).
pub fn to_micro(reward: f64) -> i64 {
    if reward.is_finite() {
        (reward.clamp(0.0, 1.0) * MICRO as f64).round() as i64
    } else {
        0
    }
}

pub fn from_micro(micro: i64) -> f64 {
    micro as f64 / MICRO as f64
}

/// `exposures` exposures' worth of expected exposures, split by `allocation` into micro-units
/// that add up to exactly `exposures · MICRO`: the shares of `rules::expected_exposure_shares`
/// (the rule every backend keeps), rounded by largest remainder.
pub fn expected_shares(
    exposed: &str,
    allocation: &[(String, f64)],
    exposures: u64,
) -> Vec<(String, i64)> {
    let total_micro = i64::try_from(exposures)
        .unwrap_or(i64::MAX / MICRO)
        .saturating_mul(MICRO);
    let exact = rules::expected_exposure_shares(allocation, exposed, total_micro as f64);
    let mut shares: Vec<(String, i64, f64)> = exact
        .iter()
        .map(|(variant, share)| {
            let floor = share.floor();
            ((*variant).to_owned(), floor as i64, share - floor)
        })
        .collect();
    let mut left = total_micro - shares.iter().map(|(_, whole, _)| whole).sum::<i64>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].2.total_cmp(&shares[a].2));
    for &index in &order {
        if left <= 0 {
            break;
        }
        shares[index].1 += 1;
        left -= 1;
    }
    if left != 0 {
        // Float rounding left more (or less) than one micro-unit per arm: keep the sum exact on
        // the exposed arm.
        match shares.iter_mut().find(|(variant, _, _)| variant == exposed) {
            Some(share) => share.1 += left,
            None => shares.push((exposed.to_owned(), left, 0.0)),
        }
    }
    shares
        .into_iter()
        .filter(|(_, micro, _)| *micro != 0)
        .map(|(variant, micro, _)| (variant, micro))
        .collect()
}

#[cfg(test)]
/// The value part of a sticky member: `variant \t assigned_ms \t propensity \t reward_micro`
/// (reward empty while none was credited), then `\t rewarded_ms` once a reward arrived (a
/// field records written before it was kept lack).
pub fn encode_sticky(record: &crate::store::StickyRecord) -> String {
    let reward = record
        .reward
        .map_or_else(String::new, |reward| to_micro(reward).to_string());
    let mut value = format!(
        "{}\t{}\t{}\t{}",
        record.variant, record.assigned_ms, record.propensity, reward
    );
    if let Some(rewarded_ms) = record.rewarded_ms {
        value.push_str(&format!("\t{rewarded_ms}"));
    }
    value
}

pub fn decode_sticky(value: &str) -> Option<crate::store::StickyRecord> {
    let mut fields = value.split('\t');
    let variant = fields.next()?.to_owned();
    let assigned_ms = fields.next()?.parse().ok()?;
    let propensity = fields.next()?.parse().ok()?;
    let reward = match fields.next()? {
        "" => None,
        micro => Some(from_micro(micro.parse().ok()?)),
    };
    let rewarded_ms = match fields.next() {
        None => None,
        Some(ms) => Some(ms.parse().ok()?),
    };
    fields
        .next()
        .is_none()
        .then_some(crate::store::StickyRecord {
            variant,
            assigned_ms,
            propensity,
            reward,
            rewarded_ms,
        })
}

/// Splits a sorted-set member into its id and value.
pub fn split_member(member: &str) -> Option<(&str, &str)> {
    member.split_once(SEP)
}

/// A token mark's value: `variant \t issued_ms \t propensity \t reward_micro \t expiry_ms`,
/// then `\t credited_ms` (the reward's arrival; marks written before it was kept lack it).
pub fn decode_mark(assignment_id: &str, value: &str) -> Option<crate::store::TokenCredit> {
    let mut fields = value.split('\t');
    let variant = fields.next()?.to_owned();
    let issued_ms = fields.next()?.parse().ok()?;
    let propensity = fields.next()?.parse().ok()?;
    let reward = from_micro(fields.next()?.parse().ok()?);
    let retained_until_ms = fields.next()?.parse().ok()?;
    let credited_ms = match fields.next() {
        None => None,
        Some(ms) => Some(ms.parse().ok()?),
    };
    if fields.next().is_some() {
        return None;
    }
    Some(crate::store::TokenCredit {
        assignment_id: assignment_id.to_owned(),
        variant,
        reward,
        retained_until_ms,
        issued_ms,
        propensity,
        credited_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StickyRecord;

    #[test]
    fn expected_shares_add_up_to_exactly_one_exposure_each() {
        let third = 1.0 / 3.0;
        let allocation = [
            ("a".to_owned(), third),
            ("b".to_owned(), third),
            ("c".to_owned(), third),
        ];
        for n in [1, 2, 7, 1000] {
            let shares = expected_shares("a", &allocation, n);
            let sum: i64 = shares.iter().map(|(_, micro)| micro).sum();
            assert_eq!(sum, n as i64 * MICRO, "{shares:?}");
        }
        let odd = [
            ("a".to_owned(), 0.1),
            ("b".to_owned(), 0.2),
            ("c".to_owned(), f64::NAN),
        ];
        let shares = expected_shares("a", &odd, 3);
        assert_eq!(shares.iter().map(|(_, m)| m).sum::<i64>(), 3 * MICRO);
        assert!(shares.iter().all(|(variant, _)| variant != "c"));
        assert_eq!(
            expected_shares("b", &[("a".to_owned(), -1.0)], 2),
            vec![("b".to_owned(), 2 * MICRO)]
        );
    }

    #[test]
    fn a_sticky_record_round_trips_through_its_member_value() {
        let record = StickyRecord {
            variant: "bold".to_owned(),
            assigned_ms: 1_700_000_000_123,
            propensity: 0.1 + 0.2,
            reward: Some(0.3),
            rewarded_ms: None,
        };
        assert_eq!(decode_sticky(&encode_sticky(&record)), Some(record.clone()));
        let unrewarded = StickyRecord {
            reward: None,
            ..record
        };
        assert_eq!(
            decode_sticky(&encode_sticky(&unrewarded)),
            Some(unrewarded.clone())
        );
        assert_eq!(decode_sticky("bold\t1\tx\t"), None);
        let arrived = StickyRecord {
            reward: Some(1.0),
            rewarded_ms: Some(1_700_000_360_000),
            ..unrewarded.clone()
        };
        assert_eq!(decode_sticky(&encode_sticky(&arrived)), Some(arrived));
        // Written before the arrival time was kept: four fields, no arrival.
        let earlier = decode_sticky("bold\t1\t0.5\t1000000").unwrap();
        assert_eq!((earlier.reward, earlier.rewarded_ms), (Some(1.0), None));
        assert_eq!(decode_sticky("bold\t1\t0.5\t1000000\t7\t8"), None);
        let mark = decode_mark("t1", "bold\t1\t0.5\t250000\t99\t42").unwrap();
        assert_eq!((mark.reward, mark.credited_ms), (0.25, Some(42)));
        assert_eq!(
            decode_mark("t1", "bold\t1\t0.5\t250000\t99")
                .unwrap()
                .credited_ms,
            None
        );
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("user-1"), shard_of("user-1"));
        let used: std::collections::HashSet<u32> =
            (0..200).map(|i| shard_of(&format!("user-{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
