//! The token credit marks (store format 7): a token assignment is credited at most once, and
//! its credit is kept for export and audit until the token's window plus a day's slack
//! (`rules::token_mark_retained_until`), without a sled key per mark.
//!
//! A mark used to be its own sled key (`keys::KIND_TOKEN_MARK`) plus an expiry-index entry.
//! sled keeps a page table entry of ~284 bytes of heap per leaf from the open on, and a leaf
//! holds at most 17 keys, so 40M marks held ~1 GB of memory whether read or not
//! (`benches/load/PROFILES.md`, seventh round). Now a mark is two things:
//!
//! - **Its at-most-once check**: a digest of (epoch, assignment id) in the writer's in-memory
//!   event-id set (`event_ids`), made durable in the event log (`event_log`) under the mark's
//!   own generation (its retention end rounded up to a whole `event_log::GENERATION_MS`), so
//!   a restart replays it at 8 bytes with the event ids and reads nothing else. The digest's
//!   input starts with eight 0xFF bytes where an event id's starts with its experiment's
//!   length ([`mark_digest`]), so it can never be an event id's digest input. It is pending
//!   in the commit that writes it (a second event on the same token in the same commit sees
//!   it, [`PendingMarks`]) and enters the set only once that commit is durable, like an id.
//! - **Its payload** (variant, reward, issue and credit times, propensity, retention end,
//!   assignment id): compact entries in per-commit values of this log, keyed
//!   `KIND_MARK_LOG · generation due · epoch · commit seq · chunk`, never read at startup.
//!   The generation comes first so that an expiry finds a due generation's values in one
//!   range; the epoch next so that an export pages one epoch's values generation by
//!   generation ([`page`]).
//!
//! **Pairing.** The digests of the marks in payload value `(due, epoch, seq, chunk)` are the
//! event-log value `(due, seq, MARK_CHUNK_BIT | chunk)` (chunks are numbered across the
//! commit, so the pair is unique). [`expire_due`] deletes both of a pair, folds each mark's
//! reward into its arm's folded total (`KIND_FOLDED`) and forgets the digests, in one commit;
//! the audit checks that every payload value's marks digest to exactly its paired value.
//!
//! **Value size.** A payload value is cut once it holds [`MAX_VALUE_BYTES`] or
//! `event_log::MAX_LOG_VALUE_DIGESTS` marks, so a leaf of them stays well inside a quarter of
//! sled's smallest segment (`disk::MAX_VALUE_BYTES`): no value is written to `blobs/`.
//!
//! Confirmation marks (`confirm_apply`) stay sled keys with expiry-index entries: one per
//! confirmed render of an `exposure: on_render` experiment, not per credited token.

use std::ops::Bound;

use super::error::StoreError;
use super::event_ids::{DigestSet, Digester};
use super::event_log;
use super::generations;
use super::keys::{self, KIND_MARK_LOG, KIND_TOKEN_MARK, io};
use super::overlay::Txn;
use super::state::KeyValue;
use super::types::{Epoch, TokenCredit};

/// Payload bytes after which a value is cut (the last mark may pass it by one mark, at most
/// `disk::VALUE_SLACK_BYTES`: an assignment id of a few hundred bytes and a variant name).
pub const MAX_VALUE_BYTES: usize = 2048;

/// Marks the chunk of an event-log value that holds mark digests (paired with the payload
/// value of the same generation, commit and chunk), apart from the commit's event-id values.
pub const MARK_CHUNK_BIT: u64 = 1 << 63;

/// The digest of a token's credit mark: the store's digest key over eight 0xFF bytes and the
/// mark's old sled key (`KIND_TOKEN_MARK`, the epoch, the assignment id). An event id's digest
/// input starts with its experiment's length as a little-endian u64, never `u64::MAX`.
pub fn mark_digest(digester: &Digester, epoch: &Epoch, assignment_id: &str) -> u64 {
    let key = keys::epoch_key(KIND_TOKEN_MARK, epoch, assignment_id);
    let mut input = Vec::with_capacity(8 + key.len());
    input.extend_from_slice(&[0xFF; 8]);
    input.extend_from_slice(&key);
    digester.digest_bytes(&input)
}

/// One credited mark of a commit, not yet durable.
#[derive(Debug, Clone)]
pub struct PendingMark {
    /// The generation its retention end falls in (`event_log::generation_due`).
    pub due_ms: u64,
    pub epoch: Epoch,
    pub digest: u64,
    pub credit: TokenCredit,
}

/// The marks one request or one group commit credited, in order, and their digests (what a
/// later event of the same commit checks before the set has them).
#[derive(Debug, Default)]
pub struct PendingMarks {
    pub marks: Vec<PendingMark>,
    digests: DigestSet,
}

