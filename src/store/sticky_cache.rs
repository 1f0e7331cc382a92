//! [`StickyCache`]: a bounded in-memory copy of durable sticky records in front of sled.
//!
//! Known units come back again and again (returning visitors), and a sled `get` (page-cache
//! traversal, LRU bookkeeping, a binary search per node) was the largest single cost of a
//! known-unit assignment. A hit here is two SipHash passes, one uncontended lock, a bucket
//! read and a clone.
//!
//! # Why a cached record is never stale and never ahead of the disk
//!
//! Two kinds of writes fill the cache:
//!
//! - **Publish** (writer thread): after a commit's fsync returned, and before its sequence
//!   number is stored as `durable_seq`, the writer upserts (or removes) every sticky key the
//!   commit wrote and raises its shard's `last_write_seq` to the commit's number, under the
//!   shard lock.
//! - **Fill** (readers, on a miss): the reader loads `durable_seq` as `s0` *before* its sled
//!   read, and inserts what it read only if the record's seq is at most `s0` (durable) and its
//!   shard's `last_write_seq` is at most `s0`, and only if the key is absent.
//!
//! Never ahead of the disk: publish runs after the fsync, and a fill only takes records whose
//! commit was at most `s0`, which is durable.
//!
//! Never stale: take any commit `c` that wrote key `k` and whose publish finished before a
//! fill of `k` (both run under the shard lock, so they are ordered). The publish set the
//! shard's `last_write_seq` to at least `c`, so the fill went ahead only with `s0 >= c`. The
//! writer stores `durable_seq = s0` after it applied commits up to `s0` to sled, and the
//! reader's acquire load of `s0` precedes its sled read, so that read saw commit `c`'s write or
//! a later one: the filled record is at least as new as every published one. A commit
//! published *after* the fill overwrites the entry. Evictions only remove entries and never
//! lower `last_write_seq`, so "writer upserts V2, V2 is evicted, a slow reader fills V1" is
//! still refused (`last_write_seq >= seq(V2) > s0`). The price is a few refused fills after
//! each commit that touched the shard, which the next read of that key simply retries.
//!
//! Publish finishing before `durable_seq` moves also keeps reads monotonic: nobody can see a
//! commit's record through sled (where it waits until `durable_seq` covers it) while the
//! cache still answers the previous one.
//!
//! # Bounds and eviction
//!
//! The capacity (entries, never exceeded) is split over up to [`MAX_SHARDS`] shards, each a
//! `Mutex` padded to its own cache lines, so HTTP workers rarely meet on a lock. Each shard
//! evicts with CLOCK (second chance): a hit sets the entry's referenced bit, and a full shard
//! sweeps a hand over its ring of keys, clearing set bits, until it finds a clear one to
//! replace. A record read once is evicted before one that keeps being read; every sweep step
//! either evicts or clears a bit that a hit set, so eviction is O(1) amortized, and no access
//! pattern makes it scan forever.
//!
//! A hit costs a few cache misses, not a tree walk: the record sits flat in the map's bucket
//! next to its key (inline up to 62 bytes), and variant ids are shared strings that stay hot.
//! The price is memory: a 136-byte bucket in a table sized to a power of two, plus the key's
//! place in the ring, about 340 bytes per entry at the default capacity (~85 MB). sled's own
//! page cache, which this spares most reads of, defaults to 1 GB.
//!
//! Hashing is std's `RandomState` (SipHash-1-3 with a per-process random key): unit ids are
//! chosen by clients, and a fixed fast hash would let them pile keys into one bucket chain or
//! one shard.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use super::codec::{self, StoredSticky};
use super::keys::KIND_STICKY;
use super::state::WriteMap;
use super::types::StickyRecord;

/// Default capacity of the sticky cache, in entries (~85 MB when full): a site's returning
/// visitors of the last minutes, not its whole history. It holds the full load test's 100,000
/// known units with room to spare (65,536 did not: under uniform access CLOCK then evicts
/// continually).
pub const DEFAULT_STICKY_CACHE_ENTRIES: usize = 262_144;

/// Most shards a cache is split into: enough that a few dozen HTTP workers rarely share one.
pub const MAX_SHARDS: usize = 64;

/// The sticky keys a commit wrote, decoded: `None` is a removal.
pub type StickyWrites = Vec<(Vec<u8>, Option<StoredSticky>)>;

