//! Op `B` of a call (`judge_packed` in `apply_rewards.lua`): rewards judged with their event
//! ids in one string, on a single primary. What each reward's bytes leave out is what Redis's
//! Lua made into a string (interned) or a number apiece, at ~400 machine instructions a string
//! (`benches/load/results/rlua15-2026-12-01-s15.md`): a run's rewards share their arrival
//! time, window and half-life (sent once per run); an id's digest and text go with its shard's
//! op `Q`, which the script unpacks anyway, and a reward names its place there; a unit goes
//! with its shard's op `P` and a reward names its place there; an amount and a timestamp are
//! doubles. Redis answers with one string (`direct::Reply`).
//!
//! The wire format is this build's alone, with no shim for another's: the library's name
//! carries the hash of its text (`src/store/redis/scripts.rs`), so each replica calls its own
//! library, which reads what that replica sends.

use super::judged::{Known, written};
use super::{Call, MAX_MS, Packed, Reward, index_number};
#[cfg(test)]
use crate::store::StickyRecord;
use crate::store::redis::layout;
use crate::store::{RewardOp, RewardTarget, TOKEN_MARK_SLACK_MS};

/// An event-id shard's directory named by a call (op `Q`): its KEYS index (its list index,
/// legacy due index, digest set and digest lists' index follow; a number, as op `B` packs it
/// and as the call's arguments spell it), how long Redis keeps its
/// digest set at least, and the call's ids in it, in op `B`'s order: their digests (8 bytes
/// each, little-endian), which the script looks up before it reads the rewards, and their
/// texts (`I4c0`), which it reads only while the directory of whole ids exists.
pub(super) struct Directory {
    experiment: String,
    shard: u32,
    pub(super) index: u32,
    pub(super) keep: u64,
    pub(super) digests: Vec<u8>,
    pub(super) ids: Vec<u8>,
    /// How many ids: a reward names its id by its place (1-based).
    count: u32,
}

/// A digest list named by a call (op `L`): its KEYS index (a number, as for a directory), its
/// directory's, its end and how long Redis keeps it at least (ms).
pub(super) struct IdList {
    /// Its directory's place in `Call::directories` (with `end`, what names the list).
    pub(super) directory: usize,
    pub(super) index: u32,
    pub(super) end: u64,
    pub(super) keep: u64,
}

/// What the rewards of op `B`'s current run share (sent in its header), and where its count
/// is in the packed string.
pub(super) struct Run {
    kind: u8,
    count_at: usize,
    now: u64,
    window: u64,
    half_life: Option<u64>,
}

impl Call {
    /// `Call::judged_reward` without the judging (tests of the packing): `expected`, the
    /// cached record, goes as kind `U`.
    #[cfg(test)]
    pub fn direct_reward(&mut self, op: &RewardOp, digest: u64, expected: Option<&StickyRecord>) {
        let known = expected.map_or(Known::Nothing, Known::Cached);
        self.judged_reward(op, digest, &known, false);
    }

