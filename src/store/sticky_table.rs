//! [`StickyTable`]: every durable sticky assignment of the sled store, in memory.
//!
//! A unit's record used to be read from sled's B-tree on every write that touched it (a new
//! unit's set-if-absent, a re-assignment, every reward credited to it) and on every known-unit
//! `sticky()` that missed a bounded cache: in the bulk-ingest profile
//! (`benches/load/PROFILES.md`) reading the record was the largest single cost. The table holds
//! all of them, so the writer and the readers never read a sticky record from sled: a unit
//! absent from the table has no assignment.
//!
//! **Key.** A unit is found by the 64-bit digest of its sled key (kind, epoch, unit id), made
//! with the store's SipHash key (`event_ids::Digester`, the key of the event-id digests); the
//! unit id itself is not kept in memory. A client that does not know the key cannot choose
//! unit ids whose digests collide. Two different units collide with probability 2^-64 per
//! pair, so with `n` units stored, a new unit is taken for a known one with probability at most
//! n / 2^64: 5.4e-13 at 10 million units (one new unit in 1.8e12 answered another unit's
//! variant). Nothing else can go wrong on a false match: counters follow the stored records.
//!
//! **Layout.** One 24-byte [`Slot`] per unit: the digest, the propensity (exact: it is signed
//! into tokens), and one word packing the assignment time (48 bits of milliseconds, up to the
//! year 10889), the variant (an index into the table's list of variant ids, 15 bits) and a
//! rewarded flag. The slots of a shard are themselves an open-addressing hash table
//! (`sticky_slots`: linear probing, Robin Hood order, no index and no positions). A credited
//! reward and its arrival time sit in a side table ([`RewardSlot`], 32 bytes) only for rewarded
//! units; a record that does not fit the packing (a time past 2^48 ms, more than 32,766
//! distinct variant ids) is kept whole in a third.
//!
//! **Memory per unit.** 24 bytes at the slot table's load: between 0.767 and 0.92 while it
//! serves (it grows by ×1.2 past 92%), so 26.1–31.3 bytes; 90% after a restart's replay, so
//! 26.7 bytes (`sticky_slots` says why). A rewarded unit adds 37.7–75.4 bytes (its
//! [`RewardSlot`] in a `hashbrown` table: 33 bytes a bucket at a load between 7/16 and 7/8).
//! The test `a_million_units_cost_what_the_capacity_arithmetic_says` checks the figure from
//! the capacities, and `benches/load/restart.sh` logs it (`table_bytes`) next to the process's
//! RSS: at 10M units the process grows 44–46 bytes per unit (69–89 before the slots had
//! mappings of their own and were presized: the rest was allocator slack the replay's
//! doublings left), of which ~13 are live heap outside the table
//! (`benches/load/results/mem2-2026-11-30-s7.md`). Propensity
//! and digest are kept exact, so a slot cannot shrink below 24 bytes without changing what
//! tokens sign.
//!
//! **Consistency.** Only the writer thread changes the table, after the commit that wrote the
//! change is on disk and before `durable_seq` says so (`writer::commit`): everything a reader
//! finds is durable, and a reader that saw a commit's sequence number finds its records. The
//! writer reads the table under its batch's pending writes (`overlay::Txn::sticky`). A commit
//! reported failed but found on disk after a reopen is covered by loading a fresh table from
//! the reopened database (`recovery`).
//!
//! **Locks.** The table is split in [`SHARDS`] shards, each an `RwLock` on its own cache
//! lines; readers (HTTP workers) share a shard's read lock, and the writer takes a write lock
//! per record it publishes. Variant ids are an append-only list behind an `ArcSwap`, so a read
//! takes no lock for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arc_swap::ArcSwap;
use hashbrown::HashTable;

use super::codec::StickyRef;
use super::error::StoreError;
use super::event_ids::Digester;
use super::sticky_cache::StickyCacheStats;
use super::sticky_slots::{Slot, Slots};
use super::types::StickyRecord;

/// Shards of a table: enough that a few dozen HTTP workers and the writer rarely meet.
pub const SHARDS: usize = 64;

