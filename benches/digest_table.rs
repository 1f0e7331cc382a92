//! The kept event ids' set (`store::DigestSet`, the compact table of `store::digest_table`)
//! against the `hashbrown` table of `u64`s it replaced, on the same allocator
//! (`store::TableMemory`: big tables are mappings of their own, on huge pages), at 1M and 20M
//! digests:
//!
//! - `contains_hit`: a kept digest, in random order (the duplicate check of a retried event);
//! - `contains_miss`: a digest not kept (a new event: the common case);
//! - `insert_remove`: a new digest inserted then removed (the table keeps its size);
//! - `fill_1m`: a million digests into an empty set (every growth included), per digest;
//! - `fitted_20m/load_<L>`: the same three operations on 20M digests in a set reserved for
//!   them so that it runs at L% (85: a replay's table before
//!   `benches/load/results/mem6-2026-12-01-s11.md`, 90: after it, 92: near the most a serving
//!   table now holds before it grows, 93%), in one binary, so the loads are compared on the
//!   same build.
//!
//! Digests are uniform (SplitMix64 of a counter, as keyed SipHash digests are), and each
//! lookup is a random read into a table of 7–200 MB: the cache miss is most of the cost.

use std::hint::black_box;

use banditd::store::{DigestSet, TableMemory};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use hashbrown::HashTable;

/// SplitMix64 (Steele, Lea and Flood 2014): a uniform 64-bit digest per counter value.
fn digest(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The operations both tables answer.
trait Set: Default {
    const NAME: &'static str;
    fn insert(&mut self, digest: u64) -> bool;
    fn contains(&self, digest: u64) -> bool;
    fn remove(&mut self, digest: u64) -> bool;
}

impl Set for DigestSet {
    const NAME: &'static str = "compact";
    fn insert(&mut self, digest: u64) -> bool {
        DigestSet::insert(self, digest)
    }
    fn contains(&self, digest: u64) -> bool {
        DigestSet::contains(self, digest)
    }
    fn remove(&mut self, digest: u64) -> bool {
        DigestSet::remove(self, digest)
    }
}

/// The table `DigestSet` held before: bare digests, each its own hash.
#[derive(Default)]
struct Hashbrown(HashTable<u64, TableMemory>);

impl Set for Hashbrown {
    const NAME: &'static str = "hashbrown";
    fn insert(&mut self, digest: u64) -> bool {
        match self.0.entry(digest, |&kept| kept == digest, |&kept| kept) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(free) => {
                free.insert(digest);
                true
            }
        }
    }
    fn contains(&self, digest: u64) -> bool {
        self.0.find(digest, |&kept| kept == digest).is_some()
    }
    fn remove(&mut self, digest: u64) -> bool {
        match self.0.find_entry(digest, |&kept| kept == digest) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

/// Digests `0..n` of the counter are kept; misses and new digests come from above `1 << 40`.
fn filled<S: Set>(n: u64) -> S {
    let mut set = S::default();
    for counter in 0..n {
        set.insert(digest(counter));
    }
    set
}

fn lookups<S: Set>(c: &mut Criterion, n: u64, label: &str) {
    let mut set: S = filled(n);
    let mut group = c.benchmark_group(format!("digest_set_{label}"));
    group.throughput(Throughput::Elements(1));
    lookup_benches(&mut group, S::NAME, &mut set, n);
    group.finish();
}

/// `PREFIX/contains_hit`, `/contains_miss` and `/insert_remove` on `set`, which holds the
/// digests of counters `0..n`.
fn lookup_benches<S: Set>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    prefix: &str,
    set: &mut S,
    n: u64,
) {
    let mut next = 0u64;
    group.bench_function(format!("{prefix}/contains_hit"), |b| {
        b.iter(|| {
            // A multiplicative walk over 0..n: a random order, every digest kept.
            next = next.wrapping_add(0x9E37_79B9) % n;
            black_box(set.contains(digest(next)))
        })
    });
    let mut miss = 1u64 << 40;
    group.bench_function(format!("{prefix}/contains_miss"), |b| {
        b.iter(|| {
            miss += 1;
            black_box(set.contains(digest(miss)))
        })
    });
    let mut fresh = 1u64 << 41;
    group.bench_function(format!("{prefix}/insert_remove"), |b| {
        b.iter(|| {
            fresh += 1;
            let new = digest(fresh);
            black_box(set.insert(new));
            black_box(set.remove(new))
        })
    });
}

/// Homes of a set of 6-byte slots (2^24 homes or more): its heap bytes are the slots, the
/// 254 past the last home and 8 bytes of padding (`digest_table`).
fn homes(set: &DigestSet) -> u64 {
    ((set.heap_bytes() as u64 - 8) / 6).saturating_sub(254)
}

/// `n` digests in a set reserved so that they fill it to `load_percent` of its homes.
/// `reserve` sizes a table at the fitted load of the build, whatever it is: the homes one
/// reserve for `n` gives say what to ask for.
fn fitted(n: u64, load_percent: u64) -> DigestSet {
    let mut probe = DigestSet::default();
    probe.reserve(n as usize);
    let fitted_homes = homes(&probe);
    drop(probe);
    let wanted = (n * 100).div_ceil(load_percent);
    let mut set = DigestSet::default();
    set.reserve((u128::from(n) * u128::from(wanted) / u128::from(fitted_homes)) as usize);
    for counter in 0..n {
        set.insert(digest(counter));
    }
    let load = n as f64 / homes(&set) as f64;
    assert!(
        (load * 100.0 - load_percent as f64).abs() < 0.1,
        "{load} for {load_percent}%"
    );
    set
}

fn fitted_lookups(c: &mut Criterion) {
    const N: u64 = 20_000_000;
    let mut group = c.benchmark_group("digest_set_fitted_20m");
    group.throughput(Throughput::Elements(1));
    for load_percent in [85u64, 90, 92] {
        let mut set = fitted(N, load_percent);
        lookup_benches(&mut group, &format!("load_{load_percent}"), &mut set, N);
    }
    group.finish();
}

fn fill<S: Set>(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut group = c.benchmark_group("digest_set_fill");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function(format!("{}/fill_1m", S::NAME), |b| {
        b.iter_batched(
            || (),
            |()| black_box(filled::<S>(N)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A and B alternate within each size, so a change of machine load hits both alike.
fn benches(c: &mut Criterion) {
    for (n, label) in [(1_000_000u64, "1m"), (20_000_000, "20m")] {
        lookups::<Hashbrown>(c, n, label);
        lookups::<DigestSet>(c, n, label);
    }
    fill::<Hashbrown>(c);
    fill::<DigestSet>(c);
    fitted_lookups(c);
}

criterion_group!(digest_table, benches);
criterion_main!(digest_table);
