//! A failed commit: its callers get an error, nothing of it stays visible, the writer reopens
//! the store by itself, and the health signal follows (see `recovery`).

use std::time::{Duration, Instant};

use futures_util::FutureExt as _;

use super::*;
use crate::store::recovery::Faults;
use crate::store::test_support::*;

fn inject(store: &SledStore, faults: Faults) {
    *store.shared.faults.lock().unwrap() = faults;
}

/// Waits (at most 10 s) until the store accepts writes again.
fn wait_writable(store: &SledStore) {
    let start = Instant::now();
    while !store.writable() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the store did not recover: {:?}",
            store.health()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn exposures(store: &SledStore, variant: &str) -> u64 {
    block_on(store.counters(&epoch()))
        .unwrap()
        .get(variant)
        .map_or(0, |arm| arm.exposures)
}

fn assert_audit_clean(store: &SledStore) {
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The failed insert is refused, and neither counters, the cache, nor sled show it later.
fn assert_failed_insert_leaves_nothing(faults: Faults) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "kept", record("control", T0_MS), tally(T0_MS)))
        .unwrap();
    inject(&store, faults);
    let refused =
        block_on(store.insert_sticky(&epoch(), "lost", record("bold", T0_MS), tally(T0_MS)));
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    wait_writable(&store);
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "lost");
    assert_eq!(sled_value(&store.shared.sled().unwrap(), &key), None);
    assert_eq!(store.shared.sticky.load().peek(&key), None);
    assert_eq!(block_on(store.sticky(&epoch(), "lost")).unwrap(), None);
    assert_eq!(exposures(&store, "bold"), 0);
    assert_eq!(
        exposures(&store, "control"),
        1,
        "the durable commit before it stays"
    );
    assert_audit_clean(&store);
    // Writes resume, and the unit can be assigned for real.
    let (_, inserted) =
        block_on(store.insert_sticky(&epoch(), "lost", record("bold", T0_MS), tally(T0_MS)))
            .unwrap();
    assert!(inserted);
    assert_eq!(exposures(&store, "bold"), 1);
    assert_audit_clean(&store);
    drop(store);
    // What the reopened store served is what is on disk.
    let store = open(dir.path());
    assert_eq!(exposures(&store, "bold"), 1);
    assert_eq!(exposures(&store, "control"), 1);
}

#[test]
fn a_commit_whose_redo_record_cannot_be_written_leaves_nothing_behind_and_writes_resume() {
    assert_failed_insert_leaves_nothing(Faults {
        fail_log_write: 1,
        ..Faults::default()
    });
}

/// The record was written and sits, valid, in the page cache: only the reopen's stop at its
/// position (and the log's reset) keeps it from being replayed.
#[test]
fn a_commit_whose_redo_record_cannot_be_synced_leaves_nothing_behind_and_writes_resume() {
    assert_failed_insert_leaves_nothing(Faults {
        fail_log_sync: 1,
        ..Faults::default()
    });
}

/// A crash after a commit was refused for its redo record and before the reopen reset the log
/// (the reopens keep failing; the data dir copied as `kill -9` would leave it, the page cache
/// included): the next start does not apply the refused commit. The commits that start then
/// acknowledges take the refused one's seq and survive the next crash: no stale record of
/// that seq stops the walk before them.
fn assert_refused_commit_stays_refused_after_a_crash(faults: Faults) {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "kept", record("control", T0_MS), tally(T0_MS)))
        .unwrap();
    inject(
        &store,
        Faults {
            fail_reopens: u32::MAX,
            ..faults
        },
    );
    let refused =
        block_on(store.insert_sticky(&epoch(), "lost", record("bold", T0_MS), tally(T0_MS)));
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    let crashed = copies.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    drop(store);
    let again = copies.path().join("again");
    {
        let store = open(&crashed);
        assert_eq!(block_on(store.sticky(&epoch(), "lost")).unwrap(), None);
        assert_eq!(
            exposures(&store, "bold"),
            0,
            "the refused commit is not applied"
        );
        assert_eq!(exposures(&store, "control"), 1);
        assert_audit_clean(&store);
        for unit in ["after-1", "after-2"] {
            block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
        copy_dir(&crashed, &again);
    }
    let store = open(&again);
    for unit in ["kept", "after-1", "after-2"] {
        assert!(
            block_on(store.sticky(&epoch(), unit)).unwrap().is_some(),
            "{unit}"
        );
    }
    assert_eq!(block_on(store.sticky(&epoch(), "lost")).unwrap(), None);
    assert_eq!(exposures(&store, "bold"), 2);
    assert_audit_clean(&store);
}

