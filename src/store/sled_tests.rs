//! Behaviour of [`SledStore`] through the [`Store`] trait: set-if-absent, at-most-once
//! rewards, retention, persistence across reopen, secrets, shutdown.

use std::collections::HashMap;

use super::*;
use crate::store::RewardOutcome::{
    AlreadyRewarded, Applied, Duplicate, OutsideWindow, TimestampBeforeAssignment, UnitNotAssigned,
};
use crate::store::expiry_index::MAX_RETENTION_LAG_MS;
use crate::store::test_support::*;

fn applied(variant: &str) -> RewardOutcome {
    Applied {
        variant: variant.to_owned(),
    }
}

fn counters_of(store: &SledStore) -> HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

#[test]
fn insert_sticky_keeps_the_first_record_and_never_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = record("control", T0_MS);
    let (held, inserted) =
        block_on(store.insert_sticky(&epoch(), "u1", first.clone(), tally(T0_MS))).unwrap();
    assert_eq!((held, inserted), (first.clone(), true));
    let (held, inserted) =
        block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS + 5), tally(T0_MS)))
            .unwrap();
    assert_eq!((held, inserted), (first.clone(), false));
    assert_eq!(block_on(store.sticky(&epoch(), "u1")).unwrap(), Some(first));
    assert_eq!(block_on(store.sticky(&epoch(), "u2")).unwrap(), None);
    assert_eq!(counters_of(&store)["control"].exposures, 1);
    assert!(!counters_of(&store).contains_key("bold"));
}

#[test]
fn racing_inserts_from_eight_threads_have_exactly_one_winner_per_unit() {
    const UNITS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let results: Vec<Vec<(StickyRecord, bool)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let store = &store;
                scope.spawn(move || {
                    let variant = format!("v{thread}");
                    let futures: Vec<_> = (0..UNITS)
                        .map(|unit| {
                            store.insert_sticky(
                                &epoch(),
                                &format!("u{unit}"),
                                record(&variant, T0_MS),
                                tally(T0_MS),
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
        let winners: Vec<_> = results.iter().filter(|held| held[unit].1).collect();
        assert_eq!(
            winners.len(),
            1,
            "unit u{unit} has {} winners",
            winners.len()
        );
        let winner = &winners[0][unit].0;
        assert!(
            results.iter().all(|held| &held[unit].0 == winner),
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
    let total: u64 = counters.values().map(|arm| arm.exposures).sum();
    assert_eq!(total, UNITS as u64);
    for (variant, wins) in wins_by_variant {
        assert_eq!(counters[&variant].exposures, wins, "arm {variant}");
    }
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn sticky_assignment_and_counters_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let kept = record("bold", T0_MS);
    {
        let store = open(dir.path());
        block_on(store.insert_sticky(&epoch(), "u\0/ü", kept.clone(), tally(T0_MS))).unwrap();
        block_on(store.apply_rewards(vec![unit_reward("e1", "u\0/ü", 0.75, T0_MS + 1)])).unwrap();
    }
    let store = open(dir.path());
    let expected = StickyRecord {
        reward: Some(0.75),
        rewarded_ms: Some(T0_MS + 1),
        ..kept
    };
    assert_eq!(
        block_on(store.sticky(&epoch(), "u\0/ü")).unwrap(),
        Some(expected)
    );
    assert_eq!(raw(&counters_of(&store)["bold"]), (1, 0.75));
}

#[test]
fn duplicate_event_id_is_recognised_also_after_reopen_and_across_revisions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS)))
            .unwrap();
        let outcomes = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]));
        assert_eq!(outcomes.unwrap(), vec![applied("control")]);
        let retry = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS + 9)]));
        assert_eq!(retry.unwrap(), vec![Duplicate]);
    }
    let store = open(dir.path());
    let retry = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS + 10)]));
    assert_eq!(retry.unwrap(), vec![Duplicate]);
    let mut next_revision = unit_reward("e1", "u1", 1.0, T0_MS + 11);
    next_revision.epoch.revision = 2;
    assert_eq!(
        block_on(store.apply_rewards(vec![next_revision])).unwrap(),
        vec![Duplicate]
    );
    assert_eq!(counters_of(&store)["control"].reward_sum, 1.0);
}

