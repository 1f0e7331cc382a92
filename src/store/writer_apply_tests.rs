//! A run of new units sharing one txn (`writer_apply`): a failing insert in the middle of the
//! run leaves nothing, and its neighbours commit whole; the same for a run of single-event
//! requests.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::store::error::StoreError;
use crate::store::keys;
use crate::store::sled::SledStore;
use crate::store::test_support::*;
use crate::store::{ArmCounters, RewardOutcome, Store};

fn counters(store: &SledStore) -> HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

#[test]
fn a_failing_insert_in_a_run_of_new_units_drops_only_its_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = store.shared.flush_gate.lock().unwrap();
    // The first commit waits at the gate; the next three queue up and share one commit.
    let first = store.insert_sticky(&epoch(), "u0", record("a", T0_MS), tally(T0_MS));
    let sled = store.shared.sled().unwrap();
    while sled.get(keys::META_SEQ).unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Arm b's cohort bin is unreadable: an insert on b fails when it counts its exposure.
    let bin = crate::store::sled_delay::cohort_key(&epoch(), "b", T0_MS);
    sled.insert(bin, vec![0xF0]).unwrap();
    let half = tally_with(T0_MS, None, &[("a", 0.5), ("b", 0.5)]);
    let queued: Vec<_> = [("u1", "a"), ("u2", "b"), ("u3", "a")]
        .into_iter()
        .map(|(unit, variant)| {
            store.insert_sticky(&epoch(), unit, record(variant, T0_MS), half.clone())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let commits_before = store.shared.flush_count.load(Ordering::Relaxed);
    drop(gate);
    assert!(block_on(first).unwrap().1);
    let answers: Vec<_> = queued.into_iter().map(block_on).collect();
    assert!(matches!(answers[0], Ok((_, true))), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(StoreError::Corrupt(_))),
        "{:?}",
        answers[1]
    );
    assert!(matches!(answers[2], Ok((_, true))), "{:?}", answers[2]);
    assert_eq!(
        store.shared.flush_count.load(Ordering::Relaxed),
        commits_before + 2,
        "the held commit (counted once past the gate), then the three inserts as one: one run"
    );
    assert_eq!(block_on(store.sticky(&epoch(), "u2")).unwrap(), None);
    for unit in ["u1", "u3"] {
        let held = block_on(store.sticky(&epoch(), unit)).unwrap();
        assert_eq!(held, Some(record("a", T0_MS)));
    }
    // u0 counts 1 expected exposure of a (no allocation); u1 and u3 half of one for each arm.
    // u2's exposure of b and its halves are not counted.
    let check = |counters: HashMap<String, ArmCounters>| {
        assert_eq!(counters["a"].exposures, 3);
        assert_eq!(counters["a"].expected_exposures, 2.0);
        assert_eq!(counters["b"].exposures, 0);
        assert_eq!(counters["b"].expected_exposures, 1.0);
    };
    check(counters(&store));
    // Arm a's cohort bin: u0's count from its own commit, plus u1's and u3's summed in the run.
    let a_bin = crate::store::sled_delay::cohort_key(&epoch(), "a", T0_MS);
    assert_eq!(
        sled_value(&sled, &a_bin),
        Some(crate::store::codec::encode_u64(3).to_vec())
    );
    drop(sled);
    drop(store);
    // What the reopened store serves is what is on disk.
    let store = open(dir.path());
    check(counters(&store));
    assert_eq!(block_on(store.sticky(&epoch(), "u2")).unwrap(), None);
}

