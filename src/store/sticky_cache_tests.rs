//! [`StickyCache`] driven directly, with explicit commit sequence numbers: the reader/writer
//! interleavings of the module docs, made deterministic by playing each step in order.

use super::*;
use crate::store::keys;
use crate::store::test_support::{T0_MS, epoch, record};

fn key(unit: &str) -> Vec<u8> {
    keys::epoch_key(KIND_STICKY, &epoch(), unit)
}

fn stored(variant: &str, reward: Option<f64>, seq: u64) -> StoredSticky {
    StoredSticky {
        record: StickyRecord {
            reward,
            ..record(variant, T0_MS)
        },
        seq,
    }
}

fn publish_one(cache: &StickyCache, unit: &str, value: Option<StoredSticky>, seq: u64) {
    cache.publish(seq, vec![(key(unit), value)]);
}

#[test]
fn a_fill_from_a_read_that_raced_a_newer_commit_is_refused() {
    let cache = StickyCache::new(16);
    // The reader loads durable_seq = 5, then reads V1 (seq 3) from sled ...
    let read_after_seq = 5;
    let v1 = stored("bold", None, 3);
    // ... meanwhile commit 6 re-assigns the unit and publishes V2 ...
    let v2 = stored("calm", None, 6);
    publish_one(&cache, "u1", Some(v2.clone()), 6);
    // ... and only then does the reader try to insert what it read.
    assert!(!cache.fill(&key("u1"), &v1, read_after_seq));
    assert_eq!(cache.get(&key("u1")), Some(v2.record));
}

#[test]
fn a_fill_that_raced_an_uncached_reward_is_refused_and_caches_nothing() {
    let cache = StickyCache::new(16);
    let v1 = stored("bold", None, 3);
    // Commit 6 credits a reward to a unit the cache does not hold: nothing is added ...
    publish_one(&cache, "u1", Some(stored("bold", Some(1.0), 6)), 6);
    assert_eq!(cache.get(&key("u1")), None);
    // ... and the reader that read the unrewarded record before it may not add that either.
    assert!(!cache.fill(&key("u1"), &v1, 5));
    assert_eq!(cache.get(&key("u1")), None);
}

#[test]
fn a_reward_replaces_a_cached_record_but_does_not_add_an_uncached_one() {
    let cache = StickyCache::new(16);
    publish_one(&cache, "cached", Some(stored("bold", None, 1)), 1);
    let rewarded = stored("bold", Some(0.5), 2);
    publish_one(&cache, "cached", Some(rewarded.clone()), 2);
    assert_eq!(cache.get(&key("cached")), Some(rewarded.record));
    publish_one(&cache, "other", Some(stored("bold", Some(1.0), 3)), 3);
    assert_eq!(cache.get(&key("other")), None);
    assert_eq!(cache.stats().entries, 1);
}

#[test]
fn a_fill_from_a_stale_read_is_refused_even_after_the_newer_record_was_evicted() {
    // One shard holding one entry, so every other key evicts the unit.
    let cache = StickyCache::with_shards(1, 1);
    let v1 = stored("bold", None, 3);
    publish_one(&cache, "u1", Some(stored("bold", Some(1.0), 6)), 6);
    // A later reader (durable_seq 6) fills another unit and evicts u1's V2.
    assert!(cache.fill(&key("u2"), &stored("calm", None, 4), 6));
    assert_eq!(cache.get(&key("u1")), None);
    // The slow reader that read V1 at durable_seq 5 must not bring it back.
    assert!(!cache.fill(&key("u1"), &v1, 5));
    assert_eq!(cache.get(&key("u1")), None);
    // A read made at durable_seq 6 saw V2, and that one may be cached.
    assert!(cache.fill(&key("u1"), &stored("bold", Some(1.0), 6), 6));
    assert_eq!(cache.get(&key("u1")).unwrap().reward, Some(1.0));
}

#[test]
fn a_fill_before_the_newer_commit_publishes_is_overwritten_by_it() {
    let cache = StickyCache::new(16);
    assert!(cache.fill(&key("u1"), &stored("old", None, 3), 5));
    publish_one(&cache, "u1", Some(stored("new", None, 6)), 6);
    assert_eq!(cache.get(&key("u1")).unwrap().variant, "new");
}

#[test]
fn a_record_newer_than_the_read_point_is_never_filled() {
    // Sled can hold a record whose commit is applied but not yet flushed.
    let cache = StickyCache::new(16);
    assert!(!cache.fill(&key("u1"), &stored("bold", None, 8), 7));
    assert_eq!(cache.get(&key("u1")), None);
    assert_eq!(cache.stats().entries, 0);
}

