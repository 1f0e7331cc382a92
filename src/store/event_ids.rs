//! The applied event ids of the sled store, in memory: one 64-bit keyed digest per id.
//!
//! Each applied event id used to be its own sled key (a new B-tree key costs sled 10–16 µs,
//! `benches/load/PROFILES.md`), plus its share of an expiry-index value. Now the writer keeps
//! the set of digests in memory ([`EventIdSet`]) and makes it durable through the event log
//! (`event_log`): each group commit appends the digests it added as a few compact values,
//! grouped by generation (the hour its ids may be forgotten), and startup replays them.
//!
//! **Digest.** SipHash-1-3 keyed with 128 random bits made when the store was created and kept
//! in it (`keys::META_EVENT_ID_KEY`), over the length-prefixed experiment id and the event id.
//! A client that does not know the key cannot choose ids that collide. Two different ids of
//! the same experiment collide with probability 2^-64 per pair, so with `n` ids kept, a new
//! id is wrongly taken for a duplicate (and not applied) with probability at most n / 2^64:
//! 5.4e-12 at 100 million kept ids, i.e. about one false duplicate in 1.8e11 events at that
//! size. A false duplicate is answered `Duplicate`; it can never apply an event twice.
//!
//! **Memory.** The set is a compact quotiented table of the bare digests (`digest_table`: the
//! digest is already uniformly distributed, so its slot implies most of its bits): 6 bytes per
//! slot from 2^24 slots (7 below), 74–93% full while it grows, 90% after a replay, i.e. about
//! 6.7 bytes per kept digest at tens of millions (8–10 at a million). Generations cost nothing in
//! memory: which digests expire together is read back from the log values being deleted
//! (`event_log::expire_due`).

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::digest_table::DigestTable;

/// Length of the per-store digest key.
pub const DIGEST_KEY_LEN: usize = 16;

/// Turns (experiment, event id) into the 64-bit digest the store keeps, with the store's key.
/// `PartialEq`: the writer checks digests carried to it were made with its own key
/// (`reward_digests`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Digester {
    key: [u8; DIGEST_KEY_LEN],
}

impl std::fmt::Debug for Digester {
    /// The key stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester { .. }")
    }
}

impl Digester {
    pub fn new(key: [u8; DIGEST_KEY_LEN]) -> Self {
        Digester { key }
    }

    /// A fresh random key for a new store.
    pub fn random_key() -> [u8; DIGEST_KEY_LEN] {
        rand::random()
    }

    /// The digest of `event_id` in `experiment`. Keyed by experiment, not epoch: a pipeline
    /// retrying an event after a revision bump is still retrying the same event. The
    /// experiment's length goes first, so ("ab", "c") and ("a", "bc") never share an input.
    pub fn digest(&self, experiment: &str, event_id: &str) -> u64 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write(&(experiment.len() as u64).to_le_bytes());
        hasher.write(experiment.as_bytes());
        hasher.write(event_id.as_bytes());
        hasher.finish()
    }

    /// The digest of a whole sled key (the sticky table's, `sticky_table`): the key's own
    /// encoding already keeps its parts apart.
    pub fn digest_bytes(&self, bytes: &[u8]) -> u64 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write(bytes);
        hasher.finish()
    }

    /// A hasher that has taken `prefix`: a clone of it that then takes `rest` finishes at
    /// [`Self::digest_bytes`] of `prefix` followed by `rest` (SipHash's `write` streams). A
    /// replay digests millions of sticky keys that share their kind and epoch
    /// (`unit_log::replay`).
    pub fn hasher_after(&self, prefix: &[u8]) -> SipHasher13 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write(prefix);
        hasher
    }
}

/// A set of digests, in the compact table of `digest_table`: 6 bytes a slot from 2^24 slots
/// (7 from 2^16), up to 93% full, growing by 5/4, each digest's high bits implied by its slot.
/// A big set's table is memory of its own (`table_memory`), returned to the kernel when the
/// set grows past it.
#[derive(Clone, Default)]
pub struct DigestSet {
    table: DigestTable,
}

impl std::fmt::Debug for DigestSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestSet")
            .field("len", &self.len())
            .finish()
    }
}

impl DigestSet {
    pub fn contains(&self, digest: u64) -> bool {
        self.table.contains(digest)
    }

    /// Adds `digest`; false if it was there already. One probe finds the digest or the slot
    /// it goes to (a random read into a table of millions of ids, the cache miss being the
    /// cost).
    pub fn insert(&mut self, digest: u64) -> bool {
        self.table.insert(digest)
    }

    /// Removes `digest`; false if it was not there.
    pub fn remove(&mut self, digest: u64) -> bool {
        self.table.remove(digest)
    }

