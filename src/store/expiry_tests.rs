//! The index layout ([`index_values`]) and [`expire`] against a [`Txn`], with commits made by
//! hand the way `Writer::commit` makes them.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::store::confirm_apply;
use crate::store::confirmations::TokenConfirmation;
use crate::store::expiry_index::*;
use crate::store::keys::KIND_EXPIRY;
use crate::store::keys::{put_bytes, put_varint};
use crate::store::overlay::BatchState;
use crate::store::state::DurableState;
use crate::store::test_support::{epoch, temp_db};

/// A confirmation mark's key: since store format 7 the index lists only confirmation marks
/// (event ids and token marks expire by whole generations, `event_log` and `mark_log`).
fn id_key(n: usize) -> Vec<u8> {
    confirm_apply::mark_key(&epoch(), &format!("event-{n}"))
}

/// A confirmation mark of `bold`, retained until `deadline_ms`.
fn mark_until(deadline_ms: u64) -> Vec<u8> {
    confirm_apply::encode_mark(&TokenConfirmation {
        assignment_id: String::new(),
        variant: "bold".to_owned(),
        issued_ms: 0,
        propensity: 0.5,
        confirmed_ms: 0,
        retained_until_ms: deadline_ms,
    })
}

fn pending_of(entries: &[(Vec<u8>, u64)]) -> PendingExpiries {
    let mut pending = PendingExpiries::default();
    for (key, deadline_ms) in entries {
        pending.push(key, *deadline_ms);
    }
    pending
}

/// Every (due time, record key, deadline) the values list, in key order.
fn listed(values: &[(Vec<u8>, Vec<u8>)]) -> Vec<(u64, Vec<u8>, u64)> {
    let mut out = Vec::new();
    for (key, value) in values {
        let due_ms = keys::parse_expiry_key(key).unwrap();
        for (record_key, deadline_ms) in decode_index_value(due_ms, value).unwrap() {
            out.push((due_ms, record_key.to_vec(), deadline_ms));
        }
    }
    out
}

fn index_in(db: &sled::Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.scan_prefix([KIND_EXPIRY])
        .map(|item| {
            let (key, value) = item.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

/// One expire pass as its own batch `seq`, committed.
fn expire_pass(
    db: &sled::Db,
    durable: &mut DurableState,
    seq: u64,
    now_ms: u64,
    limit: usize,
) -> ExpireProgress {
    let mut batch = BatchState::new(seq, 0);
    let mut txn = Txn::new(db, durable, &batch);
    let progress = expire(&mut txn, now_ms, limit).unwrap();
    let changes = txn.finish();
    batch.merge(changes);
    commit(db, durable, batch);
    progress
}

/// Writes a batch to sled as `Writer::commit` does (records, then the batch's index values)
/// and makes its arm changes durable.
fn commit(db: &sled::Db, durable: &mut DurableState, batch: BatchState) {
    for (key, value) in batch.writes {
        match value {
            Some(value) => db.insert(key, value).unwrap(),
            None => db.remove(key).unwrap(),
        };
    }
    for (key, value) in index_values(batch.seq, &batch.expiries) {
        db.insert(key, value).unwrap();
    }
    for (epoch, arms) in batch.arms {
        durable.arms.entry(epoch).or_default().extend(arms);
    }
}

/// Stores `ids` marks (deadline 1 000 + n) and two more (deadline 2 000), all listed by one
/// index value of commit 1.
fn store_records(db: &sled::Db, ids: usize) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    for n in 0..ids {
        let deadline_ms = 1_000 + n as u64;
        db.insert(id_key(n), mark_until(deadline_ms)).unwrap();
        entries.push((id_key(n), deadline_ms));
    }
    for assignment in ["a1", "a2"] {
        let key = confirm_apply::mark_key(&epoch(), assignment);
        db.insert(key.clone(), mark_until(2_000)).unwrap();
        entries.push((key, 2_000));
    }
    let values = index_values(1, &pending_of(&entries));
    assert_eq!(values.len(), 1);
    for (key, value) in values {
        db.insert(key, value).unwrap();
    }
    entries.into_iter().map(|(key, _)| key).collect()
}

#[test]
fn one_commits_records_with_close_deadlines_share_one_value_due_at_the_next_bucket() {
    let entries = vec![(id_key(2), 59_000), (id_key(0), 1_000), (id_key(1), 30_000)];
    let values = index_values(7, &pending_of(&entries));
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].0, keys::expiry_key(60_000, 7, 0));
    let expected = [(0, 1_000), (1, 30_000), (2, 59_000)]
        .map(|(n, deadline_ms)| (60_000, id_key(n), deadline_ms));
    assert_eq!(listed(&values), expected);
    // A deadline on a bucket boundary is due at that boundary, not a bucket later.
    let exact = index_values(7, &pending_of(&[(id_key(0), 120_000)]));
    assert_eq!(exact[0].0, keys::expiry_key(120_000, 7, 0));
}

