//! Migration of a format-3, 4 or 5 store to this build's format (`keys::STORE_FORMAT`, 6):
//! each sticky record (one sled key per unit, formats 3 and 4) moves into the unit log
//! (`unit_log`), in batches, at open. A format-5 store has no sticky key left and its log
//! values read as they are (`unit_log_entry`), so its upgrade writes only the marks.
//!
//! **Crash safety.** The first write marks the store this build's format and "migrating"
//! (`keys::META_MIGRATING`) in one atomic batch, so an older build refuses the store from then
//! on rather than miss the units already moved. Each batch then writes the log values of up to
//! [`MIGRATE_BATCH`] records, deletes their keys and advances the migration's chunk counter,
//! in one atomic sled batch: after a crash, every record is in exactly one of the two places,
//! and the next open resumes where the last durable batch ended.
//!
//! **Order.** Migrated values all have commit sequence 0 and chunks numbered by the counter,
//! so they sort before every value a later commit writes (whose sequence numbers start at
//! 1): a record written after the migration always replays last. Each unit had one key, so
//! the order among migrated values does not matter.

use super::codec;
use super::error::StoreError;
use super::keys::{self, KIND_STICKY, io};
use super::unit_log::LogWriter;

/// Sticky records moved per atomic batch (~0.5 MB of log values).
pub const MIGRATE_BATCH: usize = 10_000;

/// Marks the store as migrating to this build's format (it was `from`) and moves every
/// sticky record.
pub fn start(db: &sled::Db, dir: &std::path::Path, from: u64) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT));
    batch.insert(keys::META_MIGRATING, &codec::encode_u64(0));
    db.apply_batch(batch).map_err(io)?;
    db.flush().map_err(io)?;
    tracing::info!(
        dir = %dir.display(),
        from,
        to = keys::STORE_FORMAT,
        "store format upgrade started: moving sticky records into the unit log"
    );
    resume(db, dir, usize::MAX)
}

/// Moves what is left, at most `batches` batches (tests stop a migration half-way with it),
/// and clears the mark once nothing is left.
pub fn resume(db: &sled::Db, dir: &std::path::Path, batches: usize) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut moved = 0_u64;
    for _ in 0..batches {
        let mut chunk = match db.get(keys::META_MIGRATING).map_err(io)? {
            Some(value) => codec::decode_u64(&value, "migration counter")?,
            None => return Ok(()),
        };
        let mut log = LogWriter::starting_at(0, chunk);
        let mut batch = sled::Batch::default();
        let mut taken = 0;
        for item in db.scan_prefix([KIND_STICKY]).take(MIGRATE_BATCH) {
            let (key, value) = item.map_err(io)?;
            // Decoded to refuse a corrupt record now rather than at the first replay.
            codec::decode_sticky(&value)?;
            log.push(&key, Some(&value))?;
            batch.remove(key);
            taken += 1;
        }
        if taken == 0 {
            db.remove(keys::META_MIGRATING).map_err(io)?;
            db.flush().map_err(io)?;
            tracing::info!(
                dir = %dir.display(),
                units = moved,
                millis = started.elapsed().as_millis() as u64,
                "store format upgrade finished"
            );
            return Ok(());
        }
        chunk = log.next_chunk();
        for (key, value) in log.finish() {
            batch.insert(key, value);
        }
        batch.insert(keys::META_MIGRATING, &codec::encode_u64(chunk));
        db.apply_batch(batch).map_err(io)?;
        db.flush().map_err(io)?;
        moved += taken as u64;
    }
    Ok(())
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
