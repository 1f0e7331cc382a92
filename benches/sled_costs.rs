//! What sled 0.34 itself costs on this machine, without any banditd code: the floor under the
//! store's write paths, and the evidence behind the load report's explanation of its misses.
//!
//! Keys and values are shaped like banditd's: ~40-byte sticky keys holding ~45-byte records,
//! in a tree of 100,000 of them.
//!
//! The tree is filled in batches of 1,000, as banditd's writer commits (at most 1,024 writes per
//! commit): one huge batch would leave oversized nodes that sled splits lazily, and every
//! later operation would pay for that.
//!
//! - `sled/get_existing`: one point read (the known-unit assign path without a cache).
//! - `sled/overwrite_sequential_x1000`: 1,000 existing keys, adjacent in key order, rewritten
//!   in one `apply_batch`, then sled's flush (as every banditd commit). Few leaves change, so
//!   this is sled's best case.
//! - `sled/overwrite_scattered_x1000`: the same with 1,000 random stored keys, which is what
//!   rewards do to sticky records: unit ids are chosen by clients, so the units of one commit
//!   are scattered over the tree.
//! - `sled/insert_new_sequential_x1000`: 1,000 new keys appended after the last one, and a
//!   flush.
//! - `sled/insert_new_scattered_x1000`: 1,000 new keys spread over the tree, like new units
//!   and event ids.
//! - `sled/one_40kb_value_flush`: one 40 KB value and a flush: what 1,000 events cost when
//!   they are one value instead of 1,000 keys.
//! - `sled/tiny_commit_flush`: one small key and sled's flush: the fixed cost of a group
//!   commit as sled sees it. On Linux that flush ends in `sync_file_range`, which does not
//!   flush the disk's write cache;
//! - `sled/tiny_commit_flush_fdatasync`: the same plus the `fdatasync` of sled's log file that
//!   banditd adds to every commit (see `store::writer::Shared::log_file`).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};

const STORED_KEYS: u64 = 100_000;
const PER_BATCH: u64 = 1_000;

fn sticky_key(i: u64) -> Vec<u8> {
    format!("\x01load-sticky\x00r1\x00unit-{i:010}").into_bytes()
}

/// The key of stored unit `i` when units land in client-chosen (i.e. scattered) places: a
/// bijection of `0..STORED_KEYS` that jumps across the key space (the multiplier is prime
/// to `STORED_KEYS`, so no two `i` collide).
fn scattered_key(i: u64) -> Vec<u8> {
    sticky_key(i.wrapping_mul(48_271) % STORED_KEYS)
}

/// A key that is new to the tree and falls between stored ones, anywhere in it: a stored
/// unit's key with a suffix.
fn new_scattered_key(n: u64) -> Vec<u8> {
    let mut key = scattered_key(n % STORED_KEYS);
    key.extend_from_slice(format!("-{n}").as_bytes());
    key
}

fn open() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    for first in (0..STORED_KEYS).step_by(PER_BATCH as usize) {
        let mut batch = sled::Batch::default();
        for i in first..(first + PER_BATCH).min(STORED_KEYS) {
            batch.insert(scattered_key(i), vec![7u8; 45]);
        }
        db.apply_batch(batch).expect("preload");
    }
    db.flush().expect("flush");
    (dir, db)
}

/// One batch of `PER_BATCH` writes of `value_len`-byte values to `key(0..PER_BATCH)`.
fn batch_of(mut key: impl FnMut(u64) -> Vec<u8>, value_len: usize) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for j in 0..PER_BATCH {
        batch.insert(key(j), vec![8u8; value_len]);
    }
    batch
}

/// Benchmarks one commit as banditd's writer makes it: `apply_batch` of the next batch (built
/// outside the timing), then sled's flush.
fn commit_batches(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    db: &sled::Db,
    mut next_batch: impl FnMut() -> sled::Batch,
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            &mut next_batch,
            |batch| {
                db.apply_batch(batch).expect("apply");
                db.flush().expect("flush")
            },
            BatchSize::PerIteration,
        )
    });
}

fn sled_costs(c: &mut Criterion) {
    let (dir, db) = open();
    let mut group = c.benchmark_group("sled");
    let mut i = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % STORED_KEYS;
            black_box(db.get(sticky_key(i)).expect("get"))
        })
    });
    group.throughput(Throughput::Elements(PER_BATCH));
    group.sample_size(20);
    let mut round = 0u64;
    commit_batches(&mut group, "overwrite_sequential_x1000", &db, || {
        round += 1;
        batch_of(|j| sticky_key((round * PER_BATCH + j) % STORED_KEYS), 53)
    });
    let mut state = 1u64;
    commit_batches(&mut group, "overwrite_scattered_x1000", &db, || {
        batch_of(
            |_| {
                // A 64-bit LCG (Knuth's MMIX constants): a fresh, uniformly random stored
                // unit each time, so no pattern of leaves repeats.
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                sticky_key((state >> 33) % STORED_KEYS)
            },
            53,
        )
    });
    let mut fresh = 0u64;
    commit_batches(&mut group, "insert_new_sequential_x1000", &db, || {
        fresh += 1;
        let first = fresh * PER_BATCH;
        batch_of(
            |j| format!("\x05load-sticky\x00evt-{:012}", first + j).into(),
            8,
        )
    });
    commit_batches(&mut group, "insert_new_scattered_x1000", &db, || {
        fresh += 1;
        let first = fresh * PER_BATCH;
        batch_of(|j| new_scattered_key(first + j), 53)
    });
    let mut blob = 0u64;
    group.bench_function("one_40kb_value_flush", |b| {
        b.iter(|| {
            blob += 1;
            db.insert(format!("\x09log-{blob:012}"), vec![3u8; 40_000])
                .expect("insert");
            db.flush().expect("flush")
        })
    });
    group.throughput(Throughput::Elements(1));
    let mut tiny = 0u64;
    group.bench_function("tiny_commit_flush", |b| {
        b.iter(|| {
            tiny += 1;
            db.insert(format!("\x0atiny-{tiny:012}"), vec![1u8; 8])
                .expect("insert");
            db.flush().expect("flush")
        })
    });
    let log = std::fs::File::open(dir.path().join("db")).expect("sled's log file");
    group.bench_function("tiny_commit_flush_fdatasync", |b| {
        b.iter(|| {
            tiny += 1;
            db.insert(format!("\x0atiny-{tiny:012}"), vec![1u8; 8])
                .expect("insert");
            db.flush().expect("flush");
            log.sync_data().expect("fdatasync")
        })
    });
    group.finish();
}

criterion_group!(benches, sled_costs);
criterion_main!(benches);
