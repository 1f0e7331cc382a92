//! The sticky table inside [`SledStore`]: holding a commit's records once it is on disk, fresh
//! after rewards and re-assignments, never showing a record before its fsync, and whole after
//! a reopen.

use std::task::{Context, Waker};
use std::time::Duration;

use super::*;
use crate::store::test_support::*;

fn is_pending<T>(future: &mut StoreFuture<T>) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    future.as_mut().poll(&mut context).is_pending()
}

fn key(unit: &str) -> Vec<u8> {
    keys::epoch_key(KIND_STICKY, &epoch(), unit)
}

fn insert(store: &SledStore, unit: &str, variant: &str) {
    let (_, inserted) =
        block_on(store.insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS)))
            .unwrap();
    assert!(inserted);
}

fn counters_of(store: &SledStore) -> HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

fn sticky(store: &SledStore, unit: &str) -> Option<StickyRecord> {
    block_on(store.sticky(&epoch(), unit)).unwrap()
}

/// Waits until the writer applied a change to sled's unit log (it is then held at
/// `flush_gate`).
fn wait_for_sled(store: &SledStore, unit: &str, applied: impl Fn(&StickyRecord) -> bool) {
    loop {
        let db = store.shared.sled().unwrap();
        let (latest, _) = crate::store::unit_log::latest_records(&db).unwrap();
        if latest.get(&key(unit)).is_some_and(&applied) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_new_unit_is_in_the_table_once_the_commit_that_wrote_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "bold");
    assert_eq!(
        store.shared.sticky.load().peek(&key("u1")),
        Some(record("bold", T0_MS))
    );
    let before = store.sticky_cache_stats();
    let commits_before = store.flush_count();
    assert_eq!(sticky(&store, "u1"), Some(record("bold", T0_MS)));
    let again = block_on(store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS)));
    assert_eq!(again.unwrap(), (record("bold", T0_MS), false));
    let after = store.sticky_cache_stats();
    // The read is a counted hit; the insert's look at the cache is not counted, and it was
    // answered there, without a commit.
    assert_eq!((after.hits, after.misses), (before.hits + 1, before.misses));
    assert_eq!(store.flush_count(), commits_before);
}

#[test]
fn a_committed_reward_is_visible_through_sticky_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "bold");
    assert_eq!(sticky(&store, "u1").unwrap().reward, None);
    let outcomes = block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 0.75, T0_MS)]));
    assert_eq!(
        outcomes.unwrap(),
        vec![RewardOutcome::Applied {
            variant: "bold".to_owned()
        }]
    );
    let hits = store.sticky_cache_stats().hits;
    assert_eq!(sticky(&store, "u1").unwrap().reward, Some(0.75));
    assert_eq!(store.sticky_cache_stats().hits, hits + 1);
}

#[test]
fn a_reassignment_is_visible_through_sticky_and_insert_sticky_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "old");
    assert_eq!(sticky(&store, "u1").unwrap().variant, "old");
    let moved = record("new", T0_MS + 1);
    let outcome =
        block_on(store.reassign_sticky(&epoch(), "u1", "old", moved.clone(), tally(T0_MS + 1)));
    assert_eq!(outcome.unwrap(), Some((moved.clone(), true)));
    assert_eq!(sticky(&store, "u1"), Some(moved.clone()));
    let again = block_on(store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS)));
    assert_eq!(again.unwrap(), (moved, false));
}

#[test]
fn a_record_held_between_apply_and_flush_is_not_shown_until_its_commit_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = store.shared.flush_gate.lock().unwrap();
    let insert = store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    wait_for_sled(&store, "u1", |_| true);
    // The record is in sled, not on disk: a read answers the durable state (no record) at
    // once, and a second insert waits for the writer, which answers the first one's record.
    let mut read = store.sticky(&epoch(), "u1");
    let mut second_insert =
        store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS));
    let mut context = Context::from_waker(Waker::noop());
    match read.as_mut().poll(&mut context) {
        std::task::Poll::Ready(answer) => assert_eq!(answer.unwrap(), None),
        std::task::Poll::Pending => panic!("a read of the durable table waited"),
    }
    assert!(is_pending(&mut second_insert));
    assert_eq!(store.shared.sticky.load().peek(&key("u1")), None);
    assert_eq!(store.sticky_cache_stats().entries, 0);
    drop(gate);
    assert_eq!(block_on(insert).unwrap(), (record("bold", T0_MS), true));
    assert_eq!(
        block_on(second_insert).unwrap(),
        (record("bold", T0_MS), false)
    );
    assert_eq!(
        store.shared.sticky.load().peek(&key("u1")),
        Some(record("bold", T0_MS))
    );
}

