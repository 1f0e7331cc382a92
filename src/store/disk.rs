//! The open sled database and the file the store syncs, as one swappable unit.
//!
//! After a failed commit the database cannot be trusted: sled 0.34 records the first I/O error
//! as a global error that fails every later operation of that `Db` (config.rs
//! `set_global_error`, checked by every flush and reservation), and the writer's apply may
//! already have put part of the failed commit into its in-memory tree, so a read of that `Db`
//! could see records that never reached the disk. The writer therefore drops the whole [`OpenDb`] and opens the
//! directory afresh (see `recovery`): sled's recovery rolls back to its last durable state, and
//! the redo log's replay (`wal_replay`) brings it forward to the last durable commit.
//! Readers reach the database only through `Shared::db`, which is empty while that happens.

use std::path::{Path, PathBuf};

use super::codec;
use super::error::StoreError;
use super::event_log;
use super::keys::{self, io};
use super::load;
use super::sealed_log;
use super::secret_file;
use super::state::DurableState;
use super::wal::{Position, Wal};
use super::wal_replay;

/// One opened sled database of the store's directory.
pub struct OpenDb {
    pub db: sled::Db,
    /// sled's log file (`<data dir>/db`), opened by the store to `fdatasync` it after every
    /// checkpoint's sled flush (`wal_checkpoint`). On Linux, sled 0.34's flush ends in
    /// `sync_file_range`, which writes the pages out but neither flushes the disk's volatile
    /// write cache nor commits the file's size: enough to survive `kill -9`, not a power cut or
    /// a kernel crash. A checkpoint frees redo log segments, so it must survive those too.
    pub log_file: std::fs::File,
    /// Test hook: the next checkpoint breaks sled's log file before its flush (`Faults`).
    #[cfg(test)]
    pub fail_checkpoint: std::sync::atomic::AtomicBool,
    /// Test hook: run by the next checkpoint, on the checkpoint thread.
    #[cfg(test)]
    pub on_checkpoint: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    #[cfg(test)]
    pub dir: PathBuf,
}

impl std::ops::Deref for OpenDb {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.db
    }
}

/// Where and how the store's directory is opened; kept by the writer to reopen it.
#[derive(Debug, Clone)]
pub struct Location {
    pub dir: PathBuf,
    pub page_cache_mb: u64,
}

/// What the store knows after opening its directory: the database and its durable state.
pub struct Opened {
    pub open: OpenDb,
    /// The redo log, replayed into the database and reset, ready for the writer (`wal`).
    pub wal: Wal,
    pub durable: DurableState,
    pub last_seq: u64,
    pub expired_through: u64,
}

impl Location {
    /// Opens the directory, checks its format, replays the redo log and loads the durable
    /// state.
    pub fn open(&self) -> Result<Opened, StoreError> {
        self.open_stopping_at(None)
    }

    /// As [`Self::open`], replaying the redo log only up to `stop_at` (a record whose write or
    /// sync failed in this process: `wal_replay`).
    fn open_stopping_at(&self, stop_at: Option<Position>) -> Result<Opened, StoreError> {
        let db = open_db(&self.dir, self.page_cache_mb)?;
        load::check_format(&db, &self.dir)?;
        // sled keeps its whole log in one file, `db`, created by the open above.
        let log_path = self.dir.join("db");
        let log_file = std::fs::File::open(&log_path).map_err(|error| {
            StoreError::Io(format!(
                "cannot open {} to sync it: {error}",
                log_path.display()
            ))
        })?;
        let (wal, _) = wal_replay::recover(&self.dir, &db, &log_file, stop_at)?;
        // A secret an older build kept in sled moves to its own file (idempotent).
        secret_file::migrate_from_sled(&db, &self.dir)?;
        let sealed = event_log::Sealed {
            dir: self.dir.join(sealed_log::DIR_NAME),
            now_ms: super::health::wall_clock_ms(),
        };
        let (durable, last_seq, expired_through) = load::load(&db, Some(&sealed))?;
        Ok(Opened {
            open: OpenDb {
                db,
                log_file,
                #[cfg(test)]
                fail_checkpoint: std::sync::atomic::AtomicBool::new(false),
                #[cfg(test)]
                on_checkpoint: std::sync::Mutex::new(None),
                #[cfg(test)]
                dir: self.dir.clone(),
            },
            wal,
            durable,
            last_seq,
            expired_through,
        })
    }

