use super::*;

use crate::store::keys::{KIND_STICKY, epoch_key};
use crate::store::test_support::{epoch, record};

fn table() -> StickyTable {
    StickyTable::new(Digester::new([7; 16]))
}

fn key(unit: &str) -> Vec<u8> {
    epoch_key(KIND_STICKY, &epoch(), unit)
}

fn put(table: &StickyTable, unit: &str, record: StickyRecord) {
    table.apply(&[(table.digest(&key(unit)), Some(record))]);
}

#[test]
fn a_record_reads_back_exactly_with_and_without_its_reward() {
    let table = table();
    let mut plain = record("bold", 1_700_000_000_123);
    plain.propensity = 0.123_456_789_012_345_67;
    put(&table, "u1", plain.clone());
    assert_eq!(table.get(&key("u1")), Some(plain.clone()));
    let mut rewarded = plain.clone();
    rewarded.reward = Some(0.75);
    rewarded.rewarded_ms = Some(1_700_000_100_000);
    put(&table, "u1", rewarded.clone());
    assert_eq!(table.get(&key("u1")), Some(rewarded));
    // A reward stored by a build that did not keep its arrival time.
    let mut legacy = plain.clone();
    legacy.reward = Some(1.0);
    put(&table, "u2", legacy.clone());
    assert_eq!(table.peek(&key("u2")), Some(legacy));
    assert_eq!(table.len(), 2);
}

#[test]
fn a_record_the_packing_cannot_hold_is_kept_whole() {
    let table = table();
    let far = record("bold", u64::MAX);
    put(&table, "far", far.clone());
    assert_eq!(table.get(&key("far")), Some(far));
    let mut rewarded = record("calm", 1 << 48);
    rewarded.reward = Some(0.5);
    rewarded.rewarded_ms = Some(u64::MAX);
    put(&table, "far", rewarded.clone());
    assert_eq!(table.get(&key("far")), Some(rewarded));
    // Back to a packable record: the whole one leaves.
    put(&table, "far", record("bold", 5));
    assert_eq!(table.get(&key("far")), Some(record("bold", 5)));
    let shard = table.read(table.digest(&key("far")));
    assert_eq!(shard.spilled.len(), 0);
    assert_eq!(shard.rewards.len(), 0);
}

#[test]
fn a_removed_unit_is_gone_with_its_reward_and_others_stay() {
    let table = table();
    let mut rewarded = record("bold", 10);
    rewarded.reward = Some(1.0);
    rewarded.rewarded_ms = Some(20);
    put(&table, "u1", rewarded);
    put(&table, "u2", record("calm", 10));
    table.apply(&[(table.digest(&key("u1")), None)]);
    assert_eq!(table.get(&key("u1")), None);
    assert_eq!(table.get(&key("u2")), Some(record("calm", 10)));
    let shard = table.read(table.digest(&key("u1")));
    assert_eq!(shard.rewards.len(), 0, "the reward left with its unit");
}

#[test]
fn removing_units_in_any_order_keeps_every_other_unit_findable() {
    let table = table();
    let units: Vec<String> = (0..2000).map(|n| format!("u{n}")).collect();
    for (n, unit) in units.iter().enumerate() {
        put(&table, unit, record(["a", "b", "c"][n % 3], n as u64));
    }
    // Every third unit leaves (each removal moves another shard's last slot into its place).
    for unit in units.iter().step_by(3) {
        table.apply(&[(table.digest(&key(unit)), None)]);
    }
    for (n, unit) in units.iter().enumerate() {
        let expected = (n % 3 != 0).then(|| record(["a", "b", "c"][n % 3], n as u64));
        assert_eq!(table.peek(&key(unit)), expected, "{unit}");
    }
    assert_eq!(table.len(), 2000 - 667);
}

#[test]
fn lookups_are_counted_as_hits_and_misses_and_peeks_are_not() {
    let table = table();
    put(&table, "u1", record("bold", 10));
    table.get(&key("u1"));
    table.get(&key("nobody"));
    table.peek(&key("u1"));
    let stats = table.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));
    assert!(stats.capacity >= 1);
}

