//! [`expire`]: removes the token marks, event ids and confirmation marks whose retention
//! passed: the token marks by whole generations of the mark log (`mark_log`), the event ids by
//! whole generations of the event log (`event_log`), the confirmation marks by walking the
//! retention index (`expiry_index`, where its format and the retention promise are explained).

use super::error::StoreError;
use super::event_log;
use super::expiry_index::{decode_index_value, encode_entries};
use super::keys::{self, KIND_CONFIRM_MARK};
use super::mark_log;
use super::overlay::Txn;

/// Whether an expire pass went through everything due, or stopped at its per-commit limit.
/// Both carry how many records it removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireProgress {
    Done(u64),
    More(u64),
}

/// Expires the token marks of due generations (folding each reward into its arm's folded
/// total so the counters still equal what the records imply, `mark_log::expire_due`), then
/// the event ids of due generations, then works through the index values due at `now_ms` in
/// due order, looking at up to `limit` entries: removes each listed record whose stored
/// deadline is still the listed one, then removes the value. A value cut by the limit is rewritten with the
/// entries not looked at, in the same request, so no entry is lost or applied twice.
///
/// The expiry watermark moves to the due time of every value worked on: every record removed
/// had a deadline at or before it, and nothing more is claimed (see `apply_token_reward`).
pub fn expire(txn: &mut Txn<'_>, now_ms: u64, limit: usize) -> Result<ExpireProgress, StoreError> {
    // At least one entry per pass, or a continued pass would never get anywhere.
    let mut budget = limit.max(1);
    // Token marks first, whole generations with their digests (see `mark_log`), then event
    // ids, whole generations of the event log (see `event_log`).
    let (mut removed, marks_done) = mark_log::expire_due(txn, now_ms, &mut budget)?;
    if !marks_done {
        return Ok(ExpireProgress::More(removed));
    }
    let (ids, ids_done) = event_log::expire_due(txn, now_ms, &mut budget)?;
    removed += ids;
    if !ids_done {
        return Ok(ExpireProgress::More(removed));
    }
    let mut after: Option<Vec<u8>> = None;
    while let Some((key, value)) = txn.next_due_index_value(now_ms, after.as_deref())? {
        if budget == 0 {
            return Ok(ExpireProgress::More(removed));
        }
        let due_ms = keys::parse_expiry_key(&key)?;
        let entries = decode_index_value(due_ms, &value)?;
        let taken = entries.len().min(budget);
        for &(record_key, deadline_ms) in &entries[..taken] {
            removed += u64::from(remove_if_due(txn, record_key, deadline_ms)?);
        }
        budget -= taken;
        txn.set_expired_through(due_ms);
        if taken < entries.len() {
            txn.put(key, encode_entries(due_ms, &entries[taken..]));
            return Ok(ExpireProgress::More(removed));
        }
        txn.remove(key.clone());
        after = Some(key);
    }
    Ok(ExpireProgress::Done(removed))
}

/// Removes the record if its stored deadline is `deadline_ms`. A different one means the entry
/// is stale (the record was removed and applied again later, with its own newer entry).
fn remove_if_due(
    txn: &mut Txn<'_>,
    record_key: &[u8],
    deadline_ms: u64,
) -> Result<bool, StoreError> {
    let Some(stored) = txn.get(record_key)? else {
        return Ok(false);
    };
    // Token marks left the index with store format 7 (`mark_log`); a store migrated from
    // format 6 has no such entry left (`migrate`).
    match record_key.first() {
        // The confirmed exposure stays in the arm's per-request count, its only record then.
        Some(&KIND_CONFIRM_MARK) => {
            if super::confirm_apply::stored_deadline(&stored)? != deadline_ms {
                return Ok(false);
            }
        }
        _ => return Err(keys::corrupt("expiry index lists an unexpected record")),
    }
    txn.remove(record_key.to_vec());
    Ok(true)
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