#[test]
fn a_reward_held_between_apply_and_flush_leaves_the_record_read_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "bold");
    let gate = store.shared.flush_gate.lock().unwrap();
    let rewards = store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)]);
    wait_for_sled(&store, "u1", |record| record.reward.is_some());
    // The reward is in sled but not on disk: the answer is the durable record, at once.
    let mut read = store.sticky(&epoch(), "u1");
    let mut context = Context::from_waker(Waker::noop());
    match read.as_mut().poll(&mut context) {
        std::task::Poll::Ready(answer) => assert_eq!(answer.unwrap().unwrap().reward, None),
        std::task::Poll::Pending => panic!("a durable record waited for a later commit"),
    }
    drop(gate);
    block_on(rewards).unwrap();
    assert_eq!(sticky(&store, "u1").unwrap().reward, Some(1.0));
}

#[test]
fn a_reassignment_held_between_apply_and_flush_leaves_the_record_read_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "old");
    let gate = store.shared.flush_gate.lock().unwrap();
    let moved = record("new", T0_MS + 1);
    let moving = store.reassign_sticky(&epoch(), "u1", "old", moved.clone(), tally(T0_MS + 1));
    wait_for_sled(&store, "u1", |record| record.variant == "new");
    // Until the fsync, both read paths answer the durable assignment, as a read made just
    // before the re-assignment would.
    let mut context = Context::from_waker(Waker::noop());
    match store.sticky(&epoch(), "u1").as_mut().poll(&mut context) {
        std::task::Poll::Ready(answer) => assert_eq!(answer.unwrap().unwrap().variant, "old"),
        std::task::Poll::Pending => panic!("a durable record waited for a later commit"),
    }
    let mut again = store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS));
    match again.as_mut().poll(&mut context) {
        std::task::Poll::Ready(answer) => {
            assert_eq!(answer.unwrap(), (record("old", T0_MS), false));
        }
        std::task::Poll::Pending => panic!("a durable record waited for a later commit"),
    }
    drop(gate);
    assert_eq!(block_on(moving).unwrap(), Some((moved.clone(), true)));
    assert_eq!(sticky(&store, "u1"), Some(moved));
    assert_eq!(counters_of(&store)["new"].exposures, 1);
}

#[test]
fn a_reopened_store_holds_every_record_before_its_first_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for unit in 0..50 {
            insert(&store, &format!("u{unit}"), ["bold", "calm"][unit % 2]);
        }
        block_on(store.apply_rewards(vec![unit_reward("e1", "u7", 0.5, T0_MS)])).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.sticky_cache_stats().entries, 50);
    for unit in 0..50 {
        let held = sticky(&store, &format!("u{unit}")).unwrap();
        assert_eq!(held.variant, ["bold", "calm"][unit % 2]);
        assert_eq!(held.reward, (unit == 7).then_some(0.5));
    }
    assert_eq!(sticky(&store, "nobody"), None);
    let stats = store.sticky_cache_stats();
    assert_eq!((stats.hits, stats.misses), (50, 1));
}

#[test]
fn the_sticky_table_answers_a_lookup_without_a_future() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "known", "bold");
    assert_eq!(
        store.sticky_cached(&epoch(), "known"),
        crate::store::StickyLookup::Known(record("bold", T0_MS))
    );
    assert_eq!(sticky(&store, "known"), Some(record("bold", T0_MS)));
    // A unit with no record: the caller inserts at once, and the insert answers.
    assert_eq!(
        store.sticky_cached(&epoch(), "new"),
        crate::store::StickyLookup::Unseen
    );
    assert_eq!(sticky(&store, "new"), None);
}
