//! The store's redo log: every group commit is durable here before sled sees it, so that sled
//! is flushed only at checkpoints, off the commit path.
//!
//! Flushing sled per commit cost the writer ~360 µs and sled's I/O pool ~300 µs and a dozen
//! context switches per commit, on the HTTP worker's core (`benches/load/PROFILES.md`, seventh
//! and eighth rounds): sled's flush hands its buffer to its pool, which wakes all its threads.
//! Here the writer thread encodes the commit's sled batch (the exact inserts and removes,
//! `META_SEQ` included) as one record, writes it with one `pwrite` into a segment file under
//! `<data dir>/wal/` and makes it durable with one `fdatasync` of that file; only then is the
//! batch applied to sled (op by op, not as a sled batch: [`Wal::apply_last`]), published and
//! answered. Nothing reaches sled that is not durable in the log, except a commit too big to
//! gain from it, which sled's own flush makes durable before any later record is written
//! (`wal_through_sled`). Checkpoints (`wal_checkpoint`) flush sled in the background and free
//! the segments whose records sled now holds; recovery at open (`wal_replay`) applies the
//! records sled lacks.
//!
//! **Layout.** A segment file `<slot>.log` starts with a header ([`SEGMENT_HEADER_BYTES`], its
//! first bytes `magic, generation, crc32`): the generation numbers segments in the order they
//! were written, and a new one is given to a segment each time it is (re)started. Records
//! follow from [`SEGMENT_HEADER_BYTES`]: `crc32, payload length, generation, seq` (each
//! little-endian; the crc covers all after itself) and the payload, a sequence of ops (`1`,
//! key, value: an insert; `0`, key: a remove; lengths as LEB128). A record is valid only with
//! its segment's generation: a recycled segment's older records are not read as new ones.
//!
//! **Data-only `fdatasync`.** A write past a file's end, or into a hole or an unwritten extent,
//! changes metadata that `fdatasync` must commit through the filesystem's journal (on ext4 a
//! second synchronous device write). So a segment's blocks are written (with zeros) ahead of
//! the records, [`ZERO_CHUNK_BYTES`] at a time after a commit was answered, and a freed
//! segment is reused with its blocks as they are: a commit's `fdatasync` then writes its data
//! pages and the disk's cache flush, nothing else. A record bigger than the room left still
//! goes in (the file grows, and that commit's `fdatasync` commits the size).
//!
//! **Failure.** A record whose write or `fdatasync` failed was refused, but its bytes may sit
//! in the page cache marked clean (Linux does that after a failed writeback), readable by a
//! later replay. The writer zeroes its header at once (`Wal::invalidate_refused`: a start
//! after a crash before the reopen must not apply it either) and keeps its position
//! ([`Wal::failed_at`]); the reopen replays only up to it and then resets the log
//! (`wal_replay`), durably, before anything is served. Nothing is appended after a failed
//! record, so every acknowledged commit lies before it and no walk that stops there loses one;
//! a start that does not find the record gives its seq to the next commit, in a segment the
//! start's reset gave a newer generation.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::disk::OpenDb;
use super::error::StoreError;
use super::keys;
use super::wal_checkpoint::{CheckpointDone, Checkpointer};
#[cfg(test)]
use super::wal_segment::segment_header;
pub(super) use super::wal_segment::{create_segment, sync_dir, write_header, zero};
pub use super::wal_segment::{parse_segment_header, segment_path};

/// The log's directory under the data dir.
pub const WAL_DIR: &str = "wal";

/// What a segment may hold before the writer moves to the next: twice
/// [`DEFAULT_CHECKPOINT_BYTES`], so that the records of one checkpoint interval usually fit one
/// segment even when the checkpoint before is still running.
pub const SEGMENT_BYTES: u64 = 32 << 20;

/// Records (bytes) after which the writer starts a checkpoint. A checkpoint costs one sled
/// flush (one wake of sled's I/O pool, and sled's buffers written) and one segment start (a
/// header write and an `fdatasync`); at 16 MiB that is at most a few per second even under
/// bulk ingest (~1 MB commits), and a restart replays at most this much log (plus the
/// checkpoint in flight), which sled applies in well under a second in release.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 16 << 20;

/// How long records may wait for a checkpoint on a server that writes little: a light load
/// would otherwise keep up to [`DEFAULT_CHECKPOINT_BYTES`] of log, and sled's dirty pages,
/// for hours. Once a second is nothing against the commits of any load that fills a segment.
pub const CHECKPOINT_AGE_MS: u64 = 1000;