impl PendingMarks {
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    pub fn contains(&self, digest: u64) -> bool {
        !self.marks.is_empty() && self.digests.contains(digest)
    }

    /// Adds a mark (the caller checked it is not marked: a digest is credited once).
    pub fn push(&mut self, mark: PendingMark) {
        self.digests.insert(mark.digest);
        self.marks.push(mark);
    }

    /// Takes over a later request's marks (once it succeeded).
    pub fn append(&mut self, later: PendingMarks) {
        if self.marks.is_empty() {
            *self = later;
            return;
        }
        for mark in later.marks {
            self.push(mark);
        }
    }
}

/// Key of payload value `chunk` of commit `seq` for `epoch` in the generation due at `due_ms`.
pub fn payload_key(due_ms: u64, epoch: &Epoch, seq: u64, chunk: u64) -> Vec<u8> {
    let mut key = generation_prefix(due_ms, epoch);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// `KIND_MARK_LOG · due · epoch`: every payload value of one epoch in one generation.
fn generation_prefix(due_ms: u64, epoch: &Epoch) -> Vec<u8> {
    let epoch_part = keys::epoch_key(KIND_MARK_LOG, epoch, "");
    let mut key = Vec::with_capacity(8 + epoch_part.len() + 16);
    key.push(KIND_MARK_LOG);
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(&epoch_part[1..]);
    key
}

/// The parts of a payload key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadKey {
    pub due_ms: u64,
    pub epoch: Epoch,
    pub seq: u64,
    pub chunk: u64,
}

impl PayloadKey {
    pub fn parse(key: &[u8]) -> Result<Self, StoreError> {
        let rest = match key.split_first() {
            Some((&KIND_MARK_LOG, rest)) => rest,
            _ => return Err(keys::corrupt("not a mark-log key")),
        };
        let (due_ms, rest) = keys::take_u64(rest)?;
        let (experiment, rest) = keys::take_bytes(rest)?;
        let (revision, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| keys::corrupt("mark-log key lacks a revision"))?;
        let (seq, rest) = keys::take_u64(rest)?;
        let (chunk, rest) = keys::take_u64(rest)?;
        if !rest.is_empty() {
            return Err(keys::corrupt("trailing bytes after a mark-log key"));
        }
        Ok(PayloadKey {
            due_ms,
            epoch: Epoch {
                experiment: keys::utf8(experiment, "experiment id")?,
                revision: u32::from_be_bytes(*revision),
            },
            seq,
            chunk,
        })
    }

    /// The event-log key of the digests paired with this value.
    pub fn digest_key(&self) -> Vec<u8> {
        event_log::log_key(self.due_ms, self.seq, MARK_CHUNK_BIT | self.chunk)
    }
}

/// Whether an event-log key holds mark digests (paired with a payload value).
pub fn is_mark_digest_key(key: &[u8]) -> bool {
    key.len() >= 8 && key[key.len() - 8] & 0x80 != 0
}

/// Appends one mark's entry: assignment id and variant (length-prefixed), reward and
/// propensity (f64 BE), issue time, credit time + 1 (0: unknown, a mark migrated from a
/// build that did not keep it) and retention end (varints).
fn put_entry(out: &mut Vec<u8>, credit: &TokenCredit) {
    keys::put_bytes(out, credit.assignment_id.as_bytes());
    keys::put_bytes(out, credit.variant.as_bytes());
    out.extend_from_slice(&credit.reward.to_be_bytes());
    out.extend_from_slice(&credit.propensity.to_be_bytes());
    keys::put_varint(out, credit.issued_ms);
    keys::put_varint(out, credit.credited_ms.map_or(0, |ms| ms.saturating_add(1)));
    keys::put_varint(out, credit.retained_until_ms);
}

fn take_f64(bytes: &[u8]) -> Result<(f64, &[u8]), StoreError> {
    let (bits, rest) = keys::take_u64(bytes)?;
    Ok((f64::from_bits(bits), rest))
}

fn take_entry(bytes: &[u8]) -> Result<(TokenCredit, &[u8]), StoreError> {
    let (assignment_id, rest) = keys::take_bytes(bytes)?;
    let (variant, rest) = keys::take_bytes(rest)?;
    let (reward, rest) = take_f64(rest)?;
    let (propensity, rest) = take_f64(rest)?;
    let (issued_ms, rest) = keys::take_varint(rest)?;
    let (credited, rest) = keys::take_varint(rest)?;
    let (retained_until_ms, rest) = keys::take_varint(rest)?;
    let credit = TokenCredit {
        assignment_id: keys::utf8(assignment_id, "assignment id")?,
        variant: keys::utf8(variant, "token variant id")?,
        reward,
        retained_until_ms,
        issued_ms,
        propensity,
        credited_ms: credited.checked_sub(1),
    };
    Ok((credit, rest))
}

