//! Migration of a format-4 store (one sled key per sticky record) to the unit log, whole and
//! interrupted, the upgrade of a format-5 store (unit-log values in the older layout), and the
//! migration of a format-6 store's token marks (one sled key each) to the mark log.

use super::*;
use crate::store::Store;
use crate::store::event_ids::Digester;
use crate::store::keys::{KIND_TOKEN_MARK, KIND_UNIT_LOG};
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
        // What a format-4 build reads: the mark says this build's, so it refuses the store.
        assert_eq!(
            codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap(),
            keys::STORE_FORMAT
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

/// Token marks in the format-6 store of [`format_6_store`]: more than one batch.
const MARKS: usize = MIGRATE_BATCH + 1_500;

/// The token mark of assignment `n` as a format-6 build kept it: issued over ~3 days, so the
/// marks spread over many generations; every tenth kept without its credit time.
fn old_mark(n: usize) -> codec::TokenMark {
    let issued_ms = T0_MS + n as u64 * 20_000;
    codec::TokenMark {
        expiry_ms: crate::store::rules::token_mark_retained_until(issued_ms, 7 * DAY_MS),
        reward: 0.25 + (n % 4) as f64,
        issued_ms,
        propensity: 0.5,
        credited_ms: (!n.is_multiple_of(10)).then_some(issued_ms + 7),
        variant: if n.is_multiple_of(3) {
            "bold"
        } else {
            "control"
        }
        .to_owned(),
    }
}

fn old_credit(n: usize) -> crate::store::TokenCredit {
    let mark = old_mark(n);
    crate::store::TokenCredit {
        assignment_id: format!("as-{n}"),
        variant: mark.variant,
        reward: mark.reward,
        retained_until_ms: mark.expiry_ms,
        issued_ms: mark.issued_ms,
        propensity: mark.propensity,
        credited_ms: mark.credited_ms,
    }
}

/// A closed format-6 store in `dir`: [`MARKS`] token marks as keys, each listed in the expiry
/// index with its deadline (as a format-6 build's commits listed them), one confirmation mark
/// also listed there, and the counters the marks imply.
fn format_6_store(dir: &std::path::Path) {
    let db = raw_db(dir);
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(6));
    batch.insert(keys::META_EVENT_ID_KEY, &Digester::random_key());
    let mut implied: std::collections::BTreeMap<String, crate::store::ArmCounters> =
        Default::default();
    let mut index = crate::store::expiry_index::PendingExpiries::default();
    for n in 0..MARKS {
        let mark = old_mark(n);
        implied.entry(mark.variant.clone()).or_default().reward_sum += mark.reward;
        let key = keys::epoch_key(KIND_TOKEN_MARK, &epoch(), &format!("as-{n}"));
        index.push(&key, mark.expiry_ms);
        batch.insert(key, codec::encode_token_mark(&mark));
    }
    let confirmation = crate::store::confirm_apply::mark_key(&epoch(), "as-0");
    let confirmed = crate::store::confirmations::TokenConfirmation {
        assignment_id: "as-0".to_owned(),
        variant: "bold".to_owned(),
        issued_ms: T0_MS,
        propensity: 0.5,
        confirmed_ms: T0_MS + 1,
        retained_until_ms: T0_MS + 8 * DAY_MS,
    };
    batch.insert(
        confirmation.clone(),
        crate::store::confirm_apply::encode_mark(&confirmed),
    );
    index.push(&confirmation, confirmed.retained_until_ms);
    implied.entry("bold".to_owned()).or_default().exposures += 1;
    implied
        .entry("bold".to_owned())
        .or_default()
        .expected_exposures += 1.0;
    batch.insert(
        keys::epoch_key(keys::KIND_PER_REQUEST, &epoch(), "bold"),
        codec::encode_u64(1).to_vec(),
    );
    for (key, value) in crate::store::expiry_index::index_values(1, &index) {
        batch.insert(key, value);
    }
    for (variant, arm) in &implied {
        batch.insert(
            keys::epoch_key(keys::KIND_ARM, &epoch(), variant),
            codec::encode_arm(arm),
        );
    }
    batch.insert(keys::META_SEQ, &codec::encode_u64(1));
    db.apply_batch(batch).unwrap();
    db.flush().unwrap();
}

