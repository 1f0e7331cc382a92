//! The unit log: its values, the replay that rebuilds the sticky table, the export page, and
//! compaction (also through a real store, across reopens and failed commits).

use super::*;
use crate::store::keys::KIND_STICKY;
use crate::store::recovery::Faults;
use crate::store::sled::{SledStore, StoreOptions};
use crate::store::test_support::*;
use crate::store::{RewardOutcome, Store, StoreError};

fn sticky(epoch: &Epoch, unit: &str) -> Vec<u8> {
    keys::epoch_key(KIND_STICKY, epoch, unit)
}

fn other_epoch() -> Epoch {
    Epoch {
        experiment: "checkout-button".to_owned(),
        revision: 7,
    }
}

fn encoded(record: &StickyRecord) -> Vec<u8> {
    codec::encode_sticky(record, 1)
}

/// Every (encoded epoch, commit, unit, record and its seq) of a list of values, in order.
type Decoded = Vec<(Vec<u8>, u64, Vec<u8>, Option<(StickyRecord, u64)>)>;

fn decode_all(values: &[KeyValue]) -> Decoded {
    let mut out = Vec::new();
    for (key, value) in values {
        let (epoch, seq) = parse_log_key(key).unwrap();
        for entry in entries(value, seq) {
            let entry = entry.unwrap();
            out.push((
                epoch.to_vec(),
                seq,
                entry.unit.to_vec(),
                entry.record.map(|record| (record.to_record(), record.seq)),
            ));
        }
    }
    out
}

#[test]
fn a_commits_entries_come_back_in_order_grouped_by_epoch_with_removals_as_none() {
    let mut log = LogWriter::new(42);
    let a = record("control", T0_MS);
    let b = record("bold", T0_MS + 1);
    log.push(&sticky(&epoch(), "u1"), Some(&encoded(&a)))
        .unwrap();
    log.push(&sticky(&epoch(), "u\0/2"), None).unwrap();
    log.push(&sticky(&other_epoch(), "u1"), Some(&encoded(&b)))
        .unwrap();
    assert_eq!(log.entries(), 3);
    let values = log.finish();
    assert_eq!(values.len(), 2, "one value per epoch");
    let first = encoded_epoch(&epoch());
    let second = encoded_epoch(&other_epoch());
    assert_eq!(
        decode_all(&values),
        vec![
            (first.clone(), 42, b"u1".to_vec(), Some((a, 1))),
            (first, 42, b"u\0/2".to_vec(), None),
            (second, 42, b"u1".to_vec(), Some((b, 1))),
        ]
    );
}

#[test]
fn values_are_cut_near_four_kib_and_their_chunks_sort_in_push_order() {
    let mut log = LogWriter::starting_at(3, 10);
    let bytes = encoded(&record("control", T0_MS));
    for unit in 0..1000 {
        log.push(&sticky(&epoch(), &format!("unit-{unit:05}")), Some(&bytes))
            .unwrap();
    }
    assert_eq!(log.next_chunk(), 10 + 1 + log.values.len() as u64);
    let values = log.finish();
    assert!(values.len() > 5, "{} values", values.len());
    for (_, value) in &values {
        assert!(value.len() < MAX_LOG_VALUE_BYTES + 64, "{}", value.len());
    }
    let mut keys: Vec<_> = values.iter().map(|(key, _)| key.clone()).collect();
    let written = keys.clone();
    keys.sort();
    assert_eq!(
        keys, written,
        "chunk numbers sort in the order values were cut"
    );
    let units: Vec<_> = decode_all(&values).into_iter().map(|e| e.2).collect();
    let expected: Vec<_> = (0..1000)
        .map(|unit| format!("unit-{unit:05}").into_bytes())
        .collect();
    assert_eq!(units, expected);
}

