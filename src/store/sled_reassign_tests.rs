//! Re-assignment away from a retired variant in [`SledStore`]: compare-and-set, a new exposure
//! of the new arm, unchanged history of the old one, and counters that still equal what the
//! records imply (moved-away counts), across races, rewards, reopen and crashes.

use std::collections::HashMap;
use std::task::{Context, Waker};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use futures_util::FutureExt as _;

use super::*;
use crate::store::CounterMismatch;
use crate::store::RewardOutcome::{AlreadyRewarded, Applied};
use crate::store::test_support::*;

const HALF_LIFE_MS: u64 = 14 * DAY_MS;

fn counters_of(store: &SledStore) -> HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

fn is_pending<T>(future: &mut StoreFuture<T>) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    future.as_mut().poll(&mut context).is_pending()
}

fn insert(store: &SledStore, unit: &str, variant: &str, at_ms: u64) {
    let (_, inserted) =
        block_on(store.insert_sticky(&epoch(), unit, record(variant, at_ms), tally(at_ms)))
            .unwrap();
    assert!(inserted, "{unit} was already assigned");
}

fn reassign(
    store: &SledStore,
    unit: &str,
    from: &str,
    to: &str,
    at_ms: u64,
) -> Option<(StickyRecord, bool)> {
    block_on(store.reassign_sticky(&epoch(), unit, from, record(to, at_ms), tally(at_ms))).unwrap()
}

fn applied(variant: &str) -> RewardOutcome {
    Applied {
        variant: variant.to_owned(),
    }
}

#[test]
fn reassignment_moves_the_unit_and_counts_a_new_exposure_while_the_retired_arm_keeps_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let old = record("old", T0_MS);
    block_on(store.insert_sticky(
        &epoch(),
        "u1",
        old,
        tally_with(T0_MS, Some(HALF_LIFE_MS), &[]),
    ))
    .unwrap();
    block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 0.75, T0_MS + 1)])).unwrap();
    let retired_before = counters_of(&store)["old"];

    let moved_at = T0_MS + HALF_LIFE_MS;
    let handed_in = StickyRecord {
        reward: Some(1.0),
        ..record("new", moved_at)
    };
    let allocation = [("old", 0.0), ("new", 0.75), ("calm", 0.25)];
    let new_tally = tally_with(moved_at, Some(HALF_LIFE_MS), &allocation);
    let answer =
        block_on(store.reassign_sticky(&epoch(), "u1", "old", handed_in, new_tally)).unwrap();
    let fresh = record("new", moved_at);
    assert_eq!(
        answer,
        Some((fresh.clone(), true)),
        "the new record starts without a reward"
    );
    assert_eq!(block_on(store.sticky(&epoch(), "u1")).unwrap(), Some(fresh));

    let counters = counters_of(&store);
    assert_eq!(counters["old"], retired_before, "history is not rewritten");
    assert_eq!(raw(&counters["old"]), (1, 0.75));
    let new = counters["new"];
    assert_eq!(raw(&new), (1, 0.0));
    // One exposure dated at the re-assignment: decayed N is 1 as of that moment.
    assert_eq!((new.decayed_exposures, new.decayed_at_ms), (1.0, moved_at));
    assert_eq!(new.expected_exposures, 0.75);
    assert_eq!(counters["calm"].expected_exposures, 0.25);

    // A later exposure of the new arm, one half-life on: 1·½ + 1.
    let later = moved_at + HALF_LIFE_MS;
    block_on(store.insert_sticky(
        &epoch(),
        "u2",
        record("new", later),
        tally_with(later, Some(HALF_LIFE_MS), &[]),
    ))
    .unwrap();
    assert_eq!(counters_of(&store)["new"].decayed_exposures, 1.5);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.sticky_records, 2);
}