/// The commit held at the gate by one reward request, then `queued` sent behind it: they all
/// wait for the held commit and are taken together by the next one, which is checked to be a
/// single commit. Returns each queued request's answer.
fn rewards_behind_a_held_commit(
    store: &SledStore,
    queued: Vec<Vec<crate::store::RewardOp>>,
) -> Vec<Result<Vec<RewardOutcome>, StoreError>> {
    let sled = store.shared.sled().unwrap();
    let seq_before = sled_value(&sled, keys::META_SEQ);
    let gate = store.shared.flush_gate.lock().unwrap();
    let first = store.apply_rewards(vec![unit_reward("held", "u0", 2.0, T0_MS)]);
    while sled_value(&sled, keys::META_SEQ) == seq_before {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queued: Vec<_> = queued
        .into_iter()
        .map(|ops| store.apply_rewards(ops))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let commits_before = store.shared.flush_count.load(Ordering::Relaxed);
    drop(gate);
    assert_eq!(block_on(first).unwrap(), vec![applied("a")]);
    let answers = queued.into_iter().map(block_on).collect();
    assert_eq!(
        store.shared.flush_count.load(Ordering::Relaxed),
        commits_before + 2,
        "the held commit (counted once past the gate), then the queued requests as one"
    );
    answers
}

fn applied(variant: &str) -> RewardOutcome {
    RewardOutcome::Applied {
        variant: variant.to_owned(),
    }
}

/// One event per POST: consecutive single-event requests of one commit share one txn and one
/// reward run (`writer_apply`). Each is answered with its own outcome, later ones see earlier
/// ones (a retried id, a unit rewarded twice), the delay bin is summed in the requests' order,
/// and a request that fails on its delay bin leaves nothing: no reward in its unit's record,
/// no event id, no token mark, no counter, no delay mass. A request of two rewards that fails
/// on its second drops its first too.
#[test]
fn single_event_requests_of_one_commit_share_a_txn_and_a_failing_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (unit, variant) in [
        ("u0", "a"),
        ("u1", "a"),
        ("u2", "b"),
        ("u3", "a"),
        ("u4", "a"),
    ] {
        let assigned = record(variant, T0_MS);
        block_on(store.insert_sticky(&epoch(), unit, assigned, tally(T0_MS))).unwrap();
    }
    // Arm b's and arm "broken"'s delay bins are unreadable: u2's reward and a token reward on
    // "broken" fail when they count their delay.
    let sled = store.shared.sled().unwrap();
    let broken = [
        crate::store::sled_delay::delay_bin_key(&epoch(), "b", T0_MS, T0_MS),
        crate::store::sled_delay::delay_bin_key(&epoch(), "broken", T0_MS, T0_MS),
    ];
    for key in &broken {
        sled.insert(key.clone(), vec![0xF0]).unwrap();
    }
    let u2_reward = unit_reward("e2", "u2", 1.0, T0_MS);
    let broken_token = token_reward("e3", "t3", "broken", T0_MS, 1.0, T0_MS);
    let answers = rewards_behind_a_held_commit(
        &store,
        vec![
            vec![unit_reward("e1", "u1", 0.5, T0_MS)],
            vec![u2_reward.clone()],
            vec![broken_token.clone()],
            vec![unit_reward("e4", "u3", 0.25, T0_MS)],
            vec![unit_reward("e1", "u1", 0.5, T0_MS)],
            vec![unit_reward("e5", "u1", 1.0, T0_MS)],
            vec![token_reward("e6", "t6", "a", T0_MS, 0.125, T0_MS)],
            vec![unit_reward("e7", "u4", 1.0, T0_MS), broken_token.clone()],
            vec![unit_reward("e8", "u4", 0.0625, T0_MS)],
        ],
    );
    let outcomes: Vec<_> = answers
        .into_iter()
        .map(|answer| answer.map_err(|error| matches!(error, StoreError::Corrupt(_))))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Ok(vec![applied("a")]),
            Err(true),
            Err(true),
            Ok(vec![applied("a")]),
            Ok(vec![RewardOutcome::Duplicate]),
            Ok(vec![RewardOutcome::AlreadyRewarded]),
            Ok(vec![applied("a")]),
            Err(true),
            Ok(vec![applied("a")]),
        ]
    );
    // Arm a: 2 (held) + 0.5 + 0.25 + 0.125 + 0.0625, one bin (no delay), sums exact in binary.
    let a_bin = crate::store::sled_delay::delay_bin_key(&epoch(), "a", T0_MS, T0_MS);
    let a_mass = Some(crate::store::codec::encode_u64(2.9375f64.to_bits()).to_vec());
    let check = |store: &SledStore, sled: &::sled::Db| {
        assert_eq!(sled_value(sled, &a_bin), a_mass);
        let counters = counters(store);
        assert_eq!(counters["a"].reward_sum, 2.9375);
        assert_eq!(counters["b"].reward_sum, 0.0);
        assert!(!counters.contains_key("broken"), "{counters:?}");
        for unit in ["u2", "u4"] {
            let variant = if unit == "u2" { "b" } else { "a" };
            let rewarded = if unit == "u4" { Some(0.0625) } else { None };
            let held = block_on(store.sticky(&epoch(), unit)).unwrap().unwrap();
            assert_eq!((held.variant.as_str(), held.reward), (variant, rewarded));
        }
    };
    check(&store, &sled);
    // With the unreadable bins gone, the failed rewards were never applied: neither their
    // event ids nor the token's mark are kept, so they apply now.
    for key in &broken {
        sled.remove(key).unwrap();
    }
    assert!(store.audit().unwrap().is_clean());
    drop(sled);
    drop(store);
    let store = open(dir.path());
    let sled = store.shared.sled().unwrap();
    check(&store, &sled);
    let retried = block_on(store.apply_rewards(vec![u2_reward, broken_token])).unwrap();
    assert_eq!(retried, vec![applied("b"), applied("broken")]);
}