/// The record sits, valid, in the page cache after its failed `fdatasync`: only its zeroed
/// header (`wal::Wal::invalidate_refused`) keeps a start after the crash from applying it.
#[test]
fn a_commit_whose_redo_record_cannot_be_synced_is_not_applied_after_a_crash_before_the_reopen() {
    assert_refused_commit_stays_refused_after_a_crash(Faults {
        fail_log_sync: 1,
        ..Faults::default()
    });
}

#[test]
fn a_commit_whose_redo_record_cannot_be_written_is_not_applied_after_a_crash_before_the_reopen() {
    assert_refused_commit_stays_refused_after_a_crash(Faults {
        fail_log_write: 1,
        ..Faults::default()
    });
}

#[test]
fn a_commit_that_fails_before_sled_applied_it_leaves_nothing_behind_and_writes_resume() {
    assert_failed_insert_leaves_nothing(Faults {
        fail_before_apply: 1,
        ..Faults::default()
    });
}

#[test]
fn every_caller_of_a_failed_batch_gets_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = store.shared.flush_gate.lock().unwrap();
    // The first commit waits at the gate; the next three queue up and share the failing one.
    let first = store.insert_sticky(&epoch(), "u0", record("bold", T0_MS), tally(T0_MS));
    while store
        .shared
        .sled()
        .unwrap()
        .get(keys::META_SEQ)
        .unwrap()
        .is_none()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queued: Vec<_> = (1..4)
        .map(|i| {
            let unit = format!("u{i}");
            store.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    // The held commit is past the point where this fault strikes; the next one is not.
    inject(
        &store,
        Faults {
            fail_before_apply: 1,
            ..Faults::default()
        },
    );
    drop(gate);
    assert!(
        block_on(first).is_ok(),
        "the commit before the fault is acknowledged"
    );
    for answer in queued {
        assert!(matches!(block_on(answer), Err(StoreError::Unavailable(_))));
    }
    wait_writable(&store);
    assert_eq!(exposures(&store, "bold"), 1);
    assert_audit_clean(&store);
}

/// The redo log comes first: a batch whose record did not become durable never reaches sled,
/// so no reader (nor the reopened store) can find it there.
#[test]
fn a_reader_waiting_for_a_failed_commit_never_sees_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    inject(
        &store,
        Faults {
            fail_log_sync: 1,
            ..Faults::default()
        },
    );
    let insert = store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    let read = store.sticky(&epoch(), "u1");
    assert!(block_on(insert).is_err());
    assert_eq!(block_on(read).ok().flatten(), None);
    wait_writable(&store);
    assert_eq!(block_on(store.sticky(&epoch(), "u1")).unwrap(), None);
    assert_eq!(sled_value(&store.shared.sled().unwrap(), &key), None);
}

#[test]
fn while_reopens_fail_writes_are_refused_at_once_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.writable());
    assert_eq!(store.health().episodes, 0);
    inject(
        &store,
        Faults {
            fail_before_apply: 1,
            fail_reopens: 3,
            ..Faults::default()
        },
    );
    let refused = block_on(store.append_history(&epoch(), point(T0_MS, "a")));
    assert!(refused.is_err());
    let health = store.health();
    assert!(!health.writable && !store.writable());
    let episode = health.failing.expect("an episode is under way");
    assert!(episode.cause.contains("injected"), "{episode:?}");
    assert_eq!(health.episodes, 1);
    // Refused without waiting for the writer, and no per-request exposure is taken on.
    let write = store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    assert!(matches!(
        write.now_or_never(),
        Some(Err(StoreError::Unavailable(_)))
    ));
    let events = store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]);
    assert!(matches!(
        events.now_or_never(),
        Some(Err(StoreError::Unavailable(_)))
    ));
    assert!(!store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    wait_writable(&store);
    let health = store.health();
    assert!(health.writable && health.failing.is_none());
    assert_eq!(health.episodes, 1);
    let last = health.last_episode.expect("the episode ended");
    assert!(last.ended_ms.is_some_and(|end| end >= last.started_ms));
    assert!(
        last.latest_error
            .is_some_and(|error| error.contains("reopen failed")),
        "failed reopens are recorded"
    );
    block_on(store.append_history(&epoch(), point(T0_MS, "a"))).unwrap();
    assert_eq!(
        exposures(&store, "bold"),
        0,
        "the refused exposure was not counted"
    );
}

#[test]
fn per_request_exposures_of_a_failed_commit_are_counted_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    inject(
        &store,
        Faults {
            fail_log_sync: 1,
            ..Faults::default()
        },
    );
    for _ in 0..3 {
        assert!(store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    }
    let start = Instant::now();
    while exposures(&store, "bold") < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "exposures lost: {:?}",
            store.health()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.health().episodes, 1, "their first commit did fail");
    assert_eq!(exposures(&store, "bold"), 3, "counted once each");
    assert_audit_clean(&store);
    drop(store);
    assert_eq!(exposures(&open(dir.path()), "bold"), 3);
}

