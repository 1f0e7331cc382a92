//! What sled 0.34 itself costs on this machine, without any banditd code: the floor under the
//! store's write paths, and the evidence behind the load report's explanation of its misses.
//!
//! Keys and values are shaped like banditd's: ~40-byte sticky keys holding ~45-byte records,
//! in a tree of 100,000 of them.
//!
//! - `sled/get_existing`: one point read (the known-unit assign path without a cache).
//! - `sled/batch_overwrite_x1000`: 1,000 existing keys rewritten in one `apply_batch` (what a
//!   reward does to sticky records), no flush.
//! - `sled/batch_insert_new_x1000`: 1,000 new keys in one `apply_batch` (new units, event ids).
//! - `sled/one_40kb_value_flush`: one 40 KB value and a flush: what 1,000 events cost when
//!   they are one value instead of 1,000 keys.
//! - `sled/tiny_commit_flush`: one small key and sled's flush: the fixed cost of a group
//!   commit as sled sees it. On Linux that flush ends in `sync_file_range`, which does not
//!   flush the disk's write cache;
//! - `sled/tiny_commit_flush_fdatasync`: the same plus the `fdatasync` of sled's log file that
//!   banditd adds to every commit (see `store::writer::Shared::log_file`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const STORED_KEYS: u64 = 100_000;
const PER_BATCH: u64 = 1_000;

fn sticky_key(i: u64) -> Vec<u8> {
    format!("\x01load-sticky\x00r1\x00unit-{i:010}").into_bytes()
}

fn open() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    let mut batch = sled::Batch::default();
    for i in 0..STORED_KEYS {
        batch.insert(sticky_key(i), vec![7u8; 45]);
    }
    db.apply_batch(batch).expect("preload");
    db.flush().expect("flush");
    (dir, db)
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
    group.bench_function("batch_overwrite_x1000", |b| {
        b.iter_batched(
            || {
                round += 1;
                let mut batch = sled::Batch::default();
                for j in 0..PER_BATCH {
                    batch.insert(
                        sticky_key((round * PER_BATCH + j) % STORED_KEYS),
                        vec![8u8; 53],
                    );
                }
                batch
            },
            |batch| db.apply_batch(batch).expect("apply"),
            BatchSize::PerIteration,
        )
    });
    let mut fresh = 0u64;
    group.bench_function("batch_insert_new_x1000", |b| {
        b.iter_batched(
            || {
                let mut batch = sled::Batch::default();
                for _ in 0..PER_BATCH {
                    fresh += 1;
                    batch.insert(
                        format!("\x05load-sticky\x00evt-{fresh:012}").into_bytes(),
                        vec![1u8; 8],
                    );
                }
                batch
            },
            |batch| db.apply_batch(batch).expect("apply"),
            BatchSize::PerIteration,
        )
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
