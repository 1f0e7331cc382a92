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
        match (self.ordered, self.last, self.table.geometry) {
            (true, Some(last), _) if digest == last => {}
            (true, Some(last), Some(geometry)) if digest > last => self.place(digest, geometry),
            (true, None, Some(geometry)) => self.place(digest, geometry),
            _ => {
                self.ordered = false;
                self.table.insert(digest);
            }
        }
    }

    fn place(&mut self, digest: u64, geometry: Geometry) {
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
        self.table.store(at, slot, &geometry);
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

/// Places the digests of `group` (one old home's, in any order) in ascending order, leaving
/// it empty.
pub(super) fn place_sorted(placement: &mut Placement, group: &mut Vec<u64>) {
    group.sort_unstable();
    for digest in group.drain(..) {
        placement.push(digest);
    }
}
