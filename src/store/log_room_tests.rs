//! The zeroed room ahead of sled's log: where zeros go and where they never go, and a store
//! whose log carries the room serving, reopening and keeping every record.

use std::os::unix::fs::FileExt;

use super::*;
use crate::store::disk::SEGMENT_BYTES;
use crate::store::test_support::*;
use crate::store::{SledStore, Store};

const SEGMENT: u64 = SEGMENT_BYTES as u64;

/// A log file of `len` bytes of 0xAB (sled's data stand-in: nothing zero), opened read-write.
fn log_of(len: u64) -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("db"))
        .unwrap();
    file.write_all_at(&vec![0xAB; len as usize], 0).unwrap();
    (dir, file)
}

fn len(file: &File) -> u64 {
    file.metadata().unwrap().len()
}

/// Whether `[start, end)` of `file` holds only `byte`.
fn only(file: &File, start: u64, end: u64, byte: u8) -> bool {
    let mut buf = vec![0; (end - start) as usize];
    file.read_exact_at(&mut buf, start).unwrap();
    buf.iter().all(|&b| b == byte)
}

#[test]
fn at_open_the_rest_of_the_segment_is_zeroed_and_the_next_segments_follow_one_chunk_a_commit() {
    let written = 3 * SEGMENT + 12_345;
    let (_dir, file) = log_of(written);
    let mut room = LogRoom::new(SEGMENT_BYTES);
    let boundary = 4 * SEGMENT;
    assert_eq!(room.at_open(&file).unwrap(), boundary - written);
    assert_eq!(len(&file), boundary);
    assert!(only(&file, 0, written, 0xAB), "sled's bytes are untouched");
    assert!(only(&file, written, boundary, 0));

    // Commits that flush little: one chunk each, in order, until SEGMENTS_AHEAD segments.
    let chunks = SEGMENTS_AHEAD * SEGMENT / CHUNK_BYTES;
    for step in 1..=chunks {
        assert_eq!(room.after_commit(&file, 1000).unwrap(), CHUNK_BYTES);
        assert_eq!(len(&file), boundary + step * CHUNK_BYTES);
    }
    assert!(only(&file, written, boundary + SEGMENTS_AHEAD * SEGMENT, 0));
    // The room is made: later commits write nothing (and look at the file only now and then).
    for _ in 0..100 {
        assert_eq!(room.after_commit(&file, 1000).unwrap(), 0);
    }
    assert_eq!(len(&file), boundary + SEGMENTS_AHEAD * SEGMENT);
}

/// A log whose segment has 3 MiB left at open, and its room after the commits that stop it:
/// they may flush 1 MiB before less than MIN_ROOM_BYTES would be left in sled's segment, so
/// two chunks are zeroed and the third commit stops the filling. Answers the file's end.
fn room_stopped_after_two_chunks() -> (tempfile::TempDir, File, LogRoom, u64) {
    let written = 5 * SEGMENT - (3 << 20);
    let (dir, file) = log_of(written);
    let mut room = LogRoom::new(SEGMENT_BYTES);
    room.at_open(&file).unwrap();
    assert_eq!(room.after_commit(&file, 512 << 10).unwrap(), CHUNK_BYTES);
    assert_eq!(room.after_commit(&file, 511 << 10).unwrap(), CHUNK_BYTES);
    // 1 KiB more and less than MIN_ROOM_BYTES would be left in sled's segment.
    assert_eq!(room.after_commit(&file, 2 << 10).unwrap(), 0);
    let end = 5 * SEGMENT + 2 * CHUNK_BYTES;
    assert_eq!(len(&file), end);
    (dir, file, room, end)
}

#[test]
fn zeros_stop_before_sled_could_reach_them() {
    let (_dir, file, mut room, end) = room_stopped_after_two_chunks();
    for _ in 0..10 {
        assert_eq!(room.after_commit(&file, 0).unwrap(), 0);
    }
    assert_eq!(len(&file), end);
}

#[test]
fn a_segment_with_too_little_room_gets_none_at_open() {
    let written = 2 * SEGMENT - MIN_ROOM_BYTES + 1;
    let (_dir, file) = log_of(written);
    let mut room = LogRoom::new(SEGMENT_BYTES);
    // The rest of sled's own segment is zeroed (nothing else uses the file at open) ...
    assert_eq!(room.at_open(&file).unwrap(), 2 * SEGMENT - written);
    // ... but no segment past it: sled could get there within a commit or two.
    for _ in 0..10 {
        assert_eq!(room.after_commit(&file, 0).unwrap(), 0);
    }
    assert_eq!(len(&file), 2 * SEGMENT);
}

#[test]
fn a_file_that_ends_on_a_boundary_is_left_alone_until_sled_grows_it() {
    let (_dir, file) = log_of(2 * SEGMENT);
    let mut room = LogRoom::new(SEGMENT_BYTES);
    assert_eq!(room.at_open(&file).unwrap(), 0);
    assert_eq!(small_commits_to_a_look(&mut room, &file), 0);
    assert_eq!(len(&file), 2 * SEGMENT);
    // sled starts a segment past the end: the next look plans the two after it.
    file.write_all_at(&[0xAB; 4096], 2 * SEGMENT).unwrap();
    assert_eq!(small_commits_to_a_look(&mut room, &file), 0);
    assert_eq!(room.after_commit(&file, 4096).unwrap(), CHUNK_BYTES);
    assert!(only(&file, 2 * SEGMENT, 2 * SEGMENT + 4096, 0xAB));
    assert!(
        only(&file, 2 * SEGMENT + 4096, 3 * SEGMENT, 0),
        "a hole reads as zeros"
    );
    assert!(only(&file, 3 * SEGMENT, 3 * SEGMENT + CHUNK_BYTES, 0));
}

