use std::collections::HashMap;

use rand::{RngExt, SeedableRng, rngs::SmallRng};

use super::*;

fn slot(digest: u64, packed: u64) -> Slot {
    Slot {
        digest,
        packed,
        propensity: packed as f64 / 7.0,
    }
}

/// Every slot sits at or after its home, and Robin Hood order holds: along a run, no slot is
/// further from its home than the slot before it plus one (else a lookup could stop early).
fn check_invariants(slots: &Slots) {
    let capacity = slots.capacity();
    let mut held = 0;
    for at in 0..capacity {
        let here = slots.slots[at];
        if here.packed == EMPTY {
            continue;
        }
        held += 1;
        assert_eq!(slots.find(here.digest), Some(at), "slot {at} is findable");
        let before = slots.slots[(at + capacity - 1) % capacity];
        let distance = slots.distance(at, here.digest);
        if before.packed == EMPTY {
            assert_eq!(distance, 0, "a run starts at its first slot's home");
        } else {
            assert!(distance <= slots.distance((at + capacity - 1) % capacity, before.digest) + 1);
        }
    }
    assert_eq!(held, slots.len());
}

#[test]
fn random_puts_replacements_and_removals_match_a_hash_map() {
    let mut rng = SmallRng::seed_from_u64(14);
    let mut slots = Slots::default();
    let mut model: HashMap<u64, Slot> = HashMap::new();
    // Few distinct digests (so replacements and removals of present ones are common), some
    // of them colliding in their home slot: digests that differ only in their low bits.
    let digest = |rng: &mut SmallRng| -> u64 {
        let base = rng.random_range(0..3_000u64);
        if base % 5 == 0 {
            base
        } else {
            base.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        }
    };
    for step in 0..60_000u64 {
        let key = digest(&mut rng);
        if rng.random_range(0..10) < 3 {
            assert_eq!(slots.take(key), model.remove(&key), "take {key} at {step}");
        } else {
            let new = slot(key, step);
            assert_eq!(
                slots.put(new),
                model.insert(key, new),
                "put {key} at {step}"
            );
        }
        let probe = digest(&mut rng);
        assert_eq!(
            slots.get(probe),
            model.get(&probe).copied(),
            "get {probe} at {step}"
        );
        if step % 5_000 == 0 {
            check_invariants(&slots);
        }
    }
    check_invariants(&slots);
    assert_eq!(slots.len(), model.len());
    for (key, expected) in &model {
        assert_eq!(slots.get(*key), Some(*expected));
    }
    for absent in 3_000..4_000u64 {
        if !model.contains_key(&absent) {
            assert_eq!(slots.get(absent), None);
        }
    }
}

#[test]
fn a_serving_table_stays_between_the_growth_loads_and_a_replayed_one_is_fitted() {
    let mut slots = Slots::default();
    let mut lowest: f64 = 1.0;
    for n in 1..=200_000u64 {
        slots.put(slot(n.wrapping_mul(0xD1B5_4A32_D192_ED03), n));
        let load = slots.len() as f64 / slots.capacity() as f64;
        assert!(load <= 0.92, "load {load} at {n}");
        if n > 1_000 {
            lowest = lowest.min(load);
        }
    }
    // 0.92 / 1.2, less the rounding of an integer capacity.
    assert!(lowest >= 0.766, "lowest load {lowest}");
    check_invariants(&slots);

    let mut replayed = Slots::default();
    replayed.set_bulk(true);
    for n in 1..=200_000u64 {
        replayed.put(slot(n.wrapping_mul(0xD1B5_4A32_D192_ED03), n));
    }
    replayed.fit();
    assert_eq!(
        replayed.capacity(),
        (200_000usize * 100).div_ceil(REPLAYED_LOAD_PERCENT)
    );
    check_invariants(&replayed);
    for n in 1..=200_000u64 {
        assert_eq!(
            replayed.get(n.wrapping_mul(0xD1B5_4A32_D192_ED03)),
            Some(slot(n.wrapping_mul(0xD1B5_4A32_D192_ED03), n))
        );
    }
}