#[test]
fn a_commits_index_splits_where_deadlines_spread_past_the_span_and_past_the_size_cap() {
    let spread = vec![
        (id_key(0), 0),
        (id_key(1), INDEX_SPAN_MS),
        (id_key(2), INDEX_SPAN_MS + 1),
    ];
    let values = index_values(3, &pending_of(&spread));
    let dues: Vec<u64> = values
        .iter()
        .map(|(key, _)| keys::parse_expiry_key(key).unwrap())
        .collect();
    assert_eq!(
        dues,
        vec![INDEX_SPAN_MS, INDEX_SPAN_MS + EXPIRY_BUCKET_MS],
        "the first two share a value, the third starts one"
    );
    assert_eq!(values[1].0, keys::expiry_key(dues[1], 3, 1));

    let many: Vec<(Vec<u8>, u64)> = (0..3_000).map(|n| (id_key(n), 5_000)).collect();
    let values = index_values(4, &pending_of(&many));
    assert!(
        values.len() > 1,
        "{} bytes of entries fit one value",
        3_000 * 30
    );
    assert!(
        values.len() <= 8,
        "{} values for 3000 entries",
        values.len()
    );
    for (_, value) in &values {
        assert!(value.len() <= MAX_INDEX_VALUE_BYTES, "{}", value.len());
    }
    let mut keys_listed: Vec<Vec<u8>> = listed(&values).into_iter().map(|e| e.1).collect();
    keys_listed.sort();
    let mut expected: Vec<Vec<u8>> = many.into_iter().map(|(key, _)| key).collect();
    expected.sort();
    assert_eq!(keys_listed, expected, "every entry exactly once");
}

