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
//! | `<tag>:r` | hash | one field per sticky unit: unit → record ([`encode_sticky`]), so a lookup is one `HGET` and a rewrite one `HSET` (a batch's: one `HMGET` and one `HSET` per shard) |
//! | `<tag>:n` | sorted set, all scores 0 | the unit index: one member per sticky unit, its name (lexicographic, so a page of an export is a `ZRANGEBYLEX` and an `HMGET`); filled from `<tag>:p` by the reader of a page (`index.lua`), and directly by versions before it |
//! | `<tag>:p` | list | new units not yet in the unit index: `apply.lua` appends a new unit's name here (an `RPUSH` costs Redis a fraction of a sorted-set insert per unit), and every page of an export first moves the list into the index (`sticky_read::index_pending`) |
//! | `<tag>:u` | sorted set, all scores 0 | sticky records of the earlier layout, `unit \0 record`: still read; `apply.lua` moves a record to `<tag>:r` and `<tag>:n` when it rewrites it |
//! | `<tag>:a` | hash | the shard's share of every arm's counters: `n|v`, `r|v`, `e|v`, ... (see `read::ShardArm`), and `s`, the time of the shard's first counted write (on a single primary, a call of several shards counts in its first: only the sums over the shards mean anything), and `xt`, the shard's token watermark |
//! | `<tag>:t` | sorted set, all scores 0 | one member per credited token: `assignment id \0 mark` |
//! | `<tag>:x` | sorted set | token assignment id → when its mark is removed |
//! | `<tag>:k` | sorted set, all scores 0 | one member per confirmed per-request token (`exposure: on_render`): `assignment id \0 variant \t issued_ms \t propensity \t retained_until_ms \t confirmed_ms` |
//! | `<tag>:kx` | sorted set | confirmed assignment id → when its confirmation mark is removed |
//! | `<tag>:d` | hash | the shard's share of every arm's delay histograms (`store::delay_histograms`): `c|<cohort bin>|v` exposures, `d|<delay bin>|v` reward micro-units |
//! | `<tag>:o:<hour>` | hash, PX | the outcomes of the rewards claimed in one hour: claim → outcome (see below, and [`claim_outcome`]) |
//! | `<tag>:c:<claim>` | string, PX | the outcome of one reward claimed by an earlier version |
//!
//! Epoch facts (start, decision), history and the epoch's spec live in shard 0's slot
//! (`<tag0>:i`, `<tag0>:h`, `<tag0>:s`),
//! written by single-key calls of their own: the start is the earliest of the shards' `s`
//! fields, fixed there once (`read::fix_start`), the decision is first-write-wins.
//!
//! Event ids are per experiment (not per epoch: an id is applied at most once whatever the
//! revision), in the slot `{bd:<experiment>:e<k>}` with `k` the id's shard, as fields of the
//! shard's directory hash ([`event_dir_key`]), so they live in other slots than the records a
//! reward changes. A reward is therefore applied in two steps
//! (`rewards`): the id is **claimed** in its slot (`claim.lua`: its field then holds `P<claim>`
//! and the whole reward, so anyone can finish it), the reward is **applied** in its unit's or
//! token's shard under that claim (`apply.lua`, which keeps the outcome under the claim,
//! [`claim_outcome`], so applying one claim twice changes nothing), and the claim is
//! **settled** (`settle.lua`: `A` for applied, removed when refused). Whoever meets a pending
//! claim finishes it first, so a claim whose replica died is never lost nor applied twice.
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
    (fnv1a(id) % u64::from(SHARDS)) as u32
}

/// FNV-1a (64 bits) of `id`: `shard_of`'s hash, and a call's quick set of the units it names
/// (`src/store/redis/call_judged.rs`).
pub fn fnv1a(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash tag of one shard of an epoch.
pub fn tag(epoch: &Epoch, shard: u32) -> String {
    format!("{{bd:{}:{}:{}}}", epoch.experiment, epoch.revision, shard)
}

/// The keys one shard's script touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardKeys {
    /// Sticky records of the earlier layout (read, and moved to `records` when rewritten).
    pub sticky: String,
    pub records: String,
    pub units: String,
    /// New units not yet in `units` (the commit script appends, a page of an export drains).
    pub pending: String,
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
            records: format!("{tag}:r"),
            units: format!("{tag}:n"),
            pending: format!("{tag}:p"),
            arms: format!("{tag}:a"),
            marks: format!("{tag}:t"),
            marks_due: format!("{tag}:x"),
            delays: format!("{tag}:d"),
        }
    }
}

