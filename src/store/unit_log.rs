//! The unit log: how the sticky table (`sticky_table`) survives a restart or a `kill -9`,
//! written ahead of any acknowledgement, with no sled key per unit.
//!
//! A sticky assignment used to be one sled key, read and rewritten by every reward credited
//! to its unit: a new key costs sled 10–16 µs and a rewrite 1.5–3.3 µs
//! (`benches/load/PROFILES.md`). Now each group commit appends the sticky records it wrote
//! (new units, re-assignments, credited rewards) as a few compact values under
//! `KIND_UNIT_LOG · epoch · commit seq · chunk` (the epoch encoded as in `keys::epoch_key`,
//! then both numbers big-endian), in the same atomic sled batch as the counters those
//! records imply, fsynced before anybody is answered. One B-tree insert carries up to
//! [`MAX_LOG_VALUE_BYTES`] of entries (~40 records in format 5's layout, ~100 in format
//! 6's), and the table in memory is what every reader and the writer consult.
//!
//! **Entry.** The unit id, exact, and its record (or its removal) as `unit_log_entry` lays
//! it out: since store format 6 against the commit and the value's other entries, so a bulk
//! event's credit takes about half the bytes of format 5's, whose values a format-6 build
//! still reads. The epoch is in the key, so a record's own sticky key (what the table's
//! digest is taken over) is `KIND_STICKY · epoch · unit`.
//!
//! **Order.** Keys sort by epoch, then commit, then chunk, so replaying an epoch's values in
//! key order replays its records in the order they were written: the last entry of a unit
//! wins. Within one commit, the values a compaction step wrote come before the values of the
//! commit's requests (`LogWriter` numbers chunks in the order it is given them).
//!
//! **Compaction** (the checkpoint of this log). A credited reward or a re-assignment
//! supersedes the unit's earlier entry (at most once per assignment for rewards, so the log
//! stays within about twice the units it holds). When the superseded entries outnumber half
//! the table's units plus a floor (`StoreOptions::compact_min_entries`), the writer walks the
//! log in key order, a few values per commit
//! (`compact_step`): it keeps the entries whose record is the unit's current one in the table,
//! writes them into the commit's own values and deletes the values it read, in the same atomic
//! batch as the commit. A crash at any point leaves either the old values or their
//! replacement, never neither. Values of commits from after the pass began are left alone, so
//! a pass ends.
//!
//! **Value size.** As for the event log (`event_log`): sled writes an item larger than a
//! quarter of its segment to a separate file it never fsyncs, and a leaf of 17 values must stay
//! under that (`disk` checks it at compile time). Within that bound, smaller values cost fewer
//! device bytes: sled rewrites a value with its leaf, and a leaf of 2 KiB values is half the
//! size of one of 4 KiB ones (`benches/sled_wal_bytes.rs`: 4.4 device bytes per byte of 2 KiB
//! values, 4.9 for 4 KiB, 5.3 for 8 KiB, at 8 MiB segments), so values are kept near 2 KiB.

use std::collections::BTreeMap;
use std::hash::Hasher;

use super::codec;
use super::codec::StickyRef;
use super::error::StoreError;
use super::event_ids::Digester;
use super::keys::{self, KIND_STICKY, KIND_UNIT_LOG, io, take_bytes};
use super::state::KeyValue;
use super::sticky_table::{ReplayOp, ReplayVariants, StickyTable};
use super::types::{Epoch, StickyRecord};
use super::unit_log_entry::ValueEncoder;
pub use super::unit_log_entry::entries;

/// A log value is closed once its entries reach this many bytes (see the module docs).
pub const MAX_LOG_VALUE_BYTES: usize = 2048;

/// Log values one compaction step reads at most: ~160 KiB, a few hundred microseconds.
pub const COMPACT_VALUES_PER_STEP: usize = 64;

/// Superseded entries the log may hold beyond half the table's units before a compaction pass
/// starts, by default (`StoreOptions::compact_min_entries`).
pub const DEFAULT_COMPACT_MIN_ENTRIES: u64 = 1_000_000;

const SEQ_CHUNK_LEN: usize = 16;

/// Splits a sticky key (`keys::epoch_key(KIND_STICKY, ..)`) into its encoded epoch and unit.
pub fn split_sticky_key(key: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    match key.split_first() {
        Some((&KIND_STICKY, rest)) => split_epoch(rest),
        _ => Err(keys::corrupt("not a sticky key")),
    }
}

/// Splits `bytes` after its leading encoded epoch (length-prefixed experiment, 4-byte revision).
fn split_epoch(bytes: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let (_, after_experiment) = take_bytes(bytes)?;
    let epoch_len = bytes.len() - after_experiment.len() + 4;
    if bytes.len() < epoch_len {
        return Err(keys::corrupt("key lacks a revision"));
    }
    Ok(bytes.split_at(epoch_len))
}