    /// A reward judged with its event id in this call (op `B`): only on a single primary, where
    /// the id's directory (another slot than the reward's records) may be named in the call.
    /// `digest`: the id's keyed digest (`event_digest`), what the call keeps of an applied id
    /// (`layout::event_digest_key`). `expected`: the unit's record as this replica's cache
    /// holds it, sent so that the script compares one string instead of splitting the record
    /// (`judge_known` in `apply_rewards.lua`; any other stored record is judged as before).
    /// The digest and the id are listed with their directory (op `Q`, one `SMISMEMBER` per
    /// 512 digests) and a unit reward's unit with its shard's records (op `P`, one `HMGET`
    /// per shard), so the script reads the rewards in one pass and the reward names their
    /// places in those lists.
    ///
    /// `known`: what the replica knows of a unit reward's record (its cache's, or one read
    /// just before the call), judged here first when `judge` is on: a reward the rules apply
    /// goes as kind `V` with the record it expects, its credit in its group of op `G`
    /// (`call_judged`); any other as kind `U` (cached unrewarded record), `u` or a token's.
    pub fn judged_reward(&mut self, op: &RewardOp, digest: u64, known: &Known<'_>, judge: bool) {
        let prediction = if judge {
            self.judged.judge(op, digest, known)
        } else {
            None
        };
        self.judged.note(prediction.as_ref(), op.occurred_ms);
        let expected = match *known {
            Known::Cached(record) => Some(record),
            Known::Nothing | Known::Fetched(_) => None,
        };
        let experiment = &op.epoch.experiment;
        let home = layout::shard_of(&op.event_id);
        let now = op.now_ms.min(MAX_MS);
        let window = op.window_ms.min(MAX_MS);
        let (end, keep) = retention(op);
        let at = match self
            .directories
            .iter()
            .position(|d| d.experiment == *experiment && d.shard == home)
        {
            Some(at) => at,
            None => {
                let index = index_number(&self.key(layout::event_dir_key(experiment, home)));
                self.key(layout::event_index_key(experiment, home));
                self.key(layout::event_due_key(experiment, home));
                self.key(layout::event_digest_key(experiment, home));
                self.key(layout::event_digest_index_key(experiment, home));
                self.directories.push(Directory {
                    experiment: experiment.clone(),
                    shard: home,
                    index,
                    keep: 0,
                    digests: Vec::new(),
                    ids: Vec::new(),
                    count: 0,
                });
                self.directories.len() - 1
            }
        };
        let directory = &mut self.directories[at];
        directory.keep = directory.keep.max(keep);
        directory.digests.extend(digest.to_le_bytes());
        let mut ids = Packed(std::mem::take(&mut directory.ids));
        ids.text(&op.event_id);
        directory.ids = ids.0;
        directory.count += 1;
        let (dir, place) = (directory.index, directory.count);
        // A list is one (directory, end): found by those, its key spelled only when it is new.
        let list = match self
            .id_lists
            .iter_mut()
            .find(|l| l.directory == at && l.end == end)
        {
            Some(list) => {
                list.keep = list.keep.max(keep);
                list.index
            }
            None => {
                let key = layout::event_digest_list_key(experiment, home, end);
                let index = index_number(&self.key(key));
                self.id_lists.push(IdList {
                    directory: at,
                    index,
                    end,
                    keep,
                });
                index
            }
        };
        let (kind, shard) = Reward::kind_and_shard(&op.target);
        let first_at = self.shard_at(shard);
        let confirms =
            (kind == 'K').then(|| index_number(&self.key(layout::confirms_key(&op.epoch, shard))));
        // The record as `sticky` writes it before any reward: only such a record can be
        // credited, so only it is worth comparing. A unit reward without one is kind `u`,
        // without the three fields that carry it.
        let expected = expected.filter(|r| r.reward.is_none() && r.rewarded_ms.is_none());
        let kind = match kind {
            'U' if prediction.is_some() => b'V',
            'U' if expected.is_none() => b'u',
            'U' => b'U',
            'K' => b'K',
            _ => b'T',
        };
        self.start_reward(kind, now, window, op.half_life_ms);
        let mut packed = Packed(std::mem::take(&mut self.packed));
        packed.number_index(dir);
        packed.number_index(place);
        packed.number_index(self.shards[first_at].2);
        let micro = micro_units(op.reward);
        match &op.target {
            RewardTarget::Unit(unit) => {
                let first = &self.shards[first_at].1;
                let listed = match self.prefetch.iter().position(|(known, _)| known == first) {
                    Some(listed) => listed,
                    None => {
                        self.prefetch.push((first.clone(), Vec::new()));
                        self.prefetch.len() - 1
                    }
                };
                let units = &mut self.prefetch[listed].1;
                units.push(unit.clone());
                packed.number_index(u32::try_from(units.len()).unwrap_or(u32::MAX));
                packed.number_index(list);
                packed.float(micro);
                if let Some(prediction) = &prediction {
                    packed.text(&prediction.expected);
                } else {
                    packed.occurred(op.occurred_ms);
                    if let Some(record) = expected {
                        packed.text(&written(record));
                        packed.text(&record.variant);
                        packed.millis(record.assigned_ms);
                    }
                }
            }
            RewardTarget::Token {
                assignment_id,
                variant,
                issued_ms,
                propensity,
                ..
            } => {
                packed.number_index(list);
                packed.number_index(confirms.unwrap_or(0));
                packed.text(assignment_id);
                packed.text(variant);
                packed.millis(*issued_ms);
                packed.text(&propensity.to_string());
                packed.float(micro);
                packed.occurred(op.occurred_ms);
            }
        }
        self.packed = packed.0;
    }