#[test]
fn the_same_event_id_twice_in_one_request_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))).unwrap();
    block_on(store.insert_sticky(&epoch(), "u2", record("control", T0_MS), tally(T0_MS))).unwrap();
    let ops = vec![
        unit_reward("e1", "u1", 1.0, T0_MS),
        unit_reward("e1", "u2", 1.0, T0_MS),
    ];
    let outcomes = block_on(store.apply_rewards(ops)).unwrap();
    assert_eq!(outcomes, vec![applied("control"), Duplicate]);
    assert_eq!(counters_of(&store)["control"].reward_sum, 1.0);
    assert_eq!(
        block_on(store.sticky(&epoch(), "u2"))
            .unwrap()
            .unwrap()
            .reward,
        None
    );
}

#[test]
fn a_second_event_for_the_same_unit_is_already_rewarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))).unwrap();
    let ops = vec![
        unit_reward("e1", "u1", 0.5, T0_MS + 1),
        unit_reward("e2", "u1", 1.0, T0_MS + 2),
    ];
    assert_eq!(
        block_on(store.apply_rewards(ops)).unwrap(),
        vec![applied("bold"), AlreadyRewarded]
    );
    let later = block_on(store.apply_rewards(vec![unit_reward("e3", "u1", 1.0, T0_MS + 3)]));
    assert_eq!(later.unwrap(), vec![AlreadyRewarded]);
    assert_eq!(counters_of(&store)["bold"].reward_sum, 0.5);
}

#[test]
fn a_second_event_for_the_same_token_is_already_rewarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = token_reward("e1", "a1", "bold", T0_MS, 1.0, T0_MS + 5);
    let second = token_reward("e2", "a1", "bold", T0_MS, 1.0, T0_MS + 6);
    let other = token_reward("e3", "a2", "bold", T0_MS, 0.25, T0_MS + 6);
    let outcomes = block_on(store.apply_rewards(vec![first, second])).unwrap();
    assert_eq!(outcomes, vec![applied("bold"), AlreadyRewarded]);
    assert_eq!(
        block_on(store.apply_rewards(vec![other])).unwrap(),
        vec![applied("bold")]
    );
    assert_eq!(raw(&counters_of(&store)["bold"]), (0, 1.25));
}

#[test]
fn rewards_that_happened_after_the_window_are_outside_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))).unwrap();
    let window_end = T0_MS + 7 * DAY_MS;
    let late_unit = unit_reward("e1", "u1", 1.0, window_end + 1);
    let late_token = token_reward("e2", "a1", "control", T0_MS, 1.0, window_end + 1);
    let mut late_arrival = token_reward("e3", "a2", "control", T0_MS, 1.0, window_end);
    late_arrival.now_ms = window_end + DAY_MS; // happened in time, but its mark would be gone
    let outcomes =
        block_on(store.apply_rewards(vec![late_unit, late_token, late_arrival])).unwrap();
    assert_eq!(outcomes, vec![OutsideWindow, OutsideWindow, OutsideWindow]);
    let on_the_edge = unit_reward("e4", "u1", 1.0, window_end);
    assert_eq!(
        block_on(store.apply_rewards(vec![on_the_edge])).unwrap(),
        vec![applied("control")]
    );
}

#[test]
fn a_backdated_timestamp_neither_reopens_the_window_nor_precedes_the_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))).unwrap();
    let arrival = T0_MS + 8 * DAY_MS;
    let stamped = |mut op: RewardOp, occurred_ms: u64| {
        op.occurred_ms = Some(occurred_ms);
        op
    };
    let backdated = vec![
        stamped(unit_reward("e1", "u1", 1.0, arrival), T0_MS),
        stamped(
            token_reward("e2", "a1", "control", T0_MS, 1.0, arrival),
            T0_MS,
        ),
    ];
    assert_eq!(
        block_on(store.apply_rewards(backdated)).unwrap(),
        vec![OutsideWindow, OutsideWindow]
    );
    let skew = crate::store::MAX_CLOCK_SKEW_MS;
    let before_assignment = vec![
        stamped(unit_reward("e3", "u1", 1.0, T0_MS + 1), 0),
        stamped(
            token_reward("e4", "a2", "control", T0_MS, 1.0, T0_MS + 1),
            0,
        ),
        stamped(unit_reward("e5", "u1", 1.0, T0_MS + 1), T0_MS - skew - 1),
    ];
    assert_eq!(
        block_on(store.apply_rewards(before_assignment)).unwrap(),
        vec![TimestampBeforeAssignment; 3]
    );
    assert_eq!(raw(&counters_of(&store)["control"]), (1, 0.0));
    // A pipeline clock a little behind the server's is not a lie.
    let skewed = stamped(unit_reward("e6", "u1", 1.0, T0_MS + 1), T0_MS - skew);
    assert_eq!(
        block_on(store.apply_rewards(vec![skewed])).unwrap(),
        vec![applied("control")]
    );
}

