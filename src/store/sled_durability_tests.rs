//! Durability and consistency of [`SledStore`]: group commit, nothing shown before it is on
//! disk, counters that always equal what the records imply.

use futures_util::FutureExt as _;
use std::collections::HashMap;
use std::task::{Context, Waker};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::store::CounterMismatch;
use crate::store::command::MAX_EXPIRE_PER_BATCH;
use crate::store::expiry_index;
use crate::store::test_support::*;

fn is_pending<T>(future: &mut StoreFuture<T>) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    future.as_mut().poll(&mut context).is_pending()
}

#[test]
fn two_hundred_concurrent_inserts_share_a_few_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // All 200 commands are queued by this loop (microseconds) before the first can be
    // answered, and the writer takes everything queued into each commit. To use 50 or more
    // fsyncs it would have to wake, apply and fsync 50 times while this loop runs. Once per
    // request, as a naive store would, is exactly 200.
    let inserts: Vec<_> = (0..200)
        .map(|unit| {
            store.insert_sticky(
                &epoch(),
                &format!("u{unit}"),
                record("control", T0_MS),
                tally(T0_MS),
            )
        })
        .collect();
    let inserted = block_on(async {
        let mut inserted = 0;
        for insert in inserts {
            inserted += u64::from(insert.await.unwrap().1);
        }
        inserted
    });
    assert_eq!(inserted, 200);
    assert!(
        store.flush_count() < 200 / 4,
        "{} flushes for 200 inserts",
        store.flush_count()
    );
    assert_eq!(
        block_on(store.counters(&epoch())).unwrap()["control"].exposures,
        200
    );
}

#[test]
fn nothing_is_shown_before_its_commit_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    let gate = store.shared.flush_gate.lock().unwrap();
    let mut insert = store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    // Wait until the writer applied the batch to sled and is stuck before its fsync.
    while sled_value(&store.shared.sled().unwrap(), &key).is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        is_pending(&mut insert),
        "the insert resolved before its fsync"
    );
    let read = store.sticky(&epoch(), "u1").now_or_never();
    assert_eq!(
        read.expect("a read of the durable table answers at once")
            .unwrap(),
        None,
        "sticky() showed a record a crash could take back"
    );
    let mut second_insert =
        store.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS));
    assert!(
        is_pending(&mut second_insert),
        "insert_sticky() answered from a record not on disk"
    );
    assert!(block_on(store.counters(&epoch())).unwrap().is_empty());
    drop(gate);
    assert_eq!(block_on(insert).unwrap(), (record("bold", T0_MS), true));
    assert_eq!(
        block_on(store.sticky(&epoch(), "u1")).unwrap(),
        Some(record("bold", T0_MS))
    );
    assert_eq!(
        block_on(second_insert).unwrap(),
        (record("bold", T0_MS), false)
    );
    assert_eq!(
        block_on(store.counters(&epoch())).unwrap()["bold"].exposures,
        1
    );
}

#[test]
fn a_reward_is_not_shown_on_its_record_before_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))).unwrap();
    let before = store.flush_count();
    let gate = store.shared.flush_gate.lock().unwrap();
    let rewards = store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]);
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    while codec::decode_sticky(&sled_value(&store.shared.sled().unwrap(), &key).unwrap())
        .unwrap()
        .record
        .reward
        .is_none()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The durable record, at once, without the reward.
    let read = store.sticky(&epoch(), "u1").now_or_never();
    assert_eq!(read.unwrap().unwrap().unwrap().reward, None);
    assert_eq!(
        block_on(store.counters(&epoch())).unwrap()["bold"].reward_sum,
        0.0
    );
    drop(gate);
    block_on(rewards).unwrap();
    let read = block_on(store.sticky(&epoch(), "u1"));
    assert_eq!(read.unwrap().unwrap().reward, Some(1.0));
    assert_eq!(store.flush_count(), before + 1);
}

