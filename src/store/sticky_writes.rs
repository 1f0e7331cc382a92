//! [`StickyWrites`]: the sticky records a request or a group commit wrote, not yet durable, as
//! the writer's overlay keeps them (`overlay`), found by their key's digest.
//!
//! They were a `BTreeMap` keyed by the sticky key: a bulk request's layer holds a thousand keys
//! that share their kind and epoch, so each reward's search compared about twenty keys byte by
//! byte, a `memcmp` each (`benches/load/results/sbulk17-2026-12-01-s17.md`). Every write comes
//! with its key's digest in the sticky table (`StickyTable::digest`, for a reward made off the
//! writer: `reward_digests`), a uniform 64-bit hash, so a hash table on it finds a key with
//! one comparison of the key's bytes on a hit, and none on a miss unless the digests are
//! equal. The keys are still compared whole: a pending write is found by its key and its
//! digest, never by its digest alone.
//!
//! **Order.** The unit log cuts a commit's entries into values of one epoch each (`unit_log`),
//! so the commit takes its writes grouped by epoch ([`StickyWrites::into_epoch_runs`]): as
//! they were first written when they all share one epoch (a bulk request names one), else
//! sorted by epoch, stably (the epochs in key order, as the map gave them). Within an epoch the
//! entries keep the order their keys were first written in, not the units' order; a unit
//! appears once per commit, so a replay ends at the same records either way.

use hashbrown::HashTable;

use super::types::StickyRecord;
use super::unit_log::split_sticky_key;

/// One pending sticky write.
#[derive(Debug, Clone, PartialEq)]
pub struct StickyWrite {
    /// The unit's sticky key (`keys::epoch_key(KIND_STICKY, ..)`).
    pub key: Vec<u8>,
    /// The key's digest in the sticky table (`StickyTable::digest`), kept so that the table's
    /// update at commit does not hash the key again.
    pub digest: u64,
    /// The record written, or `None` for a removal.
    pub record: Option<StickyRecord>,
}

/// The sticky writes of one request or one commit, each key once, in the order the keys were
/// first written (see the module docs).
#[derive(Debug, Default)]
pub struct StickyWrites {
    writes: Vec<StickyWrite>,
    /// Places in `writes`, hashed by their write's digest.
    index: HashTable<usize>,
}

impl StickyWrites {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Makes room for `additional` more keys at once (`overlay::Txn::reserve_rewards`).
    pub fn reserve(&mut self, additional: usize) {
        self.writes.reserve(additional);
        let writes = &self.writes;
        self.index.reserve(additional, |&kept| writes[kept].digest);
    }

    /// The pending write of `key`, whose digest is `digest`.
    pub fn get(&self, key: &[u8], digest: u64) -> Option<&StickyWrite> {
        self.place(key, digest).map(|at| &self.writes[at])
    }

    /// The pending record of `key` (whose digest is `digest`) to change in place, if the key
    /// has a pending write (`None` inside: a pending removal).
    pub fn record_mut(&mut self, key: &[u8], digest: u64) -> Option<&mut Option<StickyRecord>> {
        let at = self.place(key, digest)?;
        Some(&mut self.writes[at].record)
    }

    /// Writes `record` under `key` (digest `digest`), replacing a pending write of the key.
    pub fn insert(&mut self, key: Vec<u8>, digest: u64, record: Option<StickyRecord>) {
        match self.place(&key, digest) {
            Some(at) => self.writes[at].record = record,
            None => self.push_absent(StickyWrite {
                key,
                digest,
                record,
            }),
        }
    }

    /// Takes over a later request's writes (once it succeeded): each replaces the write of
    /// its key here, if any.
    pub fn extend(&mut self, later: StickyWrites) {
        if self.is_empty() {
            *self = later;
            return;
        }
        for write in later.writes {
            match self.place(&write.key, write.digest) {
                Some(at) => self.writes[at].record = write.record,
                None => self.push_absent(write),
            }
        }
    }

    /// The writes grouped by epoch, for the commit's unit log (module docs, "Order").
    pub fn into_epoch_runs(self) -> Vec<StickyWrite> {
        let mut writes = self.writes;
        let first = writes.first().map_or(&[][..], |write| epoch_of(&write.key));
        if !writes.iter().all(|write| epoch_of(&write.key) == first) {
            writes.sort_by(|a, b| epoch_of(&a.key).cmp(epoch_of(&b.key)));
        }
        writes
    }

    /// Adds the write of a key that has none here.
    fn push_absent(&mut self, write: StickyWrite) {
        let (at, digest) = (self.writes.len(), write.digest);
        self.writes.push(write);
        let writes = &self.writes;
        self.index
            .insert_unique(digest, at, |&kept| writes[kept].digest);
    }

    /// Where the write of `key` is: its digest compared first, its bytes only then.
    fn place(&self, key: &[u8], digest: u64) -> Option<usize> {
        self.index
            .find(digest, |&at| {
                let write = &self.writes[at];
                write.digest == digest && write.key == key
            })
            .copied()
    }
}

/// The encoded epoch a sticky key starts with; empty for a key that is not a sticky key,
/// which the unit log refuses (`unit_log::LogWriter::push_record`).
fn epoch_of(key: &[u8]) -> &[u8] {
    split_sticky_key(key).map_or(&[][..], |(epoch, _)| epoch)
}

#[cfg(test)]
#[path = "sticky_writes_tests.rs"]
mod tests;