/// How many records ahead the writer starts loading a unit's slots: enough for memory to
/// answer (~0.1 µs) while the records before it are handled, few enough that the lines are
/// still cached when their turn comes.
pub const PREFETCH_AHEAD: usize = 8;

const MS_BITS: u32 = 48;
const MS_MASK: u64 = (1 << MS_BITS) - 1;
const VARIANT_MASK: u64 = 0x7FFF;
/// The variant index that marks a slot whose record is kept whole (see the module docs).
const SPILLED: u64 = VARIANT_MASK;
const REWARDED: u64 = 1 << 63;

/// The credited reward of a rewarded unit.
#[derive(Debug, Clone, Copy)]
pub(super) struct RewardSlot {
    digest: u64,
    reward: f64,
    rewarded_ms: Option<u64>,
}

/// One shard: the slots in their own open-addressing table (`sticky_slots`), and the side
/// tables of rewards and whole records.
#[derive(Default)]
struct Shard {
    slots: Slots,
    rewards: HashTable<RewardSlot>,
    spilled: HashTable<(u64, StickyRecord)>,
}

impl Shard {
    fn slot(&self, digest: u64) -> Option<Slot> {
        self.slots.get(digest)
    }
}

/// A shard on its own cache lines, with its lookup counts (atomics outside the lock, so that
/// readers sharing the read lock do not need a write lock to count).
#[repr(align(128))]
#[derive(Default)]
struct PaddedShard {
    shard: RwLock<Shard>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Every durable sticky record of a store, keyed by digest (see the module docs).
pub struct StickyTable {
    digester: Digester,
    shards: Box<[PaddedShard]>,
    /// Variant ids by index; appended to by the writer only, never reordered.
    variants: ArcSwap<Vec<Arc<str>>>,
    /// The writer's reverse index of `variants`.
    variant_index: Mutex<HashMap<Arc<str>, u64>>,
}

impl std::fmt::Debug for StickyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyTable")
            .field("units", &self.len())
            .finish()
    }
}

impl Default for StickyTable {
    fn default() -> Self {
        StickyTable::new(Digester::default())
    }
}

impl StickyTable {
    pub fn new(digester: Digester) -> Self {
        StickyTable {
            digester,
            shards: (0..SHARDS).map(|_| PaddedShard::default()).collect(),
            variants: ArcSwap::from_pointee(Vec::new()),
            variant_index: Mutex::new(HashMap::new()),
        }
    }

    /// Builds the table from the unit log (`unit_log::replay`), its shards allocated for
    /// `expected` units (the last size kept, `size_hint`). Answers it with the log's entries,
    /// live or superseded (what decides when the log is compacted).
    pub fn load(
        db: &sled::Db,
        digester: Digester,
        expected: usize,
    ) -> Result<(StickyTable, u64), StoreError> {
        let started = std::time::Instant::now();
        let mut table = StickyTable::new(digester);
        table.set_bulk();
        table.presize(expected);
        let entries = super::unit_log::replay(db, &mut table)?;
        table.fit();
        tracing::info!(
            units = table.len(),
            log_entries = entries,
            table_bytes = table.heap_bytes(),
            millis = started.elapsed().as_millis() as u64,
            "replayed the unit log"
        );
        Ok((table, entries))
    }

    /// Starts a replay: the shards grow by doubling until [`Self::fit`].
    fn set_bulk(&self) {
        for padded in &self.shards {
            write_lock(&padded.shard).slots.set_bulk(true);
        }
    }

    /// Sizes every shard for its share of `units` before a replay (`Slots::presize`).
    fn presize(&self, units: usize) {
        let per_shard = units.div_ceil(SHARDS);
        for padded in &self.shards {
            write_lock(&padded.shard).slots.presize(per_shard);
        }
    }

    /// Ends a replay: every shard is resized to the load of a replayed table, giving back
    /// the room its doublings left (`sticky_slots`).
    fn fit(&self) {
        for padded in &self.shards {
            write_lock(&padded.shard).slots.fit();
        }
    }

    /// The digest of a sled sticky key (`keys::epoch_key(KIND_STICKY, ..)`).
    pub fn digest(&self, key: &[u8]) -> u64 {
        self.digester.digest_bytes(key)
    }