#[test]
fn an_emptied_table_finds_nothing_and_fills_again() {
    let mut slots = Slots::default();
    assert_eq!(slots.get(1), None);
    assert_eq!(slots.take(1), None);
    for n in 0..100 {
        slots.put(slot(n, n));
    }
    for n in 0..100 {
        assert_eq!(slots.take(n), Some(slot(n, n)));
    }
    assert_eq!(slots.len(), 0);
    assert_eq!(slots.get(5), None);
    slots.fit();
    assert_eq!(slots.capacity(), 0);
    slots.put(slot(7, 7));
    assert_eq!(slots.get(7), Some(slot(7, 7)));
}

#[test]
fn a_digest_of_zero_or_all_ones_is_an_ordinary_unit() {
    let mut slots = Slots::default();
    slots.put(slot(0, 1));
    slots.put(slot(u64::MAX, 2));
    assert_eq!(slots.get(0), Some(slot(0, 1)));
    assert_eq!(slots.get(u64::MAX), Some(slot(u64::MAX, 2)));
    assert_eq!(slots.len(), 2);
}

/// The length of the mapping of `/proc/self/maps` that begins exactly at `address`, if any.
#[cfg(target_os = "linux")]
fn mapping_at(address: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let (start, rest) = line.split_once('-')?;
        let end = rest.split_whitespace().next()?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start == address).then_some(end - start)
    })
}

/// A replay grows a shard by doubling and then resizes it: each array it lets go must leave
/// the process then, on whatever thread, not stay with the allocator (the process held 69–90
/// bytes per unit for a 28.2-byte table, `benches/load/results/mem2-2026-11-30-s7.md`).
#[test]
#[cfg(target_os = "linux")]
fn a_big_shard_is_memory_of_its_own_and_each_array_it_outgrows_is_unmapped() {
    let page = |bytes: usize| bytes.next_multiple_of(4096);
    let array = |slots: &Slots| {
        (
            slots.slots.as_ptr() as usize,
            page(slots.capacity() * size_of::<Slot>()),
        )
    };
    let mut slots = Slots::default();
    slots.set_bulk(true);
    let mut outgrown = Vec::new();
    let mut current = array(&slots);
    for n in 1..=300_000u64 {
        slots.put(slot(n.wrapping_mul(0xD1B5_4A32_D192_ED03), n));
        if array(&slots) != current {
            outgrown.push(current);
            current = array(&slots);
        }
    }
    slots.fit();
    outgrown.push(current);
    let (fitted, bytes) = array(&slots);
    assert!(bytes >= super::super::table_memory::MAPPED_MIN_BYTES);
    assert_eq!(
        mapping_at(fitted),
        Some(bytes),
        "the fitted array is a mapping of its own"
    );
    let big: Vec<(usize, usize)> = outgrown.iter().rev().take(3).copied().collect();
    assert!(
        big.iter()
            .all(|&(_, bytes)| bytes >= super::super::table_memory::MAPPED_MIN_BYTES)
    );
    for (at, bytes) in big {
        assert_ne!(
            mapping_at(at),
            Some(bytes),
            "the outgrown array at {at:#x} is unmapped"
        );
    }
}

#[test]
fn a_presized_replay_never_grows_and_keeps_its_table() {
    let units = 100_000u64;
    let mut slots = Slots::default();
    slots.set_bulk(true);
    slots.presize(units as usize);
    let capacity = slots.capacity();
    assert_eq!(
        capacity,
        (units as usize * 100).div_ceil(REPLAYED_LOAD_PERCENT)
    );
    for n in 1..=units {
        slots.put(slot(n.wrapping_mul(0xD1B5_4A32_D192_ED03), n));
        assert_eq!(slots.capacity(), capacity, "grew at {n}");
    }
    slots.fit();
    assert_eq!(slots.capacity(), capacity, "kept");
    check_invariants(&slots);

    // Presized for twice what came (fitted down to the replayed load) or for half (grows by
    // doubling on the way, fitted after): either way the replayed load's capacity.
    for presized in [2 * units as usize, units as usize / 2] {
        let mut fitted = Slots::default();
        fitted.set_bulk(true);
        fitted.presize(presized);
        for n in 1..=units {
            fitted.put(slot(n, n));
        }
        fitted.fit();
        assert_eq!(
            fitted.capacity(),
            (units as usize * 100).div_ceil(REPLAYED_LOAD_PERCENT),
            "presized for {presized}"
        );
        for n in 1..=units {
            assert_eq!(fitted.get(n), Some(slot(n, n)));
        }
        check_invariants(&fitted);
    }
}