/// The marks of one payload value, in the order they were credited.
pub fn decode_value(mut bytes: &[u8]) -> Result<Vec<TokenCredit>, StoreError> {
    let mut credits = Vec::new();
    while !bytes.is_empty() {
        let (credit, rest) = take_entry(bytes)?;
        credits.push(credit);
        bytes = rest;
    }
    Ok(credits)
}

/// The values commit `seq` writes for the marks it credited: per (generation, epoch), in
/// credit order, payload values cut at [`MAX_VALUE_BYTES`] or
/// `event_log::MAX_LOG_VALUE_DIGESTS` marks, each with its paired event-log value of digests.
pub fn log_values(seq: u64, pending: &PendingMarks) -> Vec<KeyValue> {
    log_values_from(seq, 0, &pending.marks).0
}

/// [`log_values`] with chunks numbered from `first_chunk` (a migration numbers its values
/// across its batches, all with commit 0), and the next free chunk.
pub fn log_values_from(seq: u64, first_chunk: u64, marks: &[PendingMark]) -> (Vec<KeyValue>, u64) {
    let mut order: Vec<&PendingMark> = marks.iter().collect();
    // Stable: a commit's marks usually share one generation and epoch and keep their order.
    order.sort_by(|a, b| (a.due_ms, &a.epoch).cmp(&(b.due_ms, &b.epoch)));
    let mut values = Vec::new();
    let mut chunk = first_chunk;
    for group in order.chunk_by(|a, b| a.due_ms == b.due_ms && a.epoch == b.epoch) {
        let mut rest = group;
        while let Some(first) = rest.first() {
            let mut payload = Vec::with_capacity(MAX_VALUE_BYTES + 256);
            let mut digests = Vec::new();
            let mut taken = 0;
            for mark in rest {
                if payload.len() >= MAX_VALUE_BYTES || taken == event_log::MAX_LOG_VALUE_DIGESTS {
                    break;
                }
                put_entry(&mut payload, &mark.credit);
                digests.extend_from_slice(&mark.digest.to_le_bytes());
                taken += 1;
            }
            values.push((
                event_log::log_key(first.due_ms, seq, MARK_CHUNK_BIT | chunk),
                digests,
            ));
            values.push((payload_key(first.due_ms, &first.epoch, seq, chunk), payload));
            chunk += 1;
            rest = &rest[taken..];
        }
    }
    (values, chunk)
}

/// Deletes the payload values of every generation due at `now_ms` with their paired digest
/// values, folding each mark's reward into its arm's folded total and forgetting its digest
/// once the commit is durable, while `budget` lasts (`generations::expire_due`). The expiry watermark moves to each generation worked on:
/// a token whose mark would have been in it is refused from then on (`rules::judge_reward`),
/// before its digest is gone. Answers the marks removed and whether it got through everything
/// due.
pub fn expire_due(
    txn: &mut Txn<'_>,
    now_ms: u64,
    budget: &mut usize,
) -> Result<(u64, bool), StoreError> {
    generations::expire_due(txn, KIND_MARK_LOG, now_ms, budget, |txn, key, value| {
        let parsed = PayloadKey::parse(key)?;
        txn.set_expired_through(parsed.due_ms);
        let marks = decode_value(value)?;
        for mark in &marks {
            txn.update_arm(&parsed.epoch, &mark.variant, |arm| {
                arm.folded_reward += mark.reward
            });
        }
        let digest_key = parsed.digest_key();
        if let Some(digests) = txn.get(&digest_key)? {
            let digests: Vec<u64> = event_log::decode_value(&digests)?.collect();
            for digest in digests {
                txn.remove_event_id(digest);
            }
            txn.remove(digest_key);
        }
        Ok(marks.len())
    })
}

/// Where an export page of one epoch's marks resumes: after mark `index` of the payload value
/// of generation `due_ms`, commit `seq`, chunk `chunk`. Opaque to callers (a hex string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    due_ms: u64,
    seq: u64,
    chunk: u64,
    index: u64,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.due_ms, self.seq, self.chunk, self.index
        )
    }

    fn decode(text: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("not a token-credit page cursor".to_owned());
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let part = |at: usize| u64::from_str_radix(&text[at..at + 16], 16).map_err(|_| bad());
        Ok(Cursor {
            due_ms: part(0)?,
            seq: part(16)?,
            chunk: part(32)?,
            index: part(48)?,
        })
    }
}

