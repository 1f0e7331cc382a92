//! Building a [`DigestTable`] from digests in ascending order ([`Placement`]): a startup
//! replay's, and a growth's (`DigestTable::rebuild`).

use hashbrown::HashTable;

use super::*;

/// Builds a table from digests given in ascending order (repeats allowed, adjacent): each
/// goes at its home or just after the one before, which is the Robin Hood order (a run sorted
/// by home) with nothing to shift. Inserting them one by one instead costs an insert's shifts
/// each (½(1 + 1/(1 − α)²) slots, ~50 at 90% full): 29 s for a 100M-digest replay
/// (`benches/load/results/restart-s9-2026-11-30.md`).
pub struct Placement {
    pub(super) table: DigestTable,
    /// The first slot no digest holds yet: every slot before it is taken.
    next: usize,
    last: Option<u64>,
    /// Whether every digest so far came in ascending order.
    ordered: bool,
}

impl Placement {
    /// A placement into a table at [`FITTED_LOAD_PERCENT`] for `len` digests (repeats
    /// included: [`Placement::finish`] fits the table if they were many).
    pub fn new(len: usize) -> Placement {
        if len == 0 {
            return Placement::over(DigestTable::default());
        }
        Placement::with_homes(fitted_homes(len))
    }

    /// A placement into an empty table of `homes` homes (a growth's).
    pub(super) fn with_homes(homes: usize) -> Placement {
        let geometry = Geometry::new(homes);
        Placement::over(DigestTable {
            geometry: Some(geometry),
            bytes: zeroed_bytes(geometry.bytes()),
            stored: 0,
            spill: HashTable::new(),
        })
    }

    fn over(table: DigestTable) -> Placement {
        Placement {
            table,
            next: 0,
            last: None,
            ordered: true,
        }
    }

    /// Places `digest`, not below any digest pushed before it (a repeat of the last one is
    /// skipped). A smaller one, which the callers never push, turns the rest of the build into
    /// inserts ([`DigestTable::insert`]): slower, still exact.
    pub fn push(&mut self, digest: u64) {
        if self.ordered
            && let Some(geometry) = &self.table.geometry
        {
            match self.last {
                Some(last) if digest == last => return,
                Some(last) if digest < last => {}
                _ => {
                    let geometry = *geometry;
                    return self.place(digest, &geometry);
                }
            }
        }
        self.ordered = false;
        self.table.insert(digest);
    }

    fn place(&mut self, digest: u64, geometry: &Geometry) {
        self.last = Some(digest);
        let home = geometry.home(digest);
        let at = self.next.max(home);
        let displacement = at - home;
        if displacement > geometry.max_displacement {
            // As an insert would: past the longest displacement, the spill set.
            self.table.spill.insert_unique(digest, digest, |&kept| kept);
            return;
        }
        let tag = displacement as u64 + 1;
        let slot = (tag << geometry.remainder_bits) | geometry.remainder(digest);
        super::slots::write_slot(&mut self.table.bytes, at, slot, geometry);
        self.table.stored += 1;
        self.next = at + 1;
    }

    /// The table, fitted to its digests if repeats left it more than a few points below
    /// [`FITTED_LOAD_PERCENT`] ([`DigestTable::shrink_to_fit`]).
    pub fn finish(mut self) -> DigestTable {
        self.table.shrink_to_fit();
        self.table
    }
}

/// A growth's digests, read by old home ([`DigestTable::rebuild`]), into a [`Placement`]: homes
/// are monotonic in the digest, so only digests sharing an old home (kept in the order they
/// came) can come out of order. Each digest is held back until the next one shows whether it
/// shares its home; a home's digests are sorted among themselves (a few at most) before they
/// are placed. (Was: every home's digests gathered in a vector, sorted and drained; a growth,
/// `DigestTable::rebuild`, was then ~840 instructions per bulk event,
/// `benches/load/results/bulk7-2026-12-01-s13.md`.)
#[derive(Default)]
pub(super) struct SameHome {
    home: usize,
    /// The held-back digests of `home`, in ascending order.
    digests: Vec<u64>,
}

impl SameHome {
    /// `extra`: more digests to place (ascending; `DigestTable::grow_with`'s), each placed
    /// before the first held digest above it.
    pub(super) fn push(
        &mut self,
        placement: &mut Placement,
        extra: &mut &[u64],
        home: usize,
        digest: u64,
    ) {
        if home != self.home || self.digests.is_empty() {
            self.flush(placement, extra);
            self.home = home;
            self.digests.push(digest);
            return;
        }
        let at = self.digests.partition_point(|&held| held < digest);
        self.digests.insert(at, digest);
    }

    /// Places the held-back digests, and before each the digests of `extra` below it.
    pub(super) fn flush(&mut self, placement: &mut Placement, extra: &mut &[u64]) {
        for &digest in &self.digests {
            while let [next, rest @ ..] = *extra
                && *next < digest
            {
                placement.push(*next);
                *extra = rest;
            }
            placement.push(digest);
        }
        self.digests.clear();
    }
}
