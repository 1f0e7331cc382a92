//! What the writer does after a failed commit: it never stops for good.
//!
//! The failed batch's callers have their error already (nothing of it was acknowledged or
//! published). The writer then starts a failure episode (`health`), takes the database away
//! from readers, drops it and reopens the directory with backoff ([`RECOVERY_BACKOFF_MIN_MS`]
//! doubling up to [`RECOVERY_BACKOFF_MAX_MS`]). The reopen has to take a probe write (see
//! `disk::Location::reopen_and_probe`) before anything is served from it, so the episode ends
//! only once the disk accepts writes again. Meanwhile every command is refused at once with the
//! episode's cause rather than waiting in the queue.
//!
//! Dropping the database is what makes the failed batch invisible: sled's recovery rolls back
//! to the last flushed state, and the writer reloads its durable state from there (`load`).
//! sled's directory lock is held until the last handle of the old database is gone; readers
//! hold theirs for one read only, and the reopen waits for the lock (`disk::open_db`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::command::{Command, refuse};
use super::disk::Opened;
use super::exposures::ExposureGroups;
use super::load;
use super::wal::Position;
use super::writer_state::{FailedCommit, Writer};

/// First wait before reopening the store after a failed commit.
pub const RECOVERY_BACKOFF_MIN_MS: u64 = 50;

/// Longest wait between two reopen attempts: writes resume at most this long (plus one reopen)
/// after the disk accepts them again.
pub const RECOVERY_BACKOFF_MAX_MS: u64 = 1000;

impl Writer {
    /// Starts a failure episode: the store is no longer writable, and readers lose the
    /// database, before the generation moves (see `Shared::generation`). The writer's own
    /// handle goes too; `recover` opens a new one.
    pub(super) fn begin_episode(&mut self, failed: &FailedCommit) {
        self.shared.health.begin(&failed.cause.to_string());
        self.shared.db.store(None);
        self.open = None;
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.durable_tx
            .send_modify(|mark| mark.generation = generation);
    }

    /// Runs a failure episode (begun by `begin_episode`) to its end. Returns false when the
    /// store was shut down (or every handle dropped) before it recovered; the writer then ends.
    pub(super) fn recover(
        &mut self,
        failed: &FailedCommit,
        commands: &mpsc::Receiver<Command>,
    ) -> bool {
        let mut backoff_ms = RECOVERY_BACKOFF_MIN_MS;
        // Kept across attempts: the reopen that succeeds is the one that resets the log.
        let stop_at = self.wal.failed_at();
        loop {
            if !self.refuse_for(Duration::from_millis(backoff_ms), commands) {
                return false;
            }
            match self.reopen(stop_at) {
                Ok(opened) => {
                    self.install(opened, failed.seq);
                    self.shared.health.end();
                    return true;
                }
                Err(error) => {
                    self.shared.health.retry_failed(&error.to_string());
                    backoff_ms = (backoff_ms * 2).min(RECOVERY_BACKOFF_MAX_MS);
                }
            }
        }
    }

    fn reopen(&self, stop_at: Option<Position>) -> Result<Opened, super::error::StoreError> {
        #[cfg(test)]
        self.shared.faults_on_reopen()?;
        self.location.reopen_and_probe(stop_at)
    }