/// Up to `limit` marks of `epoch` after `cursor` (`None`: from the first), as sled holds them
/// now, in (generation, commit, chunk, credit) order, and the cursor of the next page when
/// this one is full. One range per generation that holds any payload value: a few hundred at
/// most (a window of days in hours). Marks carry no commit number in memory, so the caller
/// waits for `scan::applied_seq` read after this page.
pub fn page(
    db: &sled::Db,
    epoch: &Epoch,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<TokenCredit>, Option<String>), StoreError> {
    let resume = cursor.map(Cursor::decode).transpose()?;
    let mut credits = Vec::new();
    if limit == 0 {
        return Ok((credits, resume.map(|cursor| cursor.encode())));
    }
    let mut generation_from = resume.map_or(0, |cursor| cursor.due_ms);
    loop {
        // The first generation at or after `generation_from` that holds any value.
        let mut probe = vec![KIND_MARK_LOG];
        probe.extend_from_slice(&generation_from.to_be_bytes());
        let Some(item) = db.range(probe..).next() else {
            break;
        };
        let (key, _) = item.map_err(io)?;
        if key.first() != Some(&KIND_MARK_LOG) {
            break;
        }
        let (due_ms, _) = keys::take_u64(&key[1..])?;
        let prefix = generation_prefix(due_ms, epoch);
        let lower = match resume.filter(|cursor| cursor.due_ms == due_ms) {
            Some(cursor) => {
                let mut start = prefix.clone();
                start.extend_from_slice(&cursor.seq.to_be_bytes());
                start.extend_from_slice(&cursor.chunk.to_be_bytes());
                Bound::Included(start)
            }
            None => Bound::Included(prefix.clone()),
        };
        for item in db.range((lower, Bound::<Vec<u8>>::Unbounded)) {
            let (key, value) = item.map_err(io)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let parsed = PayloadKey::parse(&key)?;
            let skip = match resume {
                Some(cursor)
                    if (cursor.due_ms, cursor.seq, cursor.chunk)
                        == (parsed.due_ms, parsed.seq, parsed.chunk) =>
                {
                    cursor.index.saturating_add(1)
                }
                _ => 0,
            };
            for (index, credit) in decode_value(&value)?.into_iter().enumerate() {
                if (index as u64) < skip {
                    continue;
                }
                credits.push(credit);
                if credits.len() == limit {
                    let next = Cursor {
                        due_ms: parsed.due_ms,
                        seq: parsed.seq,
                        chunk: parsed.chunk,
                        index: index as u64,
                    };
                    return Ok((credits, Some(next.encode())));
                }
            }
        }
        match due_ms.checked_add(1) {
            Some(next) => generation_from = next,
            None => break,
        }
    }
    Ok((credits, None))
}

/// Every retained mark of `epoch` (the delay histograms' audit).
pub fn epoch_marks(db: &sled::Db, epoch: &Epoch) -> Result<Vec<TokenCredit>, StoreError> {
    Ok(page(db, epoch, None, usize::MAX)?.0)
}

/// Reads every payload value, hands each mark with its epoch to `each`, and checks that each
/// value's marks digest (with the store's key) to exactly the digests of its paired event-log
/// value. Answers the marks read and how many are unpaired (not in their paired value, or at
/// least one per value whose paired value holds other digests): their at-most-once check or
/// their removal would not happen as written.
pub fn audit(
    db: &sled::Db,
    digester: &Digester,
    mut each: impl FnMut(&Epoch, TokenCredit),
) -> Result<(u64, u64), StoreError> {
    let (mut marks_read, mut unpaired) = (0, 0);
    for item in db.scan_prefix([KIND_MARK_LOG]) {
        let (key, value) = item.map_err(io)?;
        let parsed = PayloadKey::parse(&key)?;
        let marks = decode_value(&value)?;
        let mut expected: Vec<u64> = marks
            .iter()
            .map(|mark| mark_digest(digester, &parsed.epoch, &mark.assignment_id))
            .collect();
        let mut logged: Vec<u64> = match db.get(parsed.digest_key()).map_err(io)? {
            Some(bytes) => event_log::decode_value(&bytes)?.collect(),
            None => Vec::new(),
        };
        expected.sort_unstable();
        logged.sort_unstable();
        if expected != logged {
            let missing = expected
                .iter()
                .filter(|digest| logged.binary_search(digest).is_err())
                .count();
            unpaired += missing.max(1) as u64;
        }
        marks_read += marks.len() as u64;
        for mark in marks {
            each(&parsed.epoch, mark);
        }
    }
    Ok((marks_read, unpaired))
}

#[cfg(test)]
#[path = "mark_log_tests.rs"]
mod tests;