    /// As [`Self::open`] (replaying the redo log up to `stop_at`), then proves that the disk
    /// takes writes again: the log's reset wrote and synced its segment headers, and the last
    /// commit's sequence number is rewritten to sled (a real append to sled's log) and synced.
    /// Only a store that passed this is given back to readers and writers.
    pub fn reopen_and_probe(&self, stop_at: Option<Position>) -> Result<Opened, StoreError> {
        let opened = self.open_stopping_at(stop_at)?;
        opened
            .open
            .db
            .insert(keys::META_SEQ, codec::encode_u64(opened.last_seq).to_vec())
            .map_err(io)?;
        opened.open.sync()?;
        Ok(opened)
    }
}

impl OpenDb {
    /// sled's flush, then an `fdatasync` of its log (see [`OpenDb::log_file`]). Answers the
    /// bytes sled's flush wrote to its log.
    pub fn sync(&self) -> Result<u64, StoreError> {
        let flushed = self.db.flush().map_err(io)?;
        self.log_file.sync_data().map_err(|error| {
            StoreError::Io(format!("fdatasync of the store's log failed: {error}"))
        })?;
        Ok(flushed as u64)
    }

    /// Test hook of a checkpoint (see [`OpenDb::fail_checkpoint`]).
    #[cfg(test)]
    pub fn checkpoint_hook(&self) -> Result<(), StoreError> {
        let hook = self
            .on_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(hook) = hook {
            hook();
        }
        if self
            .fail_checkpoint
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            super::recovery::break_log_file(self, &self.dir)
                .map_err(|error| StoreError::Io(format!("cannot inject a fault: {error}")))?;
        }
        Ok(())
    }
}

/// How long `open` waits for the directory lock of a store that is still closing.
const OPEN_LOCK_WAIT_MS: u64 = 1000;