/// The encoded epoch of `epoch`, as keys carry it after their kind byte.
fn encoded_epoch(epoch: &Epoch) -> Vec<u8> {
    let mut prefix = keys::epoch_key(KIND_UNIT_LOG, epoch, "");
    prefix.remove(0);
    prefix
}

/// Key of the `chunk`-th value of commit `seq` for the epoch encoded as `epoch`.
pub fn log_key(epoch: &[u8], seq: u64, chunk: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + epoch.len() + SEQ_CHUNK_LEN);
    key.push(KIND_UNIT_LOG);
    key.extend_from_slice(epoch);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The encoded epoch and the commit of a key made by [`log_key`].
pub fn parse_log_key(key: &[u8]) -> Result<(&[u8], u64), StoreError> {
    let Some((&KIND_UNIT_LOG, rest)) = key.split_first() else {
        return Err(keys::corrupt("not a unit-log key"));
    };
    let (epoch, numbers) = split_epoch(rest)?;
    match numbers.split_first_chunk::<8>() {
        Some((seq, chunk)) if chunk.len() == 8 => Ok((epoch, u64::from_be_bytes(*seq))),
        _ => Err(keys::corrupt("unit-log key lacks its commit and chunk")),
    }
}

/// The sticky key of `unit` in the epoch encoded as `epoch`, built in `buffer`.
fn sticky_key<'b>(buffer: &'b mut Vec<u8>, epoch: &[u8], unit: &[u8]) -> &'b [u8] {
    buffer.clear();
    buffer.push(KIND_STICKY);
    buffer.extend_from_slice(epoch);
    buffer.extend_from_slice(unit);
    buffer
}

/// Cuts one commit's entries into log values; chunks are numbered in the order entries come.
pub struct LogWriter {
    seq: u64,
    chunk: u64,
    values: Vec<KeyValue>,
    /// The open value: its encoded epoch and entries.
    open: Option<(Vec<u8>, ValueEncoder)>,
    entries: u64,
}

impl LogWriter {
    pub fn new(seq: u64) -> Self {
        LogWriter::starting_at(seq, 0)
    }

    /// A writer whose first value is chunk `chunk` (a migration's values continue a count).
    pub fn starting_at(seq: u64, chunk: u64) -> Self {
        LogWriter {
            seq,
            chunk,
            values: Vec::new(),
            open: None,
            entries: 0,
        }
    }

    /// Appends the record `record` (as `codec::encode_sticky` wrote it; `None`: removed) of
    /// the unit under `sticky_key`: a format-5 sticky key's value, which `migrate` moves into
    /// the log. Bytes that do not decode are refused.
    pub fn push(&mut self, sticky_key: &[u8], record: Option<&[u8]>) -> Result<(), StoreError> {
        let (epoch, unit) = split_sticky_key(sticky_key)?;
        let record = record.map(codec::decode_sticky_ref).transpose()?;
        self.push_entry(epoch, unit, record.as_ref());
        Ok(())
    }

    /// Appends the record (`None`: removed) a request of this commit wrote for the unit under
    /// `sticky_key`, as the overlay keeps it: typed, so nothing is encoded to be decoded again.
    pub fn push_record(
        &mut self,
        sticky_key: &[u8],
        record: Option<&StickyRecord>,
    ) -> Result<(), StoreError> {
        let (epoch, unit) = split_sticky_key(sticky_key)?;
        let seq = self.seq;
        let record = record.map(|record| StickyRef {
            seq,
            ..StickyRef::from(record)
        });
        self.push_entry(epoch, unit, record.as_ref());
        Ok(())
    }

    fn push_entry(&mut self, epoch: &[u8], unit: &[u8], record: Option<&StickyRef<'_>>) {
        if self.open.as_ref().is_some_and(|(open, entries)| {
            open.as_slice() != epoch || entries.byte_len() >= MAX_LOG_VALUE_BYTES
        }) {
            self.close();
        }
        let seq = self.seq;
        let (_, encoder) = self.open.get_or_insert_with(|| {
            (
                epoch.to_vec(),
                ValueEncoder::new(seq, MAX_LOG_VALUE_BYTES + 64),
            )
        });
        encoder.push(unit, record);
        self.entries += 1;
    }

    fn close(&mut self) {
        if let Some((epoch, entries)) = self.open.take() {
            self.values
                .push((log_key(&epoch, self.seq, self.chunk), entries.finish()));
            self.chunk += 1;
        }
    }

