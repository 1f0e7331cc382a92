//! The redo log's own format and the replay's rules, on a bare sled database: records after
//! sled's `META_SEQ` are applied in order, and the walk stops at a torn record, a zeroed one, a
//! recycled segment's stale one and the position of a record whose sync failed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::*;
use crate::store::codec;
use crate::store::keys;
use crate::store::test_support::raw_db;
use crate::store::wal_replay::{self, Replay};

fn sled_log(dir: &Path) -> File {
    File::open(dir.join("db")).unwrap()
}

/// Commit `seq`'s batch as the writer builds it: one key of its own and `META_SEQ`.
fn commit(wal: &mut Wal, seq: u64) -> Position {
    let mut batch = wal.batch();
    batch.insert(
        format!("k{seq}").into_bytes(),
        format!("v{seq}").into_bytes(),
    );
    batch.insert(keys::META_SEQ, codec::encode_u64(seq));
    let at = Position {
        slot: wal.current,
        offset: wal.pos,
    };
    wal.append(seq, batch).unwrap();
    at
}

fn keys_in(db: &sled::Db) -> Vec<String> {
    db.scan_prefix(b"k")
        .keys()
        .map(|key| String::from_utf8(key.unwrap().to_vec()).unwrap())
        .collect()
}

fn meta_seq(db: &sled::Db) -> u64 {
    db.get(keys::META_SEQ)
        .unwrap()
        .map_or(0, |value| codec::decode_u64(&value, "seq").unwrap())
}

/// Opens `dir` as the store does: sled, then the replay. The database is dropped at once
/// unless the caller keeps it (it holds the directory lock).
fn reopen(dir: &Path, stop_at: Option<Position>) -> (sled::Db, Wal, Replay) {
    let db = raw_db(dir);
    let (wal, replay) = wal_replay::recover(dir, &db, &sled_log(dir), stop_at).unwrap();
    (db, wal, replay)
}

/// Three commits written to the log and never applied to sled (a crash right after their
/// `fdatasync`s); `apply_first` of them applied to sled too.
fn three_logged(dir: &Path, apply_first: usize) -> Vec<Position> {
    let (db, mut wal, _) = reopen(dir, None);
    let mut positions = Vec::new();
    for seq in 1..=3 {
        let at = commit(&mut wal, seq);
        if positions.len() < apply_first {
            wal.apply_last(&db, &std::sync::RwLock::new(())).unwrap();
            db.flush().unwrap();
        }
        positions.push(at);
    }
    positions
}

#[test]
fn records_sled_lacks_are_applied_in_order_and_those_it_holds_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    three_logged(dir.path(), 1);
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(
        replay,
        Replay {
            applied: 2,
            skipped: 1
        }
    );
    assert_eq!(keys_in(&db), ["k1", "k2", "k3"]);
    assert_eq!(meta_seq(&db), 3);
    drop(db);
    // The open reset the log: nothing is replayed twice.
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(replay, Replay::default());
    assert_eq!(keys_in(&db), ["k1", "k2", "k3"]);
}

#[test]
fn the_walk_stops_at_a_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_logged(dir.path(), 0);
    // One payload byte of the second record flipped: its crc no longer matches.
    let segment = File::options()
        .write(true)
        .read(true)
        .open(segment_path(&dir.path().join(WAL_DIR), positions[1].slot))
        .unwrap();
    let at = positions[1].offset + RECORD_HEADER_BYTES as u64 + 3;
    let mut byte = [0_u8];
    segment.read_exact_at(&mut byte, at).unwrap();
    segment.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(replay.applied, 1);
    assert_eq!(keys_in(&db), ["k1"]);
    assert_eq!(meta_seq(&db), 1);
}

#[test]
fn a_zeroed_record_header_ends_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_logged(dir.path(), 0);
    let segment = File::options()
        .write(true)
        .open(segment_path(&dir.path().join(WAL_DIR), positions[2].slot))
        .unwrap();
    zero(
        &segment,
        positions[2].offset,
        positions[2].offset + RECORD_HEADER_BYTES as u64,
    )
    .unwrap();
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(replay.applied, 2);
    assert_eq!(keys_in(&db), ["k1", "k2"]);
}

