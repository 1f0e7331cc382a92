//! Zeroed room ahead of sled's log, so that a commit's `fdatasync` writes data, not also the
//! file's size.
//!
//! sled 0.34 keeps its log in one file (`<data dir>/db`) cut into segments; a segment it starts
//! past the file's end grows the file with every write into it. A commit that grows the file
//! changes its size, and `fdatasync` must then commit that size through the filesystem's journal
//! (on ext4 a second synchronous device write per commit: `benches/load/PROFILES.md`, seventh
//! round, put the inode's write at 12% of the writer). A commit that writes inside the file,
//! over blocks already written, needs only the data and the disk's cache flush.
//!
//! So the writer keeps the next [`SEGMENTS_AHEAD`] segments past the one sled appends to
//! written with zeros, before sled gets there. A zero is what sled itself writes over unused
//! log space (its `MessageKind::Corrupted` canary, `pagecache/mod.rs`), and what reading past
//! the file's end gives its recovery: a zeroed message header ends a segment exactly as the
//! end of the file does, and a zeroed segment header fails its checksum, so sled treats a
//! zeroed segment as unused (it frees it at its next open, rewrites it with zeros and
//! truncates the file's free tail, `pagecache/segment.rs`). What sled reads does not change;
//! the room only moves where the file ends.
//!
//! Zeros must never land where sled has written or is writing. sled writes a segment only once
//! it has filled the one before (it moves on when a write does not fit, `iobuf.rs`
//! `maybe_seal_and_write_iobuf`), and only the writer thread applies batches. Hence:
//! - at open, nothing else uses the database and its flush left nothing pending: the rest of
//!   the segment the file ends in is zeroed at once ([`LogRoom::at_open`]);
//! - while serving, zeros go only into segments past the one sled appends to, one chunk after
//!   each commit ([`LogRoom::after_commit`]), and only while that segment still has
//!   [`MIN_ROOM_BYTES`] left by the bytes the writer's own flushes reported since. Between two
//!   of the writer's flushes only readers reserve log space (sled's readers finish a split
//!   their path found half done: one index node each), far less than that, so sled cannot
//!   reach the zeroed segments until the writer's next commit, which runs after the chunk.
//!
//! The room pays only for small commits: zeroing a segment writes its 8 MiB to the device once
//! more, and saves one journal commit per commit that lands in it. So a look plans room only
//! while the commits since the last look flushed at most [`SMALL_COMMIT_BYTES`] each on
//! average; bulk ingest's commits (~1 MB each) grow the file instead. And a look plans room
//! only once sled has written past every zero the room wrote (the file then ends where sled
//! appends): a filling that stopped part-way leaves the file ending inside a segment that sled
//! has not reached, which is no sign of where sled is.
//!
//! The room is a cost saving, never a guarantee: every commit still ends in `fdatasync`, which
//! commits whatever size or allocation changed. A failed zero write (a full disk) is logged
//! and the room given up until the next open; it never fails a commit.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Segments past the one sled appends to that the writer keeps zeroed (8 MiB each at the
/// store's segment size, `disk::SEGMENT_BYTES`): of every `SEGMENTS_AHEAD + 1` segments sled
/// fills, one still grows the file (the one it appends to when the room runs out, whose rest
/// cannot be zeroed under it).
pub const SEGMENTS_AHEAD: u64 = 2;

/// Zeros written after one commit: spread over commits so that no commit's `fdatasync` waits
/// for more than this much extra data.
pub const CHUNK_BYTES: u64 = 256 << 10;

/// The least room left in sled's current segment for zeros to go past it (see the module's
/// safety argument). Also why the room is made only for segments of at least four times this
/// (a store created by a build before `disk::SEGMENT_BYTES` keeps sled's 512 KiB segments and
/// gets no room).
pub const MIN_ROOM_BYTES: u64 = 2 << 20;

/// The most bytes the commits since the last look may have flushed each, on average, for the
/// look to plan room: at ≤ 64 KiB, ≥ 128 commits land in a zeroed 8 MiB segment, each saving a
/// journal commit (1.0–1.3 ms against 2.2–2.9 ms per `fdatasync`, `benches/load/fsync_grow.py`)
/// for the segment's one extra write. Bulk ingest's commits are ~1 MB: with room made for them
/// the device wrote 162–577 bytes per bulk event instead of 110–127
/// (`benches/load/results/room5-2026-12-01-s10.md`).
pub const SMALL_COMMIT_BYTES: u64 = 64 << 10;

/// Flushed bytes between two looks at the file's length while no room is being made: the
/// look is one `fstat`, and a file that grew by less than this is still far from needing room.
pub const LOOK_EVERY_BYTES: u64 = 256 << 10;

/// The zeroed room being made past sled's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Filling {
    /// The next byte to zero.
    next: u64,
    /// One past the last byte to zero.
    end: u64,
    /// Bytes sled can still append to its current segment before the rule above stops the
    /// filling: the segment's room when the filling began, less every flush since.
    room: u64,
}