/// Payload bytes from which a commit is made durable by sled's own flush instead of a record
/// (`wal_through_sled`): a big group commit would otherwise be written twice, as its record
/// and again when sled writes its buffer. One 1,000-event bulk request's commit is 16–20 KiB
/// (`benches/load/results/wal7-2026-12-01-s13.md`), so only a group of a dozen or more skips
/// the log. A flush's cost on the commit path (sled's I/O pool woken, its buffers written and
/// synced) is paid once per commit, while the second write it saves grows with the commit;
/// where they cross is not measured (at 16 KiB, bulk commits through sled's flush wrote
/// 126–1,324 device bytes per applied event over HTTP against 148–158 through the log).
pub const DEFAULT_SLED_COMMIT_BYTES: u64 = 256 << 10;

/// How often an idle writer looks whether the checkpoint under way finished, while records
/// wait for the next.
const CHECKPOINT_POLL_MS: u64 = 10;

/// Zeros written ahead of the records at a time (then `fdatasync`ed), once the room left in the
/// segment falls under this much. At ~4 KiB per commit of 32 new units, one commit in ~250
/// pays for it, after it was answered.
pub const ZERO_CHUNK_BYTES: u64 = 1 << 20;

/// A segment's header block: records start on the next page, so a segment's start (its
/// header's write) and its records never share a page.
pub const SEGMENT_HEADER_BYTES: u64 = 4096;

/// `crc32, payload length, generation, seq`.
pub const RECORD_HEADER_BYTES: usize = 24;

const OP_REMOVE: u8 = 0;
const OP_INSERT: u8 = 1;

/// Where a record starts: a segment slot and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub slot: usize,
    pub offset: u64,
}

/// One commit's batch, encoded for the log: the record sled is then given op by op
/// ([`Wal::apply_last`]), so the log holds exactly what sled applies.
pub struct RedoBatch {
    /// The record: its header's room, then the ops.
    record: Vec<u8>,
}

impl RedoBatch {
    /// The bytes of the ops encoded so far.
    pub fn payload_bytes(&self) -> usize {
        self.record.len() - RECORD_HEADER_BYTES
    }

    /// The encoded ops and the buffer they are in (for `wal_through_sled`).
    pub(super) fn into_record(self) -> Vec<u8> {
        self.record
    }

    /// A batch encoding into `buffer` (the log's, reused across commits).
    pub fn new(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.resize(RECORD_HEADER_BYTES, 0);
        RedoBatch { record: buffer }
    }

    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.record.push(OP_INSERT);
        keys::put_bytes(&mut self.record, key.as_ref());
        keys::put_bytes(&mut self.record, value.as_ref());
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.record.push(OP_REMOVE);
        keys::put_bytes(&mut self.record, key.as_ref());
    }
}

/// One op of a record.
pub enum Op<'a> {
    Insert(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
}

/// Calls `apply` with each op of a record's payload, in order.
pub fn for_each_op(
    mut payload: &[u8],
    mut apply: impl FnMut(Op<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    while let Some((&op, rest)) = payload.split_first() {
        let (key, rest) = keys::take_bytes(rest)?;
        payload = match op {
            OP_INSERT => {
                let (value, rest) = keys::take_bytes(rest)?;
                apply(Op::Insert(key, value))?;
                rest
            }
            OP_REMOVE => {
                apply(Op::Remove(key))?;
                rest
            }
            _ => return Err(keys::corrupt("unknown op in a redo log record")),
        };
    }
    Ok(())
}

/// Decodes a record's payload (its ops) into one sled batch (the replay at open).
pub fn decode_ops(payload: &[u8]) -> Result<sled::Batch, StoreError> {
    let mut batch = sled::Batch::default();
    for_each_op(payload, |op| {
        match op {
            Op::Insert(key, value) => batch.insert(key, value),
            Op::Remove(key) => batch.remove(key),
        }
        Ok(())
    })?;
    Ok(batch)
}

/// The crc of a record: everything after the crc field.
pub fn record_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_tail);
    hasher.update(payload);
    hasher.finalize()
}

/// What a segment slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// Records are appended here.
    Current,
    /// Records up to `last_seq` that sled may not hold durably yet.
    Sealed { last_seq: u64 },
    /// Sealed, in the checkpoint under way.
    Checkpointing,
    /// Nothing sled lacks: ready to be restarted with a new generation.
    Free,
}

/// One segment file.
pub struct Segment {
    pub file: File,
    /// Bytes of the file written (records or zeros): a write below this is data-only.
    pub written: u64,
    pub state: SegmentState,
}

