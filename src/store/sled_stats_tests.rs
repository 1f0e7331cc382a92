//! Statistics support of [`SledStore`]: decayed and expected counters, epoch start, durable
//! decisions, history.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::store::ExpectationMismatch;
use crate::store::test_support::*;

const HALF_LIFE_MS: u64 = 14 * DAY_MS;

fn counters_of(store: &SledStore) -> HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

/// Waits until every command sent so far is committed (the writer works in order).
fn sync(store: &SledStore) {
    block_on(store.expire(0)).unwrap();
}

fn decaying(now_ms: u64) -> Tally {
    tally_with(now_ms, Some(HALF_LIFE_MS), &[])
}

fn info_of(store: &SledStore, epoch: &Epoch) -> EpochInfo {
    block_on(store.epoch_info(epoch)).unwrap()
}

#[test]
fn decayed_exposures_after_known_gaps_equal_the_closed_form() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("a", T0_MS), decaying(T0_MS))).unwrap();
    store.count_exposure(&epoch(), "a", decaying(T0_MS + HALF_LIFE_MS));
    sync(&store);
    let arm = counters_of(&store)["a"];
    assert_eq!(arm.exposures, 2);
    assert_eq!(
        (arm.decayed_exposures, arm.decayed_at_ms),
        (1.5, T0_MS + HALF_LIFE_MS)
    );
    // 2^-2 + 2^-1 at two half-lives, exact in binary floating point.
    let (exposures, rewards) = arm.decayed_as_of(T0_MS + 2 * HALF_LIFE_MS, Some(HALF_LIFE_MS));
    assert_eq!((exposures, rewards), (0.75, 0.0));
}

#[test]
fn a_reward_is_aged_from_its_assignment_for_units_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("a", T0_MS), decaying(T0_MS))).unwrap();
    store.count_exposure(&epoch(), "a", decaying(T0_MS));
    // The unit's reward arrives one half-life after its assignment: it enters at weight 1/2.
    let mut unit_op = unit_reward("e1", "u1", 1.0, T0_MS + HALF_LIFE_MS);
    unit_op.half_life_ms = Some(HALF_LIFE_MS);
    unit_op.window_ms = 30 * DAY_MS;
    // The token's arrives two half-lives after it was issued: weight 1/4.
    let mut token_op = token_reward("e2", "t1", "a", T0_MS, 1.0, T0_MS + 2 * HALF_LIFE_MS);
    token_op.half_life_ms = Some(HALF_LIFE_MS);
    token_op.window_ms = 30 * DAY_MS;
    block_on(store.apply_rewards(vec![unit_op])).unwrap();
    let after_unit = counters_of(&store)["a"];
    assert_eq!(
        (after_unit.decayed_exposures, after_unit.decayed_reward_sum),
        (1.0, 0.5),
        "both exposures at half weight, the reward at half weight"
    );
    block_on(store.apply_rewards(vec![token_op])).unwrap();
    let arm = counters_of(&store)["a"];
    assert_eq!(raw(&arm), (2, 2.0));
    assert_eq!(arm.decayed_at_ms, T0_MS + 2 * HALF_LIFE_MS);
    // N: 2 · 1/4. R: 1/2 decayed once more, plus 1/4.
    assert_eq!((arm.decayed_exposures, arm.decayed_reward_sum), (0.5, 0.5));
}