    /// The key [`Self::digest`] hashes with, for digests made off the writer
    /// (`reward_digests`).
    pub fn digester(&self) -> Digester {
        self.digester
    }

    /// The durable record under sticky `key`, counted as a hit or a miss in [`Self::stats`].
    pub fn get(&self, key: &[u8]) -> Option<StickyRecord> {
        let digest = self.digest(key);
        let padded = self.padded(digest);
        let found = self.lookup(digest);
        let counter = if found.is_some() {
            &padded.hits
        } else {
            &padded.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// As [`Self::get`], not counted (a second look within one request, or the writer's).
    pub fn peek(&self, key: &[u8]) -> Option<StickyRecord> {
        self.lookup(self.digest(key))
    }

    /// The durable record of the unit whose sticky key has digest `digest`, not counted.
    pub fn peek_digest(&self, digest: u64) -> Option<StickyRecord> {
        self.lookup(digest)
    }

    fn lookup(&self, digest: u64) -> Option<StickyRecord> {
        let (slot, reward) = {
            let shard = self.read(digest);
            let slot = shard.slot(digest)?;
            if slot.packed & VARIANT_MASK << MS_BITS == SPILLED << MS_BITS {
                return shard
                    .spilled
                    .find(digest, |(kept, _)| *kept == digest)
                    .map(|(_, record)| record.clone());
            }
            let reward = if slot.packed & REWARDED != 0 {
                shard
                    .rewards
                    .find(digest, |reward| reward.digest == digest)
                    .copied()
            } else {
                None
            };
            (slot, reward)
        };
        let index = (slot.packed >> MS_BITS) & VARIANT_MASK;
        let variants = self.variants.load();
        let variant = variants.get(usize::try_from(index).ok()?)?;
        Some(StickyRecord {
            variant: String::from(&**variant),
            assigned_ms: slot.packed & MS_MASK,
            propensity: slot.propensity,
            reward: reward.map(|reward| reward.reward),
            rewarded_ms: reward.and_then(|reward| reward.rewarded_ms),
        })
    }

    /// Starts loading the slots of the sticky key whose digest is `digest` into the cache
    /// ([`Slots::prefetch`]): the writer asks for a unit's a few events before it reads it
    /// (`apply::RewardRun`).
    pub fn prefetch_digest(&self, digest: u64) {
        self.read(digest).slots.prefetch(digest);
    }

    /// Applies a durable commit's sticky writes: each key takes its new record, or leaves
    /// (`None`). Writer only. Each write's slots are asked for [`PREFETCH_AHEAD`] writes
    /// before their turn.
    pub fn apply(&self, writes: &[(u64, Option<StickyRecord>)]) {
        for (digest, _) in writes.iter().take(PREFETCH_AHEAD) {
            self.read(*digest).slots.prefetch(*digest);
        }
        for (at, (digest, record)) in writes.iter().enumerate() {
            if let Some((ahead, _)) = writes.get(at + PREFETCH_AHEAD) {
                self.read(*ahead).slots.prefetch(*ahead);
            }
            match record {
                Some(record) => self.upsert(*digest, record),
                None => self.remove(*digest),
            }
        }
    }

    fn upsert(&self, digest: u64, record: &StickyRecord) {
        self.upsert_ref(digest, &StickyRef::from(record));
    }

    fn upsert_ref(&self, digest: u64, record: &StickyRef<'_>) {
        let op = ReplayOp::of(digest, self.variant_index_of(record.variant), record);
        apply_op(&mut self.write(digest), &op);
    }

    fn remove(&self, digest: u64) {
        apply_op(&mut self.write(digest), &ReplayOp::Remove(digest));
    }

    /// Applies a replay's decoded entries in order (`unit_log::replay`), each unit's slots
    /// asked for [`PREFETCH_AHEAD`] entries before their turn. Takes the table whole, so no
    /// shard lock is taken: a replay writes ~10M records, and the table is nobody else's yet.
    pub(super) fn apply_replayed(&mut self, ops: &[ReplayOp]) {
        for op in ops.iter().take(PREFETCH_AHEAD) {
            self.shard_mut(op.digest()).slots.prefetch(op.digest());
        }
        for (at, op) in ops.iter().enumerate() {
            if let Some(ahead) = ops.get(at + PREFETCH_AHEAD) {
                self.shard_mut(ahead.digest())
                    .slots
                    .prefetch(ahead.digest());
            }
            apply_op(self.shard_mut(op.digest()), op);
        }
    }

    /// Gives the table the variant ids a replay's decoder numbered its records with
    /// ([`ReplayVariants`]). Only before the table is shared: its indices replace the table's.
    pub(super) fn install_variants(&mut self, variants: ReplayVariants) {
        *self
            .variant_index
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = variants.index;
        self.variants.store(Arc::new(variants.list));
    }

    /// The index of `variant` in the list, appended if new; [`SPILLED`] once the list is full.
    fn variant_index_of(&self, variant: &str) -> u64 {
        // Most experiments have a handful of variants: a scan of the lock-free list beats the
        // lock and a hash (a replay asks this once per record).
        let listed = self.variants.load();
        if listed.len() <= 16
            && let Some(known) = listed.iter().position(|id| **id == *variant)
        {
            return known as u64;
        }
        let mut index = self
            .variant_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&known) = index.get(variant) {
            return known;
        }
        let next = index.len() as u64;
        if next >= SPILLED {
            return SPILLED;
        }
        let shared: Arc<str> = Arc::from(variant);
        let mut list = Vec::clone(&self.variants.load());
        list.push(Arc::clone(&shared));
        self.variants.store(Arc::new(list));
        index.insert(shared, next);
        next
    }

    /// Units held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|padded| read_lock(&padded.shard).slots.len())
            .sum()
    }