    /// The chunk number after the last value [`Self::finish`] will return.
    pub fn next_chunk(&self) -> u64 {
        self.chunk + u64::from(self.open.is_some())
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The values to write, in chunk order.
    pub fn finish(mut self) -> Vec<KeyValue> {
        self.close();
        self.values
    }
}

/// Log values a replay's decoder may have decoded ahead of the thread applying them: ~140
/// entries of ~70 bytes each, so ~600 KiB in flight at most.
const REPLAY_VALUES_AHEAD: usize = 64;

/// Variant positions a replay's decoder remembers per value (a format-5 value's entries each
/// carry their own copy, so past this many it compares strings as before).
const VARIANTS_NAMED_PER_VALUE: usize = 8;

/// The variant indices one log value's entries named so far, by where the variant's bytes sit
/// in the value: a format-6 value's entries borrow their variant from its dictionary, so the
/// few pairs it has are numbered once per value instead of compared as strings per entry (67
/// of a replayed entry's ~980 instructions, callgrind, 1M units). An address means the same
/// bytes only while its value lives: [`Self::start_value`] forgets them all.
#[derive(Default)]
struct ValueVariants {
    named: Vec<(usize, usize, u64)>,
}

impl ValueVariants {
    /// Before the entries of the next value.
    fn start_value(&mut self) {
        self.named.clear();
    }

    /// The index of `variant` (borrowed from the current value), as `variants` numbers it.
    fn index_of(&mut self, variants: &mut ReplayVariants, variant: &str) -> u64 {
        let at = (variant.as_ptr() as usize, variant.len());
        if let Some(&(_, _, index)) = self.named.iter().find(|(ptr, len, _)| (*ptr, *len) == at) {
            return index;
        }
        let index = variants.index_of(variant);
        if self.named.len() < VARIANTS_NAMED_PER_VALUE {
            self.named.push((at.0, at.1, index));
        }
        index
    }
}

/// Replays every log value into `table`. Answers the entries read (what the log holds, live
/// or superseded).
///
/// Two threads when the log is not empty: this one applies entries to the table, and a
/// decoder reads the values, decodes their entries, digests their units and packs their records
/// ([`ReplayOp`]), a value's worth at a time over a bounded channel. At 10M units the replay
/// was 5.0–6.0 s of CPU on one thread, about half of it decoding and hashing, the rest the
/// table's random writes (`benches/load/results/restart9-2026-12-01-s14.md`). The channel keeps
/// the log's order (one sender, one receiver, values in key order), so a unit's later entry
/// still supersedes its earlier ones. The decoder numbers variants itself
/// ([`ReplayVariants`]), and the table is applied to without its shard locks: both are only
/// possible because nobody else sees the table until the replay is over.
pub fn replay(db: &sled::Db, table: &mut StickyTable) -> Result<u64, StoreError> {
    let digester = table.digester();
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<ReplayOp>>(REPLAY_VALUES_AHEAD);
    let (decoded, variants) = std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("unit-log-decode".to_owned())
            .spawn_scoped(scope, move || {
                let mut variants = ReplayVariants::default();
                let decoded = decode_log(db, digester, &mut variants, &sender);
                (decoded, variants)
            })
            .map_err(|error| {
                StoreError::Io(format!("could not start the unit-log decoder: {error}"))
            })?;
        for ops in receiver {
            table.apply_replayed(&ops);
        }
        Ok::<_, StoreError>(
            decoder
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        )
    })?;
    let entries_read = decoded?;
    table.install_variants(variants);
    Ok(entries_read)
}

/// The decoder of [`replay`]: sends each log value's entries, in key order, as ops whose
/// variants `variants` numbered. Answers the entries read.
fn decode_log(
    db: &sled::Db,
    digester: Digester,
    variants: &mut ReplayVariants,
    sender: &std::sync::mpsc::SyncSender<Vec<ReplayOp>>,
) -> Result<u64, StoreError> {
    let mut entries_read = 0;
    let mut key_buffer = Vec::new();
    let mut named = ValueVariants::default();
    for item in db.scan_prefix([KIND_UNIT_LOG]) {
        let (key, value) = item.map_err(io)?;
        let (epoch, seq) = parse_log_key(&key)?;
        // Every entry's sticky key starts with the value's kind and epoch: hashed once.
        let prefix = digester.hasher_after(sticky_key(&mut key_buffer, epoch, b""));
        named.start_value();
        let mut ops = Vec::with_capacity(value.len() / 8);
        for entry in entries(&value, seq) {
            let entry = entry?;
            let mut hasher = prefix;
            hasher.write(entry.unit);
            let digest = hasher.finish();
            ops.push(match entry.record {
                Some(record) => {
                    let index = named.index_of(variants, record.variant);
                    ReplayOp::of(digest, index, &record)
                }
                None => ReplayOp::Remove(digest),
            });
            entries_read += 1;
        }
        if sender.send(ops).is_err() {
            // The applying side is gone: it only stops early by panicking, which the join
            // passes on.
            break;
        }
    }
    Ok(entries_read)
}

