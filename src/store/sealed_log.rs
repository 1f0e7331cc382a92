//! Sealed generations of the event log: each generation's digests also in a flat file of its
//! own, which a restart reads instead of the generation's sled values when the file still
//! matches them.
//!
//! **Why.** A restart's event-id replay (`event_log::replay`) reads every log value through
//! sled: half of its CPU is sled's page reads, and with the store out of the page cache those
//! reads, spread through sled's data file between the pages of everything else the same
//! commits wrote, end up reading nearly the whole file (6.6 of 6.7 GB at 10M units and 50M
//! kept ids, `benches/load/results/restart-s22-2026-12-02.md`). A generation's digests in one
//! file are 8 bytes each, read front to back.
//!
//! **A cache, never the record.** sled's log values stay the only durable record: a file is
//! derived from them, and a restart uses it only when it matches them, else reads the values
//! as before. Values are only ever appended at the end of a generation's key range (their
//! keys are `due · commit seq · chunk`, and commit numbers only grow, a failed one never
//! reused), and deleted only by expiry, once the generation is due. So a file is used when
//! (a) its generation is not due yet at the restart's clock, (b) its header names the
//! generation's first and last log keys as sled has them, (c) it was made with this store's
//! digest key, and (d) every block's CRC-32 checks; and a file covers only values of commits
//! that were durable when it was written (the [`Sealer`] reads up to the store's durable
//! sequence number), so no value it holds can vanish in a crash. A block that fails its check
//! during the replay sends the whole generation back to sled (the table keeps one of each
//! digest, so the ones already read from the file do no harm).
//!
//! **Layout.** `<data dir>/event-log/gen-<due ms>.bin`: a header ([`HEADER_BYTES`]: magic,
//! due time, digest-key fingerprint, first and last log keys, digest count, CRC-32 of the
//! header), then blocks of up to [`BLOCK_DIGESTS`] digests (little-endian `u64`), each
//! followed by the CRC-32 of its bytes. Written as `.tmp`, synced, then renamed. Files of
//! generations sled no longer has are deleted by the next pass.
//!
//! **When.** The [`Sealer`] thread makes a pass shortly after the store opens and then every
//! [`PASS_INTERVAL`]: for each generation whose file is missing or stale, it writes one from
//! sled's values. A generation still receiving ids goes stale again and is sealed again at the
//! next pass; a restart reads only what changed since from sled. The thread runs as
//! `SCHED_BATCH` (`thread_policy`): its wake-ups never preempt the HTTP worker.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::StoreError;
use super::event_ids::Digester;
use super::event_log::{self, LOG_KEY_LEN};
use super::keys::io;

/// The directory of the sealed files, inside the data directory.
pub const DIR_NAME: &str = "event-log";

const MAGIC: [u8; 8] = *b"BDSEAL01";

/// Digests per block: 512 KiB, a few blocks per replay thread and generation.
pub const BLOCK_DIGESTS: u64 = 1 << 16;

/// magic, due, fingerprint, first key, last key, count, header CRC.
pub const HEADER_BYTES: u64 = 8 + 8 + 8 + 2 * LOG_KEY_LEN as u64 + 8 + 4;

/// How often the sealer looks for generations to seal after its first pass.
pub const PASS_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How long after the store opens the sealer's first pass starts.
pub const FIRST_PASS_DELAY: Duration = Duration::from_secs(2);

/// A generation of the log as sled holds it: its due time and its first and last keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationBounds {
    pub due_ms: u64,
    pub first: Vec<u8>,
    pub last: Vec<u8>,
}

/// The fingerprint of a store's digest key a file carries: files of another store (a data dir
/// put together from two) are never read.
pub fn fingerprint(digester: &Digester) -> u64 {
    digester.digest_bytes(b"banditd sealed event-log generation")
}

/// The file of the generation due at `due_ms`.
pub fn file_path(dir: &Path, due_ms: u64) -> PathBuf {
    dir.join(format!("gen-{due_ms}.bin"))
}

/// A sealed file whose header matched its generation, open for the replay's reads.
#[derive(Debug)]
pub struct SealedFile {
    file: File,
    count: u64,
}