/// The writer's side of the log: appends records, keeps room ahead, starts checkpoints.
pub struct Wal {
    pub(super) dir: PathBuf,
    pub(super) segments: Vec<Segment>,
    pub(super) current: usize,
    pub(super) generation: u64,
    /// Where the next record goes in the current segment.
    pub(super) pos: u64,
    /// The record buffer, lent to each commit's [`RedoBatch`].
    pub(super) buffer: Vec<u8>,
    /// The last seq appended (or made durable in sled by `wal_through_sled`).
    pub(super) last_seq: u64,
    /// Record bytes since the last checkpoint started, and when the first of them was written.
    unchecked_bytes: u64,
    unchecked_since: Option<std::time::Instant>,
    checkpoint_bytes: u64,
    /// Payload bytes from which a commit skips the log and is made durable by sled's flush
    /// (`wal_through_sled`).
    pub(super) sled_commit_bytes: u64,
    checkpointer: Option<Checkpointer>,
    /// The position of a record whose write or `fdatasync` failed (see the module docs).
    pub(super) failed_at: Option<Position>,
    /// A checkpoint's failure: sled could not flush, so the database must be reopened.
    pub(super) broken: Option<StoreError>,
    /// Test hook: the fault the next append meets (`Faults`).
    #[cfg(test)]
    pub(super) fault: WalFault,
}

/// A real fault for the next append (test hook): its segment's descriptor is pointed at
/// `/dev/full` before the `pwrite` (which then fails with ENOSPC) or between the `pwrite` and
/// the `fdatasync` (which then fails with EINVAL, the record left in the page cache).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalFault {
    #[default]
    None,
    Write,
    Sync,
}

impl Wal {
    /// The log as `wal_replay` left it: `segments[current]` started with `generation`, records
    /// to go at [`SEGMENT_HEADER_BYTES`], every other segment free.
    pub(super) fn new(
        dir: PathBuf,
        segments: Vec<Segment>,
        current: usize,
        generation: u64,
        last_seq: u64,
    ) -> Self {
        Wal {
            dir,
            segments,
            current,
            generation,
            pos: SEGMENT_HEADER_BYTES,
            buffer: Vec::new(),
            last_seq,
            unchecked_bytes: 0,
            unchecked_since: None,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
            sled_commit_bytes: DEFAULT_SLED_COMMIT_BYTES,
            checkpointer: None,
            failed_at: None,
            broken: None,
            #[cfg(test)]
            fault: WalFault::None,
        }
    }

    /// Sets the record bytes after which a checkpoint starts (tests and `--store-checkpoint-kib`).
    pub fn set_checkpoint_bytes(&mut self, bytes: u64) {
        self.checkpoint_bytes = bytes.max(1);
    }

    /// Sets the payload bytes from which a commit goes to sled's flush instead of the log
    /// (tests and `--store-sled-commit-kib`).
    pub fn set_sled_commit_bytes(&mut self, bytes: u64) {
        self.sled_commit_bytes = bytes.max(1);
    }

    /// A batch to build the next commit in.
    pub fn batch(&mut self) -> RedoBatch {
        RedoBatch::new(std::mem::take(&mut self.buffer))
    }

    /// The position of the record whose write or sync failed, for the reopen.
    pub fn failed_at(&self) -> Option<Position> {
        self.failed_at
    }

    /// Appends commit `seq`'s record and makes it durable: one `pwrite`, one `fdatasync`. On
    /// failure the record's position is kept ([`Wal::failed_at`]) and nothing may be appended
    /// after it.
    pub fn append(&mut self, seq: u64, batch: RedoBatch) -> Result<(), StoreError> {
        self.refuse_when_failed()?;
        let mut record = batch.record;
        let payload_len = record.len() - RECORD_HEADER_BYTES;
        let len = u32::try_from(payload_len)
            .map_err(|_| StoreError::Io("a commit too large for the redo log".to_owned()))?;
        record[4..8].copy_from_slice(&len.to_le_bytes());
        record[8..16].copy_from_slice(&self.generation.to_le_bytes());
        record[16..24].copy_from_slice(&seq.to_le_bytes());
        let crc = record_crc(
            &record[4..RECORD_HEADER_BYTES],
            &record[RECORD_HEADER_BYTES..],
        );
        record[..4].copy_from_slice(&crc.to_le_bytes());
        let size = record.len() as u64;
        if self.pos > SEGMENT_HEADER_BYTES && self.pos + size > SEGMENT_BYTES {
            let last_seq = self.last_seq;
            if let Err(error) = self.start_segment(SegmentState::Sealed { last_seq }) {
                self.buffer = record;
                return Err(error);
            }
        }
        let at = Position {
            slot: self.current,
            offset: self.pos,
        };
        let written = self.write_record(&record, at);
        self.buffer = record;
        if let Err(error) = written {
            self.failed_at = Some(at);
            self.invalidate_refused(at);
            return Err(error);
        }
        let segment = &mut self.segments[self.current];
        segment.written = segment.written.max(at.offset + size);
        self.pos += size;
        self.last_seq = seq;
        self.unchecked_bytes += size;
        self.unchecked_since
            .get_or_insert_with(std::time::Instant::now);
        Ok(())
    }

