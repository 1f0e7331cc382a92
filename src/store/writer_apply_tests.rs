//! A run of new units sharing one txn (`writer_apply`): a failing insert in the middle of the
//! run leaves nothing, and its neighbours commit whole.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::store::error::StoreError;
use crate::store::keys;
use crate::store::sled::SledStore;
use crate::store::test_support::*;
use crate::store::{ArmCounters, Store};

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