#[test]
fn the_audit_is_clean_after_a_random_workload_and_counters_match_the_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let variants = ["control", "bold", "calm"];
    // Expected counters, kept from what the store answered (inserted / Applied).
    let mut expected: HashMap<String, ArmCounters> = HashMap::new();
    {
        let store = open(dir.path());
        let mut now = T0_MS;
        for round in 0..40 {
            let mut inserts = Vec::new();
            for _ in 0..25 {
                let unit = format!("u{}", rng.random_range(0..300u32));
                let variant = variants[rng.random_range(0..variants.len())];
                inserts.push(store.insert_sticky(
                    &epoch(),
                    &unit,
                    record(variant, now),
                    tally(now),
                ));
                if rng.random_bool(0.3) {
                    let variant = variants[rng.random_range(0..variants.len())];
                    store.count_exposure(&epoch(), variant, tally(now));
                    expected.entry(variant.to_owned()).or_default().exposures += 1;
                }
            }
            let mut ops = Vec::new();
            for _ in 0..20 {
                let event_id = format!("e{}", rng.random_range(0..600u32));
                let reward = f64::from(rng.random_range(0..=4u32)) / 4.0;
                let at = now + rng.random_range(0..DAY_MS);
                if rng.random_bool(0.5) {
                    let unit = format!("u{}", rng.random_range(0..300u32));
                    ops.push(unit_reward(&event_id, &unit, reward, at));
                } else {
                    let token = format!("a{}", rng.random_range(0..200u32));
                    let variant = variants[rng.random_range(0..variants.len())];
                    let issued = now.saturating_sub(rng.random_range(0..3 * DAY_MS));
                    ops.push(token_reward(&event_id, &token, variant, issued, reward, at));
                }
            }
            let rewards = store.apply_rewards(ops.clone());
            block_on(async {
                for insert in inserts {
                    let (held, inserted) = insert.await.unwrap();
                    if inserted {
                        expected.entry(held.variant).or_default().exposures += 1;
                    }
                }
                for (op, outcome) in ops.iter().zip(rewards.await.unwrap()) {
                    if let RewardOutcome::Applied { variant } = outcome {
                        expected.entry(variant).or_default().reward_sum += op.reward;
                    }
                }
            });
            now += DAY_MS / 2;
            if round % 10 == 9 {
                block_on(store.expire(now)).unwrap();
            }
        }
        // Token marks expire and fold; the counters must not move.
        block_on(store.expire(now + 30 * DAY_MS)).unwrap();
        let report = store.audit().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.live_token_marks, 0);
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.sticky_records > 200,
        "the workload assigned {} units",
        report.sticky_records
    );
    let counters = block_on(store.counters(&epoch())).unwrap();
    assert_eq!(counters.len(), expected.len());
    for (variant, want) in expected {
        let got = counters[&variant];
        assert_eq!(got.exposures, want.exposures, "arm {variant}");
        // Quarter rewards are exact in binary, so the sums are exact too.
        assert_eq!(got.reward_sum, want.reward_sum, "arm {variant}");
    }
}