impl SealedFile {
    /// Opens the file of `bounds` in `dir` if its header matches them and `fingerprint`, and
    /// its length its count. Blocks are checked as they are read ([`Self::read_blocks`]).
    pub fn open_matching(dir: &Path, bounds: &GenerationBounds, fingerprint: u64) -> Option<Self> {
        let mut file = File::open(file_path(dir, bounds.due_ms)).ok()?;
        let mut header = [0; HEADER_BYTES as usize];
        file.read_exact(&mut header).ok()?;
        let parsed = Header::parse(&header)?;
        let matches = parsed.due_ms == bounds.due_ms
            && parsed.fingerprint == fingerprint
            && parsed.first[..] == bounds.first[..]
            && parsed.last[..] == bounds.last[..];
        let length = file.metadata().ok()?.len();
        (matches && length == file_length(parsed.count)).then_some(SealedFile {
            file,
            count: parsed.count,
        })
    }

    /// How many blocks the file has.
    pub fn blocks(&self) -> u64 {
        self.count.div_ceil(BLOCK_DIGESTS)
    }

    /// Reads blocks `from..to`, giving each digest to `push`; false (having pushed some
    /// digests, maybe) when a block cannot be read or fails its check.
    pub fn read_blocks(&self, from: u64, to: u64, mut push: impl FnMut(u64)) -> bool {
        let mut bytes = Vec::new();
        for block in from..to.min(self.blocks()) {
            let digests = BLOCK_DIGESTS.min(self.count - block * BLOCK_DIGESTS) as usize;
            bytes.resize(digests * 8 + 4, 0);
            let offset = HEADER_BYTES + block * (BLOCK_DIGESTS * 8 + 4);
            if self.file.read_exact_at(&mut bytes, offset).is_err() {
                return false;
            }
            let (body, crc) = bytes.split_at(digests * 8);
            if crc32fast::hash(body).to_le_bytes()[..] != crc[..] {
                return false;
            }
            // A block's body is laid out as a log value's (`event_log::decode_value`).
            match event_log::decode_value(body) {
                Ok(decoded) => decoded.for_each(&mut push),
                Err(_) => return false,
            }
        }
        true
    }
}

/// The length of a file of `count` digests (saturating: a header that claims more than any
/// file can hold matches no file).
fn file_length(count: u64) -> u64 {
    HEADER_BYTES
        .saturating_add(count.saturating_mul(8))
        .saturating_add(count.div_ceil(BLOCK_DIGESTS).saturating_mul(4))
}

struct Header {
    due_ms: u64,
    fingerprint: u64,
    first: [u8; LOG_KEY_LEN],
    last: [u8; LOG_KEY_LEN],
    count: u64,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES as usize);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&self.due_ms.to_le_bytes());
        bytes.extend_from_slice(&self.fingerprint.to_le_bytes());
        bytes.extend_from_slice(&self.first);
        bytes.extend_from_slice(&self.last);
        bytes.extend_from_slice(&self.count.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn parse(bytes: &[u8; HEADER_BYTES as usize]) -> Option<Header> {
        let (body, crc) = bytes.split_at(HEADER_BYTES as usize - 4);
        if body[..8] != MAGIC || crc32fast::hash(body).to_le_bytes()[..] != crc[..] {
            return None;
        }
        let u64_at = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let key_at = |at: usize| {
            let mut key = [0; LOG_KEY_LEN];
            key.copy_from_slice(&body[at..at + LOG_KEY_LEN]);
            key
        };
        Some(Header {
            due_ms: u64_at(8),
            fingerprint: u64_at(16),
            first: key_at(24),
            last: key_at(24 + LOG_KEY_LEN),
            count: u64_at(24 + 2 * LOG_KEY_LEN),
        })
    }
}

/// Where the sealer reads sled: the store's current database, or none while it reopens.
pub trait SledSource: Send + Sync + 'static {
    /// Runs `read` on the open database; `None` while there is none (a failure episode).
    fn with_db<T>(&self, read: impl FnOnce(&sled::Db) -> T) -> Option<T>;
    /// The highest commit sequence number known durable.
    fn durable_seq(&self) -> u64;
}