/// A bounded, sharded map from sled sticky key to durable record (see the module docs).
pub struct StickyCache {
    shards: Box<[PaddedShard]>,
    /// Picks the shard; the same key material as the shards' maps (see [`Self::shard_of`]).
    hasher: RandomState,
    capacity: usize,
}

/// Hit and miss counts since open, and the current fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StickyCacheStats {
    /// Most records held (`--sticky-cache-entries`); 0: the cache is off.
    pub capacity: usize,
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read sled (new units and units not cached).
    pub misses: u64,
}

/// One shard on its own cache lines, so that two workers locking neighbouring shards do not
/// bounce one line between cores.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

struct Shard {
    entries: HashMap<CacheKey, Entry, RandomState>,
    /// Every key once, in CLOCK order; an entry knows its position.
    ring: Vec<CacheKey>,
    capacity: usize,
    /// The CLOCK hand: the ring position eviction looks at next.
    hand: usize,
    /// The highest commit that published a write of any key of this shard.
    last_write_seq: u64,
    /// Variant ids of the entries, shared: a hit's clone reads one string that every hit on
    /// that variant keeps in the CPU cache, instead of a string of its own.
    variants: HashSet<Arc<str>>,
    hits: u64,
    misses: u64,
}

/// A cached record, laid out flat in the map's bucket next to its key, so that a hit touches
/// the bucket and little else (the record's own `StickyRecord` would add a string per entry).
struct Entry {
    variant: Arc<str>,
    assigned_ms: u64,
    propensity: f64,
    reward: Option<f64>,
    rewarded_ms: Option<u64>,
    seq: u64,
    ring_position: usize,
    /// Set by a hit, cleared by the CLOCK hand passing by.
    referenced: bool,
}

impl Entry {
    fn record(&self) -> StickyRecord {
        StickyRecord {
            variant: String::from(&*self.variant),
            assigned_ms: self.assigned_ms,
            propensity: self.propensity,
            reward: self.reward,
            rewarded_ms: self.rewarded_ms,
        }
    }
}

/// Keys up to this many bytes live inside the map's bucket (an experiment id and a UUID unit
/// fit); longer ones on the heap. Comparing an inline key reads no other memory.
const INLINE_KEY_BYTES: usize = 62;

/// A sled sticky key, stored inline when short. Hashes and compares as its bytes, so the map
/// can be probed with a plain `&[u8]`.
#[derive(Clone)]
enum CacheKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Box<[u8]>),
}

impl CacheKey {
    fn new(key: Vec<u8>) -> Self {
        let mut bytes = [0; INLINE_KEY_BYTES];
        match (bytes.get_mut(..key.len()), u8::try_from(key.len())) {
            (Some(prefix), Ok(len)) => {
                prefix.copy_from_slice(&key);
                CacheKey::Inline { len, bytes }
            }
            _ => CacheKey::Heap(key.into_boxed_slice()),
        }
    }

