//! One `apply.lua` call (one shard of one epoch) and the encodings of its ops: the commit task
//! fills calls with sticky writes and exposure flushes (`commit`), the reward steps with
//! claimed rewards (`rewards`).

use std::collections::HashMap;

use super::Shared;
use super::layout::{self, ShardKeys};
use direct_pack::{Directory, IdList, Run};

/// Op `B`: rewards judged with their event ids, packed (`Call::direct_reward`).
#[path = "call_direct.rs"]
mod direct_pack;
/// Op `G` and op `B`'s kind `V`: unit rewards judged by banditd (`Call::judged_reward`).
#[path = "call_judged.rs"]
mod judged;
/// A claimed reward as the apply step takes it and a pending claim spells it.
#[path = "call_reward.rs"]
mod reward;
use crate::store::{
    ConfirmOp, Epoch, MAX_CLOCK_SKEW_MS, StickyRecord, TOKEN_MARK_SLACK_MS, Tally, rules,
};
pub use direct_pack::retention;
pub use judged::{Known, Unhashed, unrewarded};
pub use reward::Reward;

/// Windows and retention beyond this are clamped: Lua numbers are doubles.
pub const MAX_MS: u64 = 1 << 52;

/// The keys every call names before its extra keys.
const FIXED_KEYS: usize = 7;

/// The arguments every call starts with, before its ops (the clock skew and the mark slack).
const FIXED_ARGS: usize = 2;

/// The script calls of one group commit, and which call each (epoch, shard) goes to: under
/// Cluster one call per (epoch, shard), every key of a call in one slot; on a single primary
/// one call per epoch, its ops switched between shards by `Call::at_shard`.
pub struct Calls {
    pub calls: Vec<Call>,
    index: HashMap<(Epoch, u32), usize>,
    sharded: bool,
}

impl Calls {
    pub fn new(shared: &Shared) -> Self {
        Self {
            calls: Vec::new(),
            index: HashMap::new(),
            sharded: shared.link.is_cluster(),
        }
    }

    /// The index of the call that carries `shard` of `epoch`, set to send the ops added next to
    /// that shard.
    pub fn at(&mut self, epoch: &Epoch, shard: u32) -> usize {
        let slot = if self.sharded { shard } else { u32::MAX };
        let calls = &mut self.calls;
        let at = *self.index.entry((epoch.clone(), slot)).or_insert_with(|| {
            calls.push(Call::new(epoch, shard));
            calls.len() - 1
        });
        calls[at].at_shard(shard);
        at
    }
}

/// One script call: one shard of one epoch, so one slot; or, on a single primary (which takes
/// a call over several slots), every shard of the epoch that one group commit writes, so a
/// commit of a few new units is one script call and one pass of Redis's write path, not one
/// per shard (it was eight calls for a dozen units, each with its counter reads and writes).
/// Such a call keeps its counters in its first shard (readers and the audit sum the shards).
pub struct Call {
    epoch: Epoch,
    keys: ShardKeys,
    /// The shard the ops added now go to, and the KEYS index of the first of each further
    /// shard's keys (op `S`: legacy sticky, arms, marks, marks' due, records, unit index).
    shard: u32,
    /// The shard the script is at after the ops of `args` so far: op `S` is sent only when an
    /// op of `args` needs another (`sync_shard`); the packed sticky ops name their own.
    args_shard: u32,
    shards: Vec<(u32, String, u32)>,
    /// The units of the sticky ops, by their shard's first KEYS index: read up front, one
    /// HMGET per shard (op `P`), rather than one HGET per unit.
    prefetch: Vec<(String, Vec<String>)>,
    extra_keys: Vec<String>,
    /// Claim outcomes the call's rewards may meet, read up front by one HMGET per hash (op
    /// `O`) rather than one HGET per reward: each outcome hash's KEYS index and fields.
    outcomes: Vec<(String, String, Vec<String>)>,
    /// The event-id directories and id lists of the call's rewards judged with their ids
    /// (op `E`, single primary only: `direct`), declared up front by ops `Q` and `L`.
    directories: Vec<Directory>,
    id_lists: Vec<IdList>,
    /// The rewards of op `B`, packed (`direct_reward`) in runs.
    packed: Vec<u8>,
    /// What op `B`'s last run shares, and where its count is in `packed`.
    run: Option<Run>,
    /// Op `B`'s rewards judged here (kind `V`) and their credits by group (op `G`).
    judged: judged::Judged,
    /// The sticky ops of op `N`, packed (`sticky`); sent after every op of `args`.
    sticky_ops: Vec<u8>,
    /// The share sets the call's sticky ops name (op `W`), in the order they were declared: the
    /// set at index `i` is named `i + 1`.
    share_sets: Vec<ShareSet>,
    pub args: Vec<String>,
    /// Who gets each reply string, in order.
    pub sinks: Vec<Sink>,
}

