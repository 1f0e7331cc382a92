//! [`RecordCache`]: the sticky records a replica has seen, so a known unit's assign is served
//! without a round trip to Redis (a record's variant and assignment time never change except
//! by a re-assignment, which forgets the cached one).
//!
//! Keyed by epoch, then by unit, so a lookup borrows the request's `&Epoch` and `&str`: a map
//! keyed by `(Epoch, String)` made every known-unit request allocate and free the experiment
//! name and the unit id to build its key (3–5% of that path's profile,
//! `benches/load/results/hot2-2026-11-30.md`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::store::{Epoch, StickyRecord};

/// A bounded map of sticky records; capacity 0 turns it off.
pub(super) struct RecordCache {
    capacity: usize,
    map: Mutex<Map>,
}

#[derive(Default)]
struct Map {
    by_epoch: HashMap<Epoch, HashMap<String, StickyRecord>>,
    /// Records over all epochs.
    len: usize,
}

impl RecordCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(Map::default()),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len
    }

    pub(super) fn get(&self, epoch: &Epoch, unit: &str) -> Option<StickyRecord> {
        self.lock().by_epoch.get(epoch)?.get(unit).cloned()
    }

    pub(super) fn put(&self, epoch: &Epoch, unit: &str, record: &StickyRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len >= self.capacity {
            // Crude but bounded: a replica's working set refills it within seconds.
            map.by_epoch.clear();
            map.len = 0;
        }
        let units = match map.by_epoch.get_mut(epoch) {
            Some(units) => units,
            None => map.by_epoch.entry(epoch.clone()).or_default(),
        };
        let added = match units.get_mut(unit) {
            Some(held) => {
                held.clone_from(record);
                false
            }
            None => {
                units.insert(unit.to_owned(), record.clone());
                true
            }
        };
        if added {
            map.len += 1;
        }
    }

    pub(super) fn forget(&self, epoch: &Epoch, unit: &str) {
        self.forget_units(std::iter::once((epoch, unit)));
    }

    /// Forgets every `(epoch, unit)` of `units` under one lock (a bulk request's units).
    pub(super) fn forget_units<'a>(&self, units: impl Iterator<Item = (&'a Epoch, &'a str)>) {
        let mut map = self.lock();
        if map.len == 0 {
            return;
        }
        let mut removed = 0;
        for (epoch, unit) in units {
            if let Some(held) = map.by_epoch.get_mut(epoch)
                && held.remove(unit).is_some()
            {
                removed += 1;
            }
        }
        map.len -= removed;
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::epoch_of as epoch;

    fn record(variant: &str) -> StickyRecord {
        StickyRecord {
            variant: variant.to_owned(),
            assigned_ms: 1_000,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        }
    }

    #[test]
    fn a_record_is_found_only_under_its_own_epoch_and_unit() {
        let cache = RecordCache::new(10);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        assert_eq!(cache.get(&epoch("a", 1), "u1"), Some(record("red")));
        assert_eq!(cache.get(&epoch("a", 2), "u1"), None);
        assert_eq!(cache.get(&epoch("b", 1), "u1"), None);
        assert_eq!(cache.get(&epoch("a", 1), "u2"), None);
    }

    #[test]
    fn a_second_put_replaces_the_record_and_counts_once() {
        let cache = RecordCache::new(10);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        cache.put(&epoch("a", 1), "u1", &record("blue"));
        assert_eq!(cache.get(&epoch("a", 1), "u1"), Some(record("blue")));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_forgotten_record_is_gone_and_uncounted() {
        let cache = RecordCache::new(10);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        cache.put(&epoch("b", 1), "u1", &record("red"));
        cache.forget(&epoch("a", 1), "u1");
        cache.forget(&epoch("a", 1), "never-put");
        assert_eq!(cache.get(&epoch("a", 1), "u1"), None);
        assert_eq!(cache.get(&epoch("b", 1), "u1"), Some(record("red")));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn units_forgotten_together_are_gone_and_uncounted_and_others_kept() {
        let cache = RecordCache::new(10);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        cache.put(&epoch("a", 1), "u2", &record("red"));
        cache.put(&epoch("b", 1), "u1", &record("red"));
        let (a, b, c) = (epoch("a", 1), epoch("a", 2), epoch("c", 1));
        cache.forget_units(
            [
                (&a, "u1"),
                (&a, "never-put"),
                (&b, "u2"),
                (&c, "u1"),
                (&a, "u1"),
            ]
            .into_iter(),
        );
        assert_eq!(cache.get(&epoch("a", 1), "u1"), None);
        assert_eq!(cache.get(&epoch("a", 1), "u2"), Some(record("red")));
        assert_eq!(cache.get(&epoch("b", 1), "u1"), Some(record("red")));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_cache_starts_over_across_epochs() {
        let cache = RecordCache::new(3);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        cache.put(&epoch("b", 1), "u2", &record("red"));
        cache.put(&epoch("a", 1), "u3", &record("red"));
        assert_eq!(cache.len(), 3);
        cache.put(&epoch("b", 1), "u4", &record("blue"));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&epoch("a", 1), "u1"), None);
        assert_eq!(cache.get(&epoch("b", 1), "u4"), Some(record("blue")));
    }

    #[test]
    fn a_cache_of_capacity_zero_keeps_nothing() {
        let cache = RecordCache::new(0);
        cache.put(&epoch("a", 1), "u1", &record("red"));
        assert_eq!(cache.get(&epoch("a", 1), "u1"), None);
        assert_eq!(cache.len(), 0);
    }
}
