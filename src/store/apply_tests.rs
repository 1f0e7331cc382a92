//! A run of rewards in one request (`apply_rewards`): the state it carries from one reward to
//! the next (each unit's sticky key built ahead for its prefetch, the delay bins summed over
//! the run, an epoch's start looked at once, each arm credited in one copy) gives what one
//! reward at a time gives.

use std::collections::BTreeMap;

use crate::store::test_support::*;
use crate::store::{Epoch, RewardOp, RewardOutcome, Store};

/// Delays (ms) and the delay bins they fall in, from the bin edges' definition
/// (`stats::delay`): [0, 1 min) is bin 0, [5, 10 min) bin 3, [2 h, 3 h) bin 8 + 1.
const DELAYS: [(u64, u32); 3] = [(30_000, 0), (400_000, 3), (7_500_000, 9)];

/// Rewards that are not sums of powers of two: a different order of additions gives
/// different bits.
const REWARDS: [f64; 5] = [0.1, 0.7, 0.3, 0.45, 0.9];

const VARIANTS: [&str; 3] = ["control", "bold", "question"];

/// One reward of a test run: the op, its epoch, the variant it credits, its delay and bin.
type Planned = (RewardOp, Epoch, &'static str, u64, u32);

/// A mix of unit and token rewards (every third a token) over two epochs with the same
/// variant names and delay bins, more of them than the prefetch runs ahead.
fn ops(first: usize, count: usize, now_ms: u64) -> Vec<Planned> {
    (first..first + count)
        .map(|i| {
            let epoch = if i % 2 == 0 {
                epoch()
            } else {
                epoch_of("other", 3)
            };
            let variant = VARIANTS[i % 3];
            // Each epoch and variant meets every bin (i mod 6 fixes both).
            let (delay_ms, bin) = DELAYS[(i / 6) % 3];
            let reward = REWARDS[i % 5];
            let mut op = if i % 3 == 1 {
                token_reward(
                    &format!("e{i}"),
                    &format!("a{i}"),
                    variant,
                    now_ms - delay_ms,
                    reward,
                    now_ms,
                )
            } else {
                unit_reward(&format!("e{i}"), &format!("u{i}"), reward, now_ms)
            };
            op.epoch = epoch.clone();
            (op, epoch, variant, delay_ms, bin)
        })
        .collect()
}

#[test]
fn a_run_of_rewards_credits_each_unit_and_sums_each_delay_bin_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now_ms = T0_MS + 10 * DAY_MS;
    let all = ops(0, 60, now_ms);
    for (op, epoch, variant, delay_ms, _) in &all {
        if let crate::store::RewardTarget::Unit(unit) = &op.target {
            let assigned = record(variant, now_ms - delay_ms);
            block_on(store.insert_sticky(epoch, unit, assigned, tally(now_ms - delay_ms))).unwrap();
        } else {
            // The token's exposure, as a per-request assign counts it.
            store.count_exposure(epoch, variant, tally(now_ms - delay_ms));
        }
    }
    // Two requests: the second adds to bins the first made durable.
    let mut expected: BTreeMap<(Epoch, &str, u32), f64> = BTreeMap::new();
    // Each arm's reward sum, one addition per reward in the batch's order (the run credits
    // each arm in its own copy, written back once).
    let mut reward_sums: BTreeMap<(Epoch, &str), f64> = BTreeMap::new();
    for half in [&all[..35], &all[35..]] {
        let outcomes =
            block_on(store.apply_rewards(half.iter().map(|o| o.0.clone()).collect())).unwrap();
        for ((op, epoch, variant, _, bin), outcome) in half.iter().zip(outcomes) {
            assert_eq!(
                outcome,
                RewardOutcome::Applied {
                    variant: (*variant).to_owned()
                },
                "{}",
                op.event_id
            );
            // One addition per reward, in the batch's order.
            let sum = expected
                .entry((epoch.clone(), variant, *bin))
                .or_insert(0.0);
            *sum += op.reward;
            *reward_sums.entry((epoch.clone(), variant)).or_insert(0.0) += op.reward;
        }
    }
    for epoch in [epoch(), epoch_of("other", 3)] {
        let counters = block_on(store.counters(&epoch)).unwrap();
        for variant in VARIANTS {
            assert_eq!(
                counters[variant].reward_sum.to_bits(),
                reward_sums[&(epoch.clone(), variant)].to_bits(),
                "{variant} in {epoch:?}"
            );
        }
    }
    for (op, epoch, ..) in &all {
        if let crate::store::RewardTarget::Unit(unit) = &op.target {
            let held = block_on(store.sticky(epoch, unit)).unwrap().unwrap();
            assert_eq!(held.reward, Some(op.reward), "{unit} in {epoch:?}");
            assert_eq!(held.rewarded_ms, Some(now_ms));
        }
    }
    for epoch in [epoch(), epoch_of("other", 3)] {
        let histograms = block_on(store.delay_histograms(&epoch)).unwrap();
        let mut stored: Vec<((&str, u32), u64)> = Vec::new();
        for variant in VARIANTS {
            for (bin, mass) in &histograms[variant].delays {
                stored.push(((variant, *bin), mass.to_bits()));
            }
        }
        stored.sort();
        let mut wanted: Vec<((&str, u32), u64)> = expected
            .iter()
            .filter(|((e, _, _), _)| *e == epoch)
            .map(|((_, variant, bin), sum)| ((*variant, *bin), sum.to_bits()))
            .collect();
        wanted.sort();
        assert_eq!(stored, wanted, "{epoch:?}");
    }
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn each_epoch_a_run_of_token_rewards_credits_first_starts_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now_ms = T0_MS + DAY_MS;
    let fresh = [epoch_of("fresh-a", 1), epoch_of("fresh-b", 1)];
    let ops: Vec<RewardOp> = (0..12)
        .map(|i| RewardOp {
            epoch: fresh[i / 6].clone(),
            ..token_reward(
                &format!("e{i}"),
                &format!("a{i}"),
                "control",
                T0_MS,
                1.0,
                now_ms,
            )
        })
        .collect();
    let outcomes = block_on(store.apply_rewards(ops)).unwrap();
    assert_all_applied(&outcomes);
    for epoch in &fresh {
        let info = block_on(store.epoch_info(epoch)).unwrap();
        assert_eq!(info.started_ms, Some(now_ms), "{epoch:?}");
    }
    // A later run finds the start set and leaves it.
    let later = token_reward("late", "a-late", "control", T0_MS, 1.0, now_ms + 5);
    let later = RewardOp {
        epoch: fresh[1].clone(),
        ..later
    };
    block_on(store.apply_rewards(vec![later])).unwrap();
    assert_eq!(
        block_on(store.epoch_info(&fresh[1])).unwrap().started_ms,
        Some(now_ms)
    );
}