/// Opens sled, waiting briefly for the directory lock. sled 0.34 releases its lock from
/// background I/O threads some milliseconds after the last handle is dropped (sled issues
/// #1234, #1289), so an in-process reopen can race it. A lock held longer than
/// [`OPEN_LOCK_WAIT_MS`] belongs to another live store, and that is a clear error.
pub(super) fn open_db(dir: &Path, page_cache_mb: u64) -> Result<::sled::Db, StoreError> {
    remove_unfinished_snapshots(dir)?;
    // The redo log makes commits durable and checkpoints flush sled (`wal_checkpoint`):
    // sled's periodic background flush would only add I/O.
    let config = ::sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .segment_size(segment_size(dir))
        .cache_capacity(page_cache_mb.saturating_mul(1024 * 1024));
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(OPEN_LOCK_WAIT_MS);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled 0.34.7 reports lock contention only through this message (config.rs).
            Err(::sled::Error::Io(error))
                if error.to_string().starts_with("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    // sled's error quotes the raw `Os { code: 11, .. }` of the failed flock:
                    // left out, it says nothing the sentence does not.
                    return Err(StoreError::Io(format!(
                        "the data dir {} is in use by another running banditd (or another \
                         store holds its lock); stop that process first, or give this one \
                         its own --data-dir",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => return Err(io(error)),
        }
    }
}

/// sled's segment size for a new store: 8 MiB instead of sled's 512 KiB.
///
/// Every log value is written several times: once when appended, again whenever sled
/// consolidates or splits the leaf holding it, and again when it moves a page out of a segment
/// that became mostly garbage (segments at most half live are drained). With larger segments
/// fewer pages are moved: `benches/sled_wal_bytes.rs` measured 6.8 device bytes per byte of
/// 4 KiB log values at 512 KiB and 4.7 at 8 MiB (`benches/load/results/wal-2026-11-30.md`).
/// sled keeps one segment-sized buffer per log write in flight, so this costs a few times
/// 8 MiB of memory, whatever the store holds.
pub const SEGMENT_BYTES: usize = 8 << 20;

/// sled's own segment size before [`SEGMENT_BYTES`]: what stores created by earlier builds use.
pub const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 << 10;

/// The segment size to open `dir` with. sled refuses to open a database with another segment
/// size than the one it was created with (config.rs `verify_config`, which reads the `conf`
/// file), so a store created by an earlier build keeps its own; a new one gets
/// [`SEGMENT_BYTES`]. An unreadable `conf` is left for sled to report.
pub fn segment_size(dir: &Path) -> usize {
    let Ok(conf) = std::fs::read(dir.join("conf")) else {
        return SEGMENT_BYTES;
    };
    // `conf` is `name: value` lines and then a binary checksum (config.rs `serialize`).
    conf.split(|&byte| byte == b'\n')
        .find_map(|line| line.strip_prefix(b"segment_size: "))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(SLED_DEFAULT_SEGMENT_BYTES)
}

/// The largest log item sled 0.34 keeps in its log for `segment` bytes per segment: an item
/// above it becomes a file under `blobs/` that sled's flush never syncs (pagecache/logger.rs
/// `reserve`: an item plus its 32-byte header must fit a quarter of a segment less the
/// segment's 20-byte header).
pub const fn inline_item_limit(segment: usize) -> usize {
    segment / 4 - 20 - 32
}

/// Entries a sled 0.34 leaf holds at most: it splits once it has more than 16 (node.rs
/// `should_split`), on the next write that reaches it, so a consolidated leaf can hold 17.
pub const LEAF_ENTRIES: usize = 17;

/// What one log value may exceed its nominal size by, and what sled adds to it in a leaf:
/// the last entry pushed into a unit-log value (a unit id of at most 256 bytes and a record
/// whose variant name is at most ~1.5 KiB), plus the key and lengths sled stores with it.
pub const VALUE_SLACK_BYTES: usize = 2048;

/// The largest log value either log writes (see [`VALUE_SLACK_BYTES`]).
pub const MAX_VALUE_BYTES: usize = {
    let units = super::unit_log::MAX_LOG_VALUE_BYTES;
    let ids = super::event_log::MAX_LOG_VALUE_DIGESTS * 8;
    if units > ids { units } else { ids }
};

// A whole leaf of the largest log values stays inside sled's log at the smallest segment a
// store may have (an earlier build's): no log value ever reaches a file sled does not sync.
const _: () = assert!(
    LEAF_ENTRIES * (MAX_VALUE_BYTES + VALUE_SLACK_BYTES)
        <= inline_item_limit(SLED_DEFAULT_SEGMENT_BYTES)
);
const _: () = assert!(SEGMENT_BYTES >= SLED_DEFAULT_SEGMENT_BYTES);

/// Removes the snapshot files sled began but never finished (`snap.<lsn>.generating`).
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, syncs it and only then renames
/// it to `snap.<lsn>`; but when it opens a directory it reads the newest file whose name
/// starts with `snap.`, the unfinished one included (config.rs `get_snapshot_files` skips
/// only `.in___motion`), and refuses to open on a short or corrupt one (snapshot.rs
/// `read_snapshot`: "empty/corrupt snapshot file found", `Error::corruption`). A full disk
/// produces exactly that: dropping the failed database makes sled write a snapshot, the
/// write fails half-way, and every later open of the directory, the reopen after the disk
/// recovered and any restart included, fails. The file is safe to drop: it never became a
/// snapshot, and the log it summarises is still there for sled's recovery to read.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(StoreError::Io(format!(
                "cannot list {}: {error}",
                dir.display()
            )));
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|error| {
                StoreError::Io(format!(
                    "cannot remove the unfinished snapshot {}: {error}",
                    path.display()
                ))
            })?;
            tracing::warn!(path = %path.display(), "removed a snapshot file the store's engine never finished (a write failed while it was made)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::*;
    use crate::store::{SledStore, Store};

    #[test]
    fn a_snapshot_left_unfinished_by_a_failed_write_does_not_stop_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            block_on(store.insert_sticky(&epoch(), "kept", record("control", T0_MS), tally(T0_MS)))
                .unwrap();
            block_on(store.shutdown()).unwrap();
        }
        // What a snapshot write cut short by a full disk leaves: a newer, empty `.generating`.
        std::fs::write(dir.path().join("snap.FFFFFFFFFFFFFFF0.generating"), b"").unwrap();
        let store = SledStore::open(dir.path()).expect("opens despite the unfinished snapshot");
        let kept = block_on(store.sticky(&epoch(), "kept")).unwrap();
        assert_eq!(kept.map(|r| r.variant), Some("control".to_owned()));
        assert!(!dir.path().join("snap.FFFFFFFFFFFFFFF0.generating").exists());
    }

    fn conf_segment(dir: &std::path::Path) -> usize {
        super::segment_size(dir)
    }

    #[test]
    fn a_new_store_gets_the_large_segment_and_an_older_store_keeps_its_own() {
        let new = tempfile::tempdir().unwrap();
        block_on(SledStore::open(new.path()).unwrap().shutdown()).unwrap();
        let conf = std::fs::read(new.path().join("conf")).unwrap();
        let expected = format!("segment_size: {}\n", super::SEGMENT_BYTES);
        assert!(
            conf.windows(expected.len())
                .any(|w| w == expected.as_bytes()),
            "{}",
            String::from_utf8_lossy(&conf)
        );
        assert_eq!(conf_segment(new.path()), super::SEGMENT_BYTES);

        // A store an earlier build created: sled's default segment, which sled refuses to
        // change. It opens, keeps its segment, and its data reads back.
        let old = tempfile::tempdir().unwrap();
        drop(::sled::Config::new().path(old.path()).open().unwrap());
        assert_eq!(conf_segment(old.path()), super::SLED_DEFAULT_SEGMENT_BYTES);
        {
            let store = SledStore::open(old.path()).expect("an older store opens");
            block_on(store.insert_sticky(&epoch(), "kept", record("control", T0_MS), tally(T0_MS)))
                .unwrap();
            block_on(store.shutdown()).unwrap();
        }
        assert_eq!(conf_segment(old.path()), super::SLED_DEFAULT_SEGMENT_BYTES);
        let store = SledStore::open(old.path()).unwrap();
        let kept = block_on(store.sticky(&epoch(), "kept")).unwrap();
        assert_eq!(kept.map(|r| r.variant), Some("control".to_owned()));
    }

    #[test]
    fn a_missing_conf_means_a_new_store_and_a_conf_without_a_segment_means_sleds_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(conf_segment(dir.path()), super::SEGMENT_BYTES);
        std::fs::write(dir.path().join("conf"), b"use_compression: false\n").unwrap();
        assert_eq!(conf_segment(dir.path()), super::SLED_DEFAULT_SEGMENT_BYTES);
    }

    /// Bulk commits on a store with sled's old 512 KiB segment (the smallest any store has):
    /// every leaf of log values, long variant names included, stays in sled's synced log.
    #[test]
    fn bulk_commits_on_an_older_stores_small_segment_write_no_blob_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(::sled::Config::new().path(dir.path()).open().unwrap());
        {
            let store = SledStore::open(dir.path()).unwrap();
            let variant = "v".repeat(300);
            for round in 0..8 {
                let inserts: Vec<_> = (round * 1000..(round + 1) * 1000)
                    .map(|n| {
                        let unit = format!("{n:0>200}");
                        store.insert_sticky(&epoch(), &unit, record(&variant, T0_MS), tally(T0_MS))
                    })
                    .collect();
                block_on(async {
                    for insert in inserts {
                        insert.await.unwrap();
                    }
                });
            }
            block_on(store.shutdown()).unwrap();
        }
        assert_eq!(conf_segment(dir.path()), super::SLED_DEFAULT_SEGMENT_BYTES);
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(blobs.is_empty(), "{blobs:?}");
    }
}