/// Opens the migrated store and checks what the brief of format 7 promises: no mark key or
/// index entry left, the same marks exported, every token still credited once, a clean audit.
fn assert_every_mark_kept(dir: &std::path::Path) {
    let store = open(dir);
    let mut exported = Vec::new();
    let mut after = None;
    loop {
        let page = block_on(store.scan_token_credits(&epoch(), after, 1_000)).unwrap();
        exported.extend(page.credits);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    exported.sort_by(|a, b| a.assignment_id.cmp(&b.assignment_id));
    let mut expected: Vec<_> = (0..MARKS).map(old_credit).collect();
    expected.sort_by(|a, b| a.assignment_id.cmp(&b.assignment_id));
    assert_eq!(exported, expected);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        (report.live_token_marks, report.live_confirmation_marks),
        (MARKS as u64, 1)
    );
    // A new event on a migrated token is not credited again; a new token is.
    let again = |n: usize| {
        let mark = old_mark(n);
        token_reward(
            &format!("new-{n}"),
            &format!("as-{n}"),
            &mark.variant,
            mark.issued_ms,
            1.0,
            mark.issued_ms + 100,
        )
    };
    let fresh = token_reward("new-x", "as-x", "bold", T0_MS, 1.0, T0_MS + 100);
    let outcomes = block_on(store.apply_rewards(vec![again(0), again(MARKS - 1), fresh])).unwrap();
    assert_eq!(
        outcomes,
        vec![
            crate::store::RewardOutcome::AlreadyRewarded,
            crate::store::RewardOutcome::AlreadyRewarded,
            crate::store::RewardOutcome::Applied {
                variant: "bold".to_owned()
            }
        ]
    );
    drop(store);
    let db = raw_db(dir);
    assert_eq!(db.scan_prefix([KIND_TOKEN_MARK]).count(), 0);
    let mut listed = Vec::new();
    for item in db.scan_prefix([keys::KIND_EXPIRY]) {
        let (key, value) = item.unwrap();
        let due_ms = keys::parse_expiry_key(&key).unwrap();
        for (record_key, _) in
            crate::store::expiry_index::decode_index_value(due_ms, &value).unwrap()
        {
            listed.push(record_key.to_vec());
        }
    }
    assert_eq!(
        listed,
        vec![crate::store::confirm_apply::mark_key(&epoch(), "as-0")],
        "the index keeps the confirmation mark only"
    );
    assert_eq!(db.get(keys::META_MIGRATING).unwrap(), None);
}

#[test]
fn a_format_6_store_opens_with_every_token_mark_moved_into_the_mark_log() {
    let dir = tempfile::tempdir().unwrap();
    format_6_store(dir.path());
    assert_every_mark_kept(dir.path());
}

#[test]
fn a_token_mark_migration_cut_short_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    format_6_store(dir.path());
    {
        let db = raw_db(dir.path());
        mark_started(&db);
        // One batch of marks moved, as if the process died there.
        resume(&db, dir.path(), 1).unwrap();
        assert_eq!(
            db.scan_prefix([KIND_TOKEN_MARK]).count(),
            MARKS - MIGRATE_BATCH
        );
        assert!(db.get(keys::META_MIGRATING).unwrap().is_some());
        db.flush().unwrap();
    }
    assert_every_mark_kept(dir.path());
}

#[test]
fn migrated_marks_expire_with_their_generation_and_fold_into_their_arms() {
    let dir = tempfile::tempdir().unwrap();
    format_6_store(dir.path());
    let store = open(dir.path());
    let before = block_on(store.counters(&epoch())).unwrap();
    let everything = old_mark(MARKS - 1).expiry_ms + crate::store::MAX_RETENTION_LAG_MS;
    let mut removed = 0;
    loop {
        let pass = block_on(store.expire(everything)).unwrap();
        if pass == 0 {
            break;
        }
        removed += pass;
    }
    assert_eq!(removed, MARKS as u64 + 1, "every mark and the confirmation");
    assert_eq!(block_on(store.counters(&epoch())).unwrap(), before);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.live_token_marks, 0);
}

/// A format-7 store (this build's layout, without a redo log): its data as a format-7 build
/// left it, flushed to sled, and no `wal/` dir.
fn format_7_store(dir: &std::path::Path) {
    {
        let store = crate::store::SledStore::open(dir).unwrap();
        for unit in 0..50 {
            let unit = format!("u{unit}");
            block_on(store.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
        block_on(store.shutdown()).unwrap();
    }
    // The open replays the log into sled and flushes it: sled alone holds everything.
    drop(
        crate::store::disk::Location {
            dir: dir.to_path_buf(),
            page_cache_mb: 8,
        }
        .open()
        .unwrap(),
    );
    std::fs::remove_dir_all(dir.join(crate::store::wal::WAL_DIR)).unwrap();
    let db = raw_db(dir);
    db.insert(keys::META_FORMAT, &codec::encode_u64(7)).unwrap();
    db.flush().unwrap();
}

#[test]
fn a_format_7_store_is_re_marked_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    format_7_store(dir.path());
    let store = crate::store::SledStore::open(dir.path()).unwrap();
    let counters = block_on(store.counters(&epoch())).unwrap();
    assert_eq!(counters.get("bold").map(|arm| arm.exposures), Some(50));
    for unit in ["u0", "u49"] {
        assert!(block_on(store.sticky(&epoch(), unit)).unwrap().is_some());
    }
    assert!(dir.path().join(crate::store::wal::WAL_DIR).is_dir());
    block_on(store.insert_sticky(&epoch(), "new", record("bold", T0_MS), tally(T0_MS))).unwrap();
    block_on(store.shutdown()).unwrap();
    drop(store);
    let db = raw_db(dir.path());
    assert_eq!(
        codec::decode_u64(&db.get(keys::META_FORMAT).unwrap().unwrap(), "format").unwrap(),
        8
    );
    assert_eq!(keys::STORE_FORMAT, 8);
}
