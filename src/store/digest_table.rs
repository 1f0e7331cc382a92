//! [`DigestTable`]: a set of uniformly distributed 64-bit digests in 6–8 bytes per slot, the
//! table behind the kept event ids (`event_ids::DigestSet`).
//!
//! **Why.** A `hashbrown` table of `u64`s costs 8 bytes plus a control byte per slot and runs
//! between 7/16 and 7/8 full (it doubles): 10.3–20.6 bytes per digest. A digest is already a
//! uniform hash, so most of its bits can be implied by where it sits: this table stores a
//! digest in 6 bytes once it has 2^24 homes (7 bytes from 2^16, 8 below), runs up to
//! [`MAX_LOAD_PERCENT`] full and grows by [`GROWTH_NUM`]/[`GROWTH_DEN`].
//!
//! **Layout.** Open addressing over `m` homes with linear probing, Robin Hood order (a run is
//! sorted by home, so a probe stops at the first slot closer to its home than the probe is)
//! and backward-shift deletion (no tombstones). A digest's home is
//! `home(d) = ⌊d · m / 2^64⌋` ("fastrange", Lemire 2019, "Fast random integer generation in an
//! interval"), so `m` need not be a power of two. Past the last home there are
//! `max_displacement` more slots, so a run never wraps around; after them, 8 zero bytes let
//! every slot be read as one unaligned 8-byte load.
//!
//! **Quotienting** (Knuth, TAOCP vol. 3, §6.4, exercise 13; Cleary 1984, "Compact hash
//! tables using bidirectional linear probing"). With `q = ⌊log2 m⌋` and `s = 64 − q`, a slot
//! holds only the digest's low `s` bits (its remainder) and, above them, its displacement from
//! its home plus one (its tag; tag 0 is a free slot, so no digest value is reserved). The
//! home and the remainder give back the whole digest:
//!
//! - The digests with home `h` are the integers `d` with `h · 2^64 ≤ d · m < (h + 1) · 2^64`:
//!   consecutive integers, at most `⌈2^64 / m⌉ ≤ 2^s` of them (`2^s = 2^64 / 2^q ≥ 2^64 / m`
//!   and `2^s` is an integer). So two digests with the same home and the same remainder
//!   `d mod 2^s` are equal: comparing (home, remainder) is comparing digests.
//! - Recovery ([`Geometry::digest`]): let `t = ⌊h · 2^q / m⌋`. From `d ≥ h · 2^64 / m`,
//!   `d / 2^s ≥ h · 2^q / m ≥ t`; from `d < (h + 1) · 2^64 / m ≤ h · 2^64 / m + 2^s`,
//!   `d / 2^s < h · 2^q / m + 1 < t + 2`. So `⌊d / 2^s⌋` is `t` or `t + 1`, and `d` is whichever
//!   of `t · 2^s + r` and `(t + 1) · 2^s + r` has home `h` (exactly one does, by the first
//!   point).
//!
//! Slot widths: `s + 8` bits rounded up to bytes, at most 8 (the tag gets what is left, at
//! least 8 bits from 256 homes, `q` bits below): 6 bytes from 2^24 homes (`s ≤ 40`), 7 from
//! 2^16, 8 below. A displacement is capped at [`MAX_DISPLACEMENT`] (and at what the tag can
//! hold). An insert that would push a digest past it (which random digests at load 0.93 do not
//! come near: the ignored test `the_longest_displacement_at_the_maximum_load_is_measured`) grows the table if it is at least
//! half full, and otherwise puts the digest in a small spill set (a `hashbrown` table) that
//! lookups read only when it is not empty: digests that share a home past the limit (which a
//! client cannot choose, the digests being keyed) cost memory and time, never exactness.
//!
//! **Memory.** `width / load` bytes per digest: between [`MAX_LOAD_PERCENT`] (93%) and 93%
//! divided by the growth factor (74.4%), i.e. 6.45–8.06 bytes at 6 bytes a slot. A table
//! fitted after a replay ([`DigestTable::shrink_to_fit`], [`DigestTable::reserve`]) runs at
//! [`FITTED_LOAD_PERCENT`] (90%): 6.67 bytes, 3% short of its next growth. (Until
//! `benches/load/results/mem6-2026-12-01-s11.md` these were 90% and 85%, 7.06 bytes after a
//! replay: with two digests per credited id, 0.8 B per kept id more.) The slot bytes come from [`TableMemory`] (a big
//! table is a mapping of its own, returned to the kernel when the table grows past it); a
//! growth holds the old and the new array at once, then frees the old one.
//!
//! **Cost.** At load α a lookup of a kept digest reads about ½(1 + 1/(1 − α)) slots (5.5 at
//! 0.9, 7.6 at 0.93: 33–46 bytes, one or two cache lines); an insert rewrites the rest of its
//! run, each slot's tag one higher (½(1 + 1/(1 − α)²) slots on average, 50 at 0.9, 103 at
//! 0.93: a few hundred bytes); a growth recovers every digest (one 64-bit division) and places
//! it again. Measured at 20M digests: the ignored test
//! `probe_lengths_at_fitted_loads_are_measured`.

