//! Op `B`'s string (`Call::direct_reward`) byte for byte against the layout its doc and
//! `apply_rewards.lua` read, spelled out here independently of the code: the building was cut
//! (each timing field parsed once, a list found by its directory and end instead of its key
//! spelled per reward, KEYS indexes packed from numbers kept with them), and the bytes must
//! not move with it.

use super::call::{Call, Reward};
use super::layout;
use crate::store::test_support::{DAY_MS, T0_MS, epoch, record, token_reward, unit_reward};
use crate::store::{RewardOp, RewardTarget, StickyRecord};

/// The reference: the keys a call names after its fixed seven, in order.
#[derive(Default)]
struct Keys(Vec<String>);

impl Keys {
    /// The KEYS index of `key`, named now if new (`fresh`: always named, as the confirmation
    /// marks of a `K` reward are).
    fn index(&mut self, key: String, fresh: bool) -> u32 {
        if !fresh && let Some(at) = self.0.iter().position(|k| *k == key) {
            return u32::try_from(at + 8).unwrap_or(0);
        }
        self.0.push(key);
        u32::try_from(self.0.len() + 7).unwrap_or(0)
    }
}

fn text(out: &mut Vec<u8>, text: &str) {
    out.extend(u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
    out.extend(text.as_bytes());
}

#[allow(clippy::cast_precision_loss)]
fn millis(out: &mut Vec<u8>, ms: u64) {
    out.extend((ms as f64).to_le_bytes());
}

/// One reward's bytes after its run header, and the keys it names, by the documented layout.
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
    if usize::try_from(dir).unwrap_or(0) == keys.0.len() + 7 {
        keys.0.push(layout::event_index_key(experiment, home));
        keys.0.push(layout::event_due_key(experiment, home));
        keys.0.push(layout::event_digest_key(experiment, home));
        keys.0
            .push(layout::event_digest_index_key(experiment, home));
    }
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
        if usize::try_from(first).unwrap_or(0) == keys.0.len() + 7 {
            for key in [
                keys_of.arms,
                keys_of.marks,
                keys_of.marks_due,
                keys_of.records,
                keys_of.pending,
            ] {
                keys.0.push(key);
            }
        }
        first
    };
    let mut out = Vec::new();
    out.extend(dir.to_le_bytes());
    out.extend(digest.to_le_bytes());
    out.extend(first.to_le_bytes());
    out.extend(list.to_le_bytes());
    let micro = layout::to_micro(op.reward).to_string();
    let half_life = op.half_life_ms.map_or_else(String::new, |h| h.to_string());
    match &op.target {
        RewardTarget::Unit(_) => {
            text(&mut out, id);
            text(&mut out, &micro);
            text(&mut out, "");
            millis(&mut out, op.now_ms);
            millis(&mut out, op.window_ms);
            text(&mut out, &half_life);
            if let Some(record) = expected {
                let assigned = record.assigned_ms;
                let held = format!("{}\t{assigned}\t{}\t", record.variant, record.propensity);
                text(&mut out, &held);
                text(&mut out, &record.variant);
                millis(&mut out, assigned);
            }
        }
        RewardTarget::Token {
            variant,
            issued_ms,
            propensity,
            ..
        } => {
            // A `T` reward names no confirmation marks: index 0.
            out.extend(0u32.to_le_bytes());
            text(&mut out, id);
            text(&mut out, variant);
            millis(&mut out, *issued_ms);
            text(&mut out, &propensity.to_string());
            text(&mut out, &micro);
            text(&mut out, "");
            millis(&mut out, op.now_ms);
            millis(&mut out, op.window_ms);
            text(&mut out, &half_life);
        }
    }
    text(&mut out, &op.event_id);
    out
}

/// A run header: the kind and the count of its rewards.
fn run(out: &mut Vec<u8>, kind: u8, count: u32) {
    out.push(kind);
    out.extend(count.to_le_bytes());
}

#[test]
fn op_b_is_packed_byte_for_byte_as_its_layout_says() {
    let held = record("bold", T0_MS - 5);
    let mut long = unit_reward("e3", "user 3", 1.0, T0_MS + 2);
    // Another list (its end is 30 days on), maybe in a directory already named.
    long.window_ms = 30 * DAY_MS;
    long.half_life_ms = Some(DAY_MS);
    let ops = [
        (unit_reward("e1", "user 1", 0.25, T0_MS), None),
        (unit_reward("e2", "user 2", 0.5, T0_MS + 1), None),
        (long, None),
        (
            token_reward("e4", "as-1", "bold", T0_MS, 1.0, T0_MS + 3),
            None,
        ),
        (unit_reward("e5", "user 5", 0.75, T0_MS + 4), Some(&held)),
        (unit_reward("e1b", "user 1", 0.25, T0_MS + 5), None),
    ];
    let call_shard = Reward::of(&ops[0].0).shard;
    let mut call = Call::new(&epoch(), call_shard);
    let mut keys = Keys::default();
    let mut want = Vec::new();
    let bodies: Vec<Vec<u8>> = ops
        .iter()
        .enumerate()
        .map(|(at, (op, expected))| {
            call.direct_reward(&Reward::of(op), &op.event_id, 100 + at as u64, *expected);
            reference(&mut keys, call_shard, op, 100 + at as u64, *expected)
        })
        .collect();
    // Runs: three `u`, one `T`, one `U`, one `u`.
    run(&mut want, b'u', 3);
    bodies[..3].iter().for_each(|body| want.extend(body));
    run(&mut want, b'T', 1);
    want.extend(&bodies[3]);
    run(&mut want, b'U', 1);
    want.extend(&bodies[4]);
    run(&mut want, b'u', 1);
    want.extend(&bodies[5]);
    let (packed, named) = call.packed_and_keys();
    assert_eq!(named, keys.0.as_slice(), "the keys named, in order");
    assert_eq!(packed, want.as_slice(), "op B's bytes");
}