    /// Starts loading the slot a probe for `digest` begins at (`DigestTable::prefetch`).
    pub fn prefetch(&self, digest: u64) {
        self.table.prefetch(digest);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The set of a table built at once (a startup replay, `digest_build`).
    pub fn from_table(table: DigestTable) -> Self {
        DigestSet { table }
    }

    /// Adds `digests` in one growth if they need one (`DigestTable::grow_with`); `false` (and
    /// nothing done) when they fit as they are.
    pub fn grow_with(&mut self, digests: impl ExactSizeIterator<Item = u64>) -> bool {
        self.table.grow_with(digests)
    }

    /// Makes room for `additional` more digests at once (a replay of a known size).
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional);
    }

    /// Gives back the room of a table bigger than its digests need (a replay that reserved
    /// for more): the digests move into a table at 90% load, if that is smaller.
    pub fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit();
    }

    /// Bytes the table holds on the heap (`DigestTable::heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

/// The durable set of applied event ids, as the writer holds it: the digests on disk, and the
/// key to make more. Changed only after the commit that wrote the change is durable.
#[derive(Debug, Clone, Default)]
pub struct EventIdSet {
    pub digester: Digester,
    pub kept: DigestSet,
}

impl EventIdSet {
    pub fn new(digester: Digester) -> Self {
        EventIdSet {
            digester,
            kept: DigestSet::default(),
        }
    }

    /// Applies a durable commit's changes: its removals (expired generations) first, then its
    /// additions (an id removed and applied again in one commit stays in).
    pub fn apply(&mut self, changes: &PendingIds) {
        for &digest in &changes.removed {
            self.kept.remove(digest);
        }
        // A commit that takes the set past its maximum load grows it once, first, and its
        // digests are placed with the set's (`DigestTable::grow_with`): a growth part-way
        // through a commit was followed by inserts that a placement makes for nothing.
        if self
            .kept
            .grow_with(changes.added.iter().map(|&(_, digest)| digest))
        {
            return;
        }
        // Each insert is a random read into the table (a cache miss at millions of ids): the
        // slot of the digest PREFETCH_AHEAD further on is asked for first.
        for (at, &(_, digest)) in changes.added.iter().enumerate() {
            if let Some(&(_, ahead)) = changes.added.get(at + PREFETCH_AHEAD) {
                self.kept.prefetch(ahead);
            }
            self.kept.insert(digest);
        }
    }
}

/// How many inserts ahead [`EventIdSet::apply`] prefetches a digest's slot: enough to cover a
/// memory read at one insert's cost, few enough to stay in the cache (as the sticky table's
/// prefetch in `apply`).
const PREFETCH_AHEAD: usize = 8;

/// The event-id changes of one request or one group commit, not yet durable: digests added
/// (with the due time of their generation, which decides their log value) and digests of
/// expired generations removed.
#[derive(Debug, Default)]
pub struct PendingIds {
    /// (generation due time, digest), in the order the requests applied them.
    pub added: Vec<(u64, u64)>,
    added_set: TransientDigests,
    pub removed: Vec<u64>,
    removed_set: TransientDigests,
}

/// The digests of one request's or one commit's changes, for the length of a commit: a
/// `hashbrown` table, each digest its own hash. The compact table's saving does not matter
/// for a few thousand digests held for milliseconds, and grown from empty by 5/4 it cost a
/// 1,000-event POST ~18 rebuilds (bulk ingest: `benches/load/results/grow5-2026-12-01-s10.md`).
#[derive(Debug, Default)]
struct TransientDigests(HashTable<u64>);

impl TransientDigests {
    fn contains(&self, digest: u64) -> bool {
        self.0.find(digest, |&kept| kept == digest).is_some()
    }

    /// Adds `digest`; false if it was there already.
    fn insert(&mut self, digest: u64) -> bool {
        match self.0.entry(digest, |&kept| kept == digest, |&kept| kept) {
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                free.insert(digest);
                true
            }
        }
    }
}

impl PendingIds {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Whether `digest` is applied as far as these pending changes say: `Some(true)` if added
    /// here, `Some(false)` if removed here (and not added again), `None` if untouched.
    pub fn seen(&self, digest: u64) -> Option<bool> {
        if self.added_set.contains(digest) {
            Some(true)
        } else if self.removed_set.contains(digest) {
            Some(false)
        } else {
            None
        }
    }

    /// Makes room for `additional` more added digests at once (a request of rewards: at most
    /// one each).
    pub fn reserve(&mut self, additional: usize) {
        self.added.reserve(additional);
        self.added_set.0.reserve(additional, |&kept| kept);
    }

    pub fn add(&mut self, due_ms: u64, digest: u64) {
        if self.added_set.insert(digest) {
            self.added.push((due_ms, digest));
        }
    }

    pub fn remove(&mut self, digest: u64) {
        if self.removed_set.insert(digest) {
            self.removed.push(digest);
        }
    }

    /// Takes over a later request's changes (once it succeeded).
    pub fn append(&mut self, later: PendingIds) {
        if self.is_empty() {
            *self = later;
            return;
        }
        for digest in later.removed {
            self.remove(digest);
        }
        for (due_ms, digest) in later.added {
            self.add(due_ms, digest);
        }
    }
}

#[cfg(test)]
#[path = "event_ids_tests.rs"]
mod tests;