#[test]
fn the_audit_detects_a_corrupted_counter() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for unit in ["u1", "u2", "u3"] {
            block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
        block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)])).unwrap();
        assert!(store.audit().unwrap().is_clean());
    }
    {
        let db = raw_db(dir.path());
        let bad = ArmCounters {
            exposures: 4,
            reward_sum: 1.0,
            expected_exposures: 4.0,
            ..ArmCounters::default()
        };
        db.insert(
            keys::epoch_key(keys::KIND_ARM, &epoch(), "bold"),
            codec::encode_arm(&bad),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    let expected = CounterMismatch {
        epoch: epoch(),
        variant: "bold".to_owned(),
        stored: ArmCounters {
            exposures: 4,
            reward_sum: 1.0,
            expected_exposures: 4.0,
            ..ArmCounters::default()
        },
        implied: ArmCounters {
            exposures: 3,
            reward_sum: 1.0,
            ..ArmCounters::default()
        },
    };
    assert_eq!(report.mismatches, vec![expected]);
    assert!(report.expectation_mismatches.is_empty());
}

#[test]
fn expire_finishes_across_several_commits_past_the_per_commit_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tokens = 2 * MAX_EXPIRE_PER_BATCH + 500;
    let ops = (0..tokens)
        .map(|i| {
            // Assignment ids of 2,000 bytes: two marks per mark-log value, so every two marks
            // cost the expire pass a unit of its budget.
            token_reward(
                &format!("e{i}"),
                &format!("{i:0>2000}"),
                "bold",
                T0_MS,
                1.0,
                T0_MS,
            )
        })
        .collect();
    block_on(store.apply_rewards(ops)).unwrap();
    let before = store.flush_count();
    // The marks' values come first (since store format 7, whole mark-log values with their
    // digests, here one mark each); the limit cuts the generation, finished in the next
    // commit, then the ids' event-log values go.
    let removed = block_on(store.expire(T0_MS + 60 * DAY_MS)).unwrap();
    assert_eq!(removed, 2 * tokens as u64, "every id and every mark, once");
    let commits = store.flush_count() - before;
    assert!(
        commits >= 2,
        "{tokens} mark values need 2 commits of {MAX_EXPIRE_PER_BATCH}, took {commits}"
    );
    assert!(indexed_records(&store.shared.sled().unwrap()).is_empty());
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let arm = block_on(store.counters(&epoch())).unwrap()["bold"];
    assert_eq!(arm.reward_sum, tokens as f64);
}

#[test]
fn a_sticky_record_with_undecodable_bytes_is_corrupt_not_a_panic() {
    for (unit, bytes) in [
        ("empty", vec![]),
        ("flags", vec![0xF0]),
        ("cut", vec![0, 0x80]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        {
            let db = raw_db(dir.path());
            // An empty record is a removal in the log: the test's "empty" is one byte short of
            // a record instead. `LogWriter` refuses such bytes, so the value is laid out by
            // hand, as a format-5 build wrote it (`unit_log_entry`): unit, then record.
            let bytes = if bytes.is_empty() { vec![0] } else { bytes };
            let mut value = Vec::new();
            keys::put_bytes(&mut value, unit.as_bytes());
            keys::put_bytes(&mut value, &bytes);
            let mut encoded_epoch = keys::epoch_key(keys::KIND_UNIT_LOG, &epoch(), "");
            encoded_epoch.remove(0);
            db.insert(crate::store::unit_log::log_key(&encoded_epoch, 1, 0), value)
                .unwrap();
            db.flush().unwrap();
        }
        // Every record is replayed into the sticky table at open.
        assert!(
            matches!(SledStore::open(dir.path()), Err(StoreError::Corrupt(_))),
            "{unit}"
        );
    }
}

#[test]
fn a_store_with_a_corrupt_counter_value_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = raw_db(dir.path());
        db.insert(
            keys::epoch_key(keys::KIND_ARM, &epoch(), "bold"),
            vec![1, 2, 3],
        )
        .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

/// Holds the writer before its next fsync, sends `write`, waits until sled holds `key`, and
/// runs `check` while the write is applied but not yet durable; then lets the writer go.
fn while_not_durable<T>(
    store: &SledStore,
    key: &[u8],
    write: impl FnOnce() -> StoreFuture<T>,
    check: impl FnOnce(),
) -> T {
    let gate = store.shared.flush_gate.lock().unwrap();
    let mut future = write();
    while sled_value(&store.shared.sled().unwrap(), key).is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(is_pending(&mut future), "a write resolved before its fsync");
    check();
    drop(gate);
    block_on(future).unwrap()
}

#[test]
fn epoch_start_decision_and_history_are_not_shown_before_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let info_key = keys::epoch_info_key(&epoch());
    let insert = || store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    while_not_durable(&store, &info_key, insert, || {
        let info = block_on(store.epoch_info(&epoch())).unwrap();
        assert_eq!(info.started_ms, None);
    });
    assert_eq!(
        block_on(store.epoch_info(&epoch())).unwrap().started_ms,
        Some(T0_MS)
    );

    store.shared.sled().unwrap().remove(&info_key).unwrap();
    let decide = || store.record_decision(&epoch(), decision("bold", T0_MS));
    let held = while_not_durable(&store, &info_key, decide, || {
        let info = block_on(store.epoch_info(&epoch())).unwrap();
        assert_eq!(info.decision, None);
    });
    assert_eq!(held, decision("bold", T0_MS));
    assert_eq!(
        block_on(store.epoch_info(&epoch())).unwrap().decision,
        Some(held)
    );

    let history_key = keys::history_key(&epoch(), T0_MS);
    let point = point(T0_MS, "n");
    let append = || store.append_history(&epoch(), point.clone());
    let mut read = None;
    while_not_durable(&store, &history_key, append, || {
        let mut history = store.history(&epoch(), 0, 10);
        assert!(
            is_pending(&mut history),
            "history() showed a point a crash could take back"
        );
        read = Some(history);
    });
    let read = read.unwrap();
    assert_eq!(block_on(read).unwrap(), vec![point]);
}