    /// Answers every command that arrives within `wait` with the episode's error. False when
    /// a shutdown arrived or every handle is gone.
    fn refuse_for(&self, wait: Duration, commands: &mpsc::Receiver<Command>) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match commands.recv_timeout(left) {
                Ok(command) => {
                    let stop = matches!(command, Command::Shutdown { .. });
                    refuse(command, &self.shared.health.unavailable());
                    if stop {
                        return false;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Serves from the reopened database: its durable state replaces the writer's, and the
    /// published counters and epochs are rebuilt from it.
    fn install(&mut self, opened: Opened, failed_seq: u64) {
        if opened.last_seq >= failed_seq {
            // The failed batch was durable after all (its redo record was synced and a later
            // step failed): the reopen replayed it, and its exposures are counted in the
            // reloaded counters.
            self.unfolded = ExposureGroups::default();
            tracing::warn!(
                seq = failed_seq,
                "a commit reported as failed was found on disk after the reopen"
            );
        }
        // The sticky records as the reopened disk holds them (a commit reported failed may be
        // among them), before any reader can reach that database.
        self.shared.sticky.store(Arc::clone(&opened.durable.sticky));
        self.shared
            .counters
            .store(Arc::new(load::counter_view(&opened.durable.arms)));
        self.shared
            .epochs
            .store(Arc::new(opened.durable.epochs.clone()));
        self.durable = opened.durable;
        // The pass restarts from the log as the reopened disk holds it.
        self.compaction = None;
        self.expired_through = opened.expired_through;
        // A failed batch's number is never reused: a reader still waiting for it must not be
        // answered by another batch's commit.
        self.last_seq = opened.last_seq.max(failed_seq);
        self.wal = opened.wal;
        self.wal.set_checkpoint_bytes(self.checkpoint_bytes);
        self.wal.set_sled_commit_bytes(self.sled_commit_bytes);
        let open = Arc::new(opened.open);
        self.shared.db.store(Some(Arc::clone(&open)));
        self.open = Some(open);
        let durable_seq = self
            .shared
            .durable_seq
            .fetch_max(opened.last_seq, Ordering::AcqRel)
            .max(opened.last_seq);
        self.durable_tx.send_modify(|mark| mark.seq = durable_seq);
        // Exposures the failed commit kept, and any queued while it failed, are committed now
        // rather than at the next request.
        self.carry.push_back(Command::WakeForExposures);
    }
}

/// Faults a test injects into the writer (kept in `Shared`, taken here).
#[cfg(test)]
pub use super::shared::Faults;

#[cfg(test)]
impl super::shared::Shared {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails the commit before anything is written (the redo log nor sled).
    pub(super) fn faults_before_apply(&self) -> Result<(), super::error::StoreError> {
        if take_one(&mut self.faults().fail_before_apply) {
            return Err(super::error::StoreError::Io(
                "injected: the commit failed".to_owned(),
            ));
        }
        Ok(())
    }

    /// The real fault the next redo record meets (see `wal::WalFault`).
    pub(super) fn faults_for_log(&self) -> super::wal::WalFault {
        let mut faults = self.faults();
        if take_one(&mut faults.fail_log_write) {
            super::wal::WalFault::Write
        } else if take_one(&mut faults.fail_log_sync) {
            super::wal::WalFault::Sync
        } else {
            super::wal::WalFault::None
        }
    }

    /// Breaks sled's log file for the next checkpoint (see `disk::OpenDb::fail_checkpoint`).
    pub(super) fn faults_for_checkpoint(&self, open: &super::disk::OpenDb) {
        if take_one(&mut self.faults().fail_checkpoint) {
            open.fail_checkpoint
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub(super) fn faults_after_sync(&self) -> Result<(), super::error::StoreError> {
        if take_one(&mut self.faults().fail_after_sync) {
            return Err(super::error::StoreError::Io(
                "injected: the sync failed".to_owned(),
            ));
        }
        Ok(())
    }

    pub(super) fn faults_on_reopen(&self) -> Result<(), super::error::StoreError> {
        if take_one(&mut self.faults().fail_reopens) {
            return Err(super::error::StoreError::Io(
                "injected: the reopen failed".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
fn take_one(count: &mut u32) -> bool {
    let take = *count > 0;
    *count = count.saturating_sub(1);
    take
}

/// Points `file`'s descriptor at `/dev/full`: its next write fails with ENOSPC, its next
/// `fdatasync` with EINVAL.
#[cfg(test)]
pub(super) fn point_at_dev_full(file: &std::fs::File) -> Result<(), super::error::StoreError> {
    use std::os::fd::AsRawFd;
    let full = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/full")
        .map_err(|error| super::error::StoreError::Io(format!("cannot inject a fault: {error}")))?;
    // SAFETY: `dup2` replaces the descriptor number `file` holds with a duplicate of
    // `/dev/full`; no Rust object's memory is involved, and `file` keeps using the number.
    if unsafe { libc::dup2(full.as_raw_fd(), file.as_raw_fd()) } < 0 {
        return Err(super::error::StoreError::Io(format!(
            "cannot inject a fault: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Points sled's own descriptor of `<dir>/db` at `/dev/full`, so that its next write fails
/// with ENOSPC. Our `log_file` (a separate descriptor of the same file) is left alone.
#[cfg(test)]
pub(super) fn break_log_file(
    open: &super::disk::OpenDb,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let target = dir.canonicalize()?.join("db");
    let ours = open.log_file.as_raw_fd();
    let full = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/full")?;
    let mut broken = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fd == ours || std::fs::read_link(entry.path()).ok().as_deref() != Some(&target) {
            continue;
        }
        // SAFETY: `dup2` replaces descriptor `fd` (sled's open log file, found just above)
        // with a duplicate of `/dev/full`; no Rust object's memory is involved, and sled keeps
        // using the descriptor number, now failing every write.
        if unsafe { libc::dup2(full.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        broken += 1;
    }
    if broken == 0 {
        return Err(std::io::Error::other(
            "sled's log file descriptor was not found",
        ));
    }
    Ok(())
}
