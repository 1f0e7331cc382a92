//! Migration of a format-3 to 7 store to this build's format (`keys::STORE_FORMAT`, 8), in
//! batches, at open: each sticky record (one sled key per unit, formats 3 and 4) moves into
//! the unit log (`unit_log`); then each token credit mark (one sled key per credited token,
//! formats 3 to 6) becomes a digest in the event log at the mark's generation and an entry of
//! a mark-log payload value (`mark_log`); then the expiry index loses the marks' entries. A
//! format-5 store has no sticky key left and its unit-log values read as they are
//! (`unit_log_entry`), a format-6 store's only as they are too. A format-7 store is only
//! re-marked: format 8 added the redo log (`wal`), and a format-7 dir has none.
//!
//! **Crash safety.** The first write marks the store this build's format and "migrating"
//! (`keys::META_MIGRATING`) in one atomic batch, so an older build refuses the store from then
//! on rather than miss the units already moved. Each batch then writes the log values of up to
//! [`MIGRATE_BATCH`] records, deletes their keys and advances the migration's chunk counter,
//! in one atomic sled batch: after a crash, every record is in exactly one of the two places,
//! and the next open resumes where the last durable batch ended. The index pass only drops
//! entries whose mark key is gone already (an expiry skips an entry whose record is missing),
//! so it is safe to repeat; the mark is cleared after it.
//!
//! **Order.** Migrated values all have commit sequence 0 and chunks numbered by the counter,
//! so they sort before every value a later commit writes (whose sequence numbers start at
//! 1): a record written after the migration always replays last. Each unit had one key, so
//! the order among migrated values does not matter. Migrated mark values have commit 0 too,
//! chunks from the same counter (so each payload value's pair is its own), and a token has
//! one mark, so their order does not matter either.

use super::codec;
use super::error::StoreError;
use super::event_ids::Digester;
use super::event_log;
use super::expiry_index;
use super::keys::{self, KIND_EXPIRY, KIND_STICKY, KIND_TOKEN_MARK, io};
use super::mark_log::{self, PendingMark};
use super::types::TokenCredit;
use super::unit_log::LogWriter;

/// Sticky records moved per atomic batch (~0.5 MB of log values).
pub const MIGRATE_BATCH: usize = 10_000;

/// The last format whose data this build's layout reads as it is: format 8 only added the
/// redo log (`wal`), which a format-7 dir does not have.
pub const SAME_LAYOUT_FORMAT: u64 = 7;

/// Marks the store as migrating to this build's format (it was `from`) and moves every
/// sticky record. A format-7 store has nothing to move: it is re-marked, durably, before its
/// redo log is created.
pub fn start(db: &sled::Db, dir: &std::path::Path, from: u64) -> Result<(), StoreError> {
    if from == SAME_LAYOUT_FORMAT {
        db.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT))
            .map_err(io)?;
        db.flush().map_err(io)?;
        tracing::info!(dir = %dir.display(), from, to = keys::STORE_FORMAT, "store format upgrade: the store now keeps a redo log");
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT));
    batch.insert(keys::META_MIGRATING, &codec::encode_u64(0));
    db.apply_batch(batch).map_err(io)?;
    db.flush().map_err(io)?;
    tracing::info!(
        dir = %dir.display(),
        from,
        to = keys::STORE_FORMAT,
        "store format upgrade started: moving sticky records into the unit log and token marks into the mark log"
    );
    resume(db, dir, usize::MAX)
}