    /// Bytes the tables hold on the heap, from their capacities: a slot of each table plus
    /// hashbrown's control byte per bucket (and its 16-byte group padding per table).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|padded| {
                let shard = read_lock(&padded.shard);
                shard.slots.capacity() * size_of::<Slot>()
                    + table_bytes(shard.rewards.capacity(), size_of::<RewardSlot>())
                    + table_bytes(shard.spilled.capacity(), size_of::<(u64, StickyRecord)>())
            })
            .sum()
    }

    /// Lookups since open and the units held (`capacity` is the units the table has room
    /// for before it grows).
    pub fn stats(&self) -> StickyCacheStats {
        let mut stats = StickyCacheStats::default();
        for padded in &self.shards {
            stats.hits += padded.hits.load(Ordering::Relaxed);
            stats.misses += padded.misses.load(Ordering::Relaxed);
            let shard = read_lock(&padded.shard);
            stats.entries += shard.slots.len();
            stats.capacity += shard.slots.capacity() * super::sticky_slots::MAX_LOAD_PERCENT / 100;
        }
        stats
    }

    /// The shard of `digest`: bits above 32, since hashbrown takes bucket positions from the
    /// low bits and tags from the top 7.
    fn padded(&self, digest: u64) -> &PaddedShard {
        &self.shards[((digest >> 32) as usize) % self.shards.len()]
    }

    fn read(&self, digest: u64) -> RwLockReadGuard<'_, Shard> {
        read_lock(&self.padded(digest).shard)
    }

    fn write(&self, digest: u64) -> RwLockWriteGuard<'_, Shard> {
        write_lock(&self.padded(digest).shard)
    }

    fn shard_mut(&mut self, digest: u64) -> &mut Shard {
        let at = ((digest >> 32) as usize) % self.shards.len();
        self.shards[at]
            .shard
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Heap bytes of a hashbrown table with `capacity` (7/8 of its power-of-two buckets).
fn table_bytes(capacity: usize, slot: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (slot + 1) + 16
}

/// A poisoned shard is still consistent: every change to a shard is a few table operations
/// that cannot panic half-way (allocation failure aborts).
fn read_lock(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One log entry, decoded, digested and packed off the thread that applies it
/// (`unit_log::replay`), or by the writer as it publishes a record: what [`apply_op`] writes.
#[derive(Debug, Clone)]
pub(super) enum ReplayOp {
    /// A record that packs into its slot, and its reward if it has one.
    Packed {
        slot: Slot,
        reward: Option<RewardSlot>,
    },
    /// A record that does not pack (see the module docs), kept whole.
    Whole(u64, Box<StickyRecord>),
    /// The unit leaves.
    Remove(u64),
}

impl ReplayOp {
    /// The op that gives the unit of `digest` the record `record`, whose variant has index
    /// `index` ([`SPILLED`] when the list is full).
    pub(super) fn of(digest: u64, index: u64, record: &StickyRef<'_>) -> ReplayOp {
        if record.assigned_ms > MS_MASK || index >= SPILLED {
            return ReplayOp::Whole(digest, Box::new(record.to_record()));
        }
        let mut packed = record.assigned_ms | index << MS_BITS;
        if record.reward.is_some() {
            packed |= REWARDED;
        }
        ReplayOp::Packed {
            slot: Slot {
                digest,
                packed,
                propensity: record.propensity,
            },
            reward: record.reward.map(|reward| RewardSlot {
                digest,
                reward,
                rewarded_ms: record.rewarded_ms,
            }),
        }
    }

    pub(super) fn digest(&self) -> u64 {
        match self {
            ReplayOp::Packed { slot, .. } => slot.digest,
            ReplayOp::Whole(digest, _) | ReplayOp::Remove(digest) => *digest,
        }
    }
}

/// The variant ids a replay's decoder numbers records with, before the table they go into can
/// be asked ([`StickyTable::install_variants`]): the decoder runs on a thread of its own, and
/// the table's own list is behind an `ArcSwap` and a lock it would pay for per record.
#[derive(Debug, Default)]
pub(super) struct ReplayVariants {
    list: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u64>,
}

impl ReplayVariants {
    /// As [`StickyTable::variant_index_of`]: the index of `variant`, appended if new;
    /// [`SPILLED`] once the list is full.
    pub(super) fn index_of(&mut self, variant: &str) -> u64 {
        if self.list.len() <= 16
            && let Some(known) = self.list.iter().position(|id| **id == *variant)
        {
            return known as u64;
        }
        if let Some(&known) = self.index.get(variant) {
            return known;
        }
        let next = self.list.len() as u64;
        if next >= SPILLED {
            return SPILLED;
        }
        let shared: Arc<str> = Arc::from(variant);
        self.list.push(Arc::clone(&shared));
        self.index.insert(shared, next);
        next
    }
}

/// Writes one op into its shard: one probe of the slots (`put` answers the slot it replaced,
/// whose side entries then leave before the new record's go in; that random read into a
/// table of all units is most of an upsert's cost).
fn apply_op(shard: &mut Shard, op: &ReplayOp) {
    match op {
        ReplayOp::Packed { slot, reward } => {
            if let Some(old) = shard.slots.put(*slot) {
                drop_side_entries(shard, old);
            }
            if let Some(reward) = reward {
                shard
                    .rewards
                    .insert_unique(reward.digest, *reward, |reward| reward.digest);
            }
        }
        ReplayOp::Whole(digest, record) => {
            let slot = Slot {
                digest: *digest,
                packed: SPILLED << MS_BITS,
                propensity: 0.0,
            };
            if let Some(old) = shard.slots.put(slot) {
                drop_side_entries(shard, old);
            }
            shard.spilled.insert_unique(
                *digest,
                (*digest, StickyRecord::clone(record)),
                |(kept, _)| *kept,
            );
        }
        ReplayOp::Remove(digest) => {
            if let Some(old) = shard.slots.take(*digest) {
                drop_side_entries(shard, old);
            }
        }
    }
}

/// Removes the reward or whole record a slot points to.
fn drop_side_entries(shard: &mut Shard, slot: Slot) {
    let digest = slot.digest;
    if slot.packed & VARIANT_MASK << MS_BITS == SPILLED << MS_BITS {
        if let Ok(entry) = shard
            .spilled
            .find_entry(digest, |(kept, _)| *kept == digest)
        {
            entry.remove();
        }
    } else if slot.packed & REWARDED != 0
        && let Ok(entry) = shard
            .rewards
            .find_entry(digest, |reward| reward.digest == digest)
    {
        entry.remove();
    }
}

#[cfg(test)]
#[path = "sticky_table_tests.rs"]
mod tests;
