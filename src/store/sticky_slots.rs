//! [`Slots`]: one shard of the sticky table's slots (`sticky_table`), in an open-addressing
//! hash table with linear probing and Robin Hood ordering.
//!
//! **Why not a vector and an index.** The table used to keep its 24-byte slots in a dense
//! vector found through a `hashbrown` index of 4-byte positions. Both grew by doubling, so a
//! unit cost 24 bytes at a vector load between 1/2 and 1 plus 5 bytes per index bucket at a
//! load between 7/16 and 7/8 (29.7–59.4 bytes), and a replay's doublings left the process 83–86
//! bytes per unit (`benches/load/results/restart-units-2026-11-30.md`). Here the slots ARE the
//! hash table: no index, no position, and the table may run fuller than a `hashbrown` one
//! because a lookup reads neighbouring slots on the same or the next cache line, not one
//! control group and then a slot elsewhere.
//!
//! **Memory.** `24 / load` bytes per unit. The table grows by [`GROWTH_NUM`]/[`GROWTH_DEN`]
//! (×1.2) once an insert would take it past [`MAX_LOAD_PERCENT`] (92%), so between growths its
//! load stays between 0.92 / 1.2 = 0.767 and 0.92: 26.1–31.3 bytes per unit. A replay starts
//! from a table presized for the units the store held last ([`Slots::presize`], `size_hint`);
//! past that it grows by doubling (fewer rehashes on the way), and it ends resized to
//! [`REPLAYED_LOAD_PERCENT`] (90%) unless presizing already put it near that load: 26.7 bytes
//! per unit after a restart (28.2 at 85% until `benches/load/results/mem6-2026-12-01-s11.md`:
//! the serving range is the same, a restart only packs the table tighter, and the first ~2%
//! more units grow a shard at a time, 1/64 of the table each). A growth allocates the new shard before it frees the old one, so
//! the spike is one shard's (1/64 of the table), not the table's; a big shard's array is a
//! mapping of its own (`table_memory`), so the old one leaves the process when freed.
//!
//! **Cost.** With a load α, a lookup of a present digest reads ½(1 + 1/(1 − α)) slots on
//! average (6.8 at 0.92, contiguous: about three cache lines), and Robin Hood ordering ends a
//! lookup of an absent digest as soon as it meets a slot closer to its home than the probe is:
//! about as short. An insert shifts the rest of its run by one slot (½(1 + 1/(1 − α)²) slots
//! on average, 78 at 0.92: a copy of under 2 KB). A removal shifts the following run back
//! (backward-shift deletion, no tombstones).

use super::cache_hint::prefetch_read;
use super::table_memory::TableMemory;

/// One unit's assignment, packed (see `sticky_table`'s module docs). `packed == EMPTY` marks
/// a free slot: no record packs to it (see [`EMPTY`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Slot {
    pub digest: u64,
    /// assigned_ms (48 bits) · variant index (15 bits) · rewarded (1 bit).
    pub packed: u64,
    pub propensity: f64,
}

/// The `packed` word of a free slot: every bit set. A packed record never has it: its variant
/// index is below `SPILLED` (the all-ones 15 bits), or it is a spilled slot whose packed word
/// holds only `SPILLED` (no time, no rewarded bit).
pub(super) const EMPTY: u64 = u64::MAX;

const FREE: Slot = Slot {
    digest: 0,
    packed: EMPTY,
    propensity: 0.0,
};

/// Past this load (in percent of the slots), an insert grows the table first.
pub(super) const MAX_LOAD_PERCENT: usize = 92;
/// The load a replayed shard is resized to ([`Slots::fit`]).
pub(super) const REPLAYED_LOAD_PERCENT: usize = 90;
/// How far below [`REPLAYED_LOAD_PERCENT`] a presized table may end its replay and be kept.
pub(super) const PRESIZED_SLACK_PERCENT: usize = 5;
/// Growth factor of a serving table: ×6/5.
const GROWTH_NUM: usize = 6;
const GROWTH_DEN: usize = 5;
/// The smallest table a shard allocates.
const MIN_CAPACITY: usize = 16;

