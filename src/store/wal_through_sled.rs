//! A big commit made durable by sled's own flush instead of a redo log record (`wal`).
//!
//! A big group commit (unit-log, event-log and mark-log values; 16–20 KiB per 1,000-event bulk
//! request, `benches/load/results/wal7-2026-12-01-s13.md`) written as a record is written
//! again when sled writes the buffer its op-by-op apply filled: 143–151 device bytes per bulk
//! event against 121–130 when sled alone made every commit durable
//! (`benches/load/results/s11-ab-2026-12-01.md`); through this path at 16 KiB, 126–1,324 per
//! applied event against 148–158 (the wal7 results: unstable). A commit whose payload reaches
//! [`super::wal::DEFAULT_SLED_COMMIT_BYTES`] (`--store-sled-commit-kib`) is therefore applied
//! to sled as one sled batch and sled is flushed and its log `fdatasync`ed
//! (`disk::OpenDb::sync`) before anybody is answered, as every commit was before the log.
//!
//! Why the replay never needs it (`wal_replay`):
//! - sled's flush writes every buffer sled holds, so once it returns sled durably holds this
//!   commit and every commit applied before it, its `META_SEQ` included; every record in the
//!   log has a smaller seq and is skipped at the next open, and every record appended after it
//!   has a greater one and is applied after it, in order, as before;
//! - a crash before the flush returned leaves a commit nobody was told of: sled's batch is
//!   atomic in its own recovery (the batch's log reservation is pegged, sled-0.34.7
//!   `Tree::apply_batch`, `Context::pin_log`), so sled holds all of it or none, and nothing is
//!   appended to the log after it until it is durable (one writer);
//! - a failed apply or flush fails the commit and the store reopens (`recovery`): sled may
//!   then hold it whole after all (its flush wrote it before its `fdatasync` failed), which
//!   is a commit reported failed but found on disk, as for a record synced before a later step
//!   failed (README, Durability).

use super::disk::OpenDb;
use super::error::StoreError;
use super::keys;
use super::wal::{RedoBatch, Wal, decode_ops};

impl Wal {
    /// Whether commit `batch` goes to sled's flush instead of the log.
    pub fn commits_through_sled(&self, batch: &RedoBatch) -> bool {
        batch.payload_bytes() as u64 >= self.sled_commit_bytes
    }

    /// Makes commit `seq` durable in sled (one sled batch under `apply_lock`'s write side,
    /// then sled's flush and an `fdatasync` of its log), without a record. Fails, writing
    /// nothing, where [`Wal::append`] would (a failed checkpoint or record before it).
    pub fn commit_through_sled(
        &mut self,
        open: &OpenDb,
        seq: u64,
        batch: RedoBatch,
        apply_lock: &std::sync::RwLock<()>,
    ) -> Result<(), StoreError> {
        self.refuse_when_failed()?;
        let record = batch.into_record();
        let decoded = decode_ops(&record[super::wal::RECORD_HEADER_BYTES..]);
        self.buffer = record;
        let sled_batch = decoded?;
        {
            let _applying = apply_lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            open.db.apply_batch(sled_batch).map_err(keys::io)?;
        }
        #[cfg(test)]
        open.checkpoint_hook()?;
        open.sync()?;
        self.last_seq = seq;
        Ok(())
    }
}