    /// Applies the record just appended to sled, op by op, under `apply_lock`'s write side.
    ///
    /// Not as one sled batch: sled 0.34's `apply_batch` seals and writes sled's log buffer
    /// twice per batch (`pin_log`: it rolls the buffer before and after its batch marker), so
    /// its I/O pool wrote, synced a range and woke its threads on every commit, as with a flush
    /// (`benches/load/results/wal6-2026-12-01-s11.md`: 14 context switches and 15–22 syscalls
    /// per commit on sled's threads, against 0.1 op by op). A single insert only reserves room
    /// in the buffer, which sled writes once full. What the batch gave is kept otherwise:
    /// - atomic after a crash: the record is durable first, `META_SEQ` is its last op, and
    ///   sled recovers a prefix of its log, so a commit sled holds only part of has a greater
    ///   seq than sled's `META_SEQ` and is replayed whole at open (`wal_replay`);
    /// - atomic to readers: every reader of sled holds `apply_lock`'s read side for its whole
    ///   read (`SledStore::read_durable`), as sled's own lock held them off a batch.
    pub fn apply_last(
        &self,
        db: &sled::Db,
        apply_lock: &std::sync::RwLock<()>,
    ) -> Result<(), StoreError> {
        let _applying = apply_lock
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for_each_op(&self.buffer[RECORD_HEADER_BYTES..], |op| {
            match op {
                Op::Insert(key, value) => db.insert(key, value).map(drop),
                Op::Remove(key) => db.remove(key).map(drop),
            }
            .map_err(keys::io)
        })
    }