#[test]
fn a_reward_for_an_unassigned_unit_is_unit_not_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))).unwrap();
    let mut other_revision = unit_reward("e2", "u1", 1.0, T0_MS);
    other_revision.epoch.revision = 2;
    let ops = vec![unit_reward("e1", "nobody", 1.0, T0_MS), other_revision];
    assert_eq!(
        block_on(store.apply_rewards(ops)).unwrap(),
        vec![UnitNotAssigned, UnitNotAssigned]
    );
    // A rejected event leaves no id behind: it may succeed once the unit is assigned.
    block_on(store.insert_sticky(&epoch(), "nobody", record("bold", T0_MS), tally(T0_MS))).unwrap();
    let retry = block_on(store.apply_rewards(vec![unit_reward("e1", "nobody", 1.0, T0_MS)]));
    assert_eq!(retry.unwrap(), vec![applied("bold")]);
}

#[test]
fn expire_removes_old_ids_keeps_young_ones_and_never_double_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for unit in ["old", "young"] {
        block_on(store.insert_sticky(&epoch(), unit, record("control", T0_MS), tally(T0_MS)))
            .unwrap();
    }
    let old = unit_reward("e-old", "old", 1.0, T0_MS);
    let young = unit_reward("e-young", "young", 1.0, T0_MS + 3 * DAY_MS);
    block_on(store.apply_rewards(vec![old.clone(), young.clone()])).unwrap();
    // e-old is kept until T0 + 7d, e-young until T0 + 10d.
    assert_eq!(block_on(store.expire(T0_MS + 7 * DAY_MS - 1)).unwrap(), 0);
    assert_eq!(block_on(store.expire(T0_MS + 8 * DAY_MS)).unwrap(), 1);
    let retry_young = RewardOp {
        now_ms: T0_MS + 8 * DAY_MS,
        ..young
    };
    assert_eq!(
        block_on(store.apply_rewards(vec![retry_young])).unwrap(),
        vec![Duplicate]
    );
    // The old id is gone; its retry (arrival time as occurred time) is now out of window.
    let retry_old = unit_reward("e-old", "old", 1.0, T0_MS + 8 * DAY_MS);
    assert_eq!(
        block_on(store.apply_rewards(vec![retry_old])).unwrap(),
        vec![OutsideWindow]
    );
    // Its original timestamp does not reopen the window: that is measured at arrival.
    let retry_stamped = RewardOp {
        now_ms: T0_MS + 8 * DAY_MS,
        occurred_ms: Some(T0_MS),
        ..old
    };
    assert_eq!(
        block_on(store.apply_rewards(vec![retry_stamped])).unwrap(),
        vec![OutsideWindow]
    );
    assert_eq!(counters_of(&store)["control"].reward_sum, 2.0);
    assert_eq!(block_on(store.expire(T0_MS + 11 * DAY_MS)).unwrap(), 1);
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_commits_unit_rewards_write_two_log_values_and_all_expire_with_their_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let units: Vec<String> = (0..1000).map(|n| format!("u{n}")).collect();
    let inserts: Vec<_> = units
        .iter()
        .map(|unit| store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS)))
        .collect();
    block_on(async {
        for insert in inserts {
            insert.await.unwrap();
        }
    });
    let keys_before = store.shared.sled().unwrap().len();
    let log_values = |store: &SledStore| {
        store
            .shared
            .sled()
            .unwrap()
            .scan_prefix([keys::KIND_UNIT_LOG])
            .count()
    };
    let log_values_before = log_values(&store);
    let ops = units
        .iter()
        .enumerate()
        .map(|(n, unit)| unit_reward(&format!("e{n}"), unit, 1.0, T0_MS + n as u64))
        .collect();
    let outcomes = block_on(store.apply_rewards(ops)).unwrap();
    assert_all_applied(&outcomes);
    // Since store format 5 the credited records are entries of 2 KiB unit-log values
    // (`unit_log`; ~40 bytes each in format 5, ~10 here in format 6), since format 3 the ids are four event-log values of up to 256 digests
    // (`event_log`), not a key each, and the one other new key is the delay bin all these
    // rewards fall in (delays under a minute).
    let new_log_values = log_values(&store) - log_values_before;
    assert!((3..=40).contains(&new_log_values), "{new_log_values}");
    let new_keys = store.shared.sled().unwrap().len() - keys_before - new_log_values;
    let id_values = 1000usize.div_ceil(crate::store::event_log::MAX_LOG_VALUE_DIGESTS);
    assert_eq!(
        new_keys,
        1 + id_values,
        "1000 unit rewards added {new_keys} keys"
    );
    // Deadlines T0 + 7d + 0..999 ms: all in one generation, none removed before them.
    let first_deadline = T0_MS + 7 * DAY_MS;
    assert_eq!(block_on(store.expire(first_deadline - 1)).unwrap(), 0);
    let due = crate::store::event_log::generation_due(first_deadline + 999);
    assert_eq!(
        due,
        crate::store::event_log::generation_due(first_deadline),
        "one generation"
    );
    let removed = block_on(store.expire(due)).unwrap();
    assert_eq!(removed, 1000);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.event_ids, 0);
    assert_eq!(
        store.shared.sled().unwrap().len(),
        keys_before + 1 + new_log_values,
        "no index value left behind (the delay bin and the unit log stay)"
    );
}