/// Values read from sled per hold of the database: the store's reopen waits for the sealer's
/// handle (`Shared::sled`), so the sealer lets go often.
const VALUES_PER_HOLD: usize = 64;

/// Writes the sealed file of the generation `bounds` names, from its sled values `first..=last`
/// (read a few at a time through `source`), unless `stop` is raised or the database goes away
/// meanwhile. True when the file was written.
pub fn seal(
    source: &impl SledSource,
    dir: &Path,
    bounds: &GenerationBounds,
    fingerprint: u64,
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let temporary = dir.join(format!("gen-{}.tmp", bounds.due_ms));
    match write_file(source, &temporary, bounds, fingerprint, stop) {
        Ok(true) => {
            std::fs::rename(&temporary, file_path(dir, bounds.due_ms))
                .map_err(|error| StoreError::Io(format!("sealed event log: {error}")))?;
            Ok(true)
        }
        not_written => {
            let _ = std::fs::remove_file(&temporary);
            not_written
        }
    }
}

/// [`seal`]'s file, written and synced at `temporary`; false when stopped or the generation
/// changed meanwhile.
fn write_file(
    source: &impl SledSource,
    temporary: &Path,
    bounds: &GenerationBounds,
    fingerprint: u64,
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let (Ok(first), Ok(last)) = (
        <[u8; LOG_KEY_LEN]>::try_from(&bounds.first[..]),
        <[u8; LOG_KEY_LEN]>::try_from(&bounds.last[..]),
    ) else {
        return Err(super::keys::corrupt("not an event-log key"));
    };
    let io_error = |error: std::io::Error| StoreError::Io(format!("sealed event log: {error}"));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(temporary).map_err(io_error)?);
    let mut header = Header {
        due_ms: bounds.due_ms,
        fingerprint,
        first,
        last,
        count: 0,
    };
    out.write_all(&header.encode()).map_err(io_error)?;
    let mut block = Vec::with_capacity(BLOCK_DIGESTS as usize * 8);
    let mut next = bounds.first.clone();
    let mut inclusive = true;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let read = source.with_db(|db| -> Result<(Vec<u8>, bool), StoreError> {
            let lower = if inclusive {
                std::ops::Bound::Included(next.as_slice())
            } else {
                std::ops::Bound::Excluded(next.as_slice())
            };
            let range =
                db.range::<&[u8], _>((lower, std::ops::Bound::Included(bounds.last.as_slice())));
            let mut seen = 0;
            let mut last_key = next.clone();
            for item in range.take(VALUES_PER_HOLD) {
                let (key, value) = item.map_err(io)?;
                event_log::parse_log_key(&key)?;
                for digest in event_log::decode_value(&value)? {
                    block.extend_from_slice(&digest.to_le_bytes());
                    header.count += 1;
                    if block.len() == BLOCK_DIGESTS as usize * 8 {
                        write_block(&mut out, &mut block)?;
                    }
                }
                last_key = key.to_vec();
                seen += 1;
            }
            Ok((last_key, seen < VALUES_PER_HOLD))
        });
        let Some(read) = read else {
            return Ok(false);
        };
        let (last_key, done) = read?;
        next = last_key;
        inclusive = false;
        if done {
            break;
        }
    }
    if next != bounds.last {
        // The generation lost its last value meanwhile (expired): nothing to seal.
        return Ok(false);
    }
    if !block.is_empty() {
        write_block(&mut out, &mut block)?;
    }
    let mut file = out
        .into_inner()
        .map_err(|error| io_error(error.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    file.write_all(&header.encode()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(true)
}

fn write_block(out: &mut impl Write, block: &mut Vec<u8>) -> Result<(), StoreError> {
    let crc = crc32fast::hash(block);
    out.write_all(block)
        .and_then(|()| out.write_all(&crc.to_le_bytes()))
        .map_err(|error| StoreError::Io(format!("sealed event log: {error}")))?;
    block.clear();
    Ok(())
}

/// One pass: seals every generation of `generations` not due at `now_ms` whose file is
/// missing or stale, and deletes the files (and leftover `.tmp` files) of generations sled
/// no longer has. Answers the generations sealed.
pub fn pass(
    source: &impl SledSource,
    dir: &Path,
    digester: &Digester,
    now_ms: u64,
    stop: &AtomicBool,
) -> Result<usize, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| StoreError::Io(format!("cannot create {}: {error}", dir.display())))?;
    let durable = source.durable_seq();
    let Some(generations) = source.with_db(|db| event_log::generations(db, Some(durable))) else {
        return Ok(0);
    };
    let generations = generations?;
    let fingerprint = fingerprint(digester);
    let mut sealed = 0;
    for bounds in generations.iter().filter(|bounds| bounds.due_ms > now_ms) {
        if stop.load(Ordering::Relaxed) {
            return Ok(sealed);
        }
        if SealedFile::open_matching(dir, bounds, fingerprint).is_none()
            && seal(source, dir, bounds, fingerprint, stop)?
        {
            sealed += 1;
        }
    }
    remove_unmatched(dir, &generations);
    Ok(sealed)
}

