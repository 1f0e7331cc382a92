//! The replay's build path against a `HashSet` of the same digests.

use std::collections::HashSet;

use rand::{RngExt, SeedableRng};

use super::*;

/// Builds from `parts` (one thread's collector each, into buckets sized for `expected` or
/// given as 2^bits buckets of a room) and checks the table against a `HashSet` of everything
/// given: every digest found, repeats once, fresh random ones answered as the set answers
/// them. Returns the digests that overflowed their buckets.
fn check(parts: &[Vec<u64>], expected: usize, buckets: Option<(u32, usize)>, seed: u64) -> usize {
    let shared = match buckets {
        Some((bits, room)) => DigestBuckets::with_buckets(bits, room),
        None => DigestBuckets::new(expected, parts.len()),
    };
    let collected: Vec<Collected> = std::thread::scope(|scope| {
        let threads: Vec<_> = parts
            .iter()
            .map(|part| {
                let shared = &shared;
                scope.spawn(move || {
                    let mut collector = shared.collector();
                    for &digest in part {
                        collector.push(digest);
                    }
                    collector.finish()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    });
    let overflowed = collected.iter().map(|one| one.overflow.len()).sum();
    let table = build(shared, collected);
    let reference: HashSet<u64> = parts.iter().flatten().copied().collect();
    assert_eq!(table.len(), reference.len());
    assert!(reference.iter().all(|&digest| table.contains(digest)));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..20_000 {
        let digest = rng.random::<u64>();
        assert_eq!(table.contains(digest), reference.contains(&digest));
    }
    overflowed
}

fn random(count: usize, seed: u64) -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count).map(|_| rng.random::<u64>()).collect()
}

#[test]
fn two_collectors_build_the_set_of_their_digests() {
    let digests = random(200_000, 1);
    let (a, b) = digests.split_at(130_000);
    // Repeats within and across the collectors, and the special digests.
    let mut a = a.to_vec();
    a.extend_from_slice(&b[..1_000]);
    a.extend_from_within(..500);
    let mut b = b.to_vec();
    b.extend_from_slice(&[0, 1, u64::MAX, u64::MAX - 1]);
    let overflowed = check(&[a, b], 200_000, None, 2);
    assert_eq!(
        overflowed, 0,
        "binomial buckets with 6σ of room do not overflow here"
    );
}

/// As many collectors as a restart's replay threads (`event_log::REPLAY_THREADS`), each
/// leaving a part-filled last claim in most buckets: a bucket's parts skip every one of its
/// holes, and a room sized for them overflows nothing.
#[test]
fn eight_collectors_leave_holes_that_the_build_skips() {
    let digests = random(300_000, 11);
    let mut parts: Vec<Vec<u64>> = digests.chunks(300_000 / 8).map(<[u64]>::to_vec).collect();
    // One collector sees a few digests only: its claims are mostly holes.
    parts[7].truncate(100);
    let expected = parts.iter().map(Vec::len).sum();
    let overflowed = check(&parts, expected, None, 12);
    assert_eq!(overflowed, 0);
}

/// Buckets too small for their digests overflow: the overflow list merges into the buckets'
/// order, whether a few digests overflow or most.
#[test]
fn buckets_that_overflow_merge_with_the_overflow_list() {
    // 1,024 buckets, ~49 digests each over two collectors (~16 and ~33 per collector).
    for (room, seed) in [(40, 3), (20, 4), (1, 5)] {
        let digests = random(50_000, seed);
        let (a, b) = digests.split_at(50_000 / 3);
        let overflowed = check(&[a.to_vec(), b.to_vec()], 0, Some((10, room)), seed);
        assert!(overflowed > 0 && overflowed < 50_000, "room {room}");
    }
}

/// No size hint (or a small one): no buckets, everything through the overflow list, past the
/// 2^16 digests where its sort changes method.
#[test]
fn without_a_hint_everything_overflows_and_builds_the_same_set() {
    let digests = random(100_000, 6);
    let overflowed = check(
        &[digests[..70_000].to_vec(), digests[70_000..].to_vec()],
        0,
        None,
        7,
    );
    assert_eq!(overflowed, 100_000);
    assert_eq!(check(&[Vec::new(), Vec::new()], 0, None, 8), 0);
    assert!(build(DigestBuckets::new(0, 1), Vec::new()).is_empty());
}

/// Digests sharing one home past the longest displacement: the spill set, as inserts would;
/// digests sharing one bucket's counter (the insertion sort's case) come out in order.
#[test]
fn crowded_homes_spill_and_crowded_counters_sort() {
    let mut digests = random(70_000, 9);
    let crowded = digests[0] & !0xFFFF;
    digests.extend((0..1_000u64).rev().map(|i| crowded | i));
    let (a, b) = digests.split_at(35_000);
    check(&[a.to_vec(), b.to_vec()], 0, Some((8, 400)), 10);
    let shared = DigestBuckets::with_buckets(4, 2_000);
    let mut collector = shared.collector();
    for digest in (0..1_000u64).rev().map(|i| crowded | i) {
        collector.push(digest);
    }
    let collected = collector.finish();
    let table = build(shared, vec![collected]);
    assert!(table.spilled() > 0);
    assert!((0..1_000u64).all(|i| table.contains(crowded | i)));
}

#[test]
fn the_replays_sort_orders_as_a_comparison_sort_does() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut digests: Vec<u64> = (0..200_000).map(|_| rng.random::<u64>()).collect();
    // Runs that share their top 32 or 48 bits, in descending order.
    let base = digests[0] & !0xFFFF_FFFF;
    digests.extend((0..500u64).rev().map(|i| base | (i << 20) | i));
    digests.extend((0..500u64).rev().map(|i| (base | 0xFFFF_0000) | i));
    let mut expected = digests.clone();
    expected.sort_unstable();
    sort_digests(&mut digests);
    assert_eq!(digests, expected);
}