#[test]
fn a_second_reassignment_from_the_same_variant_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "old", T0_MS);
    let first = reassign(&store, "u1", "old", "new", T0_MS + 1);
    let moved = record("new", T0_MS + 1);
    assert_eq!(first, Some((moved.clone(), true)));
    let counters = counters_of(&store);
    let flushes = store.flush_count();
    let second = reassign(&store, "u1", "old", "calm", T0_MS + 2);
    assert_eq!(second, Some((moved.clone(), false)));
    assert_eq!(counters_of(&store), counters);
    assert_eq!(
        store.flush_count(),
        flushes,
        "a lost compare-and-set writes nothing"
    );
    assert_eq!(block_on(store.sticky(&epoch(), "u1")).unwrap(), Some(moved));
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn racing_reassignments_from_eight_threads_have_exactly_one_winner_per_unit() {
    const UNITS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for unit in 0..UNITS {
        insert(&store, &format!("u{unit}"), "old", T0_MS);
    }
    let results: Vec<Vec<Option<(StickyRecord, bool)>>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let store = &store;
                scope.spawn(move || {
                    let variant = format!("v{thread}");
                    let futures: Vec<_> = (0..UNITS)
                        .map(|unit| {
                            store.reassign_sticky(
                                &epoch(),
                                &format!("u{unit}"),
                                "old",
                                record(&variant, T0_MS + 1),
                                tally(T0_MS + 1),
                            )
                        })
                        .collect();
                    block_on(async {
                        let mut held = Vec::new();
                        for future in futures {
                            held.push(future.await.unwrap());
                        }
                        held
                    })
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    });
    let mut wins_by_variant: HashMap<String, u64> = HashMap::new();
    for unit in 0..UNITS {
        let answers: Vec<&(StickyRecord, bool)> = results
            .iter()
            .map(|held| held[unit].as_ref().expect("every unit has a record"))
            .collect();
        let winners: Vec<_> = answers.iter().filter(|(_, won)| *won).collect();
        assert_eq!(
            winners.len(),
            1,
            "unit u{unit} has {} winners",
            winners.len()
        );
        let winner = &winners[0].0;
        assert!(
            answers.iter().all(|(held, _)| held == winner),
            "unit u{unit} disagrees"
        );
        assert_eq!(
            block_on(store.sticky(&epoch(), &format!("u{unit}")))
                .unwrap()
                .as_ref(),
            Some(winner)
        );
        *wins_by_variant.entry(winner.variant.clone()).or_default() += 1;
    }
    let counters = counters_of(&store);
    assert_eq!(
        counters["old"].exposures, UNITS as u64,
        "the retired arm keeps its N"
    );
    let moved: u64 = wins_by_variant.values().sum();
    assert_eq!(moved, UNITS as u64);
    for (variant, wins) in wins_by_variant {
        assert_eq!(counters[&variant].exposures, wins, "arm {variant}");
    }
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.sticky_records, UNITS as u64);
}

#[test]
fn a_unit_on_another_variant_is_left_alone_durable_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "durable", "control", T0_MS);
    let counters = counters_of(&store);
    assert_eq!(
        reassign(&store, "durable", "old", "new", T0_MS + 1),
        Some((record("control", T0_MS), false))
    );
    assert_eq!(counters_of(&store), counters);
    // Sent before the insert is durable, so the writer decides (same batch or the next).
    let pending_insert =
        store.insert_sticky(&epoch(), "fresh", record("control", T0_MS), tally(T0_MS));
    let pending_reassign = store.reassign_sticky(
        &epoch(),
        "fresh",
        "old",
        record("new", T0_MS + 1),
        tally(T0_MS + 1),
    );
    block_on(pending_insert).unwrap();
    assert_eq!(
        block_on(pending_reassign).unwrap(),
        Some((record("control", T0_MS), false))
    );
    let counters = counters_of(&store);
    assert_eq!(counters["control"].exposures, 2);
    assert!(!counters.contains_key("new"));
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_unit_without_a_record_has_nothing_to_reassign() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let flushes = store.flush_count();
    assert_eq!(reassign(&store, "stranger", "old", "new", T0_MS), None);
    assert_eq!(block_on(store.sticky(&epoch(), "stranger")).unwrap(), None);
    assert!(counters_of(&store).is_empty());
    assert_eq!(
        block_on(store.epoch_info(&epoch())).unwrap().started_ms,
        None
    );
    assert_eq!(store.flush_count(), flushes, "nothing was written");
}