/// Moves what is left, at most `batches` batches (tests stop a migration half-way with it),
/// and clears the mark once nothing is left.
pub fn resume(db: &sled::Db, dir: &std::path::Path, batches: usize) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut moved = 0_u64;
    // The last mark key moved by this run: the next batch scans on from it rather than from
    // the first key again, over the leaves the batches before emptied.
    let mut marks_after: Option<Vec<u8>> = None;
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
            let digester = event_log::digester(db)?;
            let next = marks_batch(db, &digester, chunk, marks_after.as_deref())?;
            if let Some(MarksBatch {
                mut batch,
                next_chunk,
                marks,
                last_key,
            }) = next
            {
                marks_after = Some(last_key);
                batch.insert(keys::META_MIGRATING, &codec::encode_u64(next_chunk));
                db.apply_batch(batch).map_err(io)?;
                db.flush().map_err(io)?;
                moved += marks;
                continue;
            }
            drop_mark_index_entries(db)?;
            db.remove(keys::META_MIGRATING).map_err(io)?;
            db.flush().map_err(io)?;
            tracing::info!(
                dir = %dir.display(),
                records = moved,
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

/// One atomic batch of the token-mark migration.
struct MarksBatch {
    /// The marks' mark-log and event-log values, and their keys removed.
    batch: sled::Batch,
    /// The migration's next free chunk.
    next_chunk: u64,
    /// Marks moved.
    marks: u64,
    /// The last mark key moved (the next batch scans on from it).
    last_key: Vec<u8>,
}

/// The next batch of up to [`MIGRATE_BATCH`] token marks after key `after` as mark-log values
/// (chunks from `chunk`); `None` once no mark key is left.
fn marks_batch(
    db: &sled::Db,
    digester: &Digester,
    chunk: u64,
    after: Option<&[u8]>,
) -> Result<Option<MarksBatch>, StoreError> {
    let mut batch = sled::Batch::default();
    let mut marks = Vec::new();
    let mut last = Vec::new();
    let lower = match after {
        Some(key) => std::ops::Bound::Excluded(key.to_vec()),
        None => std::ops::Bound::Included(vec![KIND_TOKEN_MARK]),
    };
    let end = std::ops::Bound::Excluded(vec![KIND_TOKEN_MARK + 1]);
    for item in db.range((lower, end)).take(MIGRATE_BATCH) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, assignment_id) = keys::parse_epoch_key(&key)?;
        let mark = codec::decode_token_mark(&value)?;
        marks.push(PendingMark {
            due_ms: event_log::generation_due(mark.expiry_ms),
            digest: mark_log::mark_digest(digester, &epoch, &assignment_id),
            epoch,
            credit: TokenCredit {
                assignment_id,
                variant: mark.variant,
                reward: mark.reward,
                retained_until_ms: mark.expiry_ms,
                issued_ms: mark.issued_ms,
                propensity: mark.propensity,
                credited_ms: mark.credited_ms,
            },
        });
        last = key.to_vec();
        batch.remove(key);
    }
    if marks.is_empty() {
        return Ok(None);
    }
    let (values, next_chunk) = mark_log::log_values_from(0, chunk, &marks);
    for (key, value) in values {
        batch.insert(key, value);
    }
    Ok(Some(MarksBatch {
        batch,
        next_chunk,
        marks: marks.len() as u64,
        last_key: last,
    }))
}

/// Index values rewritten per atomic batch by [`drop_mark_index_entries`].
const INDEX_BATCH: usize = 1_000;

/// Removes the token marks' entries from every expiry-index value (a value left empty goes),
/// once every mark key has moved: format 7 expires marks with their mark-log generation.
fn drop_mark_index_entries(db: &sled::Db) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut changed = 0;
    for item in db.scan_prefix([KIND_EXPIRY]) {
        let (key, value) = item.map_err(io)?;
        let due_ms = keys::parse_expiry_key(&key)?;
        let entries = expiry_index::decode_index_value(due_ms, &value)?;
        let kept: Vec<(&[u8], u64)> = entries
            .iter()
            .copied()
            .filter(|(record_key, _)| record_key.first() != Some(&KIND_TOKEN_MARK))
            .collect();
        if kept.len() == entries.len() {
            continue;
        }
        if kept.is_empty() {
            batch.remove(&*key);
        } else {
            batch.insert(&*key, expiry_index::encode_entries(due_ms, &kept));
        }
        changed += 1;
        if changed % INDEX_BATCH == 0 {
            db.apply_batch(std::mem::take(&mut batch)).map_err(io)?;
        }
    }
    db.apply_batch(batch).map_err(io)?;
    db.flush().map_err(io)?;
    Ok(())
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
