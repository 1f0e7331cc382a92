//! [`TableSizes`]: how many units the sticky table and how many ids the event-id set held when
//! the store last opened or shut down, kept under `keys::META_TABLE_SIZES` so that a restart
//! allocates both tables at their size before it replays the logs into them.
//!
//! **Why.** Replayed into empty tables, both grew by doubling: every entry was moved again at
//! each doubling, and the kernel zeroed the pages of every intermediate table. With 10M units
//! and 50M ids that was a third to a half of the tables' share of a start's CPU (inserts into
//! the sticky table 24%, the id set's inserts and rehashes 20%, zeroing pages ~15%:
//! `benches/load/results/mem2-2026-11-30-s7.md`).
//!
//! **A hint only.** The sizes are written at the end of a load (when they moved by more than
//! 1/16 since the last ones) and at a clean shutdown, outside the group commits; a crash
//! leaves the last ones, which may be stale. A stale, missing or unreadable value costs time,
//! never correctness: a table presized too small still grows during the replay, one presized
//! too big is fitted to its contents after it (`sticky_slots::Slots::fit`,
//! `event_log::replay`).
//!
//! **Switch.** `BANDITD_TABLE_SIZES=ignore` in the environment reads no sizes (the tables
//! start empty and grow, as before this module): the A side of the A/B of one binary in
//! `benches/load/results/mem2-2026-11-30-s7.md`. A diagnostic, not a setting.

use super::codec;
use super::error::StoreError;
use super::keys::{self, io};
use super::state::DurableState;

/// The two tables' sizes (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub units: u64,
    pub ids: u64,
}

impl TableSizes {
    /// Whether `self` is more than 1/16 away from `earlier` in either size: worth writing.
    pub fn moved_from(&self, earlier: &TableSizes) -> bool {
        let far = |now: u64, then: u64| now.abs_diff(then) > then / 16;
        far(self.units, earlier.units) || far(self.ids, earlier.ids)
    }
}

/// The sizes last kept; zero if none were, or if the value does not read as two numbers (a
/// hint: see the module docs).
pub fn read(db: &sled::Db) -> TableSizes {
    if std::env::var_os("BANDITD_TABLE_SIZES").is_some_and(|value| value == "ignore") {
        return TableSizes::default();
    }
    let Ok(Some(value)) = db.get(keys::META_TABLE_SIZES) else {
        return TableSizes::default();
    };
    let (Some(units), Some(ids)) = (value.get(..8), value.get(8..)) else {
        return TableSizes::default();
    };
    match (
        codec::decode_u64(units, "units"),
        codec::decode_u64(ids, "ids"),
    ) {
        (Ok(units), Ok(ids)) => TableSizes { units, ids },
        _ => TableSizes::default(),
    }
}

/// Keeps `sizes` (durable with sled's next flush).
pub fn write(db: &sled::Db, sizes: TableSizes) -> Result<(), StoreError> {
    let mut value = codec::encode_u64(sizes.units).to_vec();
    value.extend_from_slice(&codec::encode_u64(sizes.ids));
    db.insert(keys::META_TABLE_SIZES, value).map_err(io)?;
    Ok(())
}

/// The sizes of `state`'s tables.
pub fn of(state: &DurableState) -> TableSizes {
    TableSizes {
        units: state.sticky.len() as u64,
        ids: state.event_ids.kept.len() as u64,
    }
}

/// At a clean shutdown: keeps the sizes the tables have now and flushes them. Failing is
/// only logged: the store's data is durable already, and the hint is not part of it.
pub fn keep_at_shutdown(db: &sled::Db, state: &DurableState) {
    let sizes = of(state);
    if let Err(error) = write(db, sizes).and_then(|()| db.flush().map(drop).map_err(io)) {
        tracing::warn!(%error, "could not keep the tables' sizes for the next start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_back_as_written_and_zero_when_absent_or_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(read(&db), TableSizes::default());
        let sizes = TableSizes {
            units: 10_000_000,
            ids: 50_000_000,
        };
        write(&db, sizes).unwrap();
        assert_eq!(read(&db), sizes);
        db.insert(keys::META_TABLE_SIZES, b"short".to_vec())
            .unwrap();
        assert_eq!(read(&db), TableSizes::default());
    }

    #[test]
    fn sizes_moved_by_more_than_a_sixteenth_are_worth_writing() {
        let then = TableSizes {
            units: 1_600,
            ids: 0,
        };
        let at = |units, ids| TableSizes { units, ids };
        assert!(!at(1_700, 0).moved_from(&then));
        assert!(!at(1_500, 0).moved_from(&then));
        assert!(at(1_701, 0).moved_from(&then));
        assert!(at(1_499, 0).moved_from(&then));
        assert!(at(1_600, 1).moved_from(&then));
    }
}
