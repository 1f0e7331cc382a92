//! A big commit made durable by sled's flush (`wal_through_sled`): no record of it in the log,
//! the replay's order kept across it, and a crash before its flush returned leaves all of it
//! or none; and which commits take that path (from exactly the threshold).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::store::recovery::Faults;
use crate::store::test_support::*;
use crate::store::wal::{self, SEGMENT_HEADER_BYTES};
use crate::store::wal_replay::next_record;
use crate::store::{SledStore, Store, StoreOptions};

/// Payload bytes from which these tests' stores commit through sled: a history point with a
/// 20 KB variant name is above it, a new unit's commit far below.
const TEST_SLED_COMMIT_BYTES: u64 = 8 << 10;

fn open_with_threshold(dir: &Path) -> SledStore {
    SledStore::open_with(
        dir,
        StoreOptions {
            sled_commit_bytes: TEST_SLED_COMMIT_BYTES,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// The seqs of every valid record in the log under `dir`, read from the segment files with the
/// record layout (`wal` module docs), whatever the segment's state.
fn logged_seqs(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir.join(wal::WAL_DIR)).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Some(generation) = wal::parse_segment_header(&bytes) else {
            continue;
        };
        let mut offset = SEGMENT_HEADER_BYTES as usize;
        while let Some((seq, _, size)) = next_record(&bytes, offset, generation) {
            seqs.push(seq);
            offset += size;
        }
    }
    seqs.sort_unstable();
    seqs
}

fn durable_seq(store: &SledStore) -> u64 {
    store.shared.durable_seq.load(Ordering::Acquire)
}

fn big_point() -> crate::store::HistoryPoint {
    point(T0_MS, &"v".repeat(20_000))
}

fn insert(store: &SledStore, unit: &str) {
    block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS))).unwrap();
}

#[test]
fn a_big_commit_leaves_no_record_and_the_commits_around_it_replay_in_order_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let store = open_with_threshold(dir.path());
    insert(&store, "before");
    let before = durable_seq(&store);
    block_on(store.append_history(&epoch(), big_point())).unwrap();
    let big = durable_seq(&store);
    insert(&store, "after");
    let after = durable_seq(&store);
    assert!(before < big && big < after);
    // What `kill -9` would leave now: sled's flush of the big commit, and two records.
    let crashed = copies.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    drop(store);
    let logged = logged_seqs(&crashed);
    assert!(
        logged.contains(&before) && logged.contains(&after),
        "{logged:?}"
    );
    assert!(
        !logged.contains(&big),
        "the big commit has no record: {logged:?}"
    );
    {
        let db = raw_db(&crashed);
        let sled_seq = db
            .get(crate::store::keys::META_SEQ)
            .unwrap()
            .map(|value| crate::store::codec::decode_u64(&value, "seq").unwrap());
        assert!(
            sled_seq >= Some(big),
            "sled holds the big commit before any later record: {sled_seq:?}"
        );
    }
    let store = open_with_threshold(&crashed);
    for unit in ["before", "after"] {
        assert!(
            block_on(store.sticky(&epoch(), unit)).unwrap().is_some(),
            "{unit}"
        );
    }
    let history = block_on(store.history(&epoch(), 0, 10)).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].arms[0].variant.len(), 20_000);
    assert_eq!(
        block_on(store.counters(&epoch())).unwrap()["bold"].exposures,
        2
    );
    assert!(store.audit().unwrap().is_clean());
}

/// sled's flush of the big commit fails for real (its log file broken first), and the process
/// ends before the reopen (the data dir copied as `kill -9` leaves it): the commit was refused,
/// and the next start holds none of it; the commits acknowledged before and after are there.
#[test]
fn a_big_commit_whose_flush_fails_is_absent_after_a_crash_before_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let store = open_with_threshold(dir.path());
    insert(&store, "before");
    *store.shared.faults.lock().unwrap() = Faults {
        fail_checkpoint: 1,
        fail_reopens: u32::MAX,
        ..Faults::default()
    };
    assert!(block_on(store.append_history(&epoch(), big_point())).is_err());
    let crashed = copies.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    drop(store);
    let again = copies.path().join("again");
    {
        let store = open_with_threshold(&crashed);
        assert!(
            block_on(store.sticky(&epoch(), "before"))
                .unwrap()
                .is_some()
        );
        assert_eq!(block_on(store.history(&epoch(), 0, 10)).unwrap(), vec![]);
        assert!(store.audit().unwrap().is_clean());
        insert(&store, "after");
        block_on(store.append_history(&epoch(), big_point())).unwrap();
        copy_dir(&crashed, &again);
    }
    let store = open_with_threshold(&again);
    for unit in ["before", "after"] {
        assert!(
            block_on(store.sticky(&epoch(), unit)).unwrap().is_some(),
            "{unit}"
        );
    }
    assert_eq!(block_on(store.history(&epoch(), 0, 10)).unwrap().len(), 1);
    assert!(store.audit().unwrap().is_clean());
}

#[test]
fn a_commit_goes_through_sled_from_exactly_the_threshold_and_not_a_byte_below() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = wal::Wal::new(dir.path().to_path_buf(), Vec::new(), 0, 1, 0);
    let mut batch = log.batch();
    batch.insert(b"unit", [7_u8; 100]);
    let payload = batch.payload_bytes() as u64;
    log.set_sled_commit_bytes(payload);
    assert!(log.commits_through_sled(&batch));
    log.set_sled_commit_bytes(payload + 1);
    assert!(!log.commits_through_sled(&batch));
}