#[test]
fn a_shutdown_while_the_store_fails_ends_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    inject(
        &store,
        Faults {
            fail_before_apply: 1,
            fail_reopens: u32::MAX,
            ..Faults::default()
        },
    );
    assert!(block_on(store.append_history(&epoch(), point(T0_MS, "a"))).is_err());
    assert!(matches!(
        block_on(store.shutdown()),
        Err(StoreError::Unavailable(_))
    ));
    // The writer is gone (the drop joins it), and the directory opens again.
    drop(store);
    let store = open(dir.path());
    assert!(store.writable());
}

/// What `recovery` relies on, shown on sled itself: after an I/O error, sled 0.34 keeps the
/// failed batch in its in-memory tree (a read of that `Db` sees it) and refuses every later
/// operation, so the database has to be dropped and the directory reopened; the reopened one
/// holds only what was flushed.
#[test]
fn sled_keeps_a_failed_batch_in_memory_and_refuses_everything_after_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let location = crate::store::disk::Location {
        dir: dir.path().to_path_buf(),
        page_cache_mb: 8,
    };
    let opened = location.open().unwrap();
    let open = opened.open;
    open.insert(b"durable", b"1".to_vec()).unwrap();
    open.sync().unwrap();
    crate::store::recovery::break_log_file(&open, dir.path()).unwrap();
    let mut batch = ::sled::Batch::default();
    batch.insert(b"phantom".to_vec(), b"1".to_vec());
    open.apply_batch(batch).unwrap();
    assert!(open.sync().is_err(), "the flush hits the broken file");
    assert!(
        open.get(b"phantom").unwrap().is_some(),
        "the failed batch is visible in memory"
    );
    assert!(
        open.insert(b"later", b"1".to_vec())
            .and_then(|_| open.flush())
            .is_err(),
        "sled refuses writes after its I/O error"
    );
    drop(open);
    let reopened = location.open().unwrap().open;
    assert!(reopened.get(b"durable").unwrap().is_some());
    assert_eq!(
        reopened.get(b"phantom").unwrap(),
        None,
        "rolled back on reopen"
    );
}

#[test]
fn a_commit_reported_failed_but_found_on_disk_is_served_whole_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))).unwrap();
    // Cached, without a reward.
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1"))
            .unwrap()
            .unwrap()
            .reward,
        None
    );
    inject(
        &store,
        Faults {
            fail_after_sync: 1,
            ..Faults::default()
        },
    );
    assert!(store.count_exposure(&epoch(), "control", tally(T0_MS)));
    let refused = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]));
    assert!(refused.is_err(), "{refused:?}");
    wait_writable(&store);
    // The reopen found the batch: the cache does not hide its reward, and its exposure is
    // not counted a second time.
    let start = Instant::now();
    while exposures(&store, "control") < 1 && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(exposures(&store, "control"), 1);
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1"))
            .unwrap()
            .unwrap()
            .reward,
        Some(1.0)
    );
    let retry = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)])).unwrap();
    assert_eq!(retry, vec![RewardOutcome::Duplicate]);
    assert_audit_clean(&store);
}

/// A checkpoint whose sled flush fails (sled's log file broken for real) leaves sled with its
/// global error: the writer's next commit fails (before writing anything when it heard of the
/// failure first, else at sled's apply, its redo record durable already), the writer reopens
/// the store (replaying the log into a fresh database) and resumes; every acknowledged insert
/// is there, and the refused one is there whole or not at all.
#[test]
fn a_checkpoint_whose_flush_fails_reopens_the_store_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_with(
        dir.path(),
        StoreOptions {
            checkpoint_bytes: 1,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    inject(
        &store,
        Faults {
            fail_checkpoint: 1,
            ..Faults::default()
        },
    );
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        let unit = format!("u{n}");
        match block_on(store.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS))) {
            Ok(_) => acknowledged.push(unit),
            Err(error) => {
                refused = Some((unit, error));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (refused, error) = refused.expect("a commit after the failed checkpoint is refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!acknowledged.is_empty());
    wait_writable(&store);
    assert_eq!(store.health().episodes, 1);
    let found = block_on(store.sticky(&epoch(), &refused))
        .unwrap()
        .is_some();
    let expected = acknowledged.len() as u64 + u64::from(found);
    assert_eq!(exposures(&store, "bold"), expected);
    assert_audit_clean(&store);
    block_on(store.insert_sticky(&epoch(), "after", record("bold", T0_MS), tally(T0_MS))).unwrap();
    drop(store);
    let store = open(dir.path());
    for unit in &acknowledged {
        assert!(
            block_on(store.sticky(&epoch(), unit)).unwrap().is_some(),
            "{unit}"
        );
    }
    assert_eq!(exposures(&store, "bold"), expected + 1);
    assert_audit_clean(&store);
}