    /// As [`Self::new`] from a borrowed key: allocates only for a key too long to inline.
    fn from_slice(key: &[u8]) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY_BYTES => {
                let mut bytes = [0; INLINE_KEY_BYTES];
                bytes[..key.len()].copy_from_slice(key);
                CacheKey::Inline { len, bytes }
            }
            _ => CacheKey::Heap(key.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            CacheKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            CacheKey::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    /// Must equal the hash of the bytes: lookups pass `&[u8]` (see `Borrow`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Most distinct variant ids a shard shares before it starts its set afresh (entries keep
/// theirs): a bound, although variant ids come from the experiment files, not from clients.
const MAX_SHARED_VARIANTS: usize = 1024;

impl StickyCache {
    /// A cache holding at most `capacity` records; 0 makes every call a no-op.
    pub fn new(capacity: usize) -> Self {
        Self::with_shards(capacity, MAX_SHARDS)
    }

    /// As [`Self::new`], with at most `max_shards` shards (never more shards than entries, so
    /// every shard holds at least one).
    fn with_shards(capacity: usize, max_shards: usize) -> Self {
        let shard_count = capacity.min(max_shards.max(1));
        let hasher = RandomState::new();
        let shards = (0..shard_count)
            .map(|shard| {
                // The remainder goes one each to the first shards: the total is exact.
                let shard_capacity =
                    capacity / shard_count + usize::from(shard < capacity % shard_count);
                PaddedShard(Mutex::new(Shard::new(shard_capacity, hasher.clone())))
            })
            .collect();
        StickyCache {
            shards,
            hasher,
            capacity,
        }
    }

    /// Counts and fill, summed over the shards.
    pub fn stats(&self) -> StickyCacheStats {
        let mut stats = StickyCacheStats {
            capacity: self.capacity,
            ..StickyCacheStats::default()
        };
        for shard in &self.shards {
            let shard = lock(&shard.0);
            stats.entries += shard.entries.len();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
        }
        stats
    }

    /// The cached durable record of `key`, if any, counted as a hit or a miss: the lookup of
    /// a unit's assignment, which reads sled on a miss.
    pub fn get(&self, key: &[u8]) -> Option<StickyRecord> {
        self.lookup(key, true)
    }

    /// As [`Self::get`], not counted: a second look within one request (whose first look
    /// was counted) would make the hit ratio lie.
    pub fn peek(&self, key: &[u8]) -> Option<StickyRecord> {
        self.lookup(key, false)
    }

    fn lookup(&self, key: &[u8], counted: bool) -> Option<StickyRecord> {
        let mut guard = lock(self.shard_of(key)?);
        let shard = &mut *guard;
        let Some(entry) = shard.entries.get_mut(key) else {
            shard.misses += u64::from(counted);
            return None;
        };
        shard.hits += u64::from(counted);
        entry.referenced = true;
        Some(entry.record())
    }

    /// A reader's insert after a miss: `stored` was read from sled after `durable_seq` was
    /// loaded as `read_after_seq`. Refused (returns false) unless the record is durable as of
    /// then, no commit after then published to the shard, and the key is absent (see the
    /// module docs for why this cannot cache a stale record).
    pub fn fill(&self, key: &[u8], stored: &StoredSticky, read_after_seq: u64) -> bool {
        if stored.seq > read_after_seq {
            return false;
        }
        let Some(shard) = self.shard_of(key) else {
            return false;
        };
        let mut shard = lock(shard);
        if shard.last_write_seq > read_after_seq || shard.entries.contains_key(key) {
            return false;
        }
        let variant = shard.shared_variant(&stored.record.variant);
        shard.insert_new(CacheKey::from_slice(key), variant, stored);
        true
    }

    /// Forgets every record, as if commit `seq` had written every key, so that no read from
    /// before it can fill one back in. For a commit found on disk after a reopen although it
    /// was reported failed: its writes were never published here, so any entry may be stale.
    pub fn invalidate(&self, seq: u64) {
        for shard in &self.shards {
            let mut shard = lock(&shard.0);
            shard.clear();
            shard.last_write_seq = shard.last_write_seq.max(seq);
        }
    }

    /// The sticky keys among a commit's writes, decoded for [`Self::publish`]. Empty when the
    /// cache is disabled, so a disabled cache costs the writer nothing.
    pub fn sticky_writes(&self, writes: &WriteMap) -> StickyWrites {
        if self.shards.is_empty() {
            return Vec::new();
        }
        writes
            .range(vec![KIND_STICKY]..vec![KIND_STICKY + 1])
            .map(|(key, value)| {
                // The writer encoded these bytes itself; if they somehow do not decode, dropping
                // the key from the cache is the safe answer (the next read goes to sled).
                let stored = value
                    .as_deref()
                    .and_then(|bytes| codec::decode_sticky(bytes).ok());
                (key.clone(), stored)
            })
            .collect()
    }

    /// The writer's upsert after commit `seq` is on disk and before `durable_seq` says so:
    /// every written key takes its new record (or leaves), and its shard remembers `seq`.
    ///
    /// A rewarded record only replaces a cached one; it is not added. Rewards are what event
    /// pipelines write in bulk, mostly for units that are not being assigned right now, and
    /// adding them would fill the cache with units nobody reads (under a steady event stream
    /// the cache, and the server's memory, would keep growing until full). New and
    /// re-assigned units are added: their next page view usually follows soon.
    pub fn publish(&self, seq: u64, writes: StickyWrites) {
        for (key, stored) in writes {
            let Some(shard) = self.shard_of(&key) else {
                return;
            };
            let mut shard = lock(shard);
            shard.last_write_seq = shard.last_write_seq.max(seq);
            match stored {
                Some(stored) if stored.record.reward.is_some() => {
                    shard.replace_if_cached(&key, &stored);
                }
                Some(stored) => shard.upsert(key, stored),
                None => shard.remove(&key),
            }
        }
    }

    /// The shard of `key`, `None` when the cache is disabled. The shards' maps hash with the
    /// same keys, and std's map takes bucket positions from the low bits of a hash and tag
    /// bytes from its top 7, so the shard comes from the lowest bits above 32: the keys of
    /// one shard still spread over all of its map's buckets and tags.
    fn shard_of(&self, key: &[u8]) -> Option<&Mutex<Shard>> {
        if self.shards.is_empty() {
            return None;
        }
        let middle = self.hasher.hash_one(key) >> 32;
        let position = middle % self.shards.len() as u64;
        self.shards
            .get(usize::try_from(position).ok()?)
            .map(|padded| &padded.0)
    }
}

/// Locks a shard. A panic while one was held (it would be a bug here) may have left its map
/// and ring disagreeing, so a poisoned shard is emptied: an empty cache is always correct.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    match shard.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            guard.clear();
            shard.clear_poison();
            guard
        }
    }
}