#[test]
fn every_entry_is_due_by_its_value_and_at_most_the_retention_lag_after_its_deadline() {
    let mut rng = StdRng::seed_from_u64(5);
    let entries: Vec<(Vec<u8>, u64)> = (0..5_000)
        .map(|n| {
            let deadline_ms = 1_700_000_000_000 + rng.random_range(0..7 * 24 * INDEX_SPAN_MS);
            (id_key(n), deadline_ms)
        })
        .collect();
    let values = index_values(9, &pending_of(&entries));
    let listed = listed(&values);
    for (due_ms, _, deadline_ms) in &listed {
        assert_eq!(due_ms % EXPIRY_BUCKET_MS, 0);
        assert!(deadline_ms <= due_ms);
        assert!(*due_ms <= deadline_ms + MAX_RETENTION_LAG_MS);
    }
    let mut got: Vec<(Vec<u8>, u64)> = listed.into_iter().map(|(_, k, d)| (k, d)).collect();
    let mut want = entries;
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_deadline_near_the_end_of_time_is_due_at_the_end_of_time() {
    let values = index_values(1, &pending_of(&[(id_key(0), u64::MAX - 5)]));
    assert_eq!(listed(&values), vec![(u64::MAX, id_key(0), u64::MAX - 5)]);
}

#[test]
fn entries_appended_from_requests_keep_their_keys_and_deadlines() {
    let mut batch = pending_of(&[(id_key(0), 10)]);
    batch.append(pending_of(&[(id_key(1), 20), (id_key(22), 30)]));
    let mut empty = PendingExpiries::default();
    empty.append(pending_of(&[(id_key(3), 40)]));
    batch.append(empty);
    batch.append(PendingExpiries::default());
    assert_eq!(batch.len(), 4);
    let got: Vec<(Vec<u8>, u64)> = listed(&index_values(1, &batch))
        .into_iter()
        .map(|(_, key, deadline_ms)| (key, deadline_ms))
        .collect();
    let want = [(0, 10), (1, 20), (22, 30), (3, 40)].map(|(n, d)| (id_key(n), d));
    assert_eq!(got, want);
}

#[test]
fn a_malformed_index_value_is_corrupt_not_a_panic() {
    let values = index_values(1, &pending_of(&[(id_key(0), 100), (id_key(1), 200)]));
    let (key, value) = &values[0];
    let due_ms = keys::parse_expiry_key(key).unwrap();
    for len in 1..value.len() {
        let cut = &value[..len];
        // A cut between two entries is a shorter list, anything else is corrupt.
        if let Ok(entries) = decode_index_value(due_ms, cut) {
            assert_eq!(entries.len(), 1, "cut at {len}");
        }
    }
    assert!(matches!(
        decode_index_value(due_ms, &value[..value.len() - 1]),
        Err(StoreError::Corrupt(_))
    ));
    let mut before_time_zero = Vec::new();
    put_bytes(&mut before_time_zero, b"k");
    put_varint(&mut before_time_zero, 61);
    assert!(matches!(
        decode_index_value(60, &before_time_zero),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn expire_cut_by_its_limit_rewrites_the_value_and_later_passes_finish_it_exactly_once() {
    let (_dir, db) = temp_db();
    let records = store_records(&db, 10);
    let mut durable = DurableState::default();
    let mut progress = Vec::new();
    for seq in 2.. {
        let pass = expire_pass(&db, &mut durable, seq, 1_000_000, 4);
        progress.push(pass);
        if seq == 2 {
            // The 4 entries looked at are gone from the index; the other 8 wait in it.
            let left = listed(&index_in(&db));
            assert_eq!(left.len(), 8);
            let left_keys: Vec<&Vec<u8>> = left.iter().map(|(_, key, _)| key).collect();
            assert_eq!(left_keys, records[4..].iter().collect::<Vec<_>>());
        }
        if matches!(pass, ExpireProgress::Done(_)) {
            break;
        }
    }
    use ExpireProgress::{Done, More};
    // The third pass takes the last 4 entries and finds nothing else due.
    assert_eq!(progress, vec![More(4), More(4), Done(4)]);
    for key in &records {
        assert_eq!(db.get(key).unwrap(), None);
    }
    assert!(index_in(&db).is_empty());
}

#[test]
fn two_expire_passes_in_one_batch_continue_where_the_first_stopped() {
    let (_dir, db) = temp_db();
    let records = store_records(&db, 5);
    let mut durable = DurableState::default();
    let mut batch = BatchState::new(2, 0);
    for (limit, expected) in [(3, ExpireProgress::More(3)), (10, ExpireProgress::Done(4))] {
        let mut txn = Txn::new(&db, &durable, &batch);
        assert_eq!(expire(&mut txn, 1_000_000, limit).unwrap(), expected);
        let changes = txn.finish();
        batch.merge(changes);
    }
    commit(&db, &mut durable, batch);
    for key in &records {
        assert_eq!(db.get(key).unwrap(), None);
    }
    assert!(index_in(&db).is_empty());
}

#[test]
fn a_stale_entry_leaves_a_record_with_a_newer_deadline_alone() {
    let (_dir, db) = temp_db();
    let key = id_key(0);
    db.insert(key.clone(), mark_until(500_000)).unwrap();
    for (seq, deadline_ms) in [(1, 1_000), (2, 500_000)] {
        for (index_key, value) in index_values(seq, &pending_of(&[(key.clone(), deadline_ms)])) {
            db.insert(index_key, value).unwrap();
        }
    }
    let mut durable = DurableState::default();
    let mut pass = |now_ms| expire_pass(&db, &mut durable, 3, now_ms, 100);
    assert_eq!(pass(400_000), ExpireProgress::Done(0));
    assert!(db.get(&key).unwrap().is_some());
    assert_eq!(listed(&index_in(&db)).len(), 1, "the stale entry is gone");
    assert_eq!(pass(540_000), ExpireProgress::Done(1));
    assert_eq!(db.get(&key).unwrap(), None);
}

#[test]
fn values_not_yet_due_stay_and_the_watermark_claims_only_what_was_worked_on() {
    let (_dir, db) = temp_db();
    let mut by_due = BTreeMap::new();
    for (n, deadline_ms) in [(0, 50_000), (1, 110_000)] {
        db.insert(id_key(n), mark_until(deadline_ms)).unwrap();
        let values = index_values(n as u64 + 1, &pending_of(&[(id_key(n), deadline_ms)]));
        for (key, value) in values {
            by_due.insert(keys::parse_expiry_key(&key).unwrap(), key.clone());
            db.insert(key, value).unwrap();
        }
    }
    assert_eq!(
        by_due.keys().copied().collect::<Vec<_>>(),
        vec![60_000, 120_000]
    );
    let durable = DurableState::default();
    let batch = BatchState::new(3, 0);
    let mut txn = Txn::new(&db, &durable, &batch);
    // id 1's deadline has passed, but its value is due only at the next bucket.
    assert_eq!(
        expire(&mut txn, 115_000, 100).unwrap(),
        ExpireProgress::Done(1)
    );
    assert_eq!(txn.expired_through(), 60_000);
    assert!(txn.get(&id_key(0)).unwrap().is_none());
    assert!(txn.get(&id_key(1)).unwrap().is_some());
    assert!(txn.get(&by_due[&120_000]).unwrap().is_some());
    assert_eq!(
        expire(&mut txn, 120_000, 100).unwrap(),
        ExpireProgress::Done(1)
    );
    assert_eq!(txn.expired_through(), 120_000);
}

#[test]
fn an_index_entry_for_another_kind_of_record_is_corrupt() {
    let (_dir, db) = temp_db();
    let sticky = keys::epoch_key(keys::KIND_STICKY, &epoch(), "u1");
    db.insert(sticky.clone(), vec![0]).unwrap();
    for (key, value) in index_values(1, &pending_of(&[(sticky, 10)])) {
        db.insert(key, value).unwrap();
    }
    let durable = DurableState::default();
    let batch = BatchState::new(2, 0);
    let mut txn = Txn::new(&db, &durable, &batch);
    assert!(matches!(
        expire(&mut txn, 1_000_000, 10),
        Err(StoreError::Corrupt(_))
    ));
}

/// The watermark's key as the closed store at `dir` holds it (`None`: never written).
fn watermark_on_disk(dir: &std::path::Path) -> Option<u64> {
    let db = crate::store::test_support::raw_db(dir);
    db.get(keys::META_EXPIRED_THROUGH)
        .unwrap()
        .map(|value| crate::store::codec::decode_u64(&value, "expiry watermark").unwrap())
}

#[test]
fn the_watermark_is_written_by_the_commits_that_move_it_and_kept_by_the_others() {
    use crate::store::Store as _;
    use crate::store::test_support::{DAY_MS, T0_MS, block_on, open, record, tally, token_reward};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))).unwrap();
    }
    assert_eq!(
        watermark_on_disk(dir.path()),
        None,
        "a commit that does not move the watermark does not rewrite it"
    );
    let moved = {
        let store = open(dir.path());
        let credit = token_reward("e1", "a1", "bold", T0_MS, 1.0, T0_MS);
        block_on(store.apply_rewards(vec![credit])).unwrap();
        assert!(block_on(store.expire(T0_MS + 60 * DAY_MS)).unwrap() > 0);
        drop(store);
        watermark_on_disk(dir.path()).expect("the expire moved the watermark")
    };
    assert!(moved > T0_MS);
    {
        let store = open(dir.path());
        block_on(store.insert_sticky(&epoch(), "u2", record("bold", T0_MS), tally(T0_MS))).unwrap();
        block_on(store.expire(T0_MS)).unwrap();
    }
    assert_eq!(watermark_on_disk(dir.path()), Some(moved));
}
