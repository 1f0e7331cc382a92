//! The event log's layout, and the store's event ids across commits, expiry and reopens.

use super::*;
use crate::store::test_support::{
    DAY_MS, T0_MS, assert_all_applied, block_on, epoch, open, raw_db, record, tally, unit_reward,
};
use crate::store::{RewardOutcome, Store};

#[test]
fn a_generation_is_the_deadline_rounded_up_to_the_hour() {
    assert_eq!(generation_due(0), 0);
    assert_eq!(generation_due(1), GENERATION_MS);
    assert_eq!(generation_due(GENERATION_MS), GENERATION_MS);
    assert_eq!(generation_due(GENERATION_MS + 1), 2 * GENERATION_MS);
    assert!(generation_due(u64::MAX) >= u64::MAX - GENERATION_MS);
}

#[test]
fn log_values_group_ids_by_generation_and_stay_small() {
    let mut added: Vec<(u64, u64)> = (0..2 * MAX_LOG_VALUE_DIGESTS as u64 + 176)
        .map(|n| (2 * GENERATION_MS, n))
        .collect();
    added.push((GENERATION_MS, 7_000));
    let values = log_values(42, &added);
    let dues: Vec<u64> = values
        .iter()
        .map(|(k, _)| parse_log_key(k).unwrap())
        .collect();
    assert_eq!(
        dues,
        [1, 2, 2, 2].map(|h| h * GENERATION_MS),
        "keys sort by generation"
    );
    assert!(values.windows(2).all(|pair| pair[0].0 < pair[1].0));
    for (_, value) in &values {
        assert!(value.len() <= MAX_LOG_VALUE_DIGESTS * 8);
    }
    let decoded: Vec<u64> = values
        .iter()
        .flat_map(|(_, value)| decode_value(value).unwrap().collect::<Vec<_>>())
        .collect();
    let mut expected = vec![7_000];
    expected.extend(0..2 * MAX_LOG_VALUE_DIGESTS as u64 + 176);
    assert_eq!(decoded, expected);
}

#[test]
fn malformed_log_keys_and_values_are_corrupt_not_panics() {
    assert!(parse_log_key(b"").is_err());
    assert!(parse_log_key(&log_key(1, 2, 3)[..10]).is_err());
    assert!(decode_value(&[1, 2, 3]).is_err());
    assert_eq!(decode_value(&[]).unwrap().count(), 0);
}

fn ids_in_sled(dir: &std::path::Path) -> (usize, usize, usize) {
    let db = raw_db(dir);
    let count = |kind: u8| db.scan_prefix([kind]).count();
    (
        count(keys::KIND_EVENT_LOG),
        count(keys::KIND_EVENT_ID),
        count(keys::KIND_EXPIRY),
    )
}

/// Assigns units `u0..` at T0, queued together so that they share a few group commits.
fn fill_units(store: &crate::store::SledStore, units: usize) {
    fill_units_at(store, "u", units, T0_MS);
}

fn fill_units_at(store: &crate::store::SledStore, prefix: &str, units: usize, at_ms: u64) {
    let inserts: Vec<_> = (0..units)
        .map(|n| {
            let unit = format!("{prefix}{n}");
            store.insert_sticky(&epoch(), &unit, record("control", at_ms), tally(at_ms))
        })
        .collect();
    block_on(async {
        for insert in inserts {
            insert.await.unwrap();
        }
    });
}

#[test]
fn a_thousand_events_are_four_log_values_and_no_key_per_id() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        fill_units(&store, 1000);
        let ops = (0..1000)
            .map(|n| unit_reward(&format!("e{n}"), &format!("u{n}"), 1.0, T0_MS + 1))
            .collect();
        let outcomes = block_on(store.apply_rewards(ops)).unwrap();
        assert_all_applied(&outcomes);
        block_on(store.shutdown()).unwrap();
    }
    assert_eq!(
        ids_in_sled(dir.path()),
        (1000usize.div_ceil(MAX_LOG_VALUE_DIGESTS), 0, 0)
    );
    let report = open(dir.path()).audit().unwrap();
    assert_eq!(report.event_ids, 1000);
}

