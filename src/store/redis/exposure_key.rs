//! Finding a per-request exposure's group without building its key.
//!
//! `count_exposure` runs on the HTTP worker for every per-request assignment, and the group it
//! adds to nearly always exists already (one per epoch, variant, allocation and millisecond).
//! Looking it up by an owned [`ExposureKey`] cost two allocations and two frees per request
//! (the epoch's name and the variant) only to be dropped; this lookup borrows the request's
//! own strings, and a key is built only when a new group is made.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use super::ExposureKey;
use crate::store::Epoch;

/// An exposure group's key fields, borrowed: an owned [`ExposureKey`] or the request's.
pub(super) trait KeyFields {
    fn fields(&self) -> (&Epoch, &str, usize, u64, Option<u64>);
}

impl KeyFields for ExposureKey {
    fn fields(&self) -> (&Epoch, &str, usize, u64, Option<u64>) {
        (
            &self.epoch,
            &self.variant,
            self.allocation,
            self.now_ms,
            self.half_life_ms,
        )
    }
}

/// The request's side of a lookup.
pub(super) struct Borrowed<'a> {
    pub epoch: &'a Epoch,
    pub variant: &'a str,
    pub allocation: usize,
    pub now_ms: u64,
    pub half_life_ms: Option<u64>,
}

impl KeyFields for Borrowed<'_> {
    fn fields(&self) -> (&Epoch, &str, usize, u64, Option<u64>) {
        (
            self.epoch,
            self.variant,
            self.allocation,
            self.now_ms,
            self.half_life_ms,
        )
    }
}

impl<'a> Borrow<dyn KeyFields + 'a> for ExposureKey {
    fn borrow(&self) -> &(dyn KeyFields + 'a) {
        self
    }
}

// `Borrow` requires the borrowed form to hash and compare as the key does: the same fields,
// in the same order, as `ExposureKey`'s derived `Hash` and `Eq` (a `String` hashes as its
// `str`).
impl Hash for dyn KeyFields + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl PartialEq for dyn KeyFields + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

impl Eq for dyn KeyFields + '_ {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use super::*;
    use crate::store::test_support::epoch;

    fn owned(variant: &str, now_ms: u64) -> ExposureKey {
        ExposureKey {
            epoch: epoch(),
            variant: variant.to_owned(),
            allocation: 7,
            now_ms,
            half_life_ms: Some(60_000),
        }
    }

    #[test]
    fn a_borrowed_key_hashes_and_compares_as_the_owned_one() {
        let epoch = epoch();
        let state = std::collections::hash_map::RandomState::new();
        for (variant, now_ms) in [("bold", 1), ("control", 2), ("", 3)] {
            let borrowed = Borrowed {
                epoch: &epoch,
                variant,
                allocation: 7,
                now_ms,
                half_life_ms: Some(60_000),
            };
            let key = owned(variant, now_ms);
            assert_eq!(
                state.hash_one(&key),
                state.hash_one(&borrowed as &dyn KeyFields)
            );
            assert!(
                <ExposureKey as Borrow<dyn KeyFields>>::borrow(&key) == &borrowed as &dyn KeyFields
            );
        }
    }

    #[test]
    fn a_map_of_owned_keys_finds_each_group_by_a_borrowed_key_and_no_other() {
        let epoch = epoch();
        let mut map = HashMap::new();
        map.insert(owned("bold", 1), 1);
        map.insert(owned("control", 1), 2);
        map.insert(owned("bold", 2), 3);
        let find = |variant, now_ms, half_life_ms| {
            let borrowed = Borrowed {
                epoch: &epoch,
                variant,
                allocation: 7,
                now_ms,
                half_life_ms,
            };
            map.get(&borrowed as &dyn KeyFields).copied()
        };
        assert_eq!(find("bold", 1, Some(60_000)), Some(1));
        assert_eq!(find("control", 1, Some(60_000)), Some(2));
        assert_eq!(find("bold", 2, Some(60_000)), Some(3));
        assert_eq!(find("bold", 1, None), None);
        assert_eq!(find("control", 2, Some(60_000)), None);
    }
}