/// A shard's slot array, in memory of its own once it is big (`table_memory`).
type SlotVec = allocator_api2::vec::Vec<Slot, TableMemory>;

/// One shard's slots (see the module docs).
#[derive(Debug)]
pub(super) struct Slots {
    slots: SlotVec,
    len: usize,
    /// Grow by doubling (during a replay) rather than by ×1.2.
    bulk: bool,
    /// Sized by [`Slots::presize`] for the replay under way.
    presized: bool,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: SlotVec::new_in(TableMemory),
            len: 0,
            bulk: false,
            presized: false,
        }
    }
}

impl Slots {
    /// Units held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Doubles on growth until [`Self::fit`] (a replay: many inserts, then a resize).
    pub fn set_bulk(&mut self, bulk: bool) {
        self.bulk = bulk;
    }

    /// The slot of `digest`.
    pub fn get(&self, digest: u64) -> Option<Slot> {
        self.find(digest).map(|at| self.slots[at])
    }

    /// Asks the CPU to start loading the cache lines where `digest`'s probe starts, so that a
    /// lookup a few records later does not wait for memory (a table of millions of units is
    /// far larger than the caches, and every lookup lands somewhere random in it).
    pub fn prefetch(&self, digest: u64) {
        if self.slots.is_empty() {
            return;
        }
        let home = self.home(digest);
        prefetch_read(&self.slots[home]);
        // A probe reads about seven slots at the highest load: the next cache line too.
        prefetch_read(&self.slots[(home + 3) % self.slots.len()]);
    }

    /// Puts `slot` in place of its digest's slot, or adds it. Answers the slot it replaced.
    ///
    /// One walk of the digest's run when the table has room: it ends at the digest (replaced),
    /// a free slot, or the first slot nearer its home than the walk is to ours, which by the
    /// Robin Hood order means the digest is absent and goes there ([`Self::insert_new`]'s walk
    /// from that point). A replay puts ~10M records, each a walk `find` then `insert_new` did
    /// twice.
    pub fn put(&mut self, slot: Slot) -> Option<Slot> {
        if (self.len + 1) * 100 > self.capacity() * MAX_LOAD_PERCENT {
            if let Some(at) = self.find(slot.digest) {
                return Some(std::mem::replace(&mut self.slots[at], slot));
            }
            let capacity = self.capacity();
            let grown = if self.bulk {
                capacity * 2
            } else {
                capacity * GROWTH_NUM / GROWTH_DEN
            };
            self.resize(grown.max(MIN_CAPACITY));
            self.insert_new(slot);
            return None;
        }
        let capacity = self.capacity();
        let mut at = self.home(slot.digest);
        for distance in 0..capacity {
            let here = self.slots[at];
            if here.packed != EMPTY && here.digest == slot.digest {
                self.slots[at] = slot;
                return Some(here);
            }
            if here.packed == EMPTY || self.distance(at, here.digest) < distance {
                self.carry(at, slot, distance);
                return None;
            }
            at = if at + 1 == capacity { 0 } else { at + 1 };
        }
        // Not reached: the load check above leaves a free slot.
        self.carry(at, slot, capacity);
        None
    }

    /// Removes `digest`'s slot; the slots after it in its run move back by one.
    pub fn take(&mut self, digest: u64) -> Option<Slot> {
        let mut at = self.find(digest)?;
        let removed = self.slots[at];
        let capacity = self.capacity();
        loop {
            let next = if at + 1 == capacity { 0 } else { at + 1 };
            let moved = self.slots[next];
            if moved.packed == EMPTY || self.home(moved.digest) == next {
                break;
            }
            self.slots[at] = moved;
            at = next;
        }
        self.slots[at] = FREE;
        self.len -= 1;
        Some(removed)
    }

    /// Before a replay of about `units` units: allocates the table a replay of that many ends
    /// with ([`REPLAYED_LOAD_PERCENT`]), so that it need not grow on the way (`size_hint`).
    pub fn presize(&mut self, units: usize) {
        let sized = (units.saturating_mul(100)).div_ceil(REPLAYED_LOAD_PERCENT);
        if units > 0 && sized > self.capacity() {
            self.resize(sized.max(MIN_CAPACITY));
            self.presized = true;
        }
    }