use allocator_api2::vec::Vec as AllocVec;
use hashbrown::HashTable;

use super::cache_hint::prefetch_read;
use super::table_memory::{TableMemory, zeroed_bytes};

/// Past this load (digests per home, in percent), an insert grows the table first.
pub const MAX_LOAD_PERCENT: usize = 93;
/// The load [`DigestTable::reserve`] and [`DigestTable::shrink_to_fit`] size a table for.
pub const FITTED_LOAD_PERCENT: usize = 90;
/// How far below [`FITTED_LOAD_PERCENT`] a table may run before `shrink_to_fit` rebuilds it.
const FIT_SLACK_PERCENT: usize = 5;
/// Growth factor of a full table: ×5/4.
pub const GROWTH_NUM: usize = 5;
pub const GROWTH_DEN: usize = 4;
/// The fewest homes a table has.
pub const MIN_HOMES: usize = 16;
/// The longest displacement a slot may hold, whatever its tag width (a table of `m` homes has
/// this many slots past them).
pub const MAX_DISPLACEMENT: usize = 254;
/// Zero bytes after the last slot, so that any slot (and the one past the last) reads as one
/// 8-byte load.
const LOAD_PADDING: usize = 8;

/// The shape of a table of `homes` homes: slot width, remainder bits, slots (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub homes: usize,
    /// Bytes per slot.
    pub width: usize,
    /// Bits of a digest a slot keeps (`s = 64 − ⌊log2 homes⌋`).
    pub remainder_bits: u32,
    pub max_displacement: usize,
    /// Homes plus the slots past them a run may reach.
    pub slots: usize,
}

impl Geometry {
    /// The geometry of a table of `homes` homes (at least [`MIN_HOMES`]).
    pub fn new(homes: usize) -> Geometry {
        let homes = homes.max(MIN_HOMES);
        let quotient_bits = homes.ilog2();
        let remainder_bits = 64 - quotient_bits;
        let width = (remainder_bits + 8).div_ceil(8).min(8);
        let tag_bits = width * 8 - remainder_bits;
        let max_displacement = ((1usize << tag_bits) - 2).min(MAX_DISPLACEMENT);
        Geometry {
            homes,
            width: width as usize,
            remainder_bits,
            max_displacement,
            slots: homes + max_displacement,
        }
    }

    /// `⌊digest · homes / 2^64⌋`.
    pub fn home(&self, digest: u64) -> usize {
        ((u128::from(digest) * self.homes as u128) >> 64) as usize
    }

    pub fn remainder(&self, digest: u64) -> u64 {
        digest & self.remainder_mask()
    }

