//! The redo log's segment files (`wal`): their header, their creation and the zeros written
//! ahead of the records.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::wal::{SEGMENT_HEADER_BYTES, Segment, SegmentState, ZERO_CHUNK_BYTES};

const SEGMENT_MAGIC: &[u8; 16] = b"banditd-redo-v1\0";

/// A segment header for `generation`.
pub fn segment_header(generation: u64) -> [u8; 28] {
    let mut header = [0_u8; 28];
    header[..16].copy_from_slice(SEGMENT_MAGIC);
    header[16..24].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&header[..24]);
    header[24..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The generation a segment header holds, if it is a valid one.
pub fn parse_segment_header(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..28)?;
    if &header[..16] != SEGMENT_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(header[24..28].try_into().ok()?);
    if crc32fast::hash(&header[..24]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(header[16..24].try_into().ok()?))
}

/// The path of a segment slot's file.
pub fn segment_path(wal_dir: &Path, slot: usize) -> PathBuf {
    wal_dir.join(format!("{slot}.log"))
}

/// Creates segment file `slot` (synced into the directory), its first room zeroed.
pub(super) fn create_segment(wal_dir: &Path, slot: usize) -> Result<Segment, StoreError> {
    let path = segment_path(wal_dir, slot);
    let failed = |error: std::io::Error| {
        StoreError::Io(format!(
            "cannot create the redo log segment {}: {error}",
            path.display()
        ))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(failed)?;
    let written = SEGMENT_HEADER_BYTES + ZERO_CHUNK_BYTES;
    zero(&file, 0, written).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    sync_dir(wal_dir)?;
    Ok(Segment {
        file,
        written,
        state: SegmentState::Free,
    })
}

/// Writes `generation`'s header over a segment's first block, durably.
pub(super) fn write_header(file: &File, generation: u64) -> Result<(), StoreError> {
    let mut block = vec![0_u8; SEGMENT_HEADER_BYTES as usize];
    block[..28].copy_from_slice(&segment_header(generation));
    file.write_all_at(&block, 0)
        .and_then(|()| file.sync_data())
        .map_err(|error| StoreError::Io(format!("cannot start a redo log segment: {error}")))
}

/// Writes zeros over `[start, end)` of `file`.
pub(super) fn zero(file: &File, start: u64, end: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = start;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// `fsync` of a directory, so that a file created or removed in it stays so.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    super::data_dir::sync_dir(dir)
        .map_err(|error| StoreError::Io(format!("cannot sync {}: {error}", dir.display())))
}
