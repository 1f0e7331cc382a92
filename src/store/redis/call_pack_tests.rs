//! Op `B`'s string (`Call::direct_reward`) and its ops `Q` and `P` byte for byte against the
//! layout `judge_packed` in `apply_rewards.lua` reads, spelled out here independently of the
//! code: runs with what their rewards share in the header, a reward naming its id and its unit
//! by their places in ops `Q` and `P`, amounts and timestamps as doubles.

use super::call::Call;
use super::layout;
use crate::store::test_support::{DAY_MS, T0_MS, epoch, record, token_reward, unit_reward};
use crate::store::{RewardOp, RewardTarget, StickyRecord};

/// The reference: the keys a call names after its fixed seven, in order, and the ids and
/// units listed per directory and per shard.
#[derive(Default)]
struct Keys {
    named: Vec<String>,
    /// Per directory's KEYS index: its digests and its ids (`I4c0`), in order.
    homes: Vec<(u32, Vec<u8>, Vec<u8>)>,
    /// Per shard's first KEYS index: its units, in order.
    units: Vec<(u32, Vec<String>)>,
}

impl Keys {
    /// The KEYS index of `key`, named now if new (`fresh`: always named, as the confirmation
    /// marks of a `K` reward are).
    fn index(&mut self, key: String, fresh: bool) -> u32 {
        if !fresh && let Some(at) = self.named.iter().position(|k| *k == key) {
            return u32::try_from(at + 8).unwrap_or(0);
        }
        self.named.push(key);
        u32::try_from(self.named.len() + 7).unwrap_or(0)
    }
}