/// Every unit the log holds a record for, with its latest record, by sticky key: what the
/// audit recomputes counters from (independent of the table). Memory grows with the units.
/// Also answers the entries read.
pub type LatestRecords = (BTreeMap<Vec<u8>, StickyRecord>, u64);

/// See [`LatestRecords`].
pub fn latest_records(db: &sled::Db) -> Result<LatestRecords, StoreError> {
    let mut latest = BTreeMap::new();
    let mut entries_read = 0;
    let mut key_buffer = Vec::new();
    for item in db.scan_prefix([KIND_UNIT_LOG]) {
        let (key, value) = item.map_err(io)?;
        let (epoch, seq) = parse_log_key(&key)?;
        for entry in entries(&value, seq) {
            let entry = entry?;
            let key = sticky_key(&mut key_buffer, epoch, entry.unit).to_vec();
            entries_read += 1;
            match entry.record {
                Some(record) => {
                    latest.insert(key, record.to_record());
                }
                None => {
                    latest.remove(&key);
                }
            }
        }
    }
    Ok((latest, entries_read))
}

/// Calls `each` with the unit of every entry of `epoch`'s values from commit `from_seq` on, in
/// key order (an export's index and its tail, `export_index`).
pub fn for_each_unit(
    db: &sled::Db,
    epoch: &Epoch,
    from_seq: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<(), StoreError> {
    let encoded = encoded_epoch(epoch);
    let mut prefix = vec![KIND_UNIT_LOG];
    prefix.extend_from_slice(&encoded);
    // Another epoch's keys never share this prefix: the experiment is length-prefixed.
    for item in db.range(log_key(&encoded, from_seq, 0)..) {
        let (key, value) = item.map_err(io)?;
        if !key.starts_with(&prefix) {
            break;
        }
        let (_, seq) = parse_log_key(&key)?;
        for entry in entries(&value, seq) {
            each(entry?.unit);
        }
    }
    Ok(())
}

/// The sticky key of `unit` in `epoch` (what the table's digest is taken over).
pub fn unit_key(epoch: &Epoch, unit: &[u8]) -> Vec<u8> {
    let mut key = Vec::new();
    sticky_key(&mut key, &encoded_epoch(epoch), unit);
    key
}

/// Where a compaction pass stands: the next log key to read, and the first commit whose
/// values it leaves alone (those written after the pass began, its own included).
#[derive(Debug, Clone)]
pub struct CompactionPass {
    pub next: Vec<u8>,
    pub before_seq: u64,
}

impl CompactionPass {
    pub fn new(before_seq: u64) -> Self {
        CompactionPass {
            next: vec![KIND_UNIT_LOG],
            before_seq,
        }
    }
}

/// What one compaction step did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CompactionStep {
    /// Log values to delete (all read by the step).
    pub removed_values: Vec<Vec<u8>>,
    /// Entries those values held.
    pub entries_read: u64,
    /// Entries kept (pushed to the commit's writer).
    pub entries_kept: u64,
    /// Where the next step starts; `None` when the pass is over.
    pub next: Option<Vec<u8>>,
}

/// Reads up to [`COMPACT_VALUES_PER_STEP`] values of the pass from `db` and pushes the entries
/// that still hold the unit's current record (as `table`, the durable state, has it) into
/// `writer`, which must not have been given this commit's request entries yet (see the module
/// docs on order). Removal entries are never kept: every older entry of their unit comes
/// before them in the pass, and is dropped there because the table holds no record for it.
pub fn compact_step(
    db: &sled::Db,
    table: &StickyTable,
    pass: &CompactionPass,
    writer: &mut LogWriter,
) -> Result<CompactionStep, StoreError> {
    let mut step = CompactionStep::default();
    let mut key_buffer = Vec::new();
    let mut values_read = 0;
    let end = [KIND_UNIT_LOG + 1];
    for item in db.range(pass.next.clone()..end.to_vec()) {
        let (key, value) = item.map_err(io)?;
        if values_read == COMPACT_VALUES_PER_STEP {
            step.next = Some(key.to_vec());
            return Ok(step);
        }
        let (epoch, seq) = parse_log_key(&key)?;
        if seq >= pass.before_seq {
            continue;
        }
        values_read += 1;
        for entry in entries(&value, seq) {
            let entry = entry?;
            step.entries_read += 1;
            let Some(record) = entry.record else {
                continue;
            };
            let digest = table.digest(sticky_key(&mut key_buffer, epoch, entry.unit));
            if table.peek_digest(digest) == Some(record.to_record()) {
                // Re-encoded into this commit's value (keeping the record's own seq), so a
                // format-5 value becomes format 6 here.
                writer.push_entry(epoch, entry.unit, Some(&record));
                step.entries_kept += 1;
            }
        }
        step.removed_values.push(key.to_vec());
    }
    Ok(step)
}

#[cfg(test)]
#[path = "unit_log_tests.rs"]
mod tests;