/// The confirmation marks of one shard (per-request `exposure: on_render` tokens).
pub fn confirms_key(epoch: &Epoch, shard: u32) -> String {
    format!("{}:k", tag(epoch, shard))
}

/// When each confirmation mark of one shard is removed.
pub fn confirms_due_key(epoch: &Epoch, shard: u32) -> String {
    format!("{}:kx", tag(epoch, shard))
}

/// A confirmation mark's value (see the table above).
pub fn decode_confirmation(
    assignment_id: &str,
    value: &str,
) -> Option<crate::store::TokenConfirmation> {
    let mut fields = value.split('\t');
    let confirmation = crate::store::TokenConfirmation {
        assignment_id: assignment_id.to_owned(),
        variant: fields.next()?.to_owned(),
        issued_ms: fields.next()?.parse().ok()?,
        propensity: fields.next()?.parse().ok()?,
        retained_until_ms: fields.next()?.parse().ok()?,
        confirmed_ms: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(confirmation)
}

/// Claim ids name the hour they were made in ([`CLAIM_HOUR_MS`]): `o<hour>:<replica>:<n>`.
pub const CLAIM_HOUR_MS: u64 = 60 * 60 * 1000;

/// Where one claimed reward's outcome is kept, in the shard the reward changes: the field
/// `<replica>:<n>` of the shard's outcome hash of the claim's hour (`<tag>:o:<hour>`, expiring
/// as a whole, the reward window plus a day after its last write), so an outcome costs a hash
/// field rather than a key with an expiry. A claim named by an earlier version (no `o` prefix)
/// has its outcome in a key of its own, `<tag>:c:<claim>`, and an empty field.
pub fn claim_outcome(epoch: &Epoch, shard: u32, claim: &str) -> (String, String) {
    let tag = tag(epoch, shard);
    match claim
        .strip_prefix('o')
        .and_then(|rest| rest.split_once(':'))
    {
        Some((hour, field)) if !hour.is_empty() && hour.bytes().all(|b| b.is_ascii_digit()) => {
            (format!("{tag}:o:{hour}"), field.to_owned())
        }
        _ => (format!("{tag}:c:{claim}"), String::new()),
    }
}

/// The epoch's facts (start, decision), in shard 0's slot.
pub fn info_key(epoch: &Epoch) -> String {
    format!("{}:i", tag(epoch, 0))
}

/// Shard 0's copy of the spec the epoch is served under (JSON of `records::EpochSpec`).
pub fn spec_key(epoch: &Epoch) -> String {
    format!("{}:s", tag(epoch, 0))
}

/// The epoch's guardrail halts, one field per metric and arm (`store::halt_name`), in shard
/// 0's slot; each field is written once (first wins).
pub fn halts_key(epoch: &Epoch) -> String {
    format!("{}:g", tag(epoch, 0))
}

pub fn history_key(epoch: &Epoch) -> String {
    format!("{}:h", tag(epoch, 0))
}

/// Where stores written before the directory (below) kept `event_id`: one key per id, with a
/// PX expiry, listed in [`event_due_key`]. Still read (and settled, and swept) until the last
/// of them expires, so a store upgraded in place keeps recognising its ids.
pub fn event_key(experiment: &str, event_id: &str) -> String {
    format!("{{bd:{experiment}:e{}}}:i:{event_id}", shard_of(event_id))
}

/// The legacy index of one event-id shard: legacy event key → when the engine's clock may
/// forget it. Nothing new is written to it.
pub fn event_due_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:due")
}

/// **Event ids** are fields of one directory hash per event-id shard: field = the id, value
/// `P<claim>\t<reward>` while claimed, `A<retention end ms>` once applied (a refused claim
/// removes its field), so a lookup is one `HGET`. For the sweep, every claimed id is also
/// appended to the list of its hour of retention ends ([`event_list_key`]: the ids whose
/// retention, arrival + reward window by the engine's clock, ends in that hour), and the
/// shard's list index ([`event_index_key`], a sorted set: list key → the hour's end) says
/// which lists are due. The sweep removes a due list's ids from the directory (unless the
/// directory holds a later claim of the id, which is retained longer) and drops the list. Next
/// to a key with an expiry plus an index entry per id, an id costs a hash field and a list
/// entry: less than half the memory, and no write command of its own but its claim and its
/// settle. An id is removed up to an hour ([`EVENT_LIST_MS`]) past its retention, within what
/// the store contract allows (`store::MAX_RETENTION_LAG_MS`). Redis's own expiry on the
/// directory and the lists, a day past the retention, is a backstop should no sweep run.
pub fn event_dir_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:d")
}