#[test]
fn expired_token_marks_fold_their_reward_and_keep_the_audit_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mark_expiry = T0_MS + 7 * DAY_MS + crate::store::TOKEN_MARK_SLACK_MS;
    {
        let store = open(dir.path());
        block_on(store.count_exposure_then_sync(&epoch(), "bold"));
        let op = token_reward("e1", "a1", "bold", T0_MS, 0.5, T0_MS + 1);
        assert_eq!(
            block_on(store.apply_rewards(vec![op])).unwrap(),
            vec![applied("bold")]
        );
        assert_eq!(
            block_on(store.expire(mark_expiry - 1)).unwrap(),
            1,
            "only the event id"
        );
        assert_eq!(
            block_on(store.expire(mark_expiry)).unwrap(),
            0,
            "the mark's index value is due at the next bucket"
        );
        assert_eq!(
            block_on(store.expire(mark_expiry + MAX_RETENTION_LAG_MS)).unwrap(),
            1,
            "then the mark"
        );
        let report = store.audit().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.live_token_marks, 0);
        assert_eq!(raw(&counters_of(&store)["bold"]), (1, 0.5));
        // A retry whose own clock lags the expiry watermark is still refused.
        let lagging = token_reward("e9", "a1", "bold", T0_MS, 0.5, T0_MS + 2);
        assert_eq!(
            block_on(store.apply_rewards(vec![lagging.clone()])).unwrap(),
            vec![OutsideWindow]
        );
    }
    let store = open(dir.path());
    assert!(store.audit().unwrap().is_clean());
    assert_eq!(raw(&counters_of(&store)["bold"]), (1, 0.5));
    let lagging = token_reward("e9", "a1", "bold", T0_MS, 0.5, T0_MS + 2);
    assert_eq!(
        block_on(store.apply_rewards(vec![lagging])).unwrap(),
        vec![OutsideWindow]
    );
}