#[test]
fn applied_ids_are_duplicates_after_a_reopen_and_apply_again_once_their_generation_expired() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        fill_units(&store, 3);
        let ops = vec![
            unit_reward("e0", "u0", 1.0, T0_MS),
            unit_reward("e1", "u1", 0.0, T0_MS),
        ];
        block_on(store.apply_rewards(ops)).unwrap();
    }
    let store = open(dir.path());
    let retry = vec![
        unit_reward("e0", "u0", 1.0, T0_MS + 5),
        unit_reward("e1", "u2", 1.0, T0_MS + 5),
        // The same id twice in one request: the second is a duplicate of the first.
        unit_reward("e2", "u2", 1.0, T0_MS + 5),
        unit_reward("e2", "u2", 1.0, T0_MS + 5),
    ];
    let outcomes = block_on(store.apply_rewards(retry)).unwrap();
    assert!(matches!(outcomes[0], RewardOutcome::Duplicate));
    assert!(matches!(outcomes[1], RewardOutcome::Duplicate));
    assert!(matches!(outcomes[2], RewardOutcome::Applied { .. }));
    assert!(matches!(outcomes[3], RewardOutcome::Duplicate));
    // Kept at least the 7-day window: not removed just before it ends.
    let before_window = T0_MS + 7 * DAY_MS - 1;
    assert_eq!(block_on(store.expire(before_window)).unwrap(), 0);
    let dup = block_on(store.apply_rewards(vec![unit_reward("e0", "u0", 1.0, T0_MS + 9)]));
    assert!(matches!(dup.unwrap()[0], RewardOutcome::Duplicate));
    // Past the window and its generation, the whole generation goes at once.
    let past = generation_due(T0_MS + 5 + 7 * DAY_MS);
    assert_eq!(block_on(store.expire(past)).unwrap(), 3);
    drop(store);
    assert_eq!(ids_in_sled(dir.path()).0, 0);
    let store = open(dir.path());
    // Forgotten: the id is new again (the unit's record refuses a second reward, as ever).
    let again = block_on(store.apply_rewards(vec![unit_reward("e0", "u0", 1.0, past)]));
    assert!(!matches!(again.unwrap()[0], RewardOutcome::Duplicate));
}

#[test]
fn an_expire_and_a_reapplication_in_one_commit_keep_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    fill_units(&store, 2);
    block_on(store.apply_rewards(vec![unit_reward("e0", "u0", 1.0, T0_MS)])).unwrap();
    let past = generation_due(T0_MS + 7 * DAY_MS);
    fill_units_at(&store, "late", 1, past);
    // Queued together so that one group commit carries both.
    let expire = store.expire(past);
    let apply = store.apply_rewards(vec![unit_reward("e0", "late0", 1.0, past)]);
    block_on(async {
        let (removed, outcomes) = futures_util::future::join(expire, apply).await;
        assert_eq!(removed.unwrap(), 1);
        assert!(matches!(
            outcomes.unwrap()[0],
            RewardOutcome::Applied { .. }
        ));
    });
    drop(store);
    let store = open(dir.path());
    let retry = block_on(store.apply_rewards(vec![unit_reward("e0", "late0", 1.0, past + 1)]));
    assert!(matches!(retry.unwrap()[0], RewardOutcome::Duplicate));
}

#[test]
fn bulk_ingest_leaves_no_blob_file_that_sled_would_not_sync() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        fill_units(&store, 40_000);
        for round in 0..20 {
            let ops = (round * 2000..(round + 1) * 2000)
                .map(|n| unit_reward(&format!("e{n}"), &format!("u{n}"), 0.0, T0_MS))
                .collect();
            block_on(store.apply_rewards(ops)).unwrap();
        }
        block_on(store.shutdown()).unwrap();
    }
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(blobs.is_empty(), "{blobs:?}");
    assert_eq!(open(dir.path()).audit().unwrap().event_ids, 40_000);
}

#[test]
fn a_store_with_logged_ids_but_without_its_digest_key_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        fill_units(&store, 1);
        block_on(store.apply_rewards(vec![unit_reward("e0", "u0", 1.0, T0_MS)])).unwrap();
    }
    {
        let db = raw_db(dir.path());
        db.remove(keys::META_EVENT_ID_KEY).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        crate::store::SledStore::open(dir.path()),
        Err(crate::store::StoreError::Corrupt(_))
    ));
}

#[test]
fn an_expire_pass_takes_whole_values_and_charges_its_budget_per_key_not_per_id() {
    let (_dir, db) = crate::store::test_support::temp_db();
    let added: Vec<(u64, u64)> = (0..3 * MAX_LOG_VALUE_DIGESTS as u64)
        .map(|n| (GENERATION_MS, n))
        .collect();
    for (key, value) in log_values(1, &added) {
        db.insert(key, value).unwrap();
    }
    let durable = crate::store::state::DurableState::default();
    let batch = crate::store::overlay::BatchState::new(2, 0);
    let mut txn = Txn::new(&db, &durable, &batch);
    // Each full value costs 1 + 256 / 64 = 5: a budget of 10 takes two values, then stops.
    let mut budget = 10;
    assert_eq!(
        expire_due(&mut txn, GENERATION_MS, &mut budget).unwrap(),
        (2 * MAX_LOG_VALUE_DIGESTS as u64, false)
    );
    let mut budget = 100;
    let (removed, done) = expire_due(&mut txn, GENERATION_MS, &mut budget).unwrap();
    assert_eq!((removed, done), (MAX_LOG_VALUE_DIGESTS as u64, true));
    // Nothing is due before the generation.
    let batch = crate::store::overlay::BatchState::new(3, 0);
    let mut txn = Txn::new(&db, &durable, &batch);
    assert_eq!(
        expire_due(&mut txn, GENERATION_MS - 1, &mut 100).unwrap(),
        (0, true)
    );
}