/// The due lists of one event-id shard: list key → its hour's end (ms).
pub fn event_index_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:w")
}

/// The ids of one event-id shard whose retention ends in the hour ending at `end_ms`.
pub fn event_list_key(experiment: &str, shard: u32, end_ms: u64) -> String {
    format!("{{bd:{experiment}:e{shard}}}:l:{end_ms}")
}

/// Width of the event-id lists' hours.
pub const EVENT_LIST_MS: u64 = 60 * 60 * 1000;

// Ids are removed at most one list late: within what the store contract allows.
const _: () = assert!(EVENT_LIST_MS <= crate::store::MAX_RETENTION_LAG_MS);

/// The end of the list of an id retained until `retain_ms`: the hour's end at or after it.
pub fn event_list_end(retain_ms: u64) -> u64 {
    retain_ms
        .div_ceil(EVENT_LIST_MS)
        .saturating_mul(EVENT_LIST_MS)
}

/// **Event ids applied on a single primary** (one call judges the reward with its id,
/// `direct`) are kept as 8-byte digests, members of one set per event-id shard: the id's
/// SipHash-1-3 keyed with the deployment's digest key ([`EVENT_DIGEST_SECRET`], made once and
/// kept in Redis like the token secret) over the experiment and the id, exactly as the sled
/// store keys its ids (`store::event_ids`). A client that does not know the key cannot choose
/// colliding ids. Two different ids of one experiment share a digest with probability 2^-64,
/// so with `n` ids kept in a shard's set a new id is taken for a duplicate (answered
/// `Duplicate`, never applied twice) with probability at most n / 2^64: 5.4e-12 per event at
/// 100 million kept ids (12.5 million per shard: 6.8e-13). Retention is kept per generation,
/// not per id: the digests whose retention ends in one hour are appended, 8 bytes each, to
/// that hour's digest list ([`event_digest_list_key`], a string), and the sweep drops a due
/// list with its digests (`SREM`) and its entry in the shard's list index
/// ([`event_digest_index_key`]). An id costs one set member and 8 list bytes, against a hash
/// field of the whole id with its retention end and a list entry of the whole id in the
/// directory ([`event_dir_key`]), which the three-step protocol (Cluster, and a single
/// primary finishing a claim it meets) keeps using and which a single primary still reads
/// while it exists: ids applied before the digests are duplicates until they are forgotten.
pub fn event_digest_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:h")
}

/// The digest lists of one event-id shard: list key → its hour's end (ms).
pub fn event_digest_index_key(experiment: &str, shard: u32) -> String {
    format!("{{bd:{experiment}:e{shard}}}:hw")
}

/// The digests of one event-id shard whose retention ends in the hour ending at `end_ms`.
pub fn event_digest_list_key(experiment: &str, shard: u32, end_ms: u64) -> String {
    format!("{{bd:{experiment}:e{shard}}}:hl:{end_ms}")
}

/// The name ([`secret_key`]) of the deployment's event-id digest key.
pub const EVENT_DIGEST_SECRET: &str = "event-digest";

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
    fn a_claims_outcome_sits_in_its_hours_hash_and_an_earlier_claims_in_its_own_key() {
        let epoch = Epoch {
            experiment: "e".to_owned(),
            revision: 2,
        };
        assert_eq!(
            claim_outcome(&epoch, 3, "o492011:0a1b:17"),
            ("{bd:e:2:3}:o:492011".to_owned(), "0a1b:17".to_owned())
        );
        for earlier in ["0a1b2c3d4e5f6a7b:17", "dead:1", "o:1", "oxx:1", "o12"] {
            assert_eq!(
                claim_outcome(&epoch, 3, earlier),
                (format!("{{bd:e:2:3}}:c:{earlier}"), String::new())
            );
        }
    }

    #[test]
    fn an_id_joins_the_list_of_the_hour_its_retention_ends_in() {
        assert_eq!(event_list_end(0), 0);
        assert_eq!(event_list_end(1), EVENT_LIST_MS);
        assert_eq!(event_list_end(EVENT_LIST_MS), EVENT_LIST_MS);
        assert_eq!(event_list_end(EVENT_LIST_MS + 1), 2 * EVENT_LIST_MS);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("user-1"), shard_of("user-1"));
        let used: std::collections::HashSet<u32> =
            (0..200).map(|i| shard_of(&format!("user-{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