/// The record keys every expiry-index value lists, in key order.
/// Whether sled holds any value of the mark log (applied, durable or not).
fn any_mark_value(store: &SledStore) -> bool {
    store
        .shared
        .sled()
        .unwrap()
        .scan_prefix([keys::KIND_MARK_LOG])
        .next()
        .is_some()
}

/// The assignment ids of every token mark in the mark log, sorted.
fn marked_tokens(db: &::sled::Db) -> Vec<String> {
    let mut tokens = Vec::new();
    for item in db.scan_prefix([keys::KIND_MARK_LOG]) {
        let (_, value) = item.unwrap();
        for mark in crate::store::mark_log::decode_value(&value).unwrap() {
            tokens.push(mark.assignment_id);
        }
    }
    tokens.sort();
    tokens
}

fn indexed_records(db: &::sled::Db) -> Vec<Vec<u8>> {
    let mut listed = Vec::new();
    for item in db.scan_prefix([keys::KIND_EXPIRY]) {
        let (key, value) = item.unwrap();
        let due_ms = keys::parse_expiry_key(&key).unwrap();
        for (record_key, _) in expiry_index::decode_index_value(due_ms, &value).unwrap() {
            listed.push(record_key.to_vec());
        }
    }
    listed.sort();
    listed
}

#[test]
fn a_failed_request_drops_its_index_entries_and_the_rest_of_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let broken = crate::store::sled_delay::delay_bin_key(&epoch(), "broken", T0_MS, T0_MS);
    store
        .shared
        .sled()
        .unwrap()
        .insert(&broken, vec![0xF0])
        .unwrap();
    let token =
        |event: &str, assignment: &str| token_reward(event, assignment, "bold", T0_MS, 1.0, T0_MS);
    let before = store.flush_count();
    let gate = store.shared.flush_gate.lock().unwrap();
    let first = store.apply_rewards(vec![token("e0", "a0")]);
    while !any_mark_value(&store) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Both queue while the writer waits on the gate, so they share the next commit.
    let failing = store.apply_rewards(vec![
        token("e1", "a1"),
        token_reward("e2", "a2", "broken", T0_MS, 1.0, T0_MS),
    ]);
    let passing = store.apply_rewards(vec![token("e3", "a3")]);
    drop(gate);
    block_on(first).unwrap();
    assert!(matches!(block_on(failing), Err(StoreError::Corrupt(_))));
    assert_eq!(
        block_on(passing).unwrap(),
        vec![RewardOutcome::Applied {
            variant: "bold".to_owned()
        }]
    );
    assert_eq!(store.flush_count(), before + 2, "two commits");
    // Since store format 7 token marks are in the mark log (ids since format 3 in the event
    // log): the failed request's mark is not, and the index lists nothing.
    let db = store.shared.sled().unwrap();
    assert_eq!(marked_tokens(&db), ["a0", "a3"]);
    assert_eq!(indexed_records(&db), Vec::<Vec<u8>>::new());
    drop(db);
    store.shared.sled().unwrap().remove(&broken).unwrap();
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.event_ids, report.live_token_marks), (2, 2));
}