#[test]
fn a_fill_never_replaces_a_cached_record() {
    let cache = StickyCache::new(16);
    publish_one(&cache, "u1", Some(stored("new", None, 4)), 4);
    assert!(!cache.fill(&key("u1"), &stored("old", None, 2), 9));
    assert_eq!(cache.get(&key("u1")).unwrap().variant, "new");
}

#[test]
fn a_published_write_replaces_the_record_and_a_published_removal_drops_it() {
    let cache = StickyCache::new(16);
    assert!(cache.fill(&key("u1"), &stored("old", None, 1), 1));
    publish_one(&cache, "u1", Some(stored("new", Some(0.5), 2)), 2);
    let held = cache.get(&key("u1")).unwrap();
    assert_eq!((held.variant.as_str(), held.reward), ("new", Some(0.5)));
    publish_one(&cache, "u1", None, 3);
    assert_eq!(cache.get(&key("u1")), None);
    assert_eq!(cache.stats().entries, 0);
}

#[test]
fn a_removal_keeps_the_other_records_of_its_shard_reachable() {
    let cache = StickyCache::with_shards(8, 1);
    for (seq, unit) in (1..).zip(["a", "b", "c", "d"]) {
        publish_one(&cache, unit, Some(stored(unit, None, seq)), seq);
    }
    // Removing the first slot moves the last one into its place.
    publish_one(&cache, "a", None, 5);
    publish_one(&cache, "b", None, 6);
    for unit in ["c", "d"] {
        assert_eq!(cache.get(&key(unit)).unwrap().variant, unit);
    }
    assert_eq!(cache.stats().entries, 2);
}

#[test]
fn the_cache_never_holds_more_than_its_capacity() {
    for capacity in [1, 63, 100, 1000] {
        let cache = StickyCache::new(capacity);
        for unit in 0..10 * capacity {
            let unit = format!("u{unit}");
            cache.fill(&key(&unit), &stored("bold", None, 0), 1);
            publish_one(
                &cache,
                &format!("w{unit}"),
                Some(stored("bold", None, 1)),
                1,
            );
            cache.get(&key(&unit));
        }
        let stats = cache.stats();
        assert!(
            stats.entries <= capacity,
            "{} entries in a cache of {capacity}",
            stats.entries
        );
        assert_eq!(stats.capacity, capacity);
    }
}

#[test]
fn the_capacity_is_split_over_the_shards_exactly() {
    for (capacity, shards) in [(100, 64), (64, 64), (7, 64), (1000, 3)] {
        let cache = StickyCache::with_shards(capacity, shards);
        let total: usize = cache.shards.iter().map(|s| lock(&s.0).capacity).sum();
        assert_eq!(total, capacity);
        assert!(cache.shards.iter().all(|s| lock(&s.0).capacity >= 1));
        assert_eq!(cache.shards.len(), capacity.min(shards));
    }
}

#[test]
fn a_capacity_of_zero_disables_the_cache() {
    let cache = StickyCache::new(0);
    publish_one(&cache, "u1", Some(stored("bold", None, 1)), 1);
    assert!(!cache.fill(&key("u2"), &stored("bold", None, 1), 1));
    assert_eq!(cache.get(&key("u1")), None);
    assert_eq!(cache.get(&key("u2")), None);
    let mut writes = WriteMap::new();
    writes.insert(
        key("u1"),
        Some(codec::encode_sticky(&record("bold", T0_MS), 1)),
    );
    assert!(cache.sticky_writes(&writes).is_empty());
    assert_eq!(cache.stats(), StickyCacheStats::default());
}

#[test]
fn clock_eviction_keeps_a_record_that_is_read_over_one_that_is_not() {
    let cache = StickyCache::with_shards(3, 1);
    for (seq, unit) in (1..).zip(["a", "b", "c"]) {
        publish_one(&cache, unit, Some(stored(unit, None, seq)), seq);
    }
    assert!(cache.get(&key("a")).is_some());
    publish_one(&cache, "d", Some(stored("d", None, 4)), 4);
    assert!(
        cache.get(&key("a")).is_some(),
        "the read record was evicted"
    );
    assert_eq!(cache.get(&key("b")), None, "the unread record survived");
    assert!(cache.get(&key("c")).is_some());
    assert!(cache.get(&key("d")).is_some());
}

