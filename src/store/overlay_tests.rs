//! The overlay's layers: reads fall through request → batch → durable state / sled, and a
//! request's changes join the batch only when it finishes.

use super::*;

use crate::store::ArmCounters;
use crate::store::test_support::{decision, epoch, temp_db};

#[test]
fn reads_see_the_request_then_the_batch_then_sled() {
    let (_dir, db) = temp_db();
    db.insert(b"a", b"sled".to_vec()).unwrap();
    db.insert(b"b", b"sled".to_vec()).unwrap();
    let durable = DurableState::default();
    let mut batch = BatchState::new(1, 0);
    batch.writes.insert(b"b".to_vec(), None);
    batch.writes.insert(b"c".to_vec(), Some(b"batch".to_vec()));
    let mut txn = Txn::new(&db, &durable, &batch);
    txn.put(b"a".to_vec(), b"txn".to_vec());
    assert_eq!(txn.get(b"a").unwrap().as_deref(), Some(&b"txn"[..]));
    assert!(txn.get(b"b").unwrap().is_none());
    assert_eq!(txn.get(b"c").unwrap().as_deref(), Some(&b"batch"[..]));
    assert_eq!(txn.get(b"d").unwrap().as_deref(), None);
    db.insert(b"e", b"sled".to_vec()).unwrap();
    assert_eq!(txn.get(b"e").unwrap().as_deref(), Some(&b"sled"[..]));
}

#[test]
fn a_dropped_request_leaves_the_batch_untouched_and_a_finished_one_merges() {
    let (_dir, db) = temp_db();
    let durable = DurableState::default();
    let mut batch = BatchState::new(1, 0);
    {
        let mut txn = Txn::new(&db, &durable, &batch);
        txn.put(b"x".to_vec(), b"1".to_vec());
        txn.update_arm(&epoch(), "a", |arm| arm.counters.exposures += 1);
        txn.index_expiry(b"x", 7);
    }
    assert!(batch.writes.is_empty() && batch.arms.is_empty() && batch.expiries.is_empty());
    let mut txn = Txn::new(&db, &durable, &batch);
    txn.update_arm(&epoch(), "a", |arm| arm.counters.exposures += 1);
    txn.set_expired_through(40);
    txn.index_expiry(b"y", 9);
    let changes = txn.finish();
    batch.merge(changes);
    assert_eq!(batch.expiries.len(), 1);
    let txn = Txn::new(&db, &durable, &batch);
    assert_eq!(txn.arm(&epoch(), "a").counters.exposures, 1);
    assert_eq!(txn.expired_through(), 40);
}

#[test]
fn arm_updates_build_on_the_durable_state() {
    let (_dir, db) = temp_db();
    let mut durable = DurableState::default();
    let state = ArmState {
        counters: ArmCounters {
            exposures: 5,
            reward_sum: 2.0,
            ..ArmCounters::default()
        },
        ..ArmState::default()
    };
    durable
        .arms
        .entry(epoch())
        .or_default()
        .insert("a".to_owned(), state);
    let batch = BatchState::new(1, 0);
    let mut txn = Txn::new(&db, &durable, &batch);
    txn.update_arm(&epoch(), "a", |arm| arm.counters.reward_sum += 0.5);
    txn.update_arm(&epoch(), "a", |arm| arm.counters.exposures += 1);
    assert_eq!(
        txn.arm(&epoch(), "a").counters,
        ArmCounters {
            exposures: 6,
            reward_sum: 2.5,
            ..ArmCounters::default()
        }
    );
    assert_eq!(txn.arm(&epoch(), "missing"), ArmState::default());
}