#[test]
fn a_lagging_clock_never_makes_decayed_values_grow() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rng = StdRng::seed_from_u64(0x5EED_0DEC);
    // Exposures at shuffled times: the stored sum, as of the latest time, must be the closed
    // form Σ 2^(−(latest − tᵢ)/h), whatever order the clocks arrived in.
    let times: Vec<u64> = (0..60)
        .map(|_| T0_MS + rng.random_range(0..8 * HALF_LIFE_MS))
        .collect();
    let mut previous = 0.0;
    let mut latest = 0;
    for &at in &times {
        store.count_exposure(&epoch(), "a", decaying(at));
        sync(&store);
        latest = latest.max(at);
        let arm = counters_of(&store)["a"];
        assert_eq!(arm.decayed_at_ms, latest);
        // One new exposure adds at most 1 to the value at the reference time.
        assert!(arm.decayed_exposures <= previous + 1.0);
        assert!(arm.decayed_exposures <= arm.exposures as f64);
        previous = arm.decayed_as_of(latest, Some(HALF_LIFE_MS)).0;
    }
    let closed_form: f64 = times
        .iter()
        .map(|&at| 2f64.powf(-((latest - at) as f64) / HALF_LIFE_MS as f64))
        .sum();
    let arm = counters_of(&store)["a"];
    assert!(
        (arm.decayed_exposures - closed_form).abs() <= 1e-12 * closed_form,
        "{} vs {closed_form}",
        arm.decayed_exposures
    );
    // A read with a clock behind the reference time sees the stored value, not more.
    assert_eq!(
        arm.decayed_as_of(T0_MS, Some(HALF_LIFE_MS)).0,
        arm.decayed_exposures
    );
    // A reward whose clock lags its own assignment still weighs at most its exposure.
    block_on(store.insert_sticky(&epoch(), "late", record("b", latest), decaying(latest))).unwrap();
    let mut lagging = unit_reward("e1", "late", 1.0, latest - HALF_LIFE_MS);
    lagging.half_life_ms = Some(HALF_LIFE_MS);
    block_on(store.apply_rewards(vec![lagging])).unwrap();
    let arm = counters_of(&store)["b"];
    assert_eq!(arm.decayed_at_ms, latest);
    assert_eq!((arm.decayed_exposures, arm.decayed_reward_sum), (1.0, 0.5));
}

#[test]
fn without_a_half_life_the_decayed_counters_equal_the_raw_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rng = StdRng::seed_from_u64(0x5EED_0000);
    let mut ops = Vec::new();
    for unit in 0..40u64 {
        let now = T0_MS + unit * 1000;
        let variant = ["a", "b"][rng.random_range(0..2usize)];
        let unit = format!("u{unit}");
        block_on(store.insert_sticky(&epoch(), &unit, record(variant, now), tally(now))).unwrap();
        store.count_exposure(&epoch(), variant, tally(now));
        let reward = rng.random_range(0.0..1.0);
        ops.push(unit_reward(&format!("e{unit}"), &unit, reward, now + 5));
    }
    block_on(store.apply_rewards(ops)).unwrap();
    for (variant, arm) in counters_of(&store) {
        assert_eq!(arm.decayed_exposures, arm.exposures as f64, "arm {variant}");
        // Same additions in the same order: bit for bit.
        assert_eq!(
            arm.decayed_reward_sum.to_bits(),
            arm.reward_sum.to_bits(),
            "arm {variant}"
        );
        assert_eq!(
            arm.decayed_as_of(T0_MS + 100 * DAY_MS, None),
            (arm.exposures as f64, arm.reward_sum)
        );
    }
}

