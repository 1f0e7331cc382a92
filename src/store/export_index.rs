//! Export pages of the sled store's sticky assignments, in unit order, from a log in write
//! order (`unit_log`).
//!
//! A page is the `limit` smallest units after a cursor. Reading the epoch's whole log for every
//! page would make an export of `n` units cost `n² / limit` entries read, so the first page of
//! an epoch builds an [`ExportIndex`]: the epoch's unit ids, sorted, as of the last commit
//! applied before the build began. Later pages binary-search it and merge the units of the
//! commits written since (a range of the same epoch's log keys, since keys sort by commit), so
//! a page costs its own units plus what was written since the build. When that tail grows past
//! a quarter of the index (a busy epoch, or a compaction that rewrote the log), the next page
//! rebuilds it. Every unit's record comes from the sticky table, which holds durable records
//! only; a unit the table does not hold (not durable yet) is left out of the page.
//!
//! **Memory.** An index holds each unit id once plus an 8-byte offset: about 20 bytes per unit
//! for 12-byte ids, 200 MB for a 10-million-unit epoch, while an export of that epoch runs.
//! At most [`MAX_INDEXES`] are kept, and one unused for [`IDLE_MS`] is dropped (by the next
//! page of any export, and by the store's expiry sweep).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::scan;
use super::sticky_table::StickyTable;
use super::types::{Epoch, StickyRecord};
use super::unit_log;

/// Indexes kept at once (one per epoch being exported).
pub const MAX_INDEXES: usize = 2;

/// An index unused this long is dropped.
pub const IDLE_MS: u64 = 60_000;

/// Entries written since the build, as a share of the index's units, past which a page
/// rebuilds it (and never fewer than this many).
const REBUILD_TAIL_MIN: u64 = 10_000;

/// The sorted unit ids of one epoch as of commit `covered_seq`.
struct ExportIndex {
    epoch: Epoch,
    covered_seq: u64,
    /// The ids, concatenated in sorted order; `starts[i]..starts[i + 1]` is the i-th.
    ids: Vec<u8>,
    starts: Vec<usize>,
    last_used: Instant,
    /// Entries the last page read past `covered_seq`.
    tail_entries: u64,
}

impl ExportIndex {
    fn build(db: &sled::Db, epoch: &Epoch) -> Result<ExportIndex, StoreError> {
        // Read first: every commit up to it was applied before the scan began, so the scan
        // sees all of them (a later one is in the tail, see the module docs).
        let covered_seq = scan::applied_seq(db)?;
        let mut units = Vec::new();
        unit_log::for_each_unit(db, epoch, 0, |unit| units.push(unit.to_vec()))?;
        units.sort_unstable();
        units.dedup();
        let mut ids = Vec::with_capacity(units.iter().map(Vec::len).sum());
        let mut starts = Vec::with_capacity(units.len() + 1);
        for unit in &units {
            starts.push(ids.len());
            ids.extend_from_slice(unit);
        }
        starts.push(ids.len());
        Ok(ExportIndex {
            epoch: epoch.clone(),
            covered_seq,
            ids,
            starts,
            last_used: Instant::now(),
            tail_entries: 0,
        })
    }

    fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    fn unit(&self, i: usize) -> &[u8] {
        &self.ids[self.starts[i]..self.starts[i + 1]]
    }

    /// The position of the first unit after `after`.
    fn first_after(&self, after: Option<&[u8]>) -> usize {
        let Some(after) = after else {
            return 0;
        };
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            if self.unit(middle) <= after {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    fn stale(&self) -> bool {
        self.tail_entries > REBUILD_TAIL_MIN.max(self.len() as u64 / 4)
    }
}

/// The store's export indexes (see the module docs).
#[derive(Default)]
pub struct ExportIndexes {
    kept: Mutex<Vec<Arc<Mutex<ExportIndex>>>>,
}

impl std::fmt::Debug for ExportIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportIndexes").finish_non_exhaustive()
    }
}

impl ExportIndexes {
    /// Drops the indexes unused for [`IDLE_MS`].
    pub fn drop_idle(&self) {
        let idle = Duration::from_millis(IDLE_MS);
        self.lock().retain(|index| {
            index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .last_used
                .elapsed()
                < idle
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Mutex<ExportIndex>>>> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The index of `epoch`, built (or rebuilt, when stale) if need be.
    fn index(&self, db: &sled::Db, epoch: &Epoch) -> Result<Arc<Mutex<ExportIndex>>, StoreError> {
        self.drop_idle();
        let found = self
            .lock()
            .iter()
            .find(|index| {
                let index = index
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                index.epoch == *epoch && !index.stale()
            })
            .cloned();
        if let Some(found) = found {
            return Ok(found);
        }
        let built = Arc::new(Mutex::new(ExportIndex::build(db, epoch)?));
        let mut kept = self.lock();
        kept.retain(|index| {
            index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .epoch
                != *epoch
        });
        if kept.len() >= MAX_INDEXES {
            kept.remove(0);
        }
        kept.push(Arc::clone(&built));
        Ok(built)
    }

    /// Up to `limit` units of `epoch` after `after` (byte order) with their durable records.
    pub fn page(
        &self,
        db: &sled::Db,
        table: &StickyTable,
        epoch: &Epoch,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StickyRecord)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.map(str::as_bytes);
        let index = self.index(db, epoch)?;
        let mut index = index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.last_used = Instant::now();
        // Units written since the build that would fit in this page.
        let mut tail: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut tail_entries = 0;
        unit_log::for_each_unit(db, epoch, index.covered_seq + 1, |unit| {
            tail_entries += 1;
            if after.is_some_and(|after| unit <= after)
                || (tail.len() == limit && tail.last().is_some_and(|last| unit > &last[..]))
                // Only durable units compete for the page's places.
                || table
                    .peek_digest(table.digest(&unit_log::unit_key(epoch, unit)))
                    .is_none()
            {
                return;
            }
            tail.insert(unit.to_vec());
            if tail.len() > limit {
                tail.pop_last();
            }
        })?;
        index.tail_entries = tail_entries;
        let mut page = Vec::with_capacity(limit);
        let mut tail = tail.into_iter().peekable();
        let mut at = index.first_after(after);
        while page.len() < limit {
            let from_index = (at < index.len()).then(|| index.unit(at));
            let next = match (from_index, tail.peek()) {
                (None, None) => break,
                (Some(unit), Some(fresh)) if fresh.as_slice() < unit => {
                    tail.next().unwrap_or_default()
                }
                (Some(unit), Some(fresh)) if fresh.as_slice() == unit => {
                    tail.next();
                    at += 1;
                    unit.to_vec()
                }
                (Some(unit), _) => {
                    at += 1;
                    unit.to_vec()
                }
                (None, Some(_)) => tail.next().unwrap_or_default(),
            };
            let digest = table.digest(&unit_log::unit_key(epoch, &next));
            if let Some(record) = table.peek_digest(digest) {
                page.push((super::keys::utf8(&next, "unit id")?, record));
            }
        }
        Ok(page)
    }
}

impl ExportIndexes {
    /// Test hook: the tail entries the last page of `epoch` read, and whether that made its
    /// index stale.
    #[cfg(test)]
    pub fn tail_for_tests(&self, epoch: &Epoch) -> (u64, bool) {
        self.lock()
            .iter()
            .map(|index| {
                index
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            })
            .find(|index| index.epoch == *epoch)
            .map_or((0, false), |index| (index.tail_entries, index.stale()))
    }
}

#[cfg(test)]
#[path = "export_index_tests.rs"]
mod tests;