#[test]
fn clock_eviction_ends_when_every_record_is_referenced() {
    let cache = StickyCache::with_shards(4, 1);
    for (seq, unit) in (1..).zip(["a", "b", "c", "d"]) {
        publish_one(&cache, unit, Some(stored(unit, None, seq)), seq);
        cache.get(&key(unit));
    }
    publish_one(&cache, "e", Some(stored("e", None, 5)), 5);
    assert_eq!(cache.stats().entries, 4);
    assert!(cache.get(&key("e")).is_some());
}

#[test]
fn hits_and_misses_are_counted() {
    let cache = StickyCache::new(16);
    assert_eq!(cache.get(&key("u1")), None);
    publish_one(&cache, "u1", Some(stored("bold", None, 1)), 1);
    cache.get(&key("u1"));
    cache.get(&key("u1"));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 1, 1));
}

#[test]
fn a_peek_finds_the_record_but_is_not_counted() {
    let cache = StickyCache::with_shards(16, 1);
    assert_eq!(cache.peek(&key("u1")), None);
    publish_one(&cache, "u1", Some(stored("bold", None, 1)), 1);
    assert_eq!(cache.peek(&key("u1")).unwrap().variant, "bold");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (0, 0, 1));
}

#[test]
fn sticky_writes_takes_only_sticky_keys_and_decodes_them() {
    let cache = StickyCache::new(16);
    let mut writes = WriteMap::new();
    let rewarded = StickyRecord {
        reward: Some(1.0),
        ..record("bold", T0_MS)
    };
    writes.insert(key("u1"), Some(codec::encode_sticky(&rewarded, 7)));
    writes.insert(key("gone"), None);
    writes.insert(key("bad"), Some(vec![0xF0]));
    writes.insert(
        keys::epoch_key(keys::KIND_ARM, &epoch(), "bold"),
        Some(vec![1]),
    );
    writes.insert(
        keys::epoch_key(keys::KIND_TOKEN_MARK, &epoch(), "a1"),
        Some(vec![]),
    );
    let mut sticky = cache.sticky_writes(&writes);
    sticky.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (
            key("u1"),
            Some(StoredSticky {
                record: rewarded,
                seq: 7,
            }),
        ),
        (key("gone"), None),
        // Undecodable bytes leave the cache rather than being guessed at.
        (key("bad"), None),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(sticky, expected);
}

#[test]
fn a_poisoned_shard_is_emptied_and_keeps_working() {
    let cache = Arc::new(StickyCache::with_shards(4, 1));
    publish_one(&cache, "u1", Some(stored("bold", None, 1)), 1);
    let holder = Arc::clone(&cache);
    let panicked = std::thread::spawn(move || {
        let _guard = holder.shards[0].0.lock().unwrap();
        panic!("a bug while the shard is locked");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(cache.get(&key("u1")), None);
    // The shard's commit watermark survives, so stale fills are still refused.
    assert!(!cache.fill(&key("u1"), &stored("bold", None, 0), 0));
    publish_one(&cache, "u1", Some(stored("bold", None, 2)), 2);
    assert!(cache.get(&key("u1")).is_some());
}

#[test]
fn a_key_too_long_to_store_inline_is_cached_like_a_short_one() {
    let cache = StickyCache::with_shards(16, 1);
    let long_unit = "u".repeat(3 * INLINE_KEY_BYTES);
    assert!(matches!(CacheKey::new(key(&long_unit)), CacheKey::Heap(_)));
    assert!(matches!(CacheKey::new(key("u1")), CacheKey::Inline { .. }));
    publish_one(&cache, &long_unit, Some(stored("bold", None, 1)), 1);
    publish_one(&cache, "u1", Some(stored("calm", None, 1)), 1);
    assert_eq!(cache.get(&key(&long_unit)).unwrap().variant, "bold");
    assert_eq!(cache.get(&key("u1")).unwrap().variant, "calm");
    publish_one(&cache, &long_unit, None, 2);
    assert_eq!(cache.get(&key(&long_unit)), None);
}

#[test]
fn records_of_one_variant_share_one_copy_of_its_id() {
    let cache = StickyCache::with_shards(16, 1);
    publish_one(&cache, "u1", Some(stored("bold", None, 1)), 1);
    assert!(cache.fill(&key("u2"), &stored("bold", None, 1), 1));
    let shard = lock(&cache.shards[0].0);
    let first = &shard.entries[key("u1").as_slice()].variant;
    let second = &shard.entries[key("u2").as_slice()].variant;
    assert!(Arc::ptr_eq(first, second));
}
