//! Migration of a format-4 store (one sled key per sticky record) to the unit log, whole and
//! interrupted, and the upgrade of a format-5 store (unit-log values in the older layout).

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
        mark_started(&db);
        // One batch of three moved, as if the process died there.
        resume(&db, dir.path(), 1).unwrap();
        assert_eq!(db.scan_prefix([KIND_STICKY]).count(), UNITS - MIGRATE_BATCH);
        assert!(db.get(keys::META_MIGRATING).unwrap().is_some());
        db.flush().unwrap();
        // What a format-4 build reads: the mark says 6, so it refuses the half-moved store.
        assert_eq!(
            codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap(),
            6
        );
    }
    assert_every_unit_kept(dir.path());
}

/// Commits a format-5 build wrote [`UNITS`] units in, one value per `FORMAT_5_PER_VALUE`.
const FORMAT_5_PER_VALUE: usize = 40;

/// A closed format-5 store in `dir`: every unit's record in unit-log values laid out as a
/// format-5 build wrote them (unit and `codec::encode_sticky` record, both length-prefixed),
/// the odd units written twice (assigned, then credited in a later commit), the counters
/// those records imply, and the last commit's number.
fn format_5_store(dir: &std::path::Path) {
    let db = raw_db(dir);
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(5));
    batch.insert(keys::META_EVENT_ID_KEY, &Digester::random_key());
    let mut encoded_epoch = keys::epoch_key(KIND_UNIT_LOG, &epoch(), "");
    encoded_epoch.remove(0);
    let mut implied: std::collections::BTreeMap<String, crate::store::ArmCounters> =
        Default::default();
    let mut seq = 0;
    let mut write = |batch: &mut sled::Batch, units: &[(usize, StickyRecord)]| {
        seq += 1;
        let mut value = Vec::new();
        for (unit, held) in units {
            keys::put_bytes(&mut value, format!("unit-{unit}").as_bytes());
            keys::put_bytes(&mut value, &codec::encode_sticky(held, seq));
        }
        batch.insert(
            crate::store::unit_log::log_key(&encoded_epoch, seq, 0),
            value,
        );
        seq
    };
    let assigned: Vec<_> = (0..UNITS)
        .map(|unit| {
            let mut held = credited(unit);
            held.reward = None;
            held.rewarded_ms = None;
            (unit, held)
        })
        .collect();
    for chunk in assigned.chunks(FORMAT_5_PER_VALUE) {
        write(&mut batch, chunk);
    }
    let rewarded: Vec<_> = (0..UNITS)
        .filter(|unit| unit.is_multiple_of(2))
        .map(|unit| (unit, credited(unit)))
        .collect();
    let mut last = 0;
    for chunk in rewarded.chunks(FORMAT_5_PER_VALUE) {
        last = write(&mut batch, chunk);
    }
    for unit in 0..UNITS {
        let held = credited(unit);
        let arm = implied.entry(held.variant.clone()).or_default();
        arm.exposures += 1;
        arm.reward_sum += held.reward.unwrap_or(0.0);
        arm.expected_exposures += 1.0;
    }
    for (variant, arm) in &implied {
        batch.insert(
            keys::epoch_key(keys::KIND_ARM, &epoch(), variant),
            codec::encode_arm(arm),
        );
    }
    batch.insert(keys::META_SEQ, &codec::encode_u64(last));
    db.apply_batch(batch).unwrap();
    db.flush().unwrap();
}

#[test]
fn a_format_5_store_is_re_marked_and_replays_the_same_table_and_takes_writes() {
    let dir = tempfile::tempdir().unwrap();
    format_5_store(dir.path());
    let values_before: Vec<_> = raw_db(dir.path())
        .scan_prefix([KIND_UNIT_LOG])
        .map(|item| item.unwrap())
        .collect();
    assert_every_unit_kept(dir.path());
    {
        let db = raw_db(dir.path());
        let values_after: Vec<_> = db
            .scan_prefix([KIND_UNIT_LOG])
            .map(|item| item.unwrap())
            .collect();
        assert_eq!(
            values_after, values_before,
            "the upgrade rewrites only the marks"
        );
    }
    let store = open(dir.path());
    let newcomer = record("bold", T0_MS + 1_000_000);
    block_on(store.insert_sticky(&epoch(), "newcomer", newcomer.clone(), tally(T0_MS))).unwrap();
    let outcomes =
        block_on(store.apply_rewards(vec![unit_reward("e1", "unit-1", 1.0, T0_MS + 5)])).unwrap();
    assert!(
        matches!(outcomes[..], [crate::store::RewardOutcome::Applied { .. }]),
        "{outcomes:?}"
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        block_on(store.sticky(&epoch(), "newcomer")).unwrap(),
        Some(newcomer)
    );
    let mut rewarded = credited(1);
    rewarded.reward = Some(1.0);
    rewarded.rewarded_ms = Some(T0_MS + 5);
    assert_eq!(
        block_on(store.sticky(&epoch(), "unit-1")).unwrap(),
        Some(rewarded)
    );
    assert_eq!(
        block_on(store.sticky(&epoch(), "unit-2")).unwrap(),
        Some(credited(2))
    );
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    // New values are in the compact layout, the old ones still as they were.
    let db = store.raw();
    let tagged = db
        .scan_prefix([KIND_UNIT_LOG])
        .filter(|item| {
            let (_, value) = item.as_ref().unwrap();
            value.starts_with(&crate::store::unit_log_entry::VALUE_TAG)
        })
        .count();
    assert!(tagged >= 2, "{tagged} compact values");
}

#[test]
fn a_format_5_upgrade_cut_short_is_refused_by_format_5_and_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    format_5_store(dir.path());
    {
        let db = raw_db(dir.path());
        // `start`'s first batch, durable, and the process dies before `resume` clears it.
        mark_started(&db);
        db.flush().unwrap();
        // A format-5 build refuses anything not marked 5 (nor 3 or 4, which it migrates).
        let mark =
            codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap();
        assert!(mark > 5, "{mark}");
    }
    assert_every_unit_kept(dir.path());
}

/// Writes `start`'s first batch by hand (this build's format and "migrating"), as a migration
/// cut short right after it left it.
fn mark_started(db: &sled::Db) {
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT));
    batch.insert(keys::META_MIGRATING, &codec::encode_u64(0));
    db.apply_batch(batch).unwrap();
}