#[test]
fn a_reward_after_reassignment_credits_the_new_arm_once_within_the_new_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "old", T0_MS);
    let first = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]));
    assert_eq!(first.unwrap(), vec![applied("old")]);
    let moved_at = T0_MS + 10 * DAY_MS;
    reassign(&store, "u1", "old", "new", moved_at);
    // 12 days after the old assignment (outside its 7-day window), 2 after the new one.
    let at = T0_MS + 12 * DAY_MS;
    let outcomes = block_on(store.apply_rewards(vec![
        unit_reward("e2", "u1", 0.5, at),
        unit_reward("e3", "u1", 0.25, at),
    ]))
    .unwrap();
    assert_eq!(outcomes, vec![applied("new"), AlreadyRewarded]);
    let counters = counters_of(&store);
    assert_eq!(raw(&counters["old"]), (1, 1.0));
    assert_eq!(raw(&counters["new"]), (1, 0.5));
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1")).unwrap(),
        Some(StickyRecord {
            reward: Some(0.5),
            rewarded_ms: Some(at),
            ..record("new", moved_at)
        })
    );
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn the_audit_counts_moved_away_units_and_flags_an_arm_whose_record_of_them_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        insert(&store, "u1", "old", T0_MS);
        insert(&store, "u2", "old", T0_MS);
        block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 0.5, T0_MS)])).unwrap();
        reassign(&store, "u1", "old", "new", T0_MS + 1);
        assert!(store.audit().unwrap().is_clean());
    }
    {
        let db = raw_db(dir.path());
        db.remove(keys::epoch_key(keys::KIND_MOVED_AWAY, &epoch(), "old"))
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    let stored = counters_of(&store)["old"];
    assert_eq!(raw(&stored), (2, 0.5));
    let expected = CounterMismatch {
        epoch: epoch(),
        variant: "old".to_owned(),
        stored,
        implied: ArmCounters {
            exposures: 1,
            ..ArmCounters::default()
        },
    };
    assert_eq!(report.mismatches, vec![expected]);
}

