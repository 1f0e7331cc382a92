//! Per-request exposures, grouped before the writer applies them.
//!
//! Under per-request load a group commit carries thousands of exposures, and applying each one
//! alone (one update of the exposed arm, one per arm for the expected exposures) was ~9% of the
//! server's CPU in the load test's profile. Exposures of one epoch and arm that share a tally
//! (the same millisecond and the same allocation snapshot) change the counters exactly as one
//! update of `n` does, so the writer applies one per group. Nobody waits for an exposure, and a
//! batch commits atomically, so the order inside a batch is not observable; groups are applied
//! in order of their first exposure, so the epoch's start is still the first exposure's time.

use std::collections::HashMap;
use std::sync::Arc;

use super::apply;
use super::overlay::Txn;
use super::types::{Epoch, Tally};

/// Which arm a per-request exposure counts for. Usually an entry of the tally's allocation,
/// named by position so that the hot path allocates no variant id.
pub enum ExposedArm {
    InAllocation(usize),
    Other(String),
}

impl ExposedArm {
    /// Names `variant` by its position in the tally's allocation when it is there.
    pub fn of(variant: &str, tally: &Tally) -> Self {
        match tally.allocation.iter().position(|(id, _)| id == variant) {
            Some(index) => ExposedArm::InAllocation(index),
            None => ExposedArm::Other(variant.to_owned()),
        }
    }
}

/// One per-request exposure, queued by the HTTP worker in `Shared::pending_exposures` until
/// the writer's next batch takes them all.
pub struct PendingExposure {
    pub epoch: Epoch,
    pub arm: ExposedArm,
    pub tally: Tally,
}

/// What makes two exposures interchangeable. The allocation is compared by identity: it is
/// shared per posterior snapshot, and an equal copy merely misses a merge.
#[derive(PartialEq, Eq, Hash)]
struct GroupKey {
    epoch: Epoch,
    arm: ArmKey,
    allocation: usize,
    now_ms: u64,
    half_life_ms: Option<u64>,
}

#[derive(PartialEq, Eq, Hash)]
enum ArmKey {
    InAllocation(usize),
    Other(String),
}

struct Group {
    epoch: Epoch,
    arm: ExposedArm,
    /// Keeps the allocation alive, so its address cannot be reused by another one while
    /// grouping.
    tally: Tally,
    count: u64,
}

/// A batch's exposures, grouped; the batch's other commands are left in order.
#[derive(Default)]
pub struct ExposureGroups {
    groups: Vec<Group>,
    index: HashMap<GroupKey, usize>,
}

impl ExposureGroups {
    /// Groups a batch's exposures, in order of each group's first exposure.
    #[cfg(test)]
    pub fn of(exposures: Vec<PendingExposure>) -> ExposureGroups {
        let mut groups = ExposureGroups::default();
        groups.extend(exposures);
        groups
    }

    /// Adds more exposures: a new batch's to those a failed commit left (see
    /// `Writer::unfolded`).
    pub fn extend(&mut self, exposures: Vec<PendingExposure>) {
        for PendingExposure { epoch, arm, tally } in exposures {
            self.add(epoch, arm, tally);
        }
    }

    fn add(&mut self, epoch: Epoch, arm: ExposedArm, tally: Tally) {
        let key = GroupKey {
            epoch,
            arm: match &arm {
                ExposedArm::InAllocation(index) => ArmKey::InAllocation(*index),
                ExposedArm::Other(variant) => ArmKey::Other(variant.clone()),
            },
            allocation: Arc::as_ptr(&tally.allocation).cast::<()>() as usize,
            now_ms: tally.now_ms,
            half_life_ms: tally.half_life_ms,
        };
        if let Some(group) = self.index.get(&key).and_then(|&at| self.groups.get_mut(at)) {
            group.count += 1;
            return;
        }
        self.groups.push(Group {
            epoch: key.epoch.clone(),
            arm,
            tally,
            count: 1,
        });
        self.index.insert(key, self.groups.len() - 1);
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Applies every group, in order of its first exposure. Borrows, so that a failed commit
    /// can keep the groups for the next one.
    /// Fails only on an unreadable delay histogram record (a corrupt store).
    pub fn apply(&self, txn: &mut Txn<'_>) -> Result<(), super::error::StoreError> {
        for group in &self.groups {
            let variant = match &group.arm {
                // The index was taken from this very allocation, so it is in range.
                ExposedArm::InAllocation(index) => group
                    .tally
                    .allocation
                    .get(*index)
                    .map_or("", |(variant, _)| variant.as_str()),
                ExposedArm::Other(variant) => variant.as_str(),
            };
            apply::count_exposures(txn, &group.epoch, variant, &group.tally, group.count)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "exposures_tests.rs"]
mod tests;