    /// Ends a replay: resizes to [`REPLAYED_LOAD_PERCENT`] (the table may shrink to it, since a
    /// replay doubles) and grows by ×1.2 from now on. A table presized for the replay
    /// ([`Self::presize`]) that ended within [`PRESIZED_SLACK_PERCENT`] points below that load
    /// (or above it, below [`MAX_LOAD_PERCENT`]) is kept as it is: no second copy of the table.
    pub fn fit(&mut self) {
        self.bulk = false;
        let presized = std::mem::take(&mut self.presized);
        let fitted = (self.len * 100).div_ceil(REPLAYED_LOAD_PERCENT);
        if presized
            && self.len * 100 >= self.capacity() * (REPLAYED_LOAD_PERCENT - PRESIZED_SLACK_PERCENT)
        {
            return;
        }
        if self.len == 0 {
            self.slots = SlotVec::new_in(TableMemory);
        } else if fitted != self.capacity() {
            self.resize(fitted.max(MIN_CAPACITY));
        }
    }

    /// The position of `digest`'s slot: probes from its home until the digest, a free slot,
    /// or a slot nearer its own home than the probe is to ours (Robin Hood: ours would have
    /// taken that place).
    fn find(&self, digest: u64) -> Option<usize> {
        let capacity = self.capacity();
        if capacity == 0 {
            return None;
        }
        let mut at = self.home(digest);
        for distance in 0..capacity {
            let slot = &self.slots[at];
            if slot.packed == EMPTY || self.distance(at, slot.digest) < distance {
                return None;
            }
            if slot.digest == digest {
                return Some(at);
            }
            at = if at + 1 == capacity { 0 } else { at + 1 };
        }
        None
    }

    /// Inserts a digest known to be absent, with room for it.
    fn insert_new(&mut self, slot: Slot) {
        self.carry(self.home(slot.digest), slot, 0);
    }

    /// Inserts `carried`, known to be absent, at `at`, `distance` slots past its home, or
    /// further on: each slot nearer its own home than the one carried gives way and is
    /// carried on (Robin Hood).
    fn carry(&mut self, mut at: usize, mut carried: Slot, mut distance: usize) {
        let capacity = self.capacity();
        loop {
            let here = self.slots[at];
            if here.packed == EMPTY {
                self.slots[at] = carried;
                self.len += 1;
                return;
            }
            let theirs = self.distance(at, here.digest);
            if theirs < distance {
                self.slots[at] = carried;
                carried = here;
                distance = theirs;
            }
            at = if at + 1 == capacity { 0 } else { at + 1 };
            distance += 1;
        }
    }

    /// Moves the slots into a new array of `capacity`; the old one is freed after (unmapped
    /// at once if it had a mapping of its own, `table_memory`).
    fn resize(&mut self, capacity: usize) {
        let mut fresh = SlotVec::with_capacity_in(capacity, TableMemory);
        fresh.resize(capacity, FREE);
        let old = std::mem::replace(&mut self.slots, fresh);
        self.len = 0;
        for slot in old.iter().filter(|slot| slot.packed != EMPTY) {
            self.insert_new(*slot);
        }
    }

    /// Where a digest's probe starts: the digest scaled to the capacity (Lemire's
    /// multiply-shift, no division). The digest is a keyed SipHash, so its bits are uniform;
    /// the multiply spreads the bits the shard was chosen by (`sticky_table::padded`).
    fn home(&self, digest: u64) -> usize {
        let mixed = digest.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(mixed) * self.capacity() as u128) >> 64) as usize
    }

    /// How far `at` is past the home of `digest`, wrapping around the end.
    fn distance(&self, at: usize, digest: u64) -> usize {
        let home = self.home(digest);
        if at >= home {
            at - home
        } else {
            at + self.capacity() - home
        }
    }
}

#[cfg(test)]
#[path = "sticky_slots_tests.rs"]
mod tests;