    /// Zeroes the header of the record at `at`, whose write or `fdatasync` failed, and tries to
    /// make that durable: the reopen that follows would stop before it anyway (`wal_replay`),
    /// but a process that ends before that reopen reset the log (a crash, a kill, a shutdown
    /// during the failure episode) would otherwise leave it, valid in the page cache, for the
    /// next start to apply: a commit its callers were told was refused. Through a descriptor
    /// of its own, as the segment's may be what failed. It writes into blocks the record
    /// already holds, so a full disk takes it; if it fails, or if the machine loses the page
    /// cache before its zeros reach the disk, the record is applied at the next start only if
    /// the disk stored it whole despite the error (README, Durability).
    fn invalidate_refused(&self, at: Position) {
        let path = segment_path(&self.dir, at.slot);
        let zeroed = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| {
                file.write_all_at(&[0; RECORD_HEADER_BYTES], at.offset)?;
                file.sync_data()
            });
        if let Err(error) = zeroed {
            tracing::warn!(
                %error,
                segment = %path.display(),
                offset = at.offset,
                "cannot invalidate a refused record of the store's redo log; a start before the \
                 store reopens may apply it"
            );
        }
    }

    fn write_record(&self, record: &[u8], at: Position) -> Result<(), StoreError> {
        let file = &self.segments[at.slot].file;
        #[cfg(test)]
        if self.fault == WalFault::Write {
            super::recovery::point_at_dev_full(file)?;
        }
        file.write_all_at(record, at.offset).map_err(|error| {
            StoreError::Io(format!("write to the store's redo log failed: {error}"))
        })?;
        #[cfg(test)]
        if self.fault == WalFault::Sync {
            super::recovery::point_at_dev_full(file)?;
        }
        file.sync_data().map_err(|error| {
            StoreError::Io(format!("fdatasync of the store's redo log failed: {error}"))
        })
    }

    /// After a commit was answered: zeros ahead of the records when the room runs low, and a
    /// checkpoint when one is due. A failure here fails no commit: a failed zero write leaves
    /// the next records to grow the file, a failed segment start is retried at the next
    /// commit, and the segment fills on.
    pub fn after_commit(&mut self, open: &Arc<OpenDb>) {
        if let Err(error) = self.keep_room() {
            tracing::warn!(%error, "cannot zero room ahead of the store's redo log; commits will grow the file");
        }
        self.take_checkpoint_result();
        let due = self.unchecked_bytes >= self.checkpoint_bytes
            || self.unchecked_since.is_some_and(|since| {
                since.elapsed() >= std::time::Duration::from_millis(CHECKPOINT_AGE_MS)
            });
        if due
            && !self.checkpoint_running()
            && self.broken.is_none()
            && let Err(error) = self.start_checkpoint(open)
        {
            tracing::warn!(%error, "cannot start a checkpoint of the store; the redo log grows until one starts");
        }
    }

    fn keep_room(&mut self) -> std::io::Result<()> {
        let segment = &mut self.segments[self.current];
        if segment.written >= self.pos + ZERO_CHUNK_BYTES || segment.written >= SEGMENT_BYTES {
            return Ok(());
        }
        let end = (segment.written + ZERO_CHUNK_BYTES).min(SEGMENT_BYTES);
        zero(&segment.file, segment.written, end)?;
        segment.file.sync_data()?;
        segment.written = end;
        Ok(())
    }

    /// Moves to a fresh segment (every record so far is applied to sled), then hands sled's
    /// flush and the sealed segments to the checkpoint thread.
    fn start_checkpoint(&mut self, open: &Arc<OpenDb>) -> Result<(), StoreError> {
        if self.pos > SEGMENT_HEADER_BYTES {
            let last_seq = self.last_seq;
            self.start_segment(SegmentState::Sealed { last_seq })?;
        }
        let slots: Vec<usize> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, segment)| matches!(segment.state, SegmentState::Sealed { .. }))
            .map(|(slot, _)| slot)
            .collect();
        self.unchecked_bytes = 0;
        self.unchecked_since = None;
        if slots.is_empty() {
            return Ok(());
        }
        if self.checkpointer.is_none() {
            self.checkpointer = Some(Checkpointer::start()?);
        }
        for &slot in &slots {
            self.segments[slot].state = SegmentState::Checkpointing;
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.request(Arc::clone(open), slots);
        }
        Ok(())
    }

    /// Takes a finished checkpoint's result, then refuses a commit when the log cannot take
    /// one: a checkpoint failed (nothing is written; the reopen replays the log into a fresh
    /// database) or a record failed before (nothing may follow it, [`Wal::failed_at`]).
    pub(super) fn refuse_when_failed(&mut self) -> Result<(), StoreError> {
        self.take_checkpoint_result();
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        if let Some(failed) = self.failed_at {
            return Err(StoreError::Io(format!(
                "the redo log failed at segment {} offset {}",
                failed.slot, failed.offset
            )));
        }
        Ok(())
    }

    /// Frees the segments of a finished checkpoint, or notes its failure.
    pub(super) fn take_checkpoint_result(&mut self) {
        let Some(done) = self.checkpointer.as_ref().and_then(Checkpointer::finished) else {
            return;
        };
        match done {
            CheckpointDone::Flushed(slots) => {
                for slot in slots {
                    if let Some(segment) = self.segments.get_mut(slot) {
                        segment.state = SegmentState::Free;
                    }
                }
            }
            CheckpointDone::Failed(error) => {
                tracing::error!(%error, "a checkpoint of the store failed; the store reopens its database");
                self.broken = Some(error);
            }
        }
    }

    /// Seals the current segment as `sealed` and starts the next (a free one, else a new
    /// file): its header with the next generation, durably, before any record goes in.
    fn start_segment(&mut self, sealed: SegmentState) -> Result<(), StoreError> {
        let slot = match self
            .segments
            .iter()
            .position(|segment| segment.state == SegmentState::Free)
        {
            Some(slot) => slot,
            None => {
                let slot = self.segments.len();
                let segment = create_segment(&self.dir, slot)?;
                self.segments.push(segment);
                slot
            }
        };
        let generation = self.generation + 1;
        write_header(&self.segments[slot].file, generation)?;
        self.segments[self.current].state = sealed;
        let segment = &mut self.segments[slot];
        segment.state = SegmentState::Current;
        segment.written = segment.written.max(SEGMENT_HEADER_BYTES);
        self.current = slot;
        self.generation = generation;
        self.pos = SEGMENT_HEADER_BYTES;
        Ok(())
    }

    /// How long until the records no checkpoint covers are due for one (`None`: there are
    /// none, or the store must reopen first). While a checkpoint runs, a short poll.
    pub fn checkpoint_due_in(&self) -> Option<std::time::Duration> {
        let since = self.unchecked_since?;
        if self.broken.is_some() {
            return None;
        }
        if self.checkpoint_running() {
            return Some(std::time::Duration::from_millis(CHECKPOINT_POLL_MS));
        }
        Some(std::time::Duration::from_millis(CHECKPOINT_AGE_MS).saturating_sub(since.elapsed()))
    }

    fn checkpoint_running(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.state == SegmentState::Checkpointing)
    }
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