/// Replay time at startup, measured (an ignored test: run it by name, with its output shown;
/// the figures are in `benches/load/PROFILES.md`). Writes the log values of `ids` ids as the
/// writer would (1,000 ids a commit) into a fresh store, closes it and times `load`.
#[test]
#[ignore = "a measurement: run by name with its output shown"]
fn replay_time_of_the_event_log_is_measured() {
    for ids in [5_000_000u64, 20_000_000] {
        let (_dir, db) = crate::store::test_support::temp_db();
        db.insert(keys::META_EVENT_ID_KEY, &[9; DIGEST_KEY_LEN])
            .unwrap();
        let digester = Digester::new([9; DIGEST_KEY_LEN]);
        for commit in 0..ids / 1000 {
            let added: Vec<(u64, u64)> = (0..1000)
                .map(|n| {
                    (
                        GENERATION_MS,
                        digester.digest("exp", &(commit * 1000 + n).to_string()),
                    )
                })
                .collect();
            let mut batch = sled::Batch::default();
            for (key, value) in log_values(commit + 1, &added) {
                batch.insert(key, value);
            }
            db.apply_batch(batch).unwrap();
        }
        db.flush().unwrap();
        let started = std::time::Instant::now();
        let set = replay(&db, digester, 0, None).unwrap();
        println!(
            "{ids} ids: replayed in {:.2} s ({} kept)",
            started.elapsed().as_secs_f64(),
            set.kept.len()
        );
        assert_eq!(set.kept.len() as u64, ids);
    }
}

/// The replay's key ranges cover the log in order whatever its generations and commits look
/// like, and a replay on two threads (any size hint: none, a stale one, the right one) keeps
/// exactly the logged digests, old-layout values (256 digests) and mark values included.
#[test]
fn a_replay_on_two_threads_keeps_exactly_the_logged_digests() {
    use rand::{RngExt, SeedableRng};
    use std::collections::HashSet;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.insert(keys::META_EVENT_ID_KEY, &[7u8; DIGEST_KEY_LEN][..])
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut logged = HashSet::new();
    // Three generations of commits with gaps in their sequence numbers, values of up to 256
    // digests, a mark-digest value in some commits, and one generation of a single commit.
    for (generation, commits) in [(1u64, 300u64), (2, 1), (5, 40)] {
        let due_ms = generation * GENERATION_MS;
        for commit in 0..commits {
            let seq = generation * 10_000 + commit * 3;
            let added: Vec<(u64, u64)> = (0..rng.random_range(1..600))
                .map(|_| (due_ms, rng.random::<u64>()))
                .collect();
            logged.extend(added.iter().map(|&(_, digest)| digest));
            for (key, value) in log_values(seq, &added) {
                db.insert(key, value).unwrap();
            }
            if commit % 7 == 0 {
                let mark: u64 = rng.random();
                logged.insert(mark);
                let key = log_key(due_ms, seq, crate::store::mark_log::MARK_CHUNK_BIT);
                db.insert(key, mark.to_le_bytes().to_vec()).unwrap();
            }
        }
    }
    let digester = digester(&db).unwrap();
    let ranges: Vec<(Vec<u8>, Vec<u8>)> = plan(&db, &digester, None)
        .unwrap()
        .pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Sled(start, end) => (start, end),
            Piece::File { .. } => panic!("no sealed files were given"),
        })
        .collect();
    assert!(ranges.len() > 3, "generations are cut into pieces");
    assert_eq!(ranges[0].0, vec![KIND_EVENT_LOG]);
    assert_eq!(
        ranges.last().unwrap().1,
        keys::due_end(KIND_EVENT_LOG, 5 * GENERATION_MS)
    );
    assert!(
        ranges
            .windows(2)
            .all(|pair| pair[0].1 == pair[1].0 && pair[0].0 < pair[0].1)
    );
    let in_ranges: usize = ranges
        .iter()
        .map(|(start, end)| db.range(start.as_slice()..end.as_slice()).count())
        .sum();
    assert_eq!(in_ranges, db.scan_prefix([KIND_EVENT_LOG]).count());
    for hint in [0, 1_000, logged.len(), 10 * logged.len()] {
        let set = replay(&db, digester, hint, None).unwrap();
        assert_eq!(set.kept.len(), logged.len(), "hint {hint}");
        assert!(logged.iter().all(|&digest| set.kept.contains(digest)));
        assert!((0..10_000).all(|_| {
            let digest = rng.random::<u64>();
            logged.contains(&digest) || !set.kept.contains(digest)
        }));
    }
}
