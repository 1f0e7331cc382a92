//! Every commit ends with an `fdatasync` of sled's log file, on top of sled's own flush
//! (which, on Linux, survives `kill -9` but not a power cut: see `Shared::log_file`).

use super::*;
use crate::store::test_support::*;

#[test]
fn every_commit_fdatasyncs_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for (n, unit) in ["a", "b", "c"].into_iter().enumerate() {
        let (_, inserted) =
            block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        assert!(inserted);
        let commits = store.flush_count();
        assert!(commits > n as u64, "each insert waited for its own commit");
        assert_eq!(
            store.shared.data_sync_count.load(Ordering::Relaxed),
            commits,
            "a commit was acknowledged without an fdatasync"
        );
    }
}

#[test]
fn the_synced_file_is_the_one_sled_writes_its_log_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let before = std::fs::metadata(dir.path().join("db")).unwrap().len();
    let big = StickyRecord {
        variant: "x".repeat(200),
        ..record("bold", T0_MS)
    };
    for i in 0..200 {
        let unit = format!("unit-{i}");
        block_on(store.insert_sticky(&epoch(), &unit, big.clone(), tally(T0_MS))).unwrap();
    }
    let after = std::fs::metadata(dir.path().join("db")).unwrap().len();
    assert!(
        after > before,
        "sled's log lives in <dir>/db ({before} -> {after} bytes)"
    );
}
