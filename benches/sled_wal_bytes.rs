//! Device bytes sled 0.34 writes per payload byte when a store appends log values under
//! increasing keys, one atomic batch and one flush + `fdatasync` per commit, as the store's
//! writer does (`src/store/unit_log.rs`, `src/store/event_log.rs`, `src/store/disk.rs`).
//!
//! Run: `cargo bench --bench sled_wal_bytes -- [payload MiB] [commit payload bytes]`
//! (defaults 24 MiB and 53,000 bytes: 1,000 bulk events of ~45 bytes of unit log and 8 of
//! event ids). For each value size and segment size it prints the bytes the process wrote to
//! the device (`/proc/self/io` `write_bytes`) per payload byte, the wall time per commit, and
//! the files sled left under `blobs/` (items above a quarter of a segment, never fsynced).
//!
//! `WAL_VALUE_KIB` and `WAL_SEGMENT_KIB` (comma-separated KiB) replace the default lists.
//!
//! Each commit also rewrites three small keys, as a commit rewrites its counters and sequence
//! number. The data dir is made under `$WAL_BENCH_DIR` (default: the system temp dir), which
//! must be on a block device for the counter to mean anything (not tmpfs).

use std::io::Write as _;
use std::time::Instant;

const VALUE_KIB: &[usize] = &[1, 2, 4, 8, 16, 32, 64];
const SEGMENT_KIB: &[usize] = &[512, 1024, 4096];

/// A comma-separated list from the environment variable `name`, or `default`.
fn sizes(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name).map_or_else(
        |_| default.to_vec(),
        |list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        },
    )
}

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

struct Run {
    written: u64,
    payload: u64,
    commits: u64,
    elapsed_us: u128,
    blobs: usize,
}

/// Appends `payload` bytes as values of `value_len` bytes, `commit_bytes` of them per commit
/// (at least one value), under keys `0x20 · seq · chunk`.
fn run(segment: usize, value_len: usize, commit_bytes: usize, payload: u64) -> Run {
    let base = std::env::var_os("WAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).expect("a temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .segment_size(segment)
        .cache_capacity(256 * 1024 * 1024)
        .open()
        .expect("sled opens");
    let log = std::fs::File::open(dir.path().join("db")).expect("sled's log file");
    let per_commit = (commit_bytes / value_len).max(1);
    // Pseudo-random bytes: nothing here compresses, as a real log would not much either.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut value = vec![0u8; value_len];
    let mut fill = |value: &mut Vec<u8>| {
        for chunk in value.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    };
    let before = write_bytes();
    let started = Instant::now();
    let mut written_payload = 0u64;
    let mut seq = 0u64;
    while written_payload < payload {
        seq += 1;
        let mut batch = sled::Batch::default();
        for chunk in 0..per_commit as u64 {
            fill(&mut value);
            let mut key = vec![0x20];
            key.extend_from_slice(&seq.to_be_bytes());
            key.extend_from_slice(&chunk.to_be_bytes());
            batch.insert(key, value.as_slice());
            written_payload += value_len as u64;
        }
        batch.insert(b"\x00seq".as_slice(), seq.to_be_bytes().to_vec());
        batch.insert(b"\x10counter-a".as_slice(), vec![seq as u8; 96]);
        batch.insert(b"\x10counter-b".as_slice(), vec![seq as u8; 96]);
        db.apply_batch(batch).expect("batch");
        db.flush().expect("flush");
        log.sync_data().expect("fdatasync");
    }
    let elapsed_us = started.elapsed().as_micros();
    let written = write_bytes() - before;
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map_or(0, |d| d.count());
    drop(db);
    Run {
        written,
        payload: written_payload,
        commits: seq,
        elapsed_us,
        blobs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are the optional positional arguments.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let payload_mib = numbers.first().copied().unwrap_or(24);
    let commit_bytes = numbers.get(1).copied().unwrap_or(53_000) as usize;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "payload {payload_mib} MiB, {commit_bytes} B per commit (at least one value)\n\
         segment KiB | value KiB | values/commit | commits | device B per payload B | µs per commit | blobs"
    )
    .ok();
    for segment_kib in sizes("WAL_SEGMENT_KIB", SEGMENT_KIB) {
        for value_kib in sizes("WAL_VALUE_KIB", VALUE_KIB) {
            let run = run(
                segment_kib * 1024,
                value_kib * 1024,
                commit_bytes,
                payload_mib * 1024 * 1024,
            );
            writeln!(
                out,
                "{segment_kib} | {value_kib} | {} | {} | {:.2} | {} | {}",
                (commit_bytes / (value_kib * 1024)).max(1),
                run.commits,
                run.written as f64 / run.payload as f64,
                run.elapsed_us / u128::from(run.commits.max(1)),
                run.blobs,
            )
            .ok();
        }
    }
}