    /// Counts a reward into op `B`'s current run if it shares the run's kind, arrival time,
    /// window and half-life, or starts a run: the script unpacks what a run shares once (a
    /// bulk request is one run), not with each reward.
    fn start_reward(&mut self, kind: u8, now: u64, window: u64, half_life: Option<u64>) {
        if let Some(run) = &self.run
            && (run.kind, run.now, run.window, run.half_life) == (kind, now, window, half_life)
        {
            let at = run.count_at;
            let count: [u8; 4] = self.packed[at..at + 4].try_into().unwrap_or_default();
            let count = u32::from_le_bytes(count).saturating_add(1);
            self.packed[at..at + 4].copy_from_slice(&count.to_le_bytes());
            return;
        }
        let mut packed = Packed(std::mem::take(&mut self.packed));
        packed.0.push(kind);
        let count_at = packed.0.len();
        packed.0.extend(1u32.to_le_bytes());
        packed.millis(now);
        packed.millis(window);
        packed.text(&super::half_life(half_life));
        self.packed = packed.0;
        self.run = Some(Run {
            kind,
            count_at,
            now,
            window,
            half_life,
        });
    }

    /// The count of the run of op `B` whose header starts at `at`, and its kind (tests).
    #[cfg(test)]
    pub fn run_at(&self, at: usize) -> (u8, u32) {
        let count = self.packed[at + 1..at + 5].try_into().unwrap_or_default();
        (self.packed[at], u32::from_le_bytes(count))
    }

    /// Where op `B`'s current run starts (tests).
    #[cfg(test)]
    pub fn run_start(&self) -> Option<usize> {
        self.run.as_ref().map(|run| run.count_at - 1)
    }

    /// Each directory's KEYS index, digests and ids as op `Q` sends them (tests).
    #[cfg(test)]
    pub fn directories_packed(&self) -> impl Iterator<Item = (u32, &[u8], &[u8])> {
        self.directories
            .iter()
            .map(|d| (d.index, d.digests.as_slice(), d.ids.as_slice()))
    }

    /// Each shard's first KEYS index and units as op `P` sends them (tests).
    #[cfg(test)]
    pub fn prefetched(&self) -> impl Iterator<Item = (u32, &[String])> {
        self.prefetch
            .iter()
            .map(|(first, units)| (index_number(first), units.as_slice()))
    }
}

/// The end of the digest list that keeps `op`'s id once applied, and how long Redis keeps that
/// list and the id's digest set at least (ms): a day (the tokens' slack) past the list's end
/// by Redis's own clock, a backstop, since the sweep forgets them on time. Op `Q` and op `L`
/// send these; the transaction (`tx`) writes the same expiries.
pub fn retention(op: &RewardOp) -> (u64, u64) {
    let now = op.now_ms.min(MAX_MS);
    let window = op.window_ms.min(MAX_MS);
    let end = layout::event_list_end(now.saturating_add(window).min(MAX_MS));
    let keep = end
        .saturating_sub(now)
        .saturating_add(TOKEN_MARK_SLACK_MS)
        .min(MAX_MS);
    (end, keep)
}

impl Packed {
    /// When an event occurred, as its sender said (ms), or -1: it did not say.
    fn occurred(&mut self, occurred_ms: Option<u64>) {
        match occurred_ms {
            Some(ms) => self.millis(ms),
            None => self.float(-1.0),
        }
    }
}

/// A reward's amount in whole micro-units (`layout::to_micro`), as op `B` packs it: a double
/// holds it exactly (|amount| ≤ 10^6).
#[allow(clippy::cast_precision_loss)]
fn micro_units(reward: f64) -> f64 {
    layout::to_micro(reward) as f64
}