#[test]
fn the_same_unit_in_another_epoch_or_under_another_store_key_is_another_digest() {
    let table = table();
    let other_epoch = crate::store::Epoch {
        experiment: epoch().experiment,
        revision: 2,
    };
    let other = epoch_key(KIND_STICKY, &other_epoch, "u1");
    assert_ne!(table.digest(&key("u1")), table.digest(&other));
    let other_store = StickyTable::new(Digester::new([8; 16]));
    assert_ne!(table.digest(&key("u1")), other_store.digest(&key("u1")));
}

#[test]
fn variants_past_the_index_space_are_kept_whole_and_read_back() {
    let table = table();
    for n in 0..SPILLED {
        table.variant_index_of(&format!("v{n}"));
    }
    put(&table, "late", record("one-too-many", 10));
    assert_eq!(table.get(&key("late")), Some(record("one-too-many", 10)));
    put(&table, "early", record("v3", 10));
    assert_eq!(table.get(&key("early")), Some(record("v3", 10)));
}

/// The memory figure of the module docs, from the tables' capacity arithmetic (hashbrown
/// allocates `buckets × (slot + 1)` bytes): prints bytes per unit at 1M unrewarded units and
/// again once a tenth of them are rewarded.
#[test]
fn a_million_units_cost_what_the_capacity_arithmetic_says() {
    let table = table();
    let units = 1_000_000u64;
    let mut writes = Vec::with_capacity(1000);
    for n in 0..units {
        let digest = table.digest(&key(&format!("unit-{n}")));
        let mut record = record(
            if n % 2 == 0 { "bold" } else { "calm" },
            1_700_000_000_000 + n,
        );
        if n % 10 == 0 {
            record.reward = Some(1.0);
            record.rewarded_ms = Some(1_700_000_500_000 + n);
        }
        writes.push((digest, Some(record)));
        if writes.len() == 1000 {
            table.apply(&writes);
            writes.clear();
        }
    }
    assert_eq!(table.len() as u64, units);
    let per_unit = table.heap_bytes() as f64 / units as f64;
    let slots_only: usize = table
        .shards
        .iter()
        .map(|padded| {
            let shard = read_lock(&padded.shard);
            table_bytes(shard.index.capacity(), size_of::<u32>())
                + shard.slots.capacity() * size_of::<Slot>()
        })
        .sum();
    let slot_per_unit = slots_only as f64 / units as f64;
    println!(
        "sticky table at {units} units: {slot_per_unit:.1} B/unit in slots, \
         {per_unit:.1} B/unit all-in with 10% rewarded"
    );
    assert_eq!(size_of::<Slot>(), 24);
    // 24 bytes per slot at a vector load between 1/2 and 1, and 5 bytes per index bucket at
    // a load between 7/16 and 7/8.
    assert!((29.7..=59.5).contains(&slot_per_unit), "{slot_per_unit}");
    assert!(per_unit < slot_per_unit + 0.1 * 70.0, "{per_unit}");
}

#[test]
fn shrinking_after_a_replay_keeps_every_unit_and_leaves_no_slot_room() {
    let table = table();
    for n in 0..5_000 {
        let digest = table.digest(&key(&format!("unit-{n}")));
        table.replay(
            digest,
            Some(&StickyRef::from(&record("bold", 1_700_000_000_000 + n))),
        );
    }
    table.shrink_to_fit();
    for padded in &table.shards {
        let shard = read_lock(&padded.shard);
        assert_eq!(shard.slots.capacity(), shard.slots.len());
    }
    for n in 0..5_000 {
        assert_eq!(
            table.peek(&key(&format!("unit-{n}"))),
            Some(record("bold", 1_700_000_000_000 + n))
        );
    }
    // And it grows again.
    table.apply(&[(table.digest(&key("late")), Some(record("calm", 1)))]);
    assert_eq!(table.peek(&key("late")), Some(record("calm", 1)));
}