#[test]
fn a_typed_record_is_logged_as_the_request_wrote_it_and_stamped_with_the_commit() {
    let mut log = LogWriter::new(42);
    let mut credited = record("bold", T0_MS);
    credited.reward = Some(0.25);
    credited.rewarded_ms = Some(T0_MS + 9);
    log.push_record(&sticky(&epoch(), "u1"), Some(&credited))
        .unwrap();
    log.push_record(&sticky(&epoch(), "gone"), None).unwrap();
    assert!(matches!(
        log.push_record(&keys::epoch_key(keys::KIND_ARM, &epoch(), "u"), None),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(log.entries(), 2);
    let first = encoded_epoch(&epoch());
    assert_eq!(
        decode_all(&log.finish()),
        vec![
            (first.clone(), 42, b"u1".to_vec(), Some((credited, 42))),
            (first, 42, b"gone".to_vec(), None),
        ]
    );
}

#[test]
fn a_truncated_value_or_a_foreign_key_is_corrupt_not_a_panic() {
    let mut log = LogWriter::new(1);
    assert!(matches!(
        log.push(&sticky(&epoch(), "u1"), Some(b"xyz")),
        Err(StoreError::Corrupt(_))
    ));
    log.push(
        &sticky(&epoch(), "u1"),
        Some(&encoded(&record("bold", T0_MS))),
    )
    .unwrap();
    let (key, value) = log.finish().remove(0);
    let cut = &value[..value.len() - 1];
    assert!(matches!(
        entries(cut, 1).collect::<Result<Vec<_>, _>>(),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        parse_log_key(&key[..key.len() - 1]),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        LogWriter::new(1).push(&keys::epoch_key(keys::KIND_ARM, &epoch(), "u"), None),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn replay_keeps_the_last_entry_of_each_unit_and_honours_removals() {
    let (_dir, db) = temp_db();
    let first = record("control", T0_MS);
    let mut credited = first.clone();
    credited.reward = Some(1.0);
    credited.rewarded_ms = Some(T0_MS + 5);
    let mut batch = sled::Batch::default();
    let mut log = LogWriter::new(1);
    log.push(&sticky(&epoch(), "a"), Some(&encoded(&first)))
        .unwrap();
    log.push(&sticky(&epoch(), "gone"), Some(&encoded(&first)))
        .unwrap();
    log.push(&sticky(&other_epoch(), "a"), Some(&encoded(&first)))
        .unwrap();
    for (key, value) in log.finish() {
        batch.insert(key, value);
    }
    let mut log = LogWriter::new(2);
    log.push(&sticky(&epoch(), "a"), Some(&encoded(&credited)))
        .unwrap();
    log.push(&sticky(&epoch(), "gone"), None).unwrap();
    for (key, value) in log.finish() {
        batch.insert(key, value);
    }
    db.apply_batch(batch).unwrap();
    let mut table = StickyTable::default();
    assert_eq!(replay(&db, &mut table).unwrap(), 5);
    assert_eq!(table.len(), 2);
    assert_eq!(table.peek(&sticky(&epoch(), "a")), Some(credited.clone()));
    assert_eq!(table.peek(&sticky(&other_epoch(), "a")), Some(first));
    assert_eq!(table.peek(&sticky(&epoch(), "gone")), None);
    let (latest, read) = latest_records(&db).unwrap();
    assert_eq!((latest.len(), read), (2, 5));
    assert_eq!(latest[&sticky(&epoch(), "a")], credited);
}

/// The replay decodes on a thread of its own and hands values over a bounded channel: with
/// several times more values than the channel holds, a unit's last entry still wins, each
/// record keeps its variant (20 ids, more than the decoder's per-value memory of where a
/// value's variants sit), and a corrupt value after them all fails the replay instead of
/// ending it early with what it had.
#[test]
fn replay_keeps_the_log_order_across_more_values_than_in_flight_and_reports_a_corrupt_one() {
    let (_dir, db) = temp_db();
    let commits = 3 * REPLAY_VALUES_AHEAD as u64;
    let mut batch = sled::Batch::default();
    for seq in 1..=commits {
        let mut log = LogWriter::new(seq);
        // "hot" in every commit (its last record wins), and 200 units of its own per commit,
        // which cut each commit into more than one value.
        log.push_record(&sticky(&epoch(), "hot"), Some(&record("bold", seq)))
            .unwrap();
        for n in 0..200 {
            let unit = format!("u-{seq}-{n}");
            let variant = format!("arm-{}", (seq + n) % 20);
            log.push_record(&sticky(&epoch(), &unit), Some(&record(&variant, seq)))
                .unwrap();
        }
        if seq == commits {
            log.push_record(&sticky(&epoch(), "u-1-0"), None).unwrap();
        }
        for (key, value) in log.finish() {
            batch.insert(key, value);
        }
    }
    db.apply_batch(batch).unwrap();
    let values = db.scan_prefix([KIND_UNIT_LOG]).count();
    assert!(values > 2 * REPLAY_VALUES_AHEAD, "{values}");
    let mut table = StickyTable::default();
    assert_eq!(replay(&db, &mut table).unwrap(), commits * 201 + 1);
    assert_eq!(table.len() as u64, commits * 200);
    assert_eq!(
        table.peek(&sticky(&epoch(), "hot")),
        Some(record("bold", commits))
    );
    assert_eq!(table.peek(&sticky(&epoch(), "u-1-0")), None);
    for (seq, n) in [(7, 3), (8, 19), (150, 0), (commits, 199)] {
        let variant = format!("arm-{}", (seq + n) % 20);
        let unit = format!("u-{seq}-{n}");
        assert_eq!(
            table.peek(&sticky(&epoch(), &unit)),
            Some(record(&variant, seq)),
            "{unit}"
        );
    }
    db.insert(
        log_key(&encoded_epoch(&epoch()), commits + 1, 0),
        vec![0x80, 0x00, 9],
    )
    .unwrap();
    assert!(matches!(
        replay(&db, &mut StickyTable::default()),
        Err(StoreError::Corrupt(_))
    ));
}

/// The decoder's memory of where a value's variants sit holds for one value only: the next
/// value may have other bytes at the same address (here the same buffer, rewritten).
#[test]
fn a_values_variant_positions_are_forgotten_at_the_next_value() {
    let mut variants = ReplayVariants::default();
    let mut named = ValueVariants::default();
    let mut buffer = *b"bold";
    named.start_value();
    let first = std::str::from_utf8(&buffer).unwrap();
    assert_eq!(named.index_of(&mut variants, first), 0);
    assert_eq!(named.index_of(&mut variants, first), 0);
    buffer.copy_from_slice(b"calm");
    named.start_value();
    let second = std::str::from_utf8(&buffer).unwrap();
    assert_eq!(named.index_of(&mut variants, second), 1);
    assert_eq!(named.index_of(&mut variants, "bold"), 0);
}

#[test]
fn a_compaction_step_rewrites_a_format_5_value_in_the_compact_layout_with_the_same_records() {
    let (_dir, db) = temp_db();
    let first = record("control", T0_MS);
    let mut credited = record("bold", T0_MS + 3);
    credited.reward = Some(0.25);
    credited.rewarded_ms = Some(T0_MS + 9);
    // One value as a format-5 build wrote it: unit and `codec::encode_sticky` record.
    let mut value = Vec::new();
    for (unit, held, seq) in [("a", &first, 3), ("b", &first, 3), ("a", &credited, 4)] {
        keys::put_bytes(&mut value, unit.as_bytes());
        keys::put_bytes(&mut value, &codec::encode_sticky(held, seq));
    }
    let epoch_bytes = encoded_epoch(&epoch());
    db.insert(log_key(&epoch_bytes, 4, 0), value).unwrap();
    let mut table = StickyTable::default();
    assert_eq!(replay(&db, &mut table).unwrap(), 3);
    let mut writer = LogWriter::new(9);
    let step = compact_step(&db, &table, &CompactionPass::new(9), &mut writer).unwrap();
    assert_eq!((step.entries_read, step.entries_kept), (3, 2));
    let values = writer.finish();
    assert_eq!(values.len(), 1);
    assert!(
        values[0]
            .1
            .starts_with(&crate::store::unit_log_entry::VALUE_TAG)
    );
    assert_eq!(
        decode_all(&values),
        vec![
            (epoch_bytes.clone(), 9, b"b".to_vec(), Some((first, 3))),
            (epoch_bytes, 9, b"a".to_vec(), Some((credited, 4))),
        ],
        "each record keeps its own commit's seq"
    );
}

fn open_compacting(dir: &std::path::Path) -> SledStore {
    SledStore::open_with(
        dir,
        StoreOptions {
            compact_min_entries: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn log_entries(db: &sled::Db) -> (usize, u64) {
    let mut values = 0;
    let mut entries_held = 0;
    for item in db.scan_prefix([KIND_UNIT_LOG]) {
        let (key, value) = item.unwrap();
        values += 1;
        let (_, seq) = parse_log_key(&key).unwrap();
        entries_held += entries(&value, seq).count() as u64;
    }
    (values, entries_held)
}

/// Inserts `units` units, one commit each, then credits the first `credited`, `per_commit`
/// per commit.
fn insert_some_and_credit(store: &SledStore, units: usize, credited: usize, per_commit: usize) {
    for unit in 0..units {
        block_on(store.insert_sticky(
            &epoch(),
            &format!("u{unit:03}"),
            record(if unit % 2 == 0 { "control" } else { "bold" }, T0_MS),
            tally(T0_MS),
        ))
        .unwrap();
    }
    let ops: Vec<_> = (0..credited)
        .map(|unit| unit_reward(&format!("e{unit}"), &format!("u{unit:03}"), 1.0, T0_MS + 10))
        .collect();
    for chunk in ops.chunks(per_commit) {
        let outcomes = block_on(store.apply_rewards(chunk.to_vec())).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, RewardOutcome::Applied { .. })),
            "{outcomes:?}"
        );
    }
}

fn insert_and_credit(store: &SledStore, units: usize, per_commit: usize) {
    insert_some_and_credit(store, units, units, per_commit);
}

/// Every one of the first `units` units holds its record, the first `credited` with the
/// reward [`insert_some_and_credit`] gave them.
fn assert_kept(store: &SledStore, units: usize, credited: usize) {
    for unit in 0..units {
        let held = block_on(store.sticky(&epoch(), &format!("u{unit:03}")))
            .unwrap()
            .unwrap_or_else(|| panic!("u{unit:03} lost"));
        let (reward, at) = if unit < credited {
            (Some(1.0), Some(T0_MS + 10))
        } else {
            (None, None)
        };
        assert_eq!((held.reward, held.rewarded_ms), (reward, at), "u{unit:03}");
    }
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn commits_write_log_values_and_no_sticky_key_and_a_reopen_replays_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert_and_credit(&store, 40, 40);
    let db = store.raw();
    assert_eq!(
        db.scan_prefix([KIND_STICKY]).count(),
        0,
        "no sled key per unit"
    );
    // 40 inserts in 40 commits, then 40 credits in one commit: 41 values, 80 entries.
    assert_eq!(log_entries(&db), (41, 80));
    drop(db);
    drop(store);
    assert_kept(&open(dir.path()), 40, 40);
}

#[test]
fn compaction_keeps_one_entry_per_unit_and_every_record_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_compacting(dir.path());
    // Rewards one at a time: each commit supersedes one entry, and with no floor a pass
    // starts as soon as superseded entries exceed half the units.
    insert_and_credit(&store, 200, 1);
    // A few more commits finish any pass under way.
    for unit in 0..20 {
        block_on(store.insert_sticky(
            &epoch(),
            &format!("late{unit}"),
            record("control", T0_MS),
            tally(T0_MS),
        ))
        .unwrap();
    }
    let db = store.raw();
    let (values, held) = log_entries(&db);
    assert!(
        held < 200 + 20 + 200,
        "the log was never compacted: {held} entries"
    );
    assert!(values < 200 + 20 + 200, "{values} values");
    drop(db);
    assert_kept(&store, 200, 200);
    drop(store);
    let store = open(dir.path());
    assert_kept(&store, 200, 200);
    for unit in 0..20 {
        assert!(
            block_on(store.sticky(&epoch(), &format!("late{unit}")))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn a_compaction_step_whose_commit_fails_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_compacting(dir.path());
    // 31 of 60 units credited one per commit: 31 superseded entries, one more than half the
    // units, so the next commit (the first faulty one) starts a pass and takes its first step.
    insert_some_and_credit(&store, 60, 31, 1);
    for fault in [
        Faults {
            fail_before_apply: 1,
            ..Faults::default()
        },
        Faults {
            fail_log_sync: 1,
            ..Faults::default()
        },
        Faults {
            fail_after_sync: 1,
            ..Faults::default()
        },
    ] {
        store.inject_faults(fault);
        let refused = block_on(store.insert_sticky(
            &epoch(),
            "during-a-fault",
            record("control", T0_MS),
            tally(T0_MS),
        ));
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        let start = std::time::Instant::now();
        while !store.writable() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert_kept(&store, 60, 31);
    // A commit that succeeds takes the pass's steps again, from the disk as it is.
    block_on(store.insert_sticky(&epoch(), "after", record("control", T0_MS), tally(T0_MS)))
        .unwrap();
    let (_, held) = log_entries(&store.raw());
    assert!(held < 60 + 31 + 2, "not compacted: {held} entries");
    assert_kept(&store, 60, 31);
    drop(store);
    assert_kept(&open(dir.path()), 60, 31);
}

#[test]
fn an_export_page_is_sorted_by_unit_whatever_the_write_order_and_sees_each_unit_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Written in reverse order and credited, so every unit has two entries.
    for unit in (0..30).rev() {
        block_on(store.insert_sticky(
            &epoch(),
            &format!("u{unit:02}"),
            record("control", T0_MS),
            tally(T0_MS),
        ))
        .unwrap();
    }
    block_on(store.insert_sticky(&other_epoch(), "u00", record("x", T0_MS), tally(T0_MS))).unwrap();
    let ops: Vec<_> = (0..30)
        .map(|unit| unit_reward(&format!("e{unit}"), &format!("u{unit:02}"), 1.0, T0_MS + 1))
        .collect();
    block_on(store.apply_rewards(ops)).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = block_on(store.scan_sticky(&epoch(), after.clone(), 7)).unwrap();
        for (unit, held) in &page {
            assert_eq!(held.reward, Some(1.0), "{unit}");
            seen.push(unit.clone());
        }
        if page.len() < 7 {
            break;
        }
        after = page.last().map(|(unit, _)| unit.clone());
    }
    let expected: Vec<_> = (0..30).map(|unit| format!("u{unit:02}")).collect();
    assert_eq!(seen, expected);
}