/// The writer's state of the room ahead of one opened database's log.
#[derive(Debug)]
pub struct LogRoom {
    segment: u64,
    filling: Option<Filling>,
    /// Flushed bytes since the file's length was last looked at.
    unlooked: u64,
    /// Commits since the file's length was last looked at.
    unlooked_commits: u64,
    /// One past the last zero the room wrote (0: none yet): until the file is longer, the
    /// file's end is the room's, not sled's.
    zeroed_end: u64,
}

impl LogRoom {
    /// No room yet; `segment` is sled's segment size of the store (0: a writer that has no
    /// database's room yet, and makes none).
    pub fn new(segment: usize) -> Self {
        LogRoom {
            segment: segment as u64,
            filling: None,
            unlooked: 0,
            unlooked_commits: 0,
            zeroed_end: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.segment >= 4 * MIN_ROOM_BYTES
    }

    /// At open, after sled's flush and before anything else uses the database: zeroes the rest
    /// of the segment the file ends in, starts the writeback of those zeros, and plans the
    /// segments past it for the commits to come. Answers the bytes zeroed.
    pub fn at_open(&mut self, log: &File) -> std::io::Result<u64> {
        if !self.enabled() {
            return Ok(0);
        }
        let len = log.metadata()?.len();
        let into = len % self.segment;
        if into == 0 {
            // sled may be anywhere (a full segment ends the file, or it appends inside it):
            // the commits' looks find where the file grows.
            return Ok(0);
        }
        let boundary = len - into + self.segment;
        zero(log, len, boundary)?;
        self.zeroed_end = boundary;
        start_writeback(log, len, boundary - len);
        self.plan(boundary, boundary - len);
        Ok(boundary - len)
    }

    /// After a durable commit whose flush reported `flushed` bytes: one chunk of the room, or
    /// (every [`LOOK_EVERY_BYTES`]) a look at whether sled now grows the file. Answers the
    /// bytes zeroed. Must run before the writer applies its next batch.
    pub fn after_commit(&mut self, log: &File, flushed: u64) -> std::io::Result<u64> {
        if !self.enabled() {
            return Ok(0);
        }
        if let Some(filling) = &mut self.filling {
            filling.room = filling.room.saturating_sub(flushed);
            if filling.room < MIN_ROOM_BYTES {
                // sled may reach the room soon: what is zeroed stays, the rest is given up.
                self.filling = None;
                self.unlooked = 0;
                self.unlooked_commits = 0;
                return Ok(0);
            }
            let end = (filling.next + CHUNK_BYTES).min(filling.end);
            let start = filling.next;
            zero(log, start, end)?;
            self.zeroed_end = end;
            start_writeback(log, start, end - start);
            filling.next = end;
            if end == filling.end {
                self.filling = None;
                self.unlooked = 0;
                self.unlooked_commits = 0;
            }
            return Ok(end - start);
        }
        self.unlooked = self.unlooked.saturating_add(flushed);
        self.unlooked_commits += 1;
        if self.unlooked < LOOK_EVERY_BYTES {
            return Ok(0);
        }
        let small = self.unlooked / self.unlooked_commits <= SMALL_COMMIT_BYTES;
        self.unlooked = 0;
        self.unlooked_commits = 0;
        if !small {
            return Ok(0);
        }
        let len = log.metadata()?.len();
        if len <= self.zeroed_end {
            // sled has not written past the room yet.
            return Ok(0);
        }
        let into = len % self.segment;
        // Past the room, a length inside a segment is sled appending there (sled's full
        // segments end on a boundary).
        if into != 0 {
            let boundary = len - into + self.segment;
            self.plan(boundary, boundary - len);
        }
        Ok(0)
    }

    /// Counts `flushed` bytes that the database's own flushes wrote outside a commit (the
    /// reopen's probe), against the room left in sled's segment.
    pub fn note_flushed(&mut self, flushed: u64) {
        if let Some(filling) = &mut self.filling {
            filling.room = filling.room.saturating_sub(flushed);
        }
    }

    /// Gives up the room being made: after a failed write, until the database is reopened.
    pub fn give_up(&mut self) {
        self.filling = None;
        self.segment = 0;
    }

    fn plan(&mut self, boundary: u64, room: u64) {
        if room < MIN_ROOM_BYTES {
            return;
        }
        self.filling = Some(Filling {
            next: boundary,
            end: boundary + SEGMENTS_AHEAD * self.segment,
            room,
        });
    }
}

/// Writes zeros over `[start, end)` of `log`.
fn zero(log: &File, start: u64, end: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = start;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64) as usize;
        log.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Starts the writeback of `[start, start + len)` without waiting for it, so that the next
/// commit's `fdatasync` finds most of it done. Advisory: an error only leaves the writeback to
/// that `fdatasync`.
fn start_writeback(log: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(nbytes)) = (i64::try_from(start), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `sync_file_range` reads no memory of ours; the descriptor is `log`'s, open for
    // the whole call.
    let _ = unsafe {
        libc::sync_file_range(log.as_raw_fd(), offset, nbytes, libc::SYNC_FILE_RANGE_WRITE)
    };
}

#[cfg(test)]
#[path = "log_room_tests.rs"]
mod tests;
