//! Burn-in read live: uniform draws stop as soon as every active arm has `burn_in` exposures,
//! not up to one snapshot refresh later.
//!
//! The posterior snapshot is rebuilt at most every `SNAPSHOT_REFRESH_MS`, which Thompson
//! sampling tolerates, but a burst inside one refresh interval used to keep drawing uniformly
//! long after every arm had reached `burn_in` (the snapshot still said otherwise). Each
//! snapshot therefore counts the exposures this process made *while it was current*: a
//! counted exposure increments the snapshot its draw was made from, whose durable counters
//! were read before that draw, so an exposure is never counted twice (it is either in the
//! stored counters of a later snapshot or in the live tally of the one it was drawn from). A
//! replica sees its own exposures live and the others' at the next refresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::live::{LiveExperiment, Snapshot};
use crate::policy::{self, ArmView, Mode};

/// Exposures counted since a snapshot was taken, per arm (in the snapshot's arm order). A
/// snapshot past burn-in has none (`new(0)`), so recording there is a bounds check.
pub struct FreshExposures(Box<[AtomicU64]>);

impl FreshExposures {
    pub fn new(arms: usize) -> Self {
        Self((0..arms).map(|_| AtomicU64::new(0)).collect())
    }

    /// One more counted exposure of `arm` (ignored for an arm the snapshot does not have).
    pub fn record(&self, arm: usize) {
        if let Some(count) = self.0.get(arm) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, arm: usize) -> u64 {
        self.0
            .get(arm)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}

impl Clone for FreshExposures {
    fn clone(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|count| AtomicU64::new(count.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}

impl std::fmt::Debug for FreshExposures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|count| count.load(Ordering::Relaxed)))
            .finish()
    }
}

/// The arm views and the allocation of a draw whose burn-in ended after its snapshot.
pub type PastBurnIn = (Vec<ArmView>, Arc<[(String, f64)]>);

/// Arm views and allocation for a draw under `snapshot` whose burn-in has ended since it was
/// taken; `None` when the snapshot's own are right (no burn-in in it, or still in burn-in).
/// Costs nothing once the snapshot itself is past burn-in.
pub fn ended_since_snapshot(
    live: &LiveExperiment,
    snapshot: &Snapshot,
    mode: Mode,
) -> Option<PastBurnIn> {
    if mode != Mode::Adaptive {
        return None;
    }
    let burn_in = live.spec.policy.burn_in as f64;
    let short = |arm: &ArmView| arm.active && arm.exposures < burn_in;
    if !snapshot.arms.iter().any(short) {
        return None;
    }
    let arms: Vec<ArmView> = snapshot
        .arms
        .iter()
        .enumerate()
        .map(|(k, arm)| ArmView {
            exposures: arm.exposures + snapshot.fresh.get(k) as f64,
            ..*arm
        })
        .collect();
    if arms.iter().any(short) {
        return None;
    }
    let shares = policy::allocation(mode, live.params(), &arms, &snapshot.shares).ok()?;
    let allocation = snapshot.variant_ids.iter().cloned().zip(shares).collect();
    Some((arms, allocation))
}
