//! Every commit is made durable by the store's redo log (`wal`), not by sled's flush: one
//! `fdatasync` of the log per commit, sled flushed only by checkpoints, and what the log
//! holds is replayed after a crash.

use super::*;
use crate::store::test_support::*;
use crate::store::wal;

fn committed_seq(db: &::sled::Db) -> u64 {
    db.get(keys::META_SEQ).unwrap().map_or(0, |value| {
        crate::store::codec::decode_u64(&value, "seq").unwrap()
    })
}

fn with_checkpoints_every(dir: &std::path::Path, checkpoint_bytes: u64) -> SledStore {
    SledStore::open_with(
        dir,
        StoreOptions {
            checkpoint_bytes,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn every_commit_fdatasyncs_the_redo_log() {
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
            "a commit was acknowledged without an fdatasync of its redo record"
        );
    }
}

/// A crash right after the acknowledgement, before any checkpoint: the copy of the directory
/// is what `kill -9` (or a power cut, the log being `fdatasync`ed) leaves. sled's own files in
/// it lack the commit, which is what shows that sled was not flushed for it; the store opened
/// on the copy has it, from the log.
#[test]
fn an_acknowledged_commit_sled_was_never_flushed_for_survives_from_the_redo_log() {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // The open's own flushes are behind it; this commit is sled's in memory only.
    block_on(store.insert_sticky(&epoch(), "kept", record("bold", T0_MS), tally(T0_MS))).unwrap();
    let crashed = copies.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    let seq = store.shared.durable_seq.load(Ordering::Acquire);
    assert!(seq >= 1);
    {
        let sled_only = raw_db(&crashed);
        assert!(
            committed_seq(&sled_only) < seq,
            "sled's files hold the commit: this test would not show the log's replay"
        );
    }
    let reopened = SledStore::open(&crashed).unwrap();
    let kept = block_on(reopened.sticky(&epoch(), "kept")).unwrap();
    assert_eq!(kept.map(|record| record.variant), Some("bold".to_owned()));
    let counters = block_on(reopened.counters(&epoch())).unwrap();
    assert_eq!(counters.get("bold").map(|arm| arm.exposures), Some(1));
    let report = reopened.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Checkpoints flush sled in the background and the writer reuses the freed segments: with a
/// checkpoint every ~4 KiB, 400 commits use a few segment files, not one per checkpoint, and
/// everything is there after a reopen.
#[test]
fn checkpoints_free_and_reuse_the_logs_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_checkpoints_every(dir.path(), 4096);
    for n in 0..400 {
        let unit = format!("unit-{n}");
        block_on(store.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS)))
            .unwrap();
    }
    let segments = std::fs::read_dir(dir.path().join(wal::WAL_DIR))
        .unwrap()
        .count();
    assert!(
        (2..=4).contains(&segments),
        "{segments} segment files for ~40 checkpoints"
    );
    // sled holds most of it durably already: a copy replays only the last few commits.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    {
        let sled_only = raw_db(copy.path());
        assert!(
            committed_seq(&sled_only) > 300,
            "checkpoints flushed sled: {}",
            committed_seq(&sled_only)
        );
    }
    block_on(store.shutdown()).unwrap();
    drop(store);
    for opened in [open(dir.path()), open(copy.path())] {
        let counters = block_on(opened.counters(&epoch())).unwrap();
        assert_eq!(counters.get("bold").map(|arm| arm.exposures), Some(400));
        for n in [0, 199, 399] {
            let unit = format!("unit-{n}");
            assert!(block_on(opened.sticky(&epoch(), &unit)).unwrap().is_some());
        }
        let report = opened.audit().unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}

/// An idle store checkpoints once its records are ~1 s old, without waiting for a write.
#[test]
fn an_idle_store_checkpoints_its_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    block_on(store.insert_sticky(&epoch(), "u", record("bold", T0_MS), tally(T0_MS))).unwrap();
    let seq = store.shared.durable_seq.load(Ordering::Acquire);
    let start = std::time::Instant::now();
    loop {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        if committed_seq(&raw_db(copy.path())) >= seq {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no checkpoint of an idle store"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(start.elapsed() >= std::time::Duration::from_millis(wal::CHECKPOINT_AGE_MS / 2));
}

/// Commits reach sled op by op (`wal::Wal::apply_last`), yet a reader holding the apply lock,
/// as every reader of sled does, never sees part of one: an audit (counters recomputed from
/// the records, all from sled) run again and again under the lock while inserts commit is
/// always clean.
#[test]
fn a_reader_never_sees_part_of_a_commit_applied_op_by_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    let writing = std::sync::Arc::clone(&store);
    let writer = std::thread::spawn(move || {
        for n in 0..300 {
            let unit = format!("unit-{n}");
            block_on(writing.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
    });
    let mut audits = 0;
    while !writer.is_finished() {
        let report = {
            let _applied = store.shared.apply_lock.read().unwrap();
            crate::store::audit::audit(&store.raw()).unwrap()
        };
        assert!(report.is_clean(), "after {audits} audits: {report:?}");
        audits += 1;
    }
    writer.join().unwrap();
    assert!(
        audits > 10,
        "the audits ran alongside the commits: {audits}"
    );
}