    /// The digest with this home and remainder (module docs, "Quotienting").
    pub fn digest(&self, home: usize, remainder: u64) -> u64 {
        let quotient_bits = 64 - self.remainder_bits;
        // `home < homes < 2^(q + 1)`, so `home · 2^q` fits 64 bits while q ≤ 31.
        let top = if quotient_bits <= 31 {
            ((home as u64) << quotient_bits) / self.homes as u64
        } else {
            (((home as u128) << quotient_bits) / self.homes as u128) as u64
        };
        let low = (top << self.remainder_bits) | remainder;
        if self.home(low) == home {
            low
        } else {
            low.wrapping_add(1 << self.remainder_bits)
        }
    }

    fn remainder_mask(&self) -> u64 {
        (1u64 << self.remainder_bits) - 1
    }

    /// The bits of an 8-byte load that belong to the slot.
    fn slot_mask(&self) -> u64 {
        if self.width == 8 {
            u64::MAX
        } else {
            (1u64 << (self.width * 8)) - 1
        }
    }

    /// Digests the table holds before an insert grows it.
    fn max_len(&self) -> usize {
        self.homes * MAX_LOAD_PERCENT / 100
    }

    fn bytes(&self) -> usize {
        self.slots * self.width + LOAD_PADDING
    }
}

/// Homes for `len` digests at [`FITTED_LOAD_PERCENT`].
fn fitted_homes(len: usize) -> usize {
    (len * 100).div_ceil(FITTED_LOAD_PERCENT).max(MIN_HOMES)
}

/// Where a probe for a digest ended.
enum Probe {
    Found(usize),
    /// Not in the table: it would go at `at`, `displacement` slots past its home.
    Free {
        at: usize,
        displacement: usize,
    },
}

/// See the module docs.
#[derive(Clone)]
pub struct DigestTable {
    /// `None` until the first insert or reserve: an empty table allocates nothing.
    geometry: Option<Geometry>,
    bytes: AllocVec<u8, TableMemory>,
    /// Digests in the slots (the spill's are counted by it).
    stored: usize,
    /// Digests whose displacement would overflow (module docs); almost always empty.
    spill: HashTable<u64>,
}

impl Default for DigestTable {
    fn default() -> Self {
        DigestTable {
            geometry: None,
            bytes: AllocVec::new_in(TableMemory),
            stored: 0,
            spill: HashTable::new(),
        }
    }
}

impl std::fmt::Debug for DigestTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestTable")
            .field("len", &self.len())
            .field("geometry", &self.geometry)
            .field("spilled", &self.spill.len())
            .finish()
    }
}