impl Shard {
    fn new(capacity: usize, hasher: RandomState) -> Self {
        Shard {
            entries: HashMap::with_hasher(hasher),
            ring: Vec::new(),
            capacity,
            hand: 0,
            last_write_seq: 0,
            variants: HashSet::new(),
            hits: 0,
            misses: 0,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.ring.clear();
        self.variants.clear();
        self.hand = 0;
    }

    fn upsert(&mut self, key: Vec<u8>, stored: StoredSticky) {
        if !self.replace_if_cached(&key, &stored) {
            let variant = self.shared_variant(&stored.record.variant);
            self.insert_new(CacheKey::new(key), variant, &stored);
        }
    }

    /// Replaces the cached record of `key`, if there is one; whether there was.
    fn replace_if_cached(&mut self, key: &[u8], stored: &StoredSticky) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        let variant = self.shared_variant(&stored.record.variant);
        if let Some(entry) = self.entries.get_mut(key) {
            entry.variant = variant;
            entry.assigned_ms = stored.record.assigned_ms;
            entry.propensity = stored.record.propensity;
            entry.reward = stored.record.reward;
            entry.rewarded_ms = stored.record.rewarded_ms;
            entry.seq = stored.seq;
        }
        true
    }

    fn shared_variant(&mut self, variant: &str) -> Arc<str> {
        if let Some(shared) = self.variants.get(variant) {
            return Arc::clone(shared);
        }
        if self.variants.len() >= MAX_SHARED_VARIANTS {
            self.variants.clear();
        }
        let shared: Arc<str> = Arc::from(variant);
        self.variants.insert(Arc::clone(&shared));
        shared
    }

    /// Inserts a key known to be absent, evicting one entry if the shard is full.
    fn insert_new(&mut self, key: CacheKey, variant: Arc<str>, stored: &StoredSticky) {
        let ring_position = if self.ring.len() < self.capacity {
            self.ring.push(key.clone());
            self.ring.len() - 1
        } else {
            let Some(victim) = self.clock_victim() else {
                return;
            };
            let evicted = std::mem::replace(&mut self.ring[victim], key.clone());
            self.entries.remove(&evicted);
            victim
        };
        let entry = Entry {
            variant,
            assigned_ms: stored.record.assigned_ms,
            propensity: stored.record.propensity,
            reward: stored.record.reward,
            rewarded_ms: stored.record.rewarded_ms,
            seq: stored.seq,
            ring_position,
            referenced: false,
        };
        self.entries.insert(key, entry);
    }

    /// CLOCK: the first ring position from the hand whose entry's referenced bit is clear,
    /// clearing set bits on the way. Ends within one turn plus one step, since the first turn
    /// clears every bit. Each step is a map lookup, paid on a miss (which also pays a sled
    /// read) rather than on every hit.
    fn clock_victim(&mut self) -> Option<usize> {
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        loop {
            let position = self.hand % len;
            self.hand = (position + 1) % len;
            match self.entries.get_mut(&self.ring[position]) {
                Some(entry) if entry.referenced => entry.referenced = false,
                _ => return Some(position),
            }
        }
    }

    fn remove(&mut self, key: &[u8]) {
        let Some(removed) = self.entries.remove(key) else {
            return;
        };
        let position = removed.ring_position;
        if position >= self.ring.len() {
            return;
        }
        self.ring.swap_remove(position);
        // The former last key now sits at `position`; tell its entry.
        if let Some(moved) = self.ring.get(position)
            && let Some(entry) = self.entries.get_mut(moved)
        {
            entry.ring_position = position;
        }
        if self.hand >= self.ring.len() {
            self.hand = 0;
        }
    }
}

#[cfg(test)]
#[path = "sticky_cache_tests.rs"]
mod tests;
