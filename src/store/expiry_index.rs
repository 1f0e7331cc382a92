//! The retention index: how confirmation marks are found again once they are due (its byte
//! format and the pending entries of a commit; `expiry` walks it and removes them). Event ids
//! (since store format 3) and token credit marks (since format 7) expire by whole generations
//! of their logs instead (`event_log`, `mark_log`); what follows is the index's own design.
//!
//! Every applied reward creates one or two retained records (its event id; for a token also
//! its credit mark), each with a deadline. One index key per record cost as much as the record
//! itself (sled spends ~7–10 µs per key of a batch, while one value of many KB costs about the
//! same as one small key), so each group commit instead lists its records' (key, deadline)
//! pairs in a few index values: [`index_values`] sorts them by deadline and cuts them into
//! values whose deadlines span at most [`INDEX_SPAN_MS`] and whose size stays near
//! [`MAX_INDEX_VALUE_BYTES`] (sled handles big values poorly). A value's key holds its due time:
//! its latest deadline rounded up to a whole [`EXPIRY_BUCKET_MS`], so every record it lists is
//! due once the value is. The entries are collected per request ([`PendingExpiries`] in the
//! `Txn`) and encoded only at commit, so a failed request's entries are dropped with its other
//! writes.
//!
//! The price is retention: a record is removed by the first `expire` at or after its value's
//! due time, up to [`MAX_RETENTION_LAG_MS`] past its own deadline. Ids promise "kept at least
//! the reward window" and marks "at least the window plus a day's grace", so a little longer
//! only turns some late retries from `OutsideWindow` into `Duplicate` or `AlreadyRewarded`:
//! never credited either way. An `expire` in the same group commit as the request that created
//! an entry does not see it yet (it is not encoded until the commit); the next one does.

use super::error::StoreError;
use super::keys::{self, put_bytes, put_varint};
use super::state::KeyValue;

/// Due times of index values are whole multiples of this: the first `expire` of a new minute
/// finds everything due in the minute before.
pub const EXPIRY_BUCKET_MS: u64 = 60 * 1000;

/// Most time between the first and the last deadline of one index value. Event ids of one
/// commit share a deadline (arrival + window), but token marks run from their issue time, so
/// one commit's marks can spread over the whole window; a value per minute would bring back
/// nearly a key per mark. An hour keeps a commit at a few values while the extra retention it
/// costs stays small next to windows of days.
pub const INDEX_SPAN_MS: u64 = 60 * 60 * 1000;

/// Size at which an index value is closed and the next one started.
pub const MAX_INDEX_VALUE_BYTES: usize = 16 * 1024;

/// How long past its deadline a record may outlive an `expire` that runs after it: up to one
/// span (it shared a value with later deadlines) plus one bucket (the rounding up).
pub const MAX_RETENTION_LAG_MS: u64 = INDEX_SPAN_MS + EXPIRY_BUCKET_MS;

/// Bytes one entry adds to a value besides its key: key length and deadline offset varints.
const ENTRY_OVERHEAD_BYTES: usize = 2 + 4;

/// The (record key, deadline) entries one request or one batch created, waiting for the
/// commit that writes them into index values. Keys share one buffer: one allocation per
/// request rather than one per record on the writer's hot path.
#[derive(Debug, Default)]
pub struct PendingExpiries {
    keys: Vec<u8>,
    entries: Vec<PendingEntry>,
}

#[derive(Debug, Clone, Copy)]
struct PendingEntry {
    deadline_ms: u64,
    start: usize,
    end: usize,
}

impl PendingExpiries {
    /// Lists `record_key` as due for removal at `deadline_ms`.
    pub fn push(&mut self, record_key: &[u8], deadline_ms: u64) {
        let start = self.keys.len();
        self.keys.extend_from_slice(record_key);
        self.entries.push(PendingEntry {
            deadline_ms,
            start,
            end: self.keys.len(),
        });
    }

    /// Takes over `other`'s entries (a request's, once it succeeded).
    pub fn append(&mut self, other: PendingExpiries) {
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        let shift = self.keys.len();
        self.keys.extend_from_slice(&other.keys);
        self.entries
            .extend(other.entries.iter().map(|entry| PendingEntry {
                start: entry.start + shift,
                end: entry.end + shift,
                ..*entry
            }));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn key(&self, entry: &PendingEntry) -> &[u8] {
        &self.keys[entry.start..entry.end]
    }
}

/// The smallest bucket boundary at or after `deadline_ms`.
fn round_up_to_bucket(deadline_ms: u64) -> u64 {
    // Saturates at u64::MAX, which is still at or after the deadline.
    deadline_ms
        .div_ceil(EXPIRY_BUCKET_MS)
        .saturating_mul(EXPIRY_BUCKET_MS)
}

/// The index values (key, value) that commit `seq` writes for `pending`; see the module docs.
pub fn index_values(seq: u64, pending: &PendingExpiries) -> Vec<KeyValue> {
    let mut order: Vec<PendingEntry> = pending.entries.clone();
    // Stable, so records with one deadline stay in the order their requests wrote them.
    order.sort_by_key(|entry| entry.deadline_ms);
    let mut values = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, entry) in order.iter().enumerate() {
        let size = (entry.end - entry.start) + ENTRY_OVERHEAD_BYTES;
        let spread = entry.deadline_ms - order[start].deadline_ms;
        if i > start && (spread > INDEX_SPAN_MS || bytes + size > MAX_INDEX_VALUE_BYTES) {
            values.push(encode_value(seq, values.len(), &order[start..i], pending));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < order.len() {
        values.push(encode_value(seq, values.len(), &order[start..], pending));
    }
    values
}

/// One index value: entries sorted by deadline, the last one deciding the due time.
fn encode_value(
    seq: u64,
    chunk: usize,
    group: &[PendingEntry],
    pending: &PendingExpiries,
) -> KeyValue {
    let latest = group.last().map_or(0, |entry| entry.deadline_ms);
    let due_ms = round_up_to_bucket(latest);
    let mut value = Vec::with_capacity(
        group
            .iter()
            .map(|entry| entry.end - entry.start + ENTRY_OVERHEAD_BYTES)
            .sum(),
    );
    for entry in group {
        put_entry(&mut value, due_ms, pending.key(entry), entry.deadline_ms);
    }
    (keys::expiry_key(due_ms, seq, chunk as u64), value)
}

/// Layout of one entry: record key (length-prefixed) · due time − deadline (varint, small
/// since the deadline is at most a span and a bucket before the due time).
fn put_entry(out: &mut Vec<u8>, due_ms: u64, record_key: &[u8], deadline_ms: u64) {
    put_bytes(out, record_key);
    put_varint(out, due_ms.saturating_sub(deadline_ms));
}

/// The (record key, deadline) entries of an index value whose due time is `due_ms`.
pub fn decode_index_value(due_ms: u64, bytes: &[u8]) -> Result<Vec<(&[u8], u64)>, StoreError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (record_key, after_key) = keys::take_bytes(rest)?;
        let (offset, after_offset) = keys::take_varint(after_key)?;
        let deadline_ms = due_ms
            .checked_sub(offset)
            .ok_or_else(|| keys::corrupt("expiry-index deadline before time zero"))?;
        entries.push((record_key, deadline_ms));
        rest = after_offset;
    }
    Ok(entries)
}

pub fn encode_entries(due_ms: u64, entries: &[(&[u8], u64)]) -> Vec<u8> {
    let mut value = Vec::new();
    for &(record_key, deadline_ms) in entries {
        put_entry(&mut value, due_ms, record_key, deadline_ms);
    }
    value
}