impl DigestTable {
    pub fn len(&self) -> usize {
        self.stored + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    /// The longest displacement of a digest in the slots.
    #[cfg(test)]
    pub fn longest_displacement(&self) -> usize {
        self.occupied()
            .iter()
            .map(|&(_, displacement, _)| displacement)
            .max()
            .unwrap_or(0)
    }

    /// Slots a lookup of `digest` reads, the one that ends it included (its probe length).
    #[cfg(test)]
    pub fn slots_read(&self, digest: u64) -> usize {
        match self.probe(digest) {
            Probe::Found(at) | Probe::Free { at, .. } => {
                at + 1 - self.geometry.map_or(0, |geometry| geometry.home(digest))
            }
        }
    }

    /// Slots an insert of the absent `digest` moves one on (the rest of its run), if it fits.
    #[cfg(test)]
    pub fn slots_moved(&self, digest: u64) -> Option<usize> {
        let geometry = self.geometry?;
        match self.probe(digest) {
            Probe::Found(_) => None,
            Probe::Free { at, displacement } => self
                .run_end(at, displacement, &geometry)
                .map(|end| end - at),
        }
    }

    /// Digests held in the spill set rather than the slots.
    #[cfg(test)]
    pub fn spilled(&self) -> usize {
        self.spill.len()
    }

    pub fn contains(&self, digest: u64) -> bool {
        match self.probe(digest) {
            Probe::Found(_) => true,
            Probe::Free { .. } => self.spill_contains(digest),
        }
    }

    /// Starts loading the slot where a probe for `digest` begins (`cache_hint`): a loop over
    /// known digests asks for one a few iterations before it probes for it.
    pub fn prefetch(&self, digest: u64) {
        if let Some(geometry) = self.geometry
            && let Some(byte) = self.bytes.get(geometry.home(digest) * geometry.width)
        {
            prefetch_read(byte);
        }
    }

    /// Adds `digest`; false if it was there already.
    pub fn insert(&mut self, digest: u64) -> bool {
        let Probe::Free { at, displacement } = self.probe(digest) else {
            return false;
        };
        if self.spill_contains(digest) {
            return false;
        }
        if self.len() >= self.geometry.map_or(0, |geometry| geometry.max_len()) {
            self.rebuild(self.grown_homes(self.len() + 1));
            self.insert_absent(digest);
        } else {
            self.insert_at(digest, at, displacement);
        }
        true
    }

    /// Removes `digest`; false if it was not there.
    pub fn remove(&mut self, digest: u64) -> bool {
        match self.probe(digest) {
            Probe::Found(at) => {
                self.shift_back(at);
                self.stored -= 1;
                true
            }
            Probe::Free { .. } => {
                if self.spill.is_empty() {
                    return false;
                }
                match self.spill.find_entry(digest, |&kept| kept == digest) {
                    Ok(entry) => {
                        entry.remove();
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// A table of `digests` (any order, repeats allowed) at [`FITTED_LOAD_PERCENT`], built at
    /// once: sorted, then placed in ascending order ([`Placement`]). The replay's own path,
    /// which never holds the digests in one array, is `digest_build`.
    pub fn from_digests(mut digests: Vec<u64>) -> DigestTable {
        super::digest_build::sort_digests(&mut digests);
        digests.dedup();
        let mut placement = Placement::new(digests.len());
        for digest in digests {
            placement.push(digest);
        }
        placement.finish()
    }

    /// Adds `digests` (any order, repeats allowed) in one growth when they could take the table
    /// past its maximum load; `false` (and nothing done) when they fit without one. The growth
    /// is the one their inserts would have made (by at least [`GROWTH_NUM`]/[`GROWTH_DEN`],
    /// enough for them all at [`MAX_LOAD_PERCENT`]), made first and once, not part-way and
    /// perhaps again; and the digests are placed into the grown table with the ones it held,
    /// in order ([`Placement`]), with no probe or run shift each. A commit of a bulk request's
    /// event ids (`event_ids::EventIdSet::apply`) is a thousand digests.
    pub fn grow_with(&mut self, digests: impl ExactSizeIterator<Item = u64>) -> bool {
        let wanted = self.len().saturating_add(digests.len());
        if wanted <= self.geometry.map_or(0, |geometry| geometry.max_len()) {
            return false;
        }
        let mut sorted: Vec<u64> = digests.collect();
        sorted.sort_unstable();
        self.rebuild_with(self.grown_homes(wanted), &sorted);
        true
    }

    /// Makes room for `additional` more digests at once (a replay of a known size): the table
    /// is rebuilt for them at [`FITTED_LOAD_PERCENT`] if they would take it past its maximum.
    pub fn reserve(&mut self, additional: usize) {
        let wanted = self.len().saturating_add(additional);
        if wanted > self.geometry.map_or(0, |geometry| geometry.max_len()) {
            self.rebuild(fitted_homes(wanted));
        }
    }

    /// Gives back the room of a table running more than [`FIT_SLACK_PERCENT`] points below
    /// [`FITTED_LOAD_PERCENT`] (a replay that reserved for more): rebuilt at that load. An
    /// empty table gives back everything.
    pub fn shrink_to_fit(&mut self) {
        let Some(geometry) = self.geometry else {
            return;
        };
        if self.is_empty() {
            *self = DigestTable::default();
            return;
        }
        let fitted = fitted_homes(self.len());
        if fitted < geometry.homes
            && self.len() * 100 < geometry.homes * (FITTED_LOAD_PERCENT - FIT_SLACK_PERCENT)
        {
            self.rebuild(fitted);
        }
    }

    /// Bytes held on the heap: the slot array (its capacity is its length) and the spill
    /// set's `hashbrown` allocation.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + hashbrown_u64_bytes(self.spill.capacity())
    }

    /// The slots' tags and remainders, for the tests: (slot, displacement, remainder) of every
    /// occupied slot, in slot order.
    #[cfg(test)]
    pub(super) fn occupied(&self) -> Vec<(usize, usize, u64)> {
        let Some(geometry) = self.geometry else {
            return Vec::new();
        };
        (0..geometry.slots)
            .filter_map(|at| {
                let slot = self.load(at, &geometry);
                let tag = slot >> geometry.remainder_bits;
                (tag != 0).then(|| (at, tag as usize - 1, slot & geometry.remainder_mask()))
            })
            .collect()
    }

    fn spill_contains(&self, digest: u64) -> bool {
        !self.spill.is_empty() && self.spill.find(digest, |&kept| kept == digest).is_some()
    }

    fn probe(&self, digest: u64) -> Probe {
        let Some(geometry) = self.geometry else {
            return Probe::Free {
                at: 0,
                displacement: 0,
            };
        };
        let home = geometry.home(digest);
        let remainder = geometry.remainder(digest);
        let mut at = home;
        let mut wanted_tag = 1u64;
        loop {
            // Reads at most one slot past the last: its bytes are the zero padding (a free slot).
            let slot = self.load(at, &geometry);
            let tag = slot >> geometry.remainder_bits;
            // A free slot (tag 0), or a digest nearer its home than this probe is: Robin Hood
            // order puts the digest, if kept, before it.
            if tag < wanted_tag {
                return Probe::Free {
                    at,
                    displacement: (wanted_tag - 1) as usize,
                };
            }
            if tag == wanted_tag && slot & geometry.remainder_mask() == remainder {
                return Probe::Found(at);
            }
            at += 1;
            wanted_tag += 1;
        }
    }

    /// Inserts a digest known to be absent into a table with room for it.
    fn insert_absent(&mut self, digest: u64) {
        if let Probe::Free { at, displacement } = self.probe(digest) {
            self.insert_at(digest, at, displacement);
        }
    }

    /// Puts `digest` at `at`, `displacement` past its home, shifting the rest of the run one
    /// slot on; if a displacement would overflow, grows the table (at least half full) or
    /// spills the digest.
    fn insert_at(&mut self, digest: u64, at: usize, displacement: usize) {
        let Some(geometry) = self.geometry else {
            return;
        };
        match self.run_end(at, displacement, &geometry) {
            Some(end) => {
                slots::shift_run(&mut self.bytes, at, end, &geometry);
                let tag = displacement as u64 + 1;
                let slot = (tag << geometry.remainder_bits) | geometry.remainder(digest);
                slots::write_slot(&mut self.bytes, at, slot, &geometry);
                self.stored += 1;
            }
            None if self.len() * 2 >= geometry.homes => {
                self.rebuild(self.grown_homes(self.len() + 1));
                self.insert_absent(digest);
            }
            None => {
                self.spill.insert_unique(digest, digest, |&kept| kept);
            }
        }
    }

    /// The free slot that ends the run from `at`, if the insert can shift the run onto it
    /// with no displacement past the maximum.
    fn run_end(&self, at: usize, displacement: usize, geometry: &Geometry) -> Option<usize> {
        slots::run_end(&self.bytes, at, displacement, geometry)
    }

    /// Removes the digest at `at`: every following digest of the run that is not at its home
    /// moves one slot back.
    fn shift_back(&mut self, at: usize) {
        let Some(geometry) = self.geometry else {
            return;
        };
        let one = 1u64 << geometry.remainder_bits;
        let mut hole = at;
        loop {
            let next = self.load(hole + 1, &geometry);
            if next >> geometry.remainder_bits <= 1 {
                self.store(hole, 0, &geometry);
                return;
            }
            self.store(hole, next - one, &geometry);
            hole += 1;
        }
    }

    /// Homes after a growth that must hold `len` digests.
    fn grown_homes(&self, len: usize) -> usize {
        let grown = self.geometry.map_or(0, |geometry| {
            geometry.homes.saturating_mul(GROWTH_NUM) / GROWTH_DEN
        });
        grown.max(len * 100 / MAX_LOAD_PERCENT + 1).max(MIN_HOMES)
    }

    /// Moves every digest into a new table of `homes` homes (the old array is freed after).
    ///
    /// The old slots are read front to back, which gives the digests by old home: ascending
    /// (homes are monotonic in the digest), but for the few that share a home (kept in the
    /// order they came), which are sorted among themselves. So they are placed in order
    /// ([`Placement`]), with no probe or run shift per digest, and the grown table is laid out
    /// as one built at once from its digests. Re-inserting them cost a little more: a 1M fill
    /// from empty (growths included) 301–317 ms before, 277–305 ms after
    /// (`benches/digest_table.rs`, alternated, loaded machine). What keeps the fill ~6× the
    /// hashbrown table's is the inserts themselves (module docs, "Cost"). A home's digests
    /// are held back only while the next one might share it ([`SameHome`]), and the slots
    /// are read and written at their width (`digest_table_slots`).
    fn rebuild(&mut self, homes: usize) {
        self.rebuild_with(homes, &[]);
    }

    /// [`DigestTable::rebuild`], adding the digests of `sorted` (ascending, repeats allowed,
    /// some perhaps held already): each is placed in order among the held ones.
    fn rebuild_with(&mut self, homes: usize, mut sorted: &[u64]) {
        let mut placement = Placement::with_homes(homes);
        if let Some(old) = self.geometry {
            let mut same_home = SameHome::default();
            slots::for_each_digest(&self.bytes, &old, |home, digest| {
                same_home.push(&mut placement, &mut sorted, home, digest);
            });
            same_home.flush(&mut placement, &mut sorted);
        }
        for &digest in sorted {
            placement.push(digest);
        }
        let mut rebuilt = placement.table;
        for &digest in self.spill.iter() {
            rebuilt.insert_absent(digest);
        }
        *self = rebuilt;
    }

    fn load(&self, at: usize, geometry: &Geometry) -> u64 {
        let offset = at * geometry.width;
        let mut word = [0; 8];
        word.copy_from_slice(&self.bytes[offset..offset + 8]);
        u64::from_le_bytes(word) & geometry.slot_mask()
    }

    /// Writes `slot` (its `width` low bytes) at `at`, leaving the bytes after it as they are.
    fn store(&mut self, at: usize, slot: u64, geometry: &Geometry) {
        let offset = at * geometry.width;
        let word = &mut self.bytes[offset..offset + 8];
        let mut old = [0; 8];
        old.copy_from_slice(word);
        let mask = geometry.slot_mask();
        let merged = (u64::from_le_bytes(old) & !mask) | slot;
        word.copy_from_slice(&merged.to_le_bytes());
    }
}

/// Bytes of a `hashbrown` table of `u64`s with this `capacity()`: one `u64` and one control
/// byte per bucket, plus one group (16 bytes) of control padding.
fn hashbrown_u64_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    // `capacity()` is 7/8 of the buckets for tables of 8 buckets or more.
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<u64>() + 1) + 16
}

#[path = "digest_table_placement.rs"]
mod placement;
pub use placement::Placement;
use placement::SameHome;

#[path = "digest_table_slots.rs"]
mod slots;

#[cfg(test)]
#[path = "digest_table_tests.rs"]
mod tests;