/// Commits of 4 KiB each until one looks at the file: the bytes they zeroed.
fn small_commits_to_a_look(room: &mut LogRoom, file: &File) -> u64 {
    (0..LOOK_EVERY_BYTES / 4096)
        .map(|_| room.after_commit(file, 4096).unwrap())
        .sum()
}

/// Bulk ingest's commits flush ~1 MB each: room for them cost more device bytes than it saved
/// (`benches/load/results/room5-2026-12-01-s10.md`).
#[test]
fn commits_that_flush_much_get_no_room() {
    let (_dir, file) = log_of(2 * SEGMENT);
    let mut room = LogRoom::new(SEGMENT_BYTES);
    assert_eq!(room.at_open(&file).unwrap(), 0);
    // sled appends in a new segment, one large commit after another.
    for commit in 1..=4u64 {
        file.write_all_at(&vec![0xAB; 1 << 20], 2 * SEGMENT + (commit - 1) * (1 << 20))
            .unwrap();
        assert_eq!(room.after_commit(&file, 1 << 20).unwrap(), 0);
    }
    assert_eq!(len(&file), 2 * SEGMENT + (4 << 20));
    // Just above the average that pays: still none.
    for _ in 0..4 {
        assert_eq!(room.after_commit(&file, SMALL_COMMIT_BYTES + 1).unwrap(), 0);
    }
    assert_eq!(len(&file), 2 * SEGMENT + (4 << 20));
    // Small commits again: the next look plans the room past sled's segment.
    assert_eq!(small_commits_to_a_look(&mut room, &file), 0);
    assert_eq!(room.after_commit(&file, 4096).unwrap(), CHUNK_BYTES);
    assert_eq!(len(&file), 3 * SEGMENT + CHUNK_BYTES);
}

/// A filling that stopped part-way leaves the file ending inside a segment sled has not
/// reached: that end is the room's, and a look must not take it for sled's and plan zeros on
/// past it. Before the fix every such look moved the room a segment further from sled, and a
/// bulk load wrote up to 5× its bytes in zeros.
#[test]
fn a_room_given_up_part_way_is_not_taken_for_sled_appending() {
    let (_dir, file, mut room, room_end) = room_stopped_after_two_chunks();
    // sled goes on inside its segment; looks come and go, and nothing more is zeroed.
    for _ in 0..4 {
        assert_eq!(small_commits_to_a_look(&mut room, &file), 0);
    }
    assert_eq!(len(&file), room_end);
    // Once sled writes past the room's end, it appends there: room past that segment.
    file.write_all_at(&[0xAB; 4096], room_end).unwrap();
    assert_eq!(small_commits_to_a_look(&mut room, &file), 0);
    assert_eq!(room.after_commit(&file, 4096).unwrap(), CHUNK_BYTES);
    assert!(only(&file, 6 * SEGMENT, 6 * SEGMENT + CHUNK_BYTES, 0));
    assert_eq!(len(&file), 6 * SEGMENT + CHUNK_BYTES);
}

#[test]
fn sleds_old_small_segments_get_no_room() {
    let small = crate::store::disk::SLED_DEFAULT_SEGMENT_BYTES;
    let (_dir, file) = log_of(1000);
    let mut room = LogRoom::new(small);
    assert_eq!(room.at_open(&file).unwrap(), 0);
    for _ in 0..10 {
        assert_eq!(room.after_commit(&file, LOOK_EVERY_BYTES).unwrap(), 0);
    }
    assert_eq!(len(&file), 1000);
}

fn log_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("db")).unwrap().len()
}

fn insert(store: &SledStore, unit: &str) {
    block_on(store.insert_sticky(&epoch(), unit, record("control", T0_MS), tally(T0_MS))).unwrap();
}

/// The point of the room: once it is made, commits write inside the file, so `fdatasync` has
/// no new size to commit; and sled reopens such a log (zeroed segments past its end) with
/// every record, twice.
#[test]
fn commits_after_the_room_is_made_do_not_grow_the_log_and_the_store_reopens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = (SEGMENTS_AHEAD * SEGMENT / CHUNK_BYTES) as usize;
    {
        let store = SledStore::open(dir.path()).unwrap();
        for unit in 0..chunks + 1 {
            insert(&store, &format!("before-{unit}"));
        }
        let made = log_len(dir.path());
        assert_eq!(made % SEGMENT, 0, "{made}");
        assert!(made >= (1 + SEGMENTS_AHEAD) * SEGMENT, "{made}");
        for unit in 0..200 {
            insert(&store, &format!("after-{unit}"));
        }
        assert_eq!(
            log_len(dir.path()),
            made,
            "the commits wrote inside the file"
        );
        block_on(store.shutdown()).unwrap();
    }
    for round in 0..2 {
        let store = SledStore::open(dir.path()).unwrap();
        for (prefix, count) in [("before", chunks + 1), ("after", 200)] {
            for unit in 0..count {
                let found = block_on(store.sticky(&epoch(), &format!("{prefix}-{unit}"))).unwrap();
                assert_eq!(found.map(|r| r.variant).as_deref(), Some("control"));
            }
        }
        insert(&store, &format!("round-{round}"));
        let audit = store.audit().unwrap();
        assert!(audit.is_clean(), "{audit:?}");
        block_on(store.shutdown()).unwrap();
    }
}