#[test]
fn expected_exposures_sum_the_allocations_handed_in_and_losers_add_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let split = [("a", 0.25), ("b", 0.75)];
    for unit in ["u1", "u2"] {
        let tally = tally_with(T0_MS, None, &split);
        block_on(store.insert_sticky(&epoch(), unit, record("a", T0_MS), tally)).unwrap();
    }
    let expected = |store: &SledStore| {
        let counters = counters_of(store);
        let of = |variant: &str| counters.get(variant).map_or(0.0, |c| c.expected_exposures);
        (of("a"), of("b"), of("c"))
    };
    assert_eq!(expected(&store), (0.5, 1.5, 0.0));
    // A second insert for the same unit loses and adds nothing, whatever it carries.
    let loser = tally_with(T0_MS, None, &[("c", 1.0)]);
    let (_, inserted) =
        block_on(store.insert_sticky(&epoch(), "u1", record("c", T0_MS), loser)).unwrap();
    assert!(!inserted);
    assert_eq!(expected(&store), (0.5, 1.5, 0.0));
    // An allocation off by a constant factor is scaled to one exposure; an unusable one
    // credits the exposed arm.
    store.count_exposure(
        &epoch(),
        "b",
        tally_with(T0_MS, None, &[("a", 1.0), ("b", 1.0)]),
    );
    store.count_exposure(&epoch(), "c", tally_with(T0_MS, None, &[("a", f64::NAN)]));
    store.count_exposure(&epoch(), "c", tally(T0_MS));
    sync(&store);
    assert_eq!(expected(&store), (1.0, 2.0, 2.0));
    let counters = counters_of(&store);
    let exposures: u64 = counters.values().map(|arm| arm.exposures).sum();
    assert_eq!(exposures, 5);
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn racing_inserts_add_the_allocation_once_per_unit() {
    const UNITS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let split = [("a", 0.25), ("b", 0.75)];
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let store = &store;
            scope.spawn(move || {
                let variant = ["a", "b"][thread % 2];
                let inserts: Vec<_> = (0..UNITS)
                    .map(|unit| {
                        let tally = tally_with(T0_MS, None, &split);
                        let record = record(variant, T0_MS);
                        store.insert_sticky(&epoch(), &format!("u{unit}"), record, tally)
                    })
                    .collect();
                block_on(async {
                    for insert in inserts {
                        insert.await.unwrap();
                    }
                });
            });
        }
    });
    let counters = counters_of(&store);
    // Quarters are exact in binary, so the sums are too.
    assert_eq!(counters["a"].expected_exposures, UNITS as f64 * 0.25);
    assert_eq!(counters["b"].expected_exposures, UNITS as f64 * 0.75);
    let exposures: u64 = counters.values().map(|arm| arm.exposures).sum();
    assert_eq!(exposures, UNITS as u64);
}

#[test]
fn started_ms_is_set_once_by_the_first_write_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let by_token = Epoch {
        revision: 2,
        ..epoch()
    };
    {
        let store = open(dir.path());
        assert_eq!(info_of(&store, &epoch()), EpochInfo::default());
        // A decision and history carry no evidence, so they do not start the epoch.
        block_on(store.record_decision(&epoch(), decision("none yet", 1))).unwrap();
        block_on(store.append_history(&epoch(), point(T0_MS - 10, "a"))).unwrap();
        assert_eq!(info_of(&store, &epoch()).started_ms, None);
        store.count_exposure(&epoch(), "a", tally(T0_MS + 5));
        sync(&store);
        assert_eq!(info_of(&store, &epoch()).started_ms, Some(T0_MS + 5));
        // Later writes, even with an earlier clock, leave it alone.
        block_on(store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS))).unwrap();
        store.count_exposure(&epoch(), "a", tally(T0_MS + 99));
        sync(&store);
        assert_eq!(info_of(&store, &epoch()).started_ms, Some(T0_MS + 5));
        // An epoch whose first write is a token reward starts at that reward's arrival.
        let mut op = token_reward("e1", "t1", "a", T0_MS, 1.0, T0_MS + 7);
        op.epoch = by_token.clone();
        block_on(store.apply_rewards(vec![op])).unwrap();
        assert_eq!(info_of(&store, &by_token).started_ms, Some(T0_MS + 7));
        // A rejected reward writes nothing, so it starts nothing.
        let mut rejected = unit_reward("e2", "nobody", 1.0, T0_MS);
        rejected.epoch.revision = 3;
        block_on(store.apply_rewards(vec![rejected])).unwrap();
        let third = Epoch {
            revision: 3,
            ..epoch()
        };
        assert_eq!(info_of(&store, &third), EpochInfo::default());
    }
    let store = open(dir.path());
    let info = info_of(&store, &epoch());
    assert_eq!(info.started_ms, Some(T0_MS + 5));
    assert_eq!(info.decision, Some(decision("none yet", 1)));
    assert_eq!(info_of(&store, &by_token).started_ms, Some(T0_MS + 7));
}

