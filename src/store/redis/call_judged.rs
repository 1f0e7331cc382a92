//! Unit rewards judged by banditd before the call (op `B`'s kind `V`, op `G`): the script's
//! judging and counting of a reward (`judge_unit`, `credit` in `apply_rewards.lua`) cost
//! Redis about a quarter of a bulk event's instructions, and that is Redis's one thread, the
//! bound of bulk ingest on Redis (`benches/load/results/rjudge17-2026-12-01-s17.md`). So a
//! replica judges a unit reward against the record it read (its cache's, or one read just
//! before the call, `judged::fetch`) **with the rules every backend keeps** (`rules`), and the
//! script only verifies what the judgment assumed: the stored record is exactly the one read
//! and the id unseen, both inside the atomic call. When they hold, the judgment is what the
//! script would have decided (the rules are pure functions of the record and the request);
//! when they do not, the script takes the reward's predicted credit back out of its group and
//! judges it as kind `u`. So a stale read costs work, never correctness.
//!
//! Only a call's first reward of a unit and of an event id is judged here (`Judged::first`):
//! a second one depends on what the first did inside the call, which the script sees.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::MAX_MS;
use crate::store::delay_histograms::conversion_delay_bin;
use crate::store::redis::layout;
use crate::store::rules;
use crate::store::{RewardOp, RewardTarget, StickyRecord, decay};

/// What a replica knows of a unit reward's record before the call.
pub enum Known<'a> {
    Nothing,
    /// Its cache's record (the replica wrote or read it).
    Cached(&'a StickyRecord),
    /// The stored text, read just before the call (`judged::fetch`); None: no record.
    Fetched(Option<&'a str>),
}

/// The predicted credits of one call's kind `V` rewards (op `G`), what the script needs to
/// take one back (the side string), and which rewards of the call are predicted.
#[derive(Default)]
pub(super) struct Judged {
    groups: Vec<Group>,
    /// Per kind `V` reward, in op `B`'s order: its group (1-based), decayed amount and
    /// timestamp (-1: none), `<I4dd`.
    side: Vec<u8>,
    /// Per reward of op `B`, in order: its group (1-based) if it went as kind `V`, else 0.
    predicted: Vec<u32>,
    /// The event ids and units (FNV-1a of the name: a collision only sends a reward the slow
    /// way) named by the call's rewards so far.
    digests: HashSet<u64, Unhashed>,
    units: HashSet<u64, Unhashed>,
}

/// The sets' keys are hashes already (a keyed digest, FNV-1a): used as they are, where
/// SipHash cost ~700 instructions per reward (`benches/load/bulk_cost.sh`).
pub type Unhashed = BuildHasherDefault<AsIs>;

#[derive(Default)]
pub struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The credits of a call's kind `V` rewards that share a variant, delay bin, arrival and
/// half-life: what the script adds once for all of them (`credit_groups`).
struct Group {
    variant: String,
    bin: u32,
    now: u64,
    half_life: Option<u64>,
    micro: i64,
    /// Σ of each reward's decayed amount (`decay::reward_weight`), in the call's order.
    decayed: f64,
    count: u32,
}

/// A reward judged applied: the record the script must find, and its group.
pub(super) struct Prediction<'a> {
    pub(super) expected: Cow<'a, str>,
    group: u32,
    decayed: f64,
}

impl Judged {
    /// Room for `rewards` rewards in the sets of ids and units: grown from empty, their
    /// rehashing cost about as much as the inserts (`benches/load/bulk_cost.sh`).
    pub(super) fn reserve(&mut self, rewards: usize) {
        self.digests.reserve(rewards);
        self.units.reserve(rewards);
    }

    /// Whether this is the call's first reward of its event id and of its unit (a token
    /// reward names no unit); both are noted for the rewards after it.
    fn first(&mut self, digest: u64, unit: Option<&str>) -> bool {
        let new_id = self.digests.insert(digest);
        let new_unit = unit.is_none_or(|unit| self.units.insert(layout::fnv1a(unit)));
        new_id && new_unit
    }

