//! The sticky cache inside [`SledStore`]: warm after a commit, fresh after rewards and
//! re-assignments, never holding a record before its fsync, bounded, and off at capacity 0.

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

/// Waits until the writer applied a change to sled (it is then held at `flush_gate`).
fn wait_for_sled(store: &SledStore, unit: &str, applied: impl Fn(&StickyRecord) -> bool) {
    loop {
        if let Some(bytes) = store.shared.sled().unwrap().get(key(unit)).unwrap()
            && applied(&codec::decode_sticky(&bytes).unwrap().record)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_new_unit_is_cached_by_the_commit_that_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "u1", "bold");
    assert_eq!(
        store.shared.sticky_cache.get(&key("u1")),
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
fn a_record_held_between_apply_and_flush_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = store.shared.flush_gate.lock().unwrap();
    let insert = store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS));
    wait_for_sled(&store, "u1", |_| true);
    // Both read paths meet the record in sled, not durable: they wait and must not cache it.
    let mut read = store.sticky(&epoch(), "u1");
    let mut second_insert =
        store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS));
    assert!(is_pending(&mut read));
    assert!(is_pending(&mut second_insert));
    assert_eq!(store.shared.sticky_cache.get(&key("u1")), None);
    assert_eq!(store.sticky_cache_stats().entries, 0);
    drop(gate);
    assert_eq!(block_on(insert).unwrap(), (record("bold", T0_MS), true));
    assert_eq!(block_on(read).unwrap(), Some(record("bold", T0_MS)));
    assert_eq!(
        store.shared.sticky_cache.get(&key("u1")),
        Some(record("bold", T0_MS))
    );
}

#[test]
fn a_reward_held_between_apply_and_flush_leaves_the_cached_record_as_it_was() {
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
        std::task::Poll::Pending => panic!("a cached durable record waited for a later commit"),
    }
    drop(gate);
    block_on(rewards).unwrap();
    assert_eq!(sticky(&store, "u1").unwrap().reward, Some(1.0));
}

#[test]
fn a_reassignment_held_between_apply_and_flush_leaves_the_cached_record_as_it_was() {
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
        std::task::Poll::Pending => panic!("a cached durable record waited for a later commit"),
    }
    let mut again = store.insert_sticky(&epoch(), "u1", record("calm", T0_MS), tally(T0_MS));
    match again.as_mut().poll(&mut context) {
        std::task::Poll::Ready(answer) => {
            assert_eq!(answer.unwrap(), (record("old", T0_MS), false));
        }
        std::task::Poll::Pending => panic!("a cached durable record waited for a later commit"),
    }
    drop(gate);
    assert_eq!(block_on(moving).unwrap(), Some((moved.clone(), true)));
    assert_eq!(sticky(&store, "u1"), Some(moved));
    assert_eq!(counters_of(&store)["new"].exposures, 1);
}

#[test]
fn a_sled_read_that_raced_a_reward_commit_cannot_cache_the_old_record_after_an_eviction() {
    let dir = tempfile::tempdir().unwrap();
    // One entry: every other unit evicts u1.
    let store = open_with_sticky_cache(dir.path(), 1);
    insert(&store, "u1", "bold");
    insert(&store, "u2", "calm");
    // A reader's first half: durable_seq, then the sled read of u1 without its reward.
    let read_after_seq = store.shared.durable_seq.load(Ordering::Acquire);
    let old = codec::decode_sticky(
        &store
            .shared
            .sled()
            .unwrap()
            .get(key("u1"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(old.record.reward, None);
    // The reward commits (and is published), then a fresh read of u2 evicts u1 again.
    block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)])).unwrap();
    assert_eq!(sticky(&store, "u2").unwrap().variant, "calm");
    assert_eq!(store.shared.sticky_cache.get(&key("u1")), None);
    // The reader's second half must not bring the pre-reward record back.
    assert!(
        !store
            .shared
            .sticky_cache
            .fill(&key("u1"), &old, read_after_seq)
    );
    assert_eq!(sticky(&store, "u1").unwrap().reward, Some(1.0));
    assert_eq!(sticky(&store, "u1").unwrap().reward, Some(1.0));
}

#[test]
fn a_store_with_a_zero_capacity_cache_reads_sled_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_sticky_cache(dir.path(), 0);
    insert(&store, "u1", "bold");
    block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)])).unwrap();
    for _ in 0..3 {
        assert_eq!(sticky(&store, "u1").unwrap().reward, Some(1.0));
    }
    assert_eq!(sticky(&store, "nobody"), None);
    assert_eq!(
        store.sticky_cache_stats(),
        StickyCacheStats::default(),
        "a disabled cache holds and counts nothing"
    );
}

#[test]
fn a_reopened_store_caches_a_record_on_its_first_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        insert(&store, "u1", "bold");
    }
    let store = open(dir.path());
    assert_eq!(store.sticky_cache_stats().entries, 0);
    assert_eq!(sticky(&store, "u1"), Some(record("bold", T0_MS)));
    assert_eq!(sticky(&store, "u1"), Some(record("bold", T0_MS)));
    let stats = store.sticky_cache_stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 1, 1));
}

#[test]
fn a_store_cache_holds_at_most_its_capacity_and_every_read_stays_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_sticky_cache(dir.path(), 8);
    let variants = ["control", "bold", "calm"];
    for unit in 0..60 {
        insert(&store, &format!("u{unit}"), variants[unit % 3]);
    }
    for round in 0..2 {
        for unit in 0..60 {
            let held = sticky(&store, &format!("u{unit}")).unwrap();
            assert_eq!(held.variant, variants[unit % 3], "round {round}");
        }
    }
    let stats = store.sticky_cache_stats();
    assert!(stats.entries <= 8, "{stats:?}");
    assert_eq!(stats.capacity, 8);
}