#[test]
fn record_decision_first_wins_across_racing_callers_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let held = {
        let store = open(dir.path());
        let answers: Vec<crate::store::Decision> = std::thread::scope(|scope| {
            let callers: Vec<_> = (0..8)
                .map(|caller| {
                    let store = &store;
                    scope.spawn(move || {
                        let decided = decision(&format!("v{caller}"), caller);
                        block_on(store.record_decision(&epoch(), decided)).unwrap()
                    })
                })
                .collect();
            callers
                .into_iter()
                .map(|caller| caller.join().unwrap())
                .collect()
        });
        assert!(
            answers.windows(2).all(|pair| pair[0] == pair[1]),
            "{answers:?}"
        );
        assert_eq!(
            info_of(&store, &epoch()).decision.as_ref(),
            Some(&answers[0])
        );
        let again = block_on(store.record_decision(&epoch(), decision("other", 99)));
        assert_eq!(again.unwrap(), answers[0]);
        answers[0].clone()
    };
    let store = open(dir.path());
    assert_eq!(info_of(&store, &epoch()).decision, Some(held.clone()));
    let later = block_on(store.record_decision(&epoch(), decision("reversed", 100)));
    assert_eq!(later.unwrap(), held);
    let other = Epoch {
        revision: 2,
        ..epoch()
    };
    assert_eq!(
        block_on(store.record_decision(&other, decision("b", 3))).unwrap(),
        decision("b", 3),
        "each epoch has its own decision"
    );
}

#[test]
fn history_appends_ranges_limits_and_replaces_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let other = Epoch {
        revision: 2,
        ..epoch()
    };
    let at = |i: u64| T0_MS + i * 1000;
    {
        let store = open(dir.path());
        for i in [3, 1, 2, 256] {
            block_on(store.append_history(&epoch(), point(at(i), &i.to_string()))).unwrap();
        }
        block_on(store.append_history(&epoch(), point(at(2), "two"))).unwrap();
        block_on(store.append_history(&other, point(at(1), "elsewhere"))).unwrap();
        block_on(store.append_history(&other, point(0, "at zero"))).unwrap();
    }
    let store = open(dir.path());
    let history =
        |epoch: &Epoch, since, limit| block_on(store.history(epoch, since, limit)).unwrap();
    let all = vec![
        point(at(1), "1"),
        point(at(2), "two"),
        point(at(3), "3"),
        point(at(256), "256"),
    ];
    assert_eq!(history(&epoch(), 0, 100), all);
    assert_eq!(
        history(&epoch(), at(2), 100),
        all[1..].to_vec(),
        "since is inclusive"
    );
    assert_eq!(history(&epoch(), at(2) + 1, 100), all[2..].to_vec());
    assert_eq!(history(&epoch(), 0, 2), all[..2].to_vec());
    assert_eq!(history(&epoch(), 0, 0), Vec::new());
    assert_eq!(history(&epoch(), u64::MAX, 10), Vec::new());
    assert_eq!(
        history(&other, 0, 10),
        vec![point(0, "at zero"), point(at(1), "elsewhere")]
    );
    let never = Epoch {
        experiment: "never".to_owned(),
        revision: 1,
    };
    assert_eq!(history(&never, 0, 10), Vec::new());
}