/// Deletes the files of generations not in `generations`, and leftover `.tmp` files.
fn remove_unmatched(dir: &Path, generations: &[GenerationBounds]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let keep = name
            .strip_prefix("gen-")
            .and_then(|rest| rest.strip_suffix(".bin"))
            .and_then(|due| due.parse::<u64>().ok())
            .is_some_and(|due| generations.iter().any(|bounds| bounds.due_ms == due));
        if !keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The thread that seals generations (module docs); stopped and joined on drop.
pub struct Sealer {
    stop: Arc<AtomicBool>,
    wake: Arc<(std::sync::Mutex<()>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// Starts the thread: a pass after `first_delay`, then one every `interval`, each with
    /// `clock`'s time (milliseconds since the Unix epoch, `health::wall_clock_ms` but in tests).
    pub fn start(
        source: impl SledSource,
        dir: PathBuf,
        digester: Digester,
        (first_delay, interval): (Duration, Duration),
        clock: fn() -> u64,
    ) -> Result<Sealer, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new((std::sync::Mutex::new(()), std::sync::Condvar::new()));
        let (thread_stop, thread_wake) = (Arc::clone(&stop), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("event-log-sealer".to_owned())
            .spawn(move || {
                // Background work: its wake-ups never preempt the HTTP worker (`thread_policy`).
                super::thread_policy::batch_this_thread();
                let mut wait = first_delay;
                while sleep_unless_stopped(&thread_wake, &thread_stop, wait) {
                    let now_ms = clock();
                    match pass(&source, &dir, &digester, now_ms, &thread_stop) {
                        Ok(0) => {}
                        Ok(sealed) => tracing::info!(sealed, "sealed event-log generations"),
                        Err(error) => {
                            tracing::warn!(%error, "could not seal event-log generations")
                        }
                    }
                    wait = interval;
                }
            })
            .map_err(|error| StoreError::Io(format!("cannot start the sealer: {error}")))?;
        Ok(Sealer {
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// Stops the thread (between two reads of sled) and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (lock, condvar) = &*self.wake;
        drop(lock.lock());
        condvar.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("event-log sealer thread panicked");
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sleeps `wait` or until stopped; false when stopped.
fn sleep_unless_stopped(
    wake: &(std::sync::Mutex<()>, std::sync::Condvar),
    stop: &AtomicBool,
    wait: Duration,
) -> bool {
    let (lock, condvar) = wake;
    let guard = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = condvar
        .wait_timeout_while(guard, wait, |()| !stop.load(Ordering::Relaxed))
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    !stop.load(Ordering::Relaxed)
}

impl SledSource for Arc<super::shared::Shared> {
    fn with_db<T>(&self, read: impl FnOnce(&sled::Db) -> T) -> Option<T> {
        let open = self.sled().ok()?;
        Some(read(&open.db))
    }

    fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[path = "sealed_log_tests.rs"]
mod tests;
