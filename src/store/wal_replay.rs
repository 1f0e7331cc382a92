//! Recovery of the redo log at open (`wal`), before the store's state is loaded from sled.
//!
//! sled holds, durably, some prefix of the commits (each commit's batch is atomic in sled and
//! carries its `META_SEQ`): those up to the last checkpoint at least, maybe more. The log holds
//! every acknowledged commit since. So the open reads `META_SEQ`, then walks the segments in
//! generation order and applies each valid record with a greater seq, in order; a segment's
//! walk ends at its first invalid record (a bad crc, a short or zeroed header, another
//! generation's record: a recycled segment's stale bytes). Applying a record twice changes
//! nothing: its batch holds absolute values, not increments.
//!
//! Then sled is flushed and its log `fdatasync`ed, and the log is reset: the first segment is
//! started with a generation above every one found, and every other segment's header is
//! zeroed, each durably, so no record found now can be read again (the record of a commit that
//! failed in this process included, which the reopen's walk stopped before: `Wal::failed_at`).
//! A crash during the reset is safe: sled holds every record already.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::codec;
use super::error::StoreError;
use super::keys::{self, io};
use super::wal::{
    self, Position, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, Segment, SegmentState, Wal,
};

/// What the replay did (for the log line and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Records applied to sled.
    pub applied: u64,
    /// Valid records sled held already.
    pub skipped: u64,
}

/// Replays the log under `data_dir` into `db` (stopping before `stop_at`, if given), makes
/// sled durable, and resets the log; answers the log ready for appends, and what was replayed.
pub fn recover(
    data_dir: &Path,
    db: &sled::Db,
    sled_log: &File,
    stop_at: Option<Position>,
) -> Result<(Wal, Replay), StoreError> {
    let wal_dir = data_dir.join(wal::WAL_DIR);
    if !wal_dir.exists() {
        std::fs::create_dir(&wal_dir).map_err(|error| {
            StoreError::Io(format!("cannot create {}: {error}", wal_dir.display()))
        })?;
        wal::sync_dir(data_dir)?;
    }
    let mut found = open_segments(&wal_dir)?;
    let durable_seq = match db.get(keys::META_SEQ).map_err(io)? {
        Some(value) => codec::decode_u64(&value, "commit sequence number")?,
        None => 0,
    };
    // Generation order is the order the segments were written in.
    let mut by_generation: Vec<(u64, usize)> = found
        .iter()
        .enumerate()
        .filter_map(|(slot, found)| found.generation.map(|generation| (generation, slot)))
        .collect();
    by_generation.sort_unstable();
    let mut replay = Replay::default();
    let mut last_seq = durable_seq;
    'segments: for &(generation, slot) in &by_generation {
        let bytes = read_all(&found[slot].file)?;
        let mut offset = SEGMENT_HEADER_BYTES as usize;
        while let Some((seq, payload, size)) = next_record(&bytes, offset, generation) {
            if stop_at
                == Some(Position {
                    slot,
                    offset: offset as u64,
                })
            {
                break 'segments;
            }
            if seq > last_seq {
                let batch = wal::decode_ops(payload)?;
                db.apply_batch(batch).map_err(io)?;
                replay.applied += 1;
                last_seq = seq;
            } else {
                replay.skipped += 1;
            }
            offset += size;
        }
    }
    db.flush().map_err(io)?;
    sled_log
        .sync_data()
        .map_err(|error| StoreError::Io(format!("fdatasync of the store's log failed: {error}")))?;
    if replay.applied > 0 {
        tracing::info!(
            records = replay.applied,
            through_seq = last_seq,
            "replayed the store's redo log"
        );
    }
    let max_generation = by_generation
        .last()
        .map_or(0, |&(generation, _)| generation);
    if found.is_empty() {
        let segment = wal::create_segment(&wal_dir, 0)?;
        found.push(Found {
            file: segment.file,
            generation: None,
            len: segment.written,
        });
    }
    // The new generation first: from then on it is the highest, whatever the reset did.
    let generation = max_generation + 1;
    wal::write_header(&found[0].file, generation)?;
    for other in &found[1..] {
        if other.generation.is_some() {
            invalidate_header(&other.file)?;
        }
    }
    let segments = found
        .into_iter()
        .enumerate()
        .map(|(slot, found)| Segment {
            file: found.file,
            written: found.len.max(SEGMENT_HEADER_BYTES),
            state: if slot == 0 {
                SegmentState::Current
            } else {
                SegmentState::Free
            },
        })
        .collect();
    Ok((Wal::new(wal_dir, segments, 0, generation, last_seq), replay))
}

/// A segment file found at open.
struct Found {
    file: File,
    /// Its header's generation (`None`: no valid header, nothing to replay).
    generation: Option<u64>,
    len: u64,
}

/// Opens slots `0.log`, `1.log`, … up to the first missing one (segments are created in
/// that order and never removed), reading each header.
fn open_segments(wal_dir: &Path) -> Result<Vec<Found>, StoreError> {
    let mut found = Vec::new();
    loop {
        let path = wal::segment_path(wal_dir, found.len());
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(error) => {
                return Err(StoreError::Io(format!(
                    "cannot open {}: {error}",
                    path.display()
                )));
            }
        };
        let failed = |error: std::io::Error| {
            StoreError::Io(format!("cannot read {}: {error}", path.display()))
        };
        let len = file.metadata().map_err(failed)?.len();
        let mut header = [0_u8; 28];
        let generation = match file.read_exact_at(&mut header, 0) {
            Ok(()) => wal::parse_segment_header(&header),
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(error) => return Err(failed(error)),
        };
        found.push(Found {
            file,
            generation,
            len,
        });
    }
}

fn read_all(file: &File) -> Result<Vec<u8>, StoreError> {
    let len = file
        .metadata()
        .map_err(|error| StoreError::Io(format!("cannot read the redo log: {error}")))?
        .len();
    let mut bytes = vec![0_u8; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|error| StoreError::Io(format!("cannot read the redo log: {error}")))?;
    Ok(bytes)
}

/// The record at `offset` if it is a valid one of `generation`: its seq, payload and size.
pub fn next_record(bytes: &[u8], offset: usize, generation: u64) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(offset..offset.checked_add(RECORD_HEADER_BYTES)?)?;
    let crc = u32::from_le_bytes(header[0..4].try_into().ok()?);
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let record_generation = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let seq = u64::from_le_bytes(header[16..24].try_into().ok()?);
    if len == 0 || record_generation != generation {
        return None;
    }
    let start = offset + RECORD_HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if wal::record_crc(&header[4..], payload) != crc {
        return None;
    }
    Some((seq, payload, RECORD_HEADER_BYTES + len))
}

/// Zeroes a segment's header, durably: none of its records can be read again.
fn invalidate_header(file: &File) -> Result<(), StoreError> {
    wal::zero(file, 0, 28)
        .and_then(|()| file.sync_data())
        .map_err(|error| StoreError::Io(format!("cannot reset the redo log: {error}")))
}
