//! Digests made by the store handle and carried to the writer (`reward_digests`): what is
//! kept is what the writer's own hashing would have kept, a carried digest is what the writer
//! uses, and digests made with another key are made again.

use super::*;
use crate::store::apply::{self, RewardRun};
use crate::store::event_log;
use crate::store::overlay::{BatchState, Txn};
use crate::store::state::DurableState;
use crate::store::test_support::*;
use crate::store::{RewardOutcome, Store};

/// The event ids a store kept, as its event log replays them.
fn kept_ids(db: &::sled::Db) -> (Digester, crate::store::event_ids::EventIdSet) {
    let digester = event_log::digester(db).unwrap();
    (digester, event_log::replay(db, digester, 0, None).unwrap())
}

#[test]
fn rewards_keep_the_event_id_digests_and_credit_the_units_the_store_key_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let units = ["u0", "u1", "u2"];
    for unit in units {
        let assigned = record("control", T0_MS);
        block_on(store.insert_sticky(&epoch(), unit, assigned, tally(T0_MS))).unwrap();
    }
    let ops: Vec<_> = units
        .iter()
        .enumerate()
        .map(|(i, unit)| unit_reward(&format!("e{i}"), unit, 1.0, T0_MS + 1_000))
        .collect();
    let outcomes = block_on(store.apply_rewards(ops)).unwrap();
    assert_all_applied(&outcomes);
    // The digest the event log keeps is (experiment, event id) under the store's key, as
    // before digests were made off the writer: the stored format is unchanged.
    let (digester, kept) = kept_ids(&store.raw().db);
    for i in 0..units.len() {
        let digest = digester.digest(&epoch().experiment, &format!("e{i}"));
        assert!(kept.kept.contains(digest), "e{i} kept under its digest");
    }
    assert!(!kept.kept.contains(digester.digest("elsewhere", "e0")));
    // The table found and rewrote each unit under its key's digest: the handle's own read
    // (which hashes the key itself) sees the reward.
    for unit in units {
        let held = block_on(store.sticky(&epoch(), unit)).unwrap().unwrap();
        assert_eq!(held.reward, Some(1.0), "{unit}");
    }
    // A retry is a duplicate, and after a reopen too.
    let retry = vec![unit_reward("e1", "u1", 1.0, T0_MS + 2_000)];
    let outcomes = block_on(store.apply_rewards(retry.clone())).unwrap();
    assert_eq!(outcomes, vec![RewardOutcome::Duplicate]);
    drop(store);
    let store = open(dir.path());
    let outcomes = block_on(store.apply_rewards(retry)).unwrap();
    assert_eq!(outcomes, vec![RewardOutcome::Duplicate]);
    assert!(store.audit().unwrap().is_clean());
}

/// A durable state whose key is `Digester::default()`, holding unit `u1`'s record.
fn durable_with_u1() -> DurableState {
    let durable = DurableState::default();
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    let digest = Digester::default().digest_bytes(&key);
    durable
        .sticky
        .apply(&[(digest, Some(record("control", T0_MS)))]);
    durable
}

#[test]
fn the_writer_uses_the_digests_carried_to_it() {
    let (_dir, db) = temp_db();
    let durable = durable_with_u1();
    let batch = BatchState::default();
    let ops = vec![unit_reward("e1", "u1", 1.0, T0_MS + 1_000)];
    // Made with the writer's key but of another unit's key: a writer that trusts them (and
    // does not hash again) does not find u1.
    let mut forged = RewardDigests::of(Digester::default(), &ops).ops;
    let other = keys::epoch_key(KIND_STICKY, &epoch(), "u2");
    if let Some((_, digest)) = forged[0].sticky.as_mut() {
        *digest = Digester::default().digest_bytes(&other);
    }
    let forged = RewardDigests::forged(Digester::default(), forged);
    let mut txn = Txn::new(&db, &durable, &batch);
    let outcomes = RewardRun::default().apply(&mut txn, &ops, forged).unwrap();
    assert_eq!(outcomes, vec![RewardOutcome::UnitNotAssigned]);
    // The same ops with true digests credit u1 and keep e1's digest.
    let mut txn = Txn::new(&db, &durable, &batch);
    let digests = RewardDigests::of(Digester::default(), &ops);
    let outcomes = RewardRun::default().apply(&mut txn, &ops, digests).unwrap();
    assert_all_applied(&outcomes);
    assert!(txn.event_id_seen(Digester::default().digest(&epoch().experiment, "e1")));
}

#[test]
fn digests_made_with_another_key_are_made_again_with_the_writers() {
    let (_dir, db) = temp_db();
    let durable = durable_with_u1();
    let batch = BatchState::default();
    let ops = vec![unit_reward("e1", "u1", 1.0, T0_MS + 1_000)];
    let stale = RewardDigests::of(
        Digester::new([7; crate::store::event_ids::DIGEST_KEY_LEN]),
        &ops,
    );
    let mut txn = Txn::new(&db, &durable, &batch);
    let outcomes = RewardRun::default().apply(&mut txn, &ops, stale).unwrap();
    assert_all_applied(&outcomes);
    let writer = Digester::default();
    assert!(txn.event_id_seen(writer.digest(&epoch().experiment, "e1")));
    // Digests for other ops than the command's are not used either.
    let mut txn = Txn::new(&db, &durable, &batch);
    let short = RewardDigests::of(writer, &[]);
    let outcomes = RewardRun::default().apply(&mut txn, &ops, short).unwrap();
    assert_all_applied(&outcomes);
    // `for_writer` on its own: equal to what the writer's key makes.
    let stale = RewardDigests::of(
        Digester::new([9; crate::store::event_ids::DIGEST_KEY_LEN]),
        &ops,
    );
    assert_eq!(
        stale.for_writer(&writer, &writer, &ops),
        RewardDigests::of(writer, &ops).ops
    );
}

#[test]
fn a_new_units_insert_uses_the_carried_digest_and_makes_another_keys_again() {
    let (_dir, db) = temp_db();
    let durable = durable_with_u1();
    let batch = BatchState::default();
    let writer = Digester::default();
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u1");
    let true_digest = writer.digest_bytes(&key);
    let insert = |digest: u64| {
        let mut txn = Txn::new(&db, &durable, &batch);
        let written = (key.clone(), digest, record("bold", T0_MS + 5));
        apply::insert_sticky(&mut txn, &epoch(), written, &tally(T0_MS + 5)).unwrap()
    };
    // With u1's digest the insert finds u1's record and loses to it.
    assert_eq!(insert(true_digest), (record("control", T0_MS), false));
    // With another key's digest claimed as the writer's, the writer believes it: the record
    // is not found and the insert wins (so the carried digest is what the writer reads with).
    let other = writer.digest_bytes(&keys::epoch_key(KIND_STICKY, &epoch(), "u2"));
    let carried = KeyDigest::new(writer, other).for_writer(&writer, &key);
    assert!(insert(carried).1);
    // Made with another key, the digest is made again with the writer's.
    let stale_key = Digester::new([7; crate::store::event_ids::DIGEST_KEY_LEN]);
    let stale = KeyDigest::new(stale_key, stale_key.digest_bytes(&key));
    assert_eq!(stale.for_writer(&writer, &key), true_digest);
    assert!(!insert(stale.for_writer(&writer, &key)).1);
}