/// What the reopen after a failed `fdatasync` relies on: the record is there, valid, but the
/// walk stops at its position, and the reset makes it unreadable for every later open.
#[test]
fn a_record_whose_sync_failed_is_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let positions = three_logged(dir.path(), 0);
    let (db, _, replay) = reopen(dir.path(), Some(positions[1]));
    assert_eq!(replay.applied, 1);
    assert_eq!(keys_in(&db), ["k1"]);
    drop(db);
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(replay, Replay::default());
    assert_eq!(keys_in(&db), ["k1"]);
}

/// A reused segment keeps its old records' bytes after the new header: they carry an older
/// generation and end the walk (they are not even read as records sled holds already).
#[test]
fn a_reused_segments_stale_records_end_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    three_logged(dir.path(), 0);
    // The open replays k1..k3 and restarts segment 0 with a new generation over the same
    // bytes; one new commit overwrites the first stale record only.
    let (db, mut wal, replay) = reopen(dir.path(), None);
    assert_eq!(replay.applied, 3);
    commit(&mut wal, 4);
    db.remove(b"k2").unwrap();
    db.remove(b"k3").unwrap();
    db.flush().unwrap();
    drop((db, wal));
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(
        replay,
        Replay {
            applied: 1,
            skipped: 0
        },
        "k4's record only: k2 and k3 are an older generation's"
    );
    assert_eq!(keys_in(&db), ["k1", "k4"]);
}

#[test]
fn ops_round_trip_through_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut wal, _) = reopen(dir.path(), None);
    db.insert(b"gone", b"x".to_vec()).unwrap();
    db.flush().unwrap();
    let mut batch = wal.batch();
    batch.insert(b"kept".as_slice(), vec![0_u8; 300]);
    batch.insert(Vec::new(), b"empty key".as_slice());
    batch.remove(b"gone".as_slice());
    batch.insert(keys::META_SEQ, codec::encode_u64(9));
    wal.append(9, batch).unwrap();
    drop((db, wal));
    let (db, _, replay) = reopen(dir.path(), None);
    assert_eq!(replay.applied, 1);
    assert_eq!(db.get(b"kept").unwrap().unwrap().as_ref(), &[0_u8; 300][..]);
    assert_eq!(db.get(b"").unwrap().unwrap().as_ref(), b"empty key");
    assert_eq!(db.get(b"gone").unwrap(), None);
}

#[test]
fn a_segment_header_is_checked_whole() {
    let header = segment_header(7);
    assert_eq!(parse_segment_header(&header), Some(7));
    for at in 0..header.len() {
        let mut broken = header;
        broken[at] ^= 1;
        assert_eq!(parse_segment_header(&broken), None, "byte {at}");
    }
    assert_eq!(parse_segment_header(&[0; 28]), None);
}

/// The record layout against an independent encoding: CRC-32 (IEEE) of `len, generation,
/// seq, payload`, the check value of the standard ("123456789" → 0xCBF43926) included.
#[test]
fn a_record_is_crc32_over_everything_after_its_crc() {
    assert_eq!(record_crc(b"12345", b"6789"), 0xCBF4_3926);
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut wal, _) = reopen(dir.path(), None);
    let at = wal.pos;
    let mut batch = wal.batch();
    batch.insert(b"a".as_slice(), b"b".as_slice());
    wal.append(5, batch).unwrap();
    let mut bytes = [0_u8; RECORD_HEADER_BYTES + 5];
    wal.segments[0].file.read_exact_at(&mut bytes, at).unwrap();
    let payload = [1, 1, b'a', 1, b'b'];
    assert_eq!(&bytes[RECORD_HEADER_BYTES..], &payload);
    assert_eq!(&bytes[4..8], &5_u32.to_le_bytes());
    assert_eq!(&bytes[8..16], &wal.generation.to_le_bytes());
    assert_eq!(&bytes[16..24], &5_u64.to_le_bytes());
    let mut covered = bytes[4..24].to_vec();
    covered.extend_from_slice(&payload);
    assert_eq!(&bytes[..4], &crc32fast::hash(&covered).to_le_bytes());
}