#[test]
fn a_copy_taken_between_apply_and_fsync_opens_with_records_and_index_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rewards = |from: usize, at_ms: u64| -> Vec<RewardOp> {
        (from..from + 300)
            .map(|n| {
                let (event, token) = (format!("e{n}"), format!("a{n}"));
                token_reward(&event, &token, "bold", at_ms, 0.5, at_ms)
            })
            .collect()
    };
    block_on(store.apply_rewards(rewards(0, T0_MS))).unwrap();
    let gate = store.shared.flush_gate.lock().unwrap();
    let expire = store.expire(T0_MS + 60 * DAY_MS);
    while any_mark_value(&store) {
        std::thread::sleep(Duration::from_millis(1));
    }
    copy_dir(dir.path(), &copies.path().join("expire"));
    drop(gate);
    assert_eq!(block_on(expire).unwrap(), 600);

    let gate = store.shared.flush_gate.lock().unwrap();
    // Issued after the expiry watermark, or they would be refused.
    let write = store.apply_rewards(rewards(300, T0_MS + 60 * DAY_MS));
    while !any_mark_value(&store) {
        std::thread::sleep(Duration::from_millis(1));
    }
    copy_dir(dir.path(), &copies.path().join("rewards"));
    drop(gate);
    block_on(write).unwrap();
    // Each copy holds the commit whole or not at all: counters equal the records, every id
    // and mark is indexed, and ids and marks come and go together.
    for copy in ["expire", "rewards"] {
        let report = open(&copies.path().join(copy)).audit().unwrap();
        assert!(report.is_clean(), "{copy}: {report:?}");
        assert_eq!(report.event_ids, report.live_token_marks, "{copy}");
        assert!(report.event_ids.is_multiple_of(300), "{copy}: {report:?}");
    }
}

#[test]
fn the_audit_reports_a_token_mark_whose_digest_is_not_logged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.apply_rewards(vec![token_reward("e1", "a1", "bold", T0_MS, 1.0, T0_MS)]))
            .unwrap();
        assert_eq!(store.audit().unwrap().unindexed_records, 0);
    }
    {
        let db = raw_db(dir.path());
        // Since store format 7 a mark's at-most-once check and removal are its digest in the
        // event log: a payload entry without it would be credited again, and never removed.
        let (key, value) = db
            .scan_prefix([keys::KIND_MARK_LOG])
            .next()
            .unwrap()
            .unwrap();
        let mut parsed = crate::store::mark_log::PayloadKey::parse(&key).unwrap();
        parsed.chunk += 1;
        let mut mark = crate::store::mark_log::decode_value(&value).unwrap();
        mark[0].assignment_id = "a2".to_owned();
        mark[0].reward = 0.0;
        let mut pending = crate::store::mark_log::PendingMarks::default();
        pending.push(crate::store::mark_log::PendingMark {
            due_ms: parsed.due_ms,
            epoch: parsed.epoch.clone(),
            digest: 0,
            credit: mark.remove(0),
        });
        let values =
            crate::store::mark_log::log_values_from(parsed.seq, parsed.chunk, &pending.marks).0;
        let (payload_key, payload) = values
            .into_iter()
            .find(|(key, _)| key[0] == keys::KIND_MARK_LOG)
            .unwrap();
        db.insert(payload_key, payload).unwrap();
        db.flush().unwrap();
    }
    let report = open(dir.path()).audit().unwrap();
    assert_eq!((report.live_token_marks, report.unindexed_records), (2, 1));
    assert!(!report.is_clean());
}