/// One exposure's variant, time, half-life and expected-exposure shares (micro-units), as op
/// `W` declares them.
struct ShareSet {
    variant: String,
    now_ms: u64,
    half_life_ms: Option<u64>,
    shares: Vec<(String, i64)>,
}

/// The receiver of one reply string: a sticky command of the batch (by index), or a claimed
/// reward (by index in the reward step's table).
#[derive(Clone, Copy)]
pub enum Sink {
    Sticky(usize),
    Claim(usize),
}

impl Call {
    pub fn new(epoch: &Epoch, shard: u32) -> Self {
        Self {
            epoch: epoch.clone(),
            keys: ShardKeys::of(epoch, shard),
            shard,
            args_shard: shard,
            shards: vec![(shard, "1".to_owned(), 1)],
            prefetch: Vec::new(),
            extra_keys: Vec::new(),
            outcomes: Vec::new(),
            directories: Vec::new(),
            id_lists: Vec::new(),
            packed: Vec::new(),
            run: None,
            judged: judged::Judged::default(),
            sticky_ops: Vec::new(),
            share_sets: Vec::new(),
            args: vec![
                MAX_CLOCK_SKEW_MS.to_string(),
                TOKEN_MARK_SLACK_MS.to_string(),
            ],
            sinks: Vec::new(),
        }
    }

    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Makes room for `rewards` judged rewards (`call_judged`'s sets would grow from empty).
    pub fn expect_judged(&mut self, rewards: usize) {
        self.judged.reserve(rewards);
    }

    /// The variant op `B`'s `at`th reward was predicted to credit (its reply byte `V`).
    pub fn predicted_variant(&self, at: usize) -> Option<&str> {
        self.judged.variant(at)
    }

    /// Op `B`'s string and the keys named after the fixed ones (tests of the packing).
    #[cfg(test)]
    pub fn packed_and_keys(&self) -> (&[u8], &[String]) {
        (&self.packed, &self.extra_keys)
    }

    /// Sends the ops added next to `shard` (of this call's epoch): only on a single primary,
    /// where a call may name keys of several slots.
    pub fn at_shard(&mut self, shard: u32) {
        self.shard = shard;
    }

    /// Switches the script to `shard` (op `S`) before an op of `args` that needs it.
    fn sync_shard(&mut self) {
        if self.shard == self.args_shard {
            return;
        }
        let first = self.shard_first(self.shard);
        self.args.extend(["S".to_owned(), first]);
        self.args_shard = self.shard;
    }

    /// The ops of `args` run before the packed sticky ops (op `N` is sent after them): none
    /// may follow a sticky op (the commit adds its exposure flush first).
    fn before_sticky_ops(&mut self) {
        debug_assert!(
            self.sticky_ops.is_empty(),
            "an op of `args` added after a sticky op would run before it"
        );
        self.sync_shard();
    }

    /// The KEYS index of the first of `shard`'s keys in this call (legacy sticky, arms, marks,
    /// marks' due, records, new units not yet indexed), named now if they are not yet.
    fn shard_first(&mut self, shard: u32) -> String {
        let at = self.shard_at(shard);
        self.shards[at].1.clone()
    }

    /// Where `shard` is in `shards` (its first KEYS index as text and as a number), named now
    /// if it is not yet: a reward finds it without copying the text.
    fn shard_at(&mut self, shard: u32) -> usize {
        match self.shards.iter().position(|(known, _, _)| *known == shard) {
            Some(at) => at,
            None => {
                let keys = ShardKeys::of(&self.epoch, shard);
                let first = self.key(keys.sticky);
                for key in [
                    keys.arms,
                    keys.marks,
                    keys.marks_due,
                    keys.records,
                    keys.pending,
                ] {
                    self.key(key);
                }
                let number = index_number(&first);
                self.shards.push((shard, first, number));
                self.shards.len() - 1
            }
        }
    }

    /// Adds a key (of this call's slot) and returns its KEYS index (1-based).
    pub fn key(&mut self, key: String) -> String {
        self.extra_keys.push(key);
        (FIXED_KEYS + self.extra_keys.len()).to_string()
    }

    pub fn exposure(&mut self, variant: &str, count: u64, tally: &Tally, op: &str) {
        self.before_sticky_ops();
        let shares = layout::expected_shares(variant, &tally.allocation, count);
        self.args.extend([
            op.to_owned(),
            variant.to_owned(),
            count.to_string(),
            tally.now_ms.min(MAX_MS).to_string(),
            half_life(tally.half_life_ms),
            shares.len().to_string(),
        ]);
        for (variant, micro) in shares {
            self.args.extend([variant, micro.to_string()]);
        }
    }

    /// A sticky op (`I`: a new unit; `R`: a unit reassigned from variant `from`) on the
    /// current shard, packed into op `N` (`apply.lua` parses it with one `struct.unpack` per
    /// op): as separate arguments, Redis made an object and a Lua string of each of a new
    /// unit's nine (six, and op `S` at each change of shard), which cost Redis more than the
    /// unit's own work (results/redis5-2026-12-01-s10.md).
    pub fn sticky(
        &mut self,
        op: &str,
        unit: &str,
        from: &str,
        record: &StickyRecord,
        tally: &Tally,
    ) {
        let first = self.shard_first(self.shard);
        let set = self.share_set(&record.variant, tally);
        let mut packed = Packed(std::mem::take(&mut self.sticky_ops));
        packed.0.push(if op == "R" { b'R' } else { b'I' });
        packed.index(&first);
        packed.text(unit);
        packed.text(from);
        // The record as the script writes it (`v \t assigned \t propensity \t`): spelled here
        // rather than joined by the script from three fields.
        packed.text(&judged::written(record));
        packed.text(&set);
        self.sticky_ops = packed.0;
        match self.prefetch.iter_mut().find(|(known, _)| *known == first) {
            Some((_, units)) => units.push(unit.to_owned()),
            None => self.prefetch.push((first, vec![unit.to_owned()])),
        }
    }

    /// The name of the share set (op `W`) of an exposure of `variant` under `tally`, declared
    /// in the ops now if the call has none yet: the new units of one commit share a handful, so
    /// the script adds each set's expected exposures once per call, not once per unit.
    fn share_set(&mut self, variant: &str, tally: &Tally) -> String {
        let shares = layout::expected_shares(variant, &tally.allocation, 1);
        let now_ms = tally.now_ms.min(MAX_MS);
        if let Some(known) = self.share_sets.iter().position(|set| {
            set.variant == variant
                && set.now_ms == now_ms
                && set.half_life_ms == tally.half_life_ms
                && set.shares == shares
        }) {
            return (known + 1).to_string();
        }
        let name = (self.share_sets.len() + 1).to_string();
        self.args.extend([
            "W".to_owned(),
            name.clone(),
            variant.to_owned(),
            now_ms.to_string(),
            half_life(tally.half_life_ms),
            shares.len().to_string(),
        ]);
        for (share_variant, micro) in &shares {
            self.args.extend([share_variant.clone(), micro.to_string()]);
        }
        self.share_sets.push(ShareSet {
            variant: variant.to_owned(),
            now_ms,
            half_life_ms: tally.half_life_ms,
            shares,
        });
        name
    }

    /// A claimed reward, judged once under its claim. A token that must have been confirmed
    /// (`K`) also names its shard's confirmation marks.
    pub fn reward(&mut self, reward: &Reward, claim: &str) {
        self.before_sticky_ops();
        let (key, field) = layout::claim_outcome(&reward.epoch, reward.shard, claim);
        if !field.is_empty() {
            match self.outcomes.iter_mut().find(|(name, _, _)| *name == key) {
                Some((_, _, fields)) => fields.push(field.clone()),
                None => {
                    let index = self.key(key.clone());
                    self.outcomes
                        .push((key.clone(), index, vec![field.clone()]));
                }
            }
        }
        let key = self.key(key);
        self.args.push(reward.kind.to_string());
        self.args.push(key);
        self.args.push(field);
        if reward.kind == 'K' {
            let confirms = self.key(layout::confirms_key(&reward.epoch, reward.shard));
            self.args.push(confirms);
        }
        self.args.extend(reward.fields.iter().cloned());
    }

    /// One per-request token confirmation (`C`): the mark and its exposure, judged by the
    /// script against the marks and the sweep's watermark (`rules::judge_confirmation`, whose
    /// request-only parts are decided here: whether `confirm_within` passed, and the mark's
    /// deadline).
    pub fn confirmation(&mut self, op: &ConfirmOp) {
        self.before_sticky_ops();
        let shard = layout::shard_of(&op.assignment_id);
        let confirms = self.key(layout::confirms_key(&op.epoch, shard));
        let due = self.key(layout::confirms_due_key(&op.epoch, shard));
        let late = rules::confirmation_window_closed(op.issued_ms, op.now_ms, op.confirm_within_ms);
        let keep = rules::confirmation_mark_retained_until(
            op.issued_ms,
            op.confirm_within_ms,
            op.reward_window_ms,
        );
        let shares = layout::expected_shares(&op.variant, &op.tally.allocation, 1);
        self.args.extend([
            "C".to_owned(),
            confirms,
            due,
            op.assignment_id.clone(),
            op.variant.clone(),
            op.issued_ms.min(MAX_MS).to_string(),
            op.propensity.to_string(),
            op.now_ms.min(MAX_MS).to_string(),
            if late { "1" } else { "0" }.to_owned(),
            keep.min(MAX_MS).to_string(),
            op.tally.now_ms.min(MAX_MS).to_string(),
            half_life(op.tally.half_life_ms),
            shares.len().to_string(),
        ]);
        for (variant, micro) in shares {
            self.args.extend([variant, micro.to_string()]);
        }
    }

    /// Runs the call; one reply string per sticky and reward op (`Vec<String>`), and one for
    /// op `B`'s rewards together (bytes: `direct`).
    pub async fn invoke<T: redis::FromRedisValue>(&self, shared: &Shared) -> redis::RedisResult<T> {
        let mut connection = shared.link.get();
        let numkeys = FIXED_KEYS + self.extra_keys.len();
        shared
            .scripts
            .apply
            .call(&mut connection, numkeys, |invocation| self.fill(invocation))
            .await
    }

    /// The call's keys, then its arguments, as `FCALL` and `EVALSHA` take them after the
    /// key count (`scripts`).
    fn fill(&self, invocation: &mut redis::Cmd) {
        invocation
            .arg(&self.keys.sticky)
            .arg(&self.keys.arms)
            .arg(&self.keys.marks)
            .arg(&self.keys.marks_due)
            .arg(&self.keys.records)
            .arg(&self.keys.pending)
            .arg(&self.keys.delays);
        for key in &self.extra_keys {
            invocation.arg(key);
        }
        let (fixed, ops) = self.args.split_at(self.args.len().min(FIXED_ARGS));
        for arg in fixed {
            invocation.arg(arg);
        }
        // Lua's unpack takes a few thousand values at most: a few hundred fields per `O`
        // and units per `P`. A `P`'s units are packed in one string (`Packed::text` each).
        for (first, units) in &self.prefetch {
            for chunk in units.chunks(512) {
                let mut names = Packed::default();
                for unit in chunk {
                    names.text(unit);
                }
                invocation
                    .arg("P")
                    .arg(first)
                    .arg(chunk.len())
                    .arg(names.0.as_slice());
            }
        }
        for (_, index, fields) in &self.outcomes {
            for chunk in fields.chunks(512) {
                invocation.arg("O").arg(index).arg(chunk.len()).arg(chunk);
            }
        }
        for directory in &self.directories {
            invocation
                .arg("Q")
                .arg(directory.index)
                .arg(directory.keep)
                .arg(directory.digests.as_slice())
                .arg(directory.ids.as_slice());
        }
        for list in &self.id_lists {
            invocation
                .arg("L")
                .arg(list.index)
                .arg(self.directories[list.directory].index)
                .arg(list.end)
                .arg(list.keep);
        }
        for arg in ops {
            invocation.arg(arg);
        }
        if !self.sticky_ops.is_empty() {
            invocation.arg("N").arg(self.sticky_ops.as_slice());
        }
        if let Some((groups, side)) = self.judged.op_g() {
            invocation.arg("G").arg(groups).arg(side);
        }
        if !self.packed.is_empty() {
            invocation.arg("B").arg(self.packed.as_slice());
        }
    }
}

/// One reward of op `B` as `struct.unpack` reads it: little-endian `I4` indexes, texts as an
/// `I4` length and the bytes (`I4c0`), and milliseconds as doubles (`d`, exact below
/// `MAX_MS`).
#[derive(Default)]
struct Packed(Vec<u8>);

impl Packed {
    fn index(&mut self, index: &str) {
        self.number_index(index_number(index));
    }

    fn number_index(&mut self, index: u32) {
        self.0.extend(index.to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.0.extend(length.to_le_bytes());
        self.0.extend(text.as_bytes());
    }

    #[allow(clippy::cast_precision_loss)]
    fn millis(&mut self, ms: u64) {
        self.float(ms.min(MAX_MS) as f64);
    }

    fn float(&mut self, value: f64) {
        self.0.extend(value.to_le_bytes());
    }
}

/// A KEYS index (`Call::key`'s text) as op `B` packs it.
fn index_number(index: &str) -> u32 {
    index.parse().unwrap_or(0)
}

pub fn half_life(half_life_ms: Option<u64>) -> String {
    half_life_ms.map_or_else(String::new, |ms| ms.min(MAX_MS).to_string())
}