#[test]
fn the_audit_is_clean_after_a_workload_using_decay_allocations_decisions_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_A0D1);
    let variants = ["a", "b", "c"];
    {
        let store = open(dir.path());
        let mut now = T0_MS;
        for round in 0..30u64 {
            let weights: Vec<f64> = (0..3).map(|_| rng.random_range(0.01..1.0)).collect();
            let total: f64 = weights.iter().sum();
            let split: Vec<(&str, f64)> = variants
                .iter()
                .zip(&weights)
                .map(|(variant, weight)| (*variant, weight / total))
                .collect();
            let mut inserts = Vec::new();
            for _ in 0..20 {
                let tally = tally_with(now, Some(HALF_LIFE_MS), &split);
                let variant = variants[rng.random_range(0..3usize)];
                if rng.random_bool(0.5) {
                    let unit = format!("u{}", rng.random_range(0..200u32));
                    inserts.push(store.insert_sticky(&epoch(), &unit, record(variant, now), tally));
                } else {
                    store.count_exposure(&epoch(), variant, tally);
                }
            }
            let ops: Vec<RewardOp> = (0..10)
                .map(|_| {
                    let event_id = format!("e{}", rng.random_range(0..400u32));
                    let reward = rng.random_range(0.0..=1.0);
                    let at = now + rng.random_range(0..DAY_MS);
                    let mut op = if rng.random_bool(0.5) {
                        let unit = format!("u{}", rng.random_range(0..200u32));
                        unit_reward(&event_id, &unit, reward, at)
                    } else {
                        let token = format!("t{}", rng.random_range(0..100u32));
                        let variant = variants[rng.random_range(0..3usize)];
                        token_reward(&event_id, &token, variant, now, reward, at)
                    };
                    op.half_life_ms = Some(HALF_LIFE_MS);
                    op
                })
                .collect();
            let rewards = store.apply_rewards(ops);
            block_on(async {
                for insert in inserts {
                    insert.await.unwrap();
                }
                rewards.await.unwrap();
            });
            block_on(store.append_history(&epoch(), point(now, &round.to_string()))).unwrap();
            if round == 20 {
                block_on(store.record_decision(&epoch(), decision("a", now))).unwrap();
            }
            now += DAY_MS / 3;
        }
        block_on(store.expire(now + 60 * DAY_MS)).unwrap();
        let report = store.audit().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((report.epoch_records, report.history_points), (1, 30));
        for (variant, arm) in counters_of(&store) {
            assert!(
                arm.decayed_exposures <= arm.exposures as f64,
                "arm {variant}"
            );
            assert!(arm.decayed_reward_sum <= arm.reward_sum, "arm {variant}");
        }
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let counters = counters_of(&store);
    let exposures: u64 = counters.values().map(|arm| arm.exposures).sum();
    let expected: f64 = counters.values().map(|arm| arm.expected_exposures).sum();
    assert!(
        (expected - exposures as f64).abs() < 1e-9,
        "{expected} vs {exposures}"
    );
}

#[test]
fn the_audit_detects_expected_exposures_that_do_not_add_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.count_exposure(
            &epoch(),
            "a",
            tally_with(T0_MS, None, &[("a", 0.5), ("b", 0.5)]),
        );
        sync(&store);
        assert!(store.audit().unwrap().is_clean());
    }
    {
        let db = raw_db(dir.path());
        let key = keys::epoch_key(keys::KIND_ARM, &epoch(), "b");
        let mut arm = codec::decode_arm(&db.get(&key).unwrap().unwrap()).unwrap();
        arm.expected_exposures = 0.0;
        db.insert(key, codec::encode_arm(&arm)).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert!(report.mismatches.is_empty(), "N and R still agree");
    assert_eq!(
        report.expectation_mismatches,
        vec![ExpectationMismatch {
            epoch: epoch(),
            exposures: 1,
            expected_exposures: 0.5,
        }]
    );
}

#[test]
fn corrupt_epoch_and_history_records_are_corrupt_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.append_history(&epoch(), point(T0_MS, "ok"))).unwrap();
        let bad_key = keys::history_key(&epoch(), T0_MS + 1);
        store
            .shared
            .sled()
            .unwrap()
            .insert(bad_key, vec![0x01, b'{'])
            .unwrap();
        assert!(matches!(
            block_on(store.history(&epoch(), 0, 10)),
            Err(StoreError::Corrupt(_))
        ));
        // Points before the corrupt one still read.
        assert_eq!(block_on(store.history(&epoch(), 0, 1)).unwrap().len(), 1);
        assert!(matches!(store.audit(), Err(StoreError::Corrupt(_))));
        // A history key of the wrong length (a stray write) is corrupt too.
        let mut short_key = keys::history_key(&epoch(), T0_MS + 1);
        short_key.pop();
        store
            .shared
            .sled()
            .unwrap()
            .remove(keys::history_key(&epoch(), T0_MS + 1))
            .unwrap();
        store
            .shared
            .sled()
            .unwrap()
            .insert(short_key, vec![0x01, b'1'])
            .unwrap();
        assert!(matches!(store.audit(), Err(StoreError::Corrupt(_))));
    }
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = raw_db(dir.path());
        db.insert(keys::epoch_info_key(&epoch()), vec![0x03, 0x80])
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}