#[test]
fn a_reassignment_is_not_shown_before_its_commit_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "old", T0_MS);
    let before = counters_of(&store);
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    let gate = store.shared.flush_gate.lock().unwrap();
    let mut moving = store.reassign_sticky(
        &epoch(),
        "u1",
        "old",
        record("new", T0_MS + 1),
        tally(T0_MS + 1),
    );
    // Wait until the writer applied the batch to sled and is stuck before its fsync.
    while codec::decode_sticky(&sled_value(&store.shared.sled().unwrap(), &key).unwrap())
        .unwrap()
        .record
        .variant
        != "new"
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        is_pending(&mut moving),
        "the re-assignment resolved before its fsync"
    );
    // Reads answer the durable assignment at once, as a read made just before it would.
    let read = store.sticky(&epoch(), "u1").now_or_never();
    let insert_again = store
        .insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS))
        .now_or_never();
    let mut racing = store.reassign_sticky(
        &epoch(),
        "u1",
        "old",
        record("calm", T0_MS + 2),
        tally(T0_MS + 2),
    );
    assert!(is_pending(&mut racing));
    assert_eq!(
        counters_of(&store),
        before,
        "counters moved before the fsync"
    );
    drop(gate);
    let moved = record("new", T0_MS + 1);
    assert_eq!(block_on(moving).unwrap(), Some((moved.clone(), true)));
    let old = record("old", T0_MS);
    assert_eq!(
        read.expect("sticky() answers at once").unwrap(),
        Some(old.clone()),
        "a record a crash could take back was shown"
    );
    assert_eq!(
        insert_again
            .expect("insert_sticky() answers at once")
            .unwrap(),
        (old, false)
    );
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1")).unwrap(),
        Some(moved.clone())
    );
    assert_eq!(block_on(racing).unwrap(), Some((moved, false)));
    assert_eq!(counters_of(&store)["new"].exposures, 1);
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn reassignments_survive_reopen_and_keep_adding_to_the_moved_away_counts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for unit in ["u1", "u2"] {
            insert(&store, unit, "old", T0_MS);
        }
        block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 0.25, T0_MS)])).unwrap();
        reassign(&store, "u1", "old", "new", T0_MS + 1);
    }
    let store = open(dir.path());
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1")).unwrap(),
        Some(record("new", T0_MS + 1))
    );
    assert!(store.audit().unwrap().is_clean());
    // Built on the loaded moved-away count, not on zero: the audit would see 1 moved, not 2.
    block_on(store.apply_rewards(vec![unit_reward("e2", "u2", 0.5, T0_MS)])).unwrap();
    reassign(&store, "u2", "old", "new", T0_MS + 2);
    let counters = counters_of(&store);
    assert_eq!(raw(&counters["old"]), (2, 0.75));
    assert_eq!(raw(&counters["new"]), (2, 0.0));
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_reassignment_that_meets_a_corrupt_record_is_corrupt_and_a_corrupt_moved_away_value_stops_open()
{
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        insert(&store, "bad", "old", T0_MS);
        // The new arm's cohort bin is corrupt: the request fails half-way.
        let bin = crate::store::sled_delay::cohort_key(&epoch(), "new", T0_MS);
        store
            .shared
            .sled()
            .unwrap()
            .insert(bin, vec![0xF0])
            .unwrap();
        assert!(matches!(
            block_on(store.reassign_sticky(
                &epoch(),
                "bad",
                "old",
                record("new", T0_MS),
                tally(T0_MS)
            )),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(counters_of(&store)["old"].exposures, 1);
        assert!(!counters_of(&store).contains_key("new"));
        assert_eq!(
            block_on(store.sticky(&epoch(), "bad"))
                .unwrap()
                .unwrap()
                .variant,
            "old"
        );
    }
    {
        let db = raw_db(dir.path());
        let key = keys::epoch_key(keys::KIND_MOVED_AWAY, &epoch(), "old");
        db.insert(key, vec![1, 2, 3]).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn the_audit_is_clean_after_a_workload_mixing_inserts_rewards_reassignments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_0004);
    let variants = ["old", "control", "bold"];
    // Expected counters, kept from what the store answered (inserted / moved / Applied).
    let mut expected: HashMap<String, (u64, f64)> = HashMap::new();
    let mut moved_total = 0;
    let mut now = T0_MS;
    for session in 0..2 {
        let store = open(dir.path());
        for round in 0..20 {
            // "old" is retired halfway through: no new traffic, its units move on their visit.
            let retired = session == 1 || round >= 10;
            let live = if retired {
                &variants[1..]
            } else {
                &variants[..]
            };
            let mut inserts = Vec::new();
            let mut moves = Vec::new();
            for _ in 0..20 {
                let unit = format!("u{}", rng.random_range(0..200u32));
                let variant = live[rng.random_range(0..live.len())];
                inserts.push(store.insert_sticky(
                    &epoch(),
                    &unit,
                    record(variant, now),
                    tally(now),
                ));
                if retired && rng.random_bool(0.5) {
                    let unit = format!("u{}", rng.random_range(0..200u32));
                    let to = live[rng.random_range(0..live.len())];
                    let new = record(to, now);
                    moves.push(store.reassign_sticky(&epoch(), &unit, "old", new, tally(now)));
                }
                if rng.random_bool(0.2) {
                    store.count_exposure(&epoch(), variant, tally(now));
                    expected.entry(variant.to_owned()).or_default().0 += 1;
                }
            }
            let mut ops = Vec::new();
            for _ in 0..15 {
                let event_id = format!("e{}", rng.random_range(0..1000u32));
                let reward = f64::from(rng.random_range(0..=4u32)) / 4.0;
                let unit = format!("u{}", rng.random_range(0..200u32));
                ops.push(unit_reward(&event_id, &unit, reward, now + 1));
            }
            let rewards = store.apply_rewards(ops.clone());
            block_on(async {
                for insert in inserts {
                    let (held, inserted) = insert.await.unwrap();
                    if inserted {
                        expected.entry(held.variant).or_default().0 += 1;
                    }
                }
                for reassignment in moves {
                    if let Some((held, true)) = reassignment.await.unwrap() {
                        expected.entry(held.variant).or_default().0 += 1;
                        moved_total += 1;
                    }
                }
                for (op, outcome) in ops.iter().zip(rewards.await.unwrap()) {
                    if let RewardOutcome::Applied { variant } = outcome {
                        expected.entry(variant).or_default().1 += op.reward;
                    }
                }
            });
            now += DAY_MS / 4;
        }
        let report = store.audit().unwrap();
        assert!(report.is_clean(), "session {session}: {report:?}");
    }
    assert!(moved_total > 20, "only {moved_total} units moved");
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let counters = counters_of(&store);
    assert_eq!(counters.len(), expected.len());
    for (variant, want) in expected {
        // Quarter rewards are exact in binary, so the sums are exact too.
        assert_eq!(raw(&counters[&variant]), want, "arm {variant}");
    }
}
