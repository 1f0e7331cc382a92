//! The kept event ids' set (`store::DigestSet`, the compact table of `store::digest_table`)
//! against the `hashbrown` table of `u64`s it replaced, on the same allocator
//! (`store::TableMemory`: big tables are mappings of their own, on huge pages), at 1M and 20M
//! digests:
//!
//! - `contains_hit`: a kept digest, in random order (the duplicate check of a retried event);
//! - `contains_miss`: a digest not kept (a new event: the common case);
//! - `insert_remove`: a new digest inserted then removed (the table keeps its size);
//! - `fill_1m`: a million digests into an empty set (every growth included), per digest.
//!
//! Digests are uniform (SplitMix64 of a counter, as keyed SipHash digests are), and each
//! lookup is a random read into a table of 7–200 MB: the cache miss is most of the cost.

use std::hint::black_box;

use banditd::store::{DigestSet, TableMemory};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
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
    let set: S = filled(n);
    let mut group = c.benchmark_group(format!("digest_set_{label}"));
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function(format!("{}/contains_hit", S::NAME), |b| {
        b.iter(|| {
            // A multiplicative walk over 0..n: a random order, every digest kept.
            next = next.wrapping_add(0x9E37_79B9) % n;
            black_box(set.contains(digest(next)))
        })
    });
    let mut miss = 1u64 << 40;
    group.bench_function(format!("{}/contains_miss", S::NAME), |b| {
        b.iter(|| {
            miss += 1;
            black_box(set.contains(digest(miss)))
        })
    });
    let mut set = set;
    let mut fresh = 1u64 << 41;
    group.bench_function(format!("{}/insert_remove", S::NAME), |b| {
        b.iter(|| {
            fresh += 1;
            let new = digest(fresh);
            black_box(set.insert(new));
            black_box(set.remove(new))
        })
    });
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
}

criterion_group!(digest_table, benches);
criterion_main!(digest_table);