#[test]
fn per_request_exposures_are_counted_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for _ in 0..4 {
            store.count_exposure(&epoch(), "control", tally(T0_MS));
        }
        block_on(store.count_exposure_then_sync(&epoch(), "bold"));
        assert_eq!(counters_of(&store)["control"].exposures, 4);
        assert_eq!(counters_of(&store)["bold"].exposures, 1);
    }
    let store = open(dir.path());
    assert_eq!(counters_of(&store)["control"].exposures, 4);
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_burst_of_per_request_exposures_shares_a_few_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let before = store.flush_count();
    for _ in 0..5_000 {
        store.count_exposure(&epoch(), "control", tally(T0_MS));
    }
    block_on(store.count_exposure_then_sync(&epoch(), "bold"));
    assert_eq!(counters_of(&store)["control"].exposures, 5_000);
    // One wake-up per empty queue and a 10 ms linger: a burst folds into a handful of
    // commits, not one per exposure (a machine slow enough to need 50 would be 100× slower).
    let commits = store.flush_count() - before;
    assert!(commits < 50, "{commits} commits for 5,001 exposures");
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_request_that_meets_a_corrupt_record_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "good", record("control", T0_MS), tally(T0_MS)))
        .unwrap();
    // The delay bin the second reward would be counted in is corrupt.
    let bad_key = crate::store::sled_delay::delay_bin_key(&epoch(), "broken", T0_MS, T0_MS);
    store
        .shared
        .sled()
        .unwrap()
        .insert(bad_key, vec![0xFF, 0x00, 0x13])
        .unwrap();
    let ops = vec![
        unit_reward("e1", "good", 1.0, T0_MS),
        token_reward("e2", "a2", "broken", T0_MS, 1.0, T0_MS),
    ];
    assert!(matches!(
        block_on(store.apply_rewards(ops)),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(store.audit(), Err(StoreError::Corrupt(_))));
    // The good half of the failed request was not applied; the store keeps working.
    assert_eq!(
        block_on(store.sticky(&epoch(), "good"))
            .unwrap()
            .unwrap()
            .reward,
        None
    );
    let retry = block_on(store.apply_rewards(vec![unit_reward("e1", "good", 1.0, T0_MS)]));
    assert_eq!(retry.unwrap(), vec![applied("control")]);
}

#[test]
fn writes_after_shutdown_fail_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))).unwrap();
    store.count_exposure(&epoch(), "control", tally(T0_MS));
    block_on(store.shutdown()).unwrap();
    // Queued work was committed before the writer stopped.
    assert_eq!(counters_of(&store)["control"].exposures, 2);
    let insert =
        block_on(store.insert_sticky(&epoch(), "u2", record("control", T0_MS), tally(T0_MS)));
    assert!(matches!(insert, Err(StoreError::Closed)));
    let rewards = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]));
    assert!(matches!(rewards, Err(StoreError::Closed)));
    assert!(matches!(
        block_on(store.expire(T0_MS)),
        Err(StoreError::Closed)
    ));
    store.count_exposure(&epoch(), "control", tally(T0_MS)); // dropped, never a panic
    block_on(store.shutdown()).unwrap();
    // Reads keep working, and the audit runs directly on the database.
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1")).unwrap(),
        Some(record("control", T0_MS))
    );
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_secret_is_created_once_shared_by_racing_callers_and_kept_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = open(dir.path());
        let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let callers: Vec<_> = (0u8..4)
                .map(|caller| {
                    let store = &store;
                    scope.spawn(move || {
                        block_on(store.secret("token-key", Box::new(move || vec![caller; 32])))
                            .unwrap()
                    })
                })
                .collect();
            callers
                .into_iter()
                .map(|caller| caller.join().unwrap())
                .collect()
        });
        assert!(
            secrets.windows(2).all(|pair| pair[0] == pair[1]),
            "{secrets:?}"
        );
        let other = block_on(store.secret("other", Box::new(|| vec![9]))).unwrap();
        assert_eq!(other, vec![9]);
        secrets[0].clone()
    };
    let store = open(dir.path());
    let again = block_on(store.secret(
        "token-key",
        Box::new(|| panic!("an existing secret is never re-made")),
    ));
    assert_eq!(again.unwrap(), first);
}

#[test]
fn apply_rewards_with_no_ops_answers_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(
        block_on(store.apply_rewards(Vec::new())).unwrap(),
        Vec::new()
    );
    assert_eq!(block_on(store.expire(0)).unwrap(), 0);
    assert_eq!(
        store.flush_count(),
        0,
        "nothing changed, so nothing was flushed"
    );
}

#[test]
fn opening_a_directory_held_by_a_live_store_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _live = open(dir.path());
    match SledStore::open(dir.path()) {
        Err(StoreError::Io(message)) => assert!(message.contains("in use"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("two stores opened one directory"),
    }
}

impl SledStore {
    /// Counts one per-request exposure and waits until it is committed (commands are
    /// processed in order, so any later awaited write proves the earlier ones durable).
    async fn count_exposure_then_sync(&self, epoch: &Epoch, variant: &str) {
        self.count_exposure(epoch, variant, tally(T0_MS));
        self.expire(0).await.unwrap();
    }
}