fn text(out: &mut Vec<u8>, text: &str) {
    out.extend(u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
    out.extend(text.as_bytes());
}

#[allow(clippy::cast_precision_loss)]
fn double(out: &mut Vec<u8>, value: u64) {
    out.extend((value as f64).to_le_bytes());
}

fn index(out: &mut Vec<u8>, index: u32) {
    out.extend(index.to_le_bytes());
}

/// One reward's bytes after its run header, and the keys, ids and units it names, by the
/// documented layout.
fn reference(
    keys: &mut Keys,
    call_shard: u32,
    op: &RewardOp,
    digest: u64,
    expected: Option<&StickyRecord>,
) -> Vec<u8> {
    let experiment = &op.epoch.experiment;
    let home = layout::shard_of(&op.event_id);
    let end = layout::event_list_end(op.now_ms + op.window_ms);
    let dir = keys.index(layout::event_dir_key(experiment, home), false);
    if usize::try_from(dir).unwrap_or(0) == keys.named.len() + 7 {
        keys.named.push(layout::event_index_key(experiment, home));
        keys.named.push(layout::event_due_key(experiment, home));
        keys.named.push(layout::event_digest_key(experiment, home));
        keys.named
            .push(layout::event_digest_index_key(experiment, home));
        keys.homes.push((dir, Vec::new(), Vec::new()));
    }
    let listed = keys.homes.iter_mut().find(|(at, _, _)| *at == dir).unwrap();
    listed.1.extend(digest.to_le_bytes());
    text(&mut listed.2, &op.event_id);
    let place = u32::try_from(listed.1.len() / 8).unwrap();
    let list = keys.index(layout::event_digest_list_key(experiment, home, end), false);
    let (shard, id) = match &op.target {
        RewardTarget::Unit(unit) => (layout::shard_of(unit), unit.as_str()),
        RewardTarget::Token { assignment_id, .. } => {
            (layout::shard_of(assignment_id), assignment_id.as_str())
        }
    };
    let keys_of = layout::ShardKeys::of(&op.epoch, shard);
    let first = if shard == call_shard {
        1
    } else {
        let first = keys.index(keys_of.sticky, false);
        if usize::try_from(first).unwrap_or(0) == keys.named.len() + 7 {
            for key in [
                keys_of.arms,
                keys_of.marks,
                keys_of.marks_due,
                keys_of.records,
                keys_of.pending,
            ] {
                keys.named.push(key);
            }
        }
        first
    };
    let mut out = Vec::new();
    index(&mut out, dir);
    index(&mut out, place);
    index(&mut out, first);
    let micro = layout::to_micro(op.reward).unsigned_abs();
    let occurred = |out: &mut Vec<u8>| match op.occurred_ms {
        Some(ms) => double(out, ms),
        None => out.extend((-1.0f64).to_le_bytes()),
    };
    match &op.target {
        RewardTarget::Unit(_) => {
            let units = match keys.units.iter().position(|(at, _)| *at == first) {
                Some(at) => &mut keys.units[at].1,
                None => {
                    keys.units.push((first, Vec::new()));
                    &mut keys.units.last_mut().unwrap().1
                }
            };
            units.push(id.to_owned());
            index(&mut out, u32::try_from(units.len()).unwrap());
            index(&mut out, list);
            double(&mut out, micro);
            occurred(&mut out);
            if let Some(record) = expected {
                let assigned = record.assigned_ms;
                let held = format!("{}\t{assigned}\t{}\t", record.variant, record.propensity);
                text(&mut out, &held);
                text(&mut out, &record.variant);
                double(&mut out, assigned);
            }
        }
        RewardTarget::Token {
            variant,
            issued_ms,
            propensity,
            ..
        } => {
            index(&mut out, list);
            // A `T` reward names no confirmation marks: index 0.
            index(&mut out, 0);
            text(&mut out, id);
            text(&mut out, variant);
            double(&mut out, *issued_ms);
            text(&mut out, &propensity.to_string());
            double(&mut out, micro);
            occurred(&mut out);
        }
    }
    out
}

/// A run header: the kind, the count of its rewards, and what they share.
fn run(out: &mut Vec<u8>, kind: u8, count: u32, op: &RewardOp) {
    out.push(kind);
    out.extend(count.to_le_bytes());
    double(out, op.now_ms);
    double(out, op.window_ms);
    text(
        out,
        &op.half_life_ms.map_or_else(String::new, |h| h.to_string()),
    );
}

#[test]
fn op_b_is_packed_byte_for_byte_as_its_layout_says() {
    let held = record("bold", T0_MS - 5);
    let mut long = unit_reward("e3", "user 3", 1.0, T0_MS + 1);
    // Another list (its end is 30 days on), maybe in a directory already named, and another
    // run (its window and half-life).
    long.window_ms = 30 * DAY_MS;
    long.half_life_ms = Some(DAY_MS);
    let mut dated = unit_reward("e6", "user 6", 0.125, T0_MS + 1);
    dated.occurred_ms = Some(T0_MS - 2);
    let ops = [
        (unit_reward("e1", "user 1", 0.25, T0_MS + 1), None),
        (unit_reward("e2", "user 2", 0.5, T0_MS + 1), None),
        (long, None),
        (
            token_reward("e4", "as-1", "bold", T0_MS, 1.0, T0_MS + 1),
            None,
        ),
        (unit_reward("e5", "user 5", 0.75, T0_MS + 1), Some(&held)),
        (dated, None),
        // Another arrival time: another run.
        (unit_reward("e1b", "user 1", 0.25, T0_MS + 5), None),
    ];
    let call_shard = layout::shard_of("user 1");
    let mut call = Call::new(&epoch(), call_shard);
    let mut keys = Keys::default();
    let mut want = Vec::new();
    let bodies: Vec<Vec<u8>> = ops
        .iter()
        .enumerate()
        .map(|(at, (op, expected))| {
            call.direct_reward(op, 100 + at as u64, *expected);
            reference(&mut keys, call_shard, op, 100 + at as u64, *expected)
        })
        .collect();
    // Runs: two `u`, one `u` (its window), one `T`, one `U`, one `u`, one `u` (its time).
    for (from, to, kind) in [
        (0, 2, b'u'),
        (2, 3, b'u'),
        (3, 4, b'T'),
        (4, 5, b'U'),
        (5, 6, b'u'),
        (6, 7, b'u'),
    ] {
        run(
            &mut want,
            kind,
            u32::try_from(to - from).unwrap(),
            &ops[from].0,
        );
        bodies[from..to].iter().for_each(|body| want.extend(body));
    }
    let (packed, named) = call.packed_and_keys();
    assert_eq!(named, keys.named.as_slice(), "the keys named, in order");
    assert_eq!(packed, want.as_slice(), "op B's bytes");
    // Ops Q and P list each directory's ids and each shard's units in op B's order.
    let homes: Vec<(u32, Vec<u8>, Vec<u8>)> = call
        .directories_packed()
        .map(|(index, digests, ids)| (index, digests.to_vec(), ids.to_vec()))
        .collect();
    assert_eq!(homes, keys.homes, "op Q's digests and ids");
    let units: Vec<(u32, Vec<String>)> = call
        .prefetched()
        .map(|(first, units)| (first, units.to_vec()))
        .collect();
    assert_eq!(units, keys.units, "op P's units");
}

/// Op `B`'s string of one unit reward under `expected`: its length and its run's kind.
fn packed_reward(expected: Option<&StickyRecord>) -> (usize, u8) {
    let op = unit_reward("e1", "user 1", 0.25, T0_MS);
    let mut call = Call::new(&epoch(), layout::shard_of("user 1"));
    call.direct_reward(&op, 7, expected);
    assert_eq!(call.run_at(0).1, 1, "one run of one reward");
    (call.packed_and_keys().0.len(), call.run_at(0).0)
}

#[test]
fn rewards_sharing_kind_time_window_and_half_life_in_a_row_are_packed_as_one_run() {
    let held = record("bold", T0_MS);
    let unit = |id: &str| unit_reward(id, "user 1", 0.25, T0_MS);
    let token = token_reward("e9", "as-1", "bold", T0_MS, 1.0, T0_MS);
    let mut later = unit("e6");
    later.now_ms += 1;
    let mut decayed = unit("e8");
    decayed.half_life_ms = Some(DAY_MS);
    let mut call = Call::new(&epoch(), 0);
    let mut runs = Vec::new();
    for (op, expected) in [
        (unit("e1"), None),
        (unit("e2"), None),
        (unit("e3"), None),
        (token, None),
        (unit("e4"), Some(&held)),
        (unit("e5"), None),
        (later.clone(), None),
        (later, None),
        (decayed, None),
        (unit("e7"), None),
    ] {
        let before = call.packed_and_keys().0.len();
        call.direct_reward(&op, 7, expected);
        if call.run_start() == Some(before) {
            runs.push(before);
        }
    }
    let kinds: Vec<(u8, u32)> = runs.iter().map(|&at| call.run_at(at)).collect();
    assert_eq!(
        kinds,
        [
            (b'u', 3),
            (b'T', 1),
            (b'U', 1),
            (b'u', 1),
            (b'u', 2),
            (b'u', 1),
            (b'u', 1)
        ]
    );
}

#[test]
fn a_unit_reward_without_an_expected_record_is_packed_without_its_three_fields() {
    let held = record("bold", T0_MS);
    let (with_record, kind) = packed_reward(Some(&held));
    assert_eq!(kind, b'U');
    let (without, kind) = packed_reward(None);
    assert_eq!(kind, b'u');
    // The record `bold \t <ms> \t 0.5 \t` and the variant, each a length and its bytes,
    // and the assignment time as a double.
    let record_text = format!("bold\t{T0_MS}\t0.5\t");
    assert_eq!(with_record - without, 4 + record_text.len() + 4 + 4 + 8);
    // A rewarded record cannot be credited: it is not worth sending either.
    let mut rewarded = held.clone();
    rewarded.reward = Some(1.0);
    rewarded.rewarded_ms = Some(T0_MS + 1);
    assert_eq!(packed_reward(Some(&rewarded)), (without, b'u'));
}