    /// Judges a reward with the rules (`rules::judge_unit_record`, the unit part of
    /// `rules::judge_reward`) against what the replica knows of its record; Some when it would
    /// be applied and can go as kind `V`. Every reward of the call passes here, in order (the
    /// call's first of each id and unit is judged). A fetched record is read in place: its
    /// variant and time are slices of it, nothing is allocated per reward.
    pub(super) fn judge<'a>(
        &mut self,
        op: &RewardOp,
        digest: u64,
        known: &Known<'a>,
    ) -> Option<Prediction<'a>> {
        let unit = match &op.target {
            RewardTarget::Unit(unit) => Some(unit.as_str()),
            RewardTarget::Token { .. } => None,
        };
        if !self.first(digest, unit) {
            return None;
        }
        // Only an unrewarded record `v \t assigned \t propensity \t` can be credited, and only
        // such a text is what the script appends the reward to.
        let (variant, assigned_ms, expected) = match *known {
            Known::Nothing | Known::Fetched(None) => return None,
            Known::Cached(record) => {
                if record.reward.is_some() || record.rewarded_ms.is_some() {
                    return None;
                }
                let text = Cow::Owned(written(record));
                (record.variant.as_str(), record.assigned_ms, text)
            }
            Known::Fetched(Some(text)) => {
                let (variant, assigned) = unrewarded(text)?;
                (variant, assigned.parse().ok()?, Cow::Borrowed(text))
            }
        };
        // Times past what a double holds are the script's to clamp (`MAX_MS`).
        let in_range = [
            op.now_ms,
            op.window_ms,
            assigned_ms,
            op.occurred_ms.unwrap_or(0),
        ]
        .iter()
        .all(|&ms| ms < MAX_MS);
        if !in_range || rules::judge_unit_record(op, assigned_ms, false).is_err() {
            return None;
        }
        let micro = layout::to_micro(op.reward);
        let decayed = decay::reward_weight(
            layout::from_micro(micro),
            assigned_ms,
            op.now_ms,
            op.half_life_ms,
        );
        let bin = conversion_delay_bin(assigned_ms, op.now_ms);
        let at = self.groups.iter().rposition(|g| {
            (g.bin, g.now, g.half_life) == (bin, op.now_ms, op.half_life_ms) && g.variant == variant
        });
        let at = at.unwrap_or_else(|| {
            self.groups.push(Group {
                variant: variant.to_owned(),
                bin,
                now: op.now_ms,
                half_life: op.half_life_ms,
                micro: 0,
                decayed: 0.0,
                count: 0,
            });
            self.groups.len() - 1
        });
        let group = &mut self.groups[at];
        group.micro += micro;
        group.decayed += decayed;
        group.count += 1;
        Some(Prediction {
            expected,
            group: u32::try_from(at + 1).unwrap_or(u32::MAX),
            decayed,
        })
    }

    /// Notes the call's next reward of op `B`: predicted (kind `V`, with its side entry) or
    /// not.
    pub(super) fn note(&mut self, prediction: Option<&Prediction<'_>>, occurred_ms: Option<u64>) {
        let Some(prediction) = prediction else {
            self.predicted.push(0);
            return;
        };
        self.predicted.push(prediction.group);
        self.side.extend(prediction.group.to_le_bytes());
        self.side.extend(prediction.decayed.to_le_bytes());
        #[allow(clippy::cast_precision_loss)]
        let occurred = occurred_ms.map_or(-1.0, |ms| ms as f64);
        self.side.extend(occurred.to_le_bytes());
    }

    /// The variant a reward answered `V` was predicted to credit.
    pub(super) fn variant(&self, at: usize) -> Option<&str> {
        let group = *self.predicted.get(at)?;
        let group = usize::try_from(group).ok()?.checked_sub(1)?;
        self.groups.get(group).map(|g| g.variant.as_str())
    }

    /// Op `G`'s two strings (`declare_groups` in `apply_rewards.lua`), if any reward went as
    /// kind `V`: the groups (`<I4` count, then per group `<I4c0I4dI4c0ddI4`: variant, bin,
    /// arrival, half-life, micro-units, decayed sum, count) and the side string.
    pub(super) fn op_g(&self) -> Option<(Vec<u8>, &[u8])> {
        if self.groups.is_empty() {
            return None;
        }
        let mut packed = super::Packed::default();
        packed.number_index(u32::try_from(self.groups.len()).unwrap_or(u32::MAX));
        for g in &self.groups {
            packed.text(&g.variant);
            packed.number_index(g.bin);
            packed.millis(g.now);
            packed.text(&super::half_life(g.half_life));
            #[allow(clippy::cast_precision_loss)]
            packed.float(g.micro as f64);
            packed.float(g.decayed);
            packed.number_index(g.count);
        }
        Some((packed.0, self.side.as_slice()))
    }
}

/// A cached record as the sticky op wrote it (`Call::sticky`'s text; an unrewarded one is
/// what a reward is appended to).
pub(super) fn written(record: &StickyRecord) -> String {
    format!(
        "{}\t{}\t{}\t",
        record.variant,
        record.assigned_ms.min(MAX_MS),
        record.propensity
    )
}

/// An unrewarded record's variant and assignment time as written: exactly three tabs, the
/// last ending it (what `judge_unit` in `apply_rewards.lua` matches as a record it can credit
/// whole); None for any other text.
pub fn unrewarded(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_suffix('\t')?;
    let mut fields = body.split('\t');
    let (variant, assigned, _propensity) = (fields.next()?, fields.next()?, fields.next()?);
    fields.next().is_none().then_some((variant, assigned))
}
