//! Migration of a format-4 store (one sled key per sticky record) to the unit log, whole and
//! interrupted.

use super::*;
use crate::store::Store;
use crate::store::event_ids::Digester;
use crate::store::keys::KIND_UNIT_LOG;
use crate::store::test_support::*;
use crate::store::types::StickyRecord;

const UNITS: usize = 25_000;

fn credited(unit: usize) -> StickyRecord {
    let mut held = record(
        if unit.is_multiple_of(3) {
            "bold"
        } else {
            "control"
        },
        T0_MS + unit as u64,
    );
    if unit.is_multiple_of(2) {
        held.reward = Some(0.5);
        held.rewarded_ms = Some(T0_MS + 100_000);
    }
    held
}

/// A closed format-4 store in `dir` holding [`UNITS`] sticky records as keys, with the arm
/// counters those records imply (so the audit has something to agree with).
fn format_4_store(dir: &std::path::Path) {
    let db = raw_db(dir);
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(4));
    batch.insert(keys::META_EVENT_ID_KEY, &Digester::random_key());
    let mut implied: std::collections::BTreeMap<String, crate::store::ArmCounters> =
        Default::default();
    for unit in 0..UNITS {
        let held = credited(unit);
        let arm = implied.entry(held.variant.clone()).or_default();
        arm.exposures += 1;
        arm.reward_sum += held.reward.unwrap_or(0.0);
        arm.expected_exposures += 1.0;
        batch.insert(
            keys::epoch_key(KIND_STICKY, &epoch(), &format!("unit-{unit}")),
            codec::encode_sticky(&held, 1),
        );
    }
    for (variant, arm) in &implied {
        batch.insert(
            keys::epoch_key(keys::KIND_ARM, &epoch(), variant),
            codec::encode_arm(arm),
        );
    }
    db.apply_batch(batch).unwrap();
    db.flush().unwrap();
}

fn assert_every_unit_kept(dir: &std::path::Path) {
    let store = open(dir);
    for unit in 0..UNITS {
        assert_eq!(
            block_on(store.sticky(&epoch(), &format!("unit-{unit}"))).unwrap(),
            Some(credited(unit)),
            "unit-{unit}"
        );
    }
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.sticky_records, UNITS as u64);
    drop(store);
    let db = raw_db(dir);
    assert_eq!(db.scan_prefix([KIND_STICKY]).count(), 0);
    assert!(db.scan_prefix([KIND_UNIT_LOG]).count() > 0);
    assert_eq!(db.get(keys::META_MIGRATING).unwrap(), None);
    assert_eq!(
        codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap(),
        keys::STORE_FORMAT
    );
}

#[test]
fn a_format_4_store_opens_with_every_unit_moved_into_the_unit_log() {
    let dir = tempfile::tempdir().unwrap();
    format_4_store(dir.path());
    assert_every_unit_kept(dir.path());
}

#[test]
fn a_migration_cut_short_is_refused_by_format_4_and_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    format_4_store(dir.path());
    {
        let db = raw_db(dir.path());
        let mut batch = sled::Batch::default();
        batch.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT));
        batch.insert(keys::META_MIGRATING, &codec::encode_u64(0));
        db.apply_batch(batch).unwrap();
        // One batch of three moved, as if the process died there.
        resume(&db, dir.path(), 1).unwrap();
        assert_eq!(db.scan_prefix([KIND_STICKY]).count(), UNITS - MIGRATE_BATCH);
        assert!(db.get(keys::META_MIGRATING).unwrap().is_some());
        db.flush().unwrap();
        // What a format-4 build reads: the mark says 5, so it refuses the half-moved store.
        assert_eq!(
            codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap(),
            5
        );
    }
    assert_every_unit_kept(dir.path());
}