#[test]
fn an_arm_update_starts_from_the_batch_over_the_durable_state_for_a_new_and_a_known_epoch() {
    let (_dir, db) = temp_db();
    let arm = |exposures| ArmState {
        counters: ArmCounters {
            exposures,
            ..ArmCounters::default()
        },
        ..ArmState::default()
    };
    let mut durable = DurableState::default();
    let durable_arms = durable.arms.entry(epoch()).or_default();
    durable_arms.insert("a".to_owned(), arm(5));
    durable_arms.insert("b".to_owned(), arm(7));
    let mut batch = BatchState::new(1, 0);
    batch
        .arms
        .entry(epoch())
        .or_default()
        .insert("a".to_owned(), arm(6));
    // Each arm by itself (`update_arm`), and the epoch's arms found once (`epoch_arms`): the
    // request's layer has no map for the epoch yet, then has one without the arm.
    for found_once in [false, true] {
        let mut txn = Txn::new(&db, &durable, &batch);
        for (variant, added) in [("a", 10), ("b", 10), ("c", 10), ("a", 100)] {
            let add = |arm: &mut ArmState| arm.counters.exposures += added;
            if found_once {
                txn.epoch_arms(&epoch()).update(variant, add);
            } else {
                txn.update_arm(&epoch(), variant, add);
            }
        }
        let changes = txn.finish();
        let exposures = |variant: &str| changes.arms[&epoch()][variant].counters.exposures;
        assert_eq!(
            (exposures("a"), exposures("b"), exposures("c")),
            (116, 17, 10),
            "found once: {found_once}"
        );
        assert_eq!(
            batch.arms[&epoch()]["a"],
            arm(6),
            "the batch is left as it was"
        );
    }
}

#[test]
fn epoch_records_fall_through_the_layers_and_updates_build_on_them() {
    let (_dir, db) = temp_db();
    let mut durable = DurableState::default();
    let decided = EpochInfo {
        started_ms: Some(5),
        decision: Some(decision("bold", 5)),
    };
    durable.epochs.insert(epoch(), decided.clone());
    let mut batch = BatchState::new(1, 0);
    let other = Epoch {
        experiment: "other".to_owned(),
        revision: 1,
    };
    {
        let mut txn = Txn::new(&db, &durable, &batch);
        assert_eq!(txn.epoch_info(&epoch()), Some(&decided));
        assert_eq!(txn.epoch_info(&other), None);
        txn.update_epoch(&other, |info| info.started_ms = Some(9));
        txn.update_epoch(&other, |info| info.decision = Some(decision("other", 9)));
        batch.merge(txn.finish());
    }
    let mut txn = Txn::new(&db, &durable, &batch);
    let expected = EpochInfo {
        started_ms: Some(9),
        decision: Some(decision("other", 9)),
    };
    assert_eq!(txn.epoch_info(&other), Some(&expected));
    txn.update_epoch(&epoch(), |info| info.started_ms = Some(7));
    assert_eq!(txn.epoch_info(&epoch()).unwrap().started_ms, Some(7));
    assert_eq!(
        txn.epoch_info(&epoch()).unwrap().decision,
        decided.decision,
        "an update copies the durable record before changing it"
    );
}

#[test]
fn due_index_values_merge_layers_in_key_order_and_respect_due_times() {
    let (_dir, db) = temp_db();
    for (due, seq) in [(10, 1), (20, 1), (30, 1)] {
        db.insert(keys::expiry_key(due, seq, 0), b"sled".to_vec())
            .unwrap();
    }
    let durable = DurableState::default();
    let mut batch = BatchState::new(5, 0);
    // An earlier request of the batch finished the first value and rewrote the second.
    batch.writes.insert(keys::expiry_key(10, 1, 0), None);
    batch
        .writes
        .insert(keys::expiry_key(20, 1, 0), Some(b"rest".to_vec()));
    batch
        .writes
        .insert(keys::expiry_key(15, 2, 0), Some(b"batch".to_vec()));
    let mut txn = Txn::new(&db, &durable, &batch);
    txn.put(keys::expiry_key(20, 3, 0), b"txn".to_vec());
    txn.put(keys::expiry_key(21, 3, 0), b"late".to_vec());
    let mut seen = Vec::new();
    let mut after = None;
    while let Some((key, value)) = txn.next_due_index_value(20, after.as_deref()).unwrap() {
        seen.push((keys::parse_expiry_key(&key).unwrap(), value));
        after = Some(key);
    }
    let expected = [(15, "batch"), (20, "rest"), (20, "txn")]
        .map(|(due, value)| (due, value.as_bytes().to_vec()));
    assert_eq!(seen, expected);
    txn.remove(keys::expiry_key(15, 2, 0));
    let (first, _) = txn.next_due_index_value(30, None).unwrap().unwrap();
    assert_eq!(first, keys::expiry_key(20, 1, 0));
    assert_eq!(txn.next_due_index_value(9, None).unwrap(), None);
}
