//! A commit's pending sticky writes: found by key (the digest only hashes), replaced in place,
//! taken over from a later request, and handed to the unit log grouped by epoch.

use super::*;

use crate::store::keys::{self, KIND_STICKY};
use crate::store::test_support::{epoch, epoch_of};

fn record(variant: &str) -> StickyRecord {
    StickyRecord {
        variant: variant.to_owned(),
        assigned_ms: 7,
        propensity: 0.5,
        reward: None,
        rewarded_ms: None,
    }
}

fn key(unit: &str) -> Vec<u8> {
    keys::epoch_key(KIND_STICKY, &epoch(), unit)
}

fn variants(writes: &[StickyWrite]) -> Vec<&str> {
    writes
        .iter()
        .map(|write| write.record.as_ref().map_or("-", |r| r.variant.as_str()))
        .collect()
}

#[test]
fn a_pending_write_is_found_by_its_key_not_by_its_digest_alone() {
    let mut writes = StickyWrites::default();
    // Two keys given one digest, as a collision would: each still finds its own write.
    writes.insert(key("u1"), 42, Some(record("a")));
    writes.insert(key("u2"), 42, Some(record("b")));
    assert_eq!(
        writes.get(&key("u1"), 42).map(|w| w.key.clone()),
        Some(key("u1"))
    );
    let found = writes.get(&key("u2"), 42).and_then(|w| w.record.clone());
    assert_eq!(found, Some(record("b")));
    assert!(writes.get(&key("u3"), 42).is_none());
    assert!(writes.get(&key("u1"), 43).is_none());
}

#[test]
fn a_second_write_of_a_key_replaces_the_first_in_its_place() {
    let mut writes = StickyWrites::default();
    writes.insert(key("u1"), 1, Some(record("a")));
    writes.insert(key("u2"), 2, Some(record("b")));
    writes.insert(key("u1"), 1, None);
    if let Some(pending) = writes.record_mut(&key("u2"), 2) {
        *pending = Some(record("c"));
    }
    assert!(writes.record_mut(&key("u3"), 3).is_none());
    assert_eq!(variants(&writes.into_epoch_runs()), ["-", "c"]);
}

#[test]
fn a_later_requests_writes_replace_the_batchs_and_new_keys_follow() {
    let mut batch = StickyWrites::default();
    batch.extend(StickyWrites::default());
    assert!(batch.is_empty());
    let mut first = StickyWrites::default();
    first.insert(key("u1"), 1, Some(record("a")));
    first.insert(key("u2"), 2, Some(record("b")));
    batch.extend(first);
    let mut later = StickyWrites::default();
    later.insert(key("u3"), 3, Some(record("c")));
    later.insert(key("u1"), 1, Some(record("d")));
    batch.extend(later);
    assert_eq!(batch.get(&key("u1"), 1).map(|w| w.digest), Some(1));
    let runs = batch.into_epoch_runs();
    assert_eq!(variants(&runs), ["d", "b", "c"]);
    assert_eq!(runs[2].key, key("u3"));
}

#[test]
fn the_commit_takes_one_epochs_writes_as_written_and_several_epochs_grouped() {
    let mut writes = StickyWrites::default();
    for (digest, unit) in [(1, "u9"), (2, "u1"), (3, "u5")] {
        writes.insert(key(unit), digest, Some(record(unit)));
    }
    // One epoch: the order the keys were written in, not the units' order.
    assert_eq!(variants(&writes.into_epoch_runs()), ["u9", "u1", "u5"]);

    let (one, two) = (epoch_of("b-exp", 1), epoch_of("a-exp", 3));
    let mut writes = StickyWrites::default();
    let units = [
        (&one, "x1"),
        (&two, "y1"),
        (&one, "x2"),
        (&two, "y2"),
        (&one, "x3"),
    ];
    for (digest, (at, unit)) in (0..).zip(units) {
        let key = keys::epoch_key(KIND_STICKY, at, unit);
        writes.insert(key, digest, Some(record(unit)));
    }
    // Several: grouped by epoch in key order ("a-exp" first), each in the order written.
    assert_eq!(
        variants(&writes.into_epoch_runs()),
        ["y1", "y2", "x1", "x2", "x3"]
    );
}

#[test]
fn a_reserved_request_layer_takes_its_writes_without_growing() {
    let mut writes = StickyWrites::default();
    writes.reserve(100);
    let (list, index) = (writes.writes.as_ptr(), writes.index.capacity());
    assert!(index >= 100);
    for n in 0..100 {
        writes.insert(key(&format!("u{n}")), n, Some(record("a")));
    }
    assert_eq!(writes.writes.as_ptr(), list);
    assert_eq!(writes.index.capacity(), index);
}
