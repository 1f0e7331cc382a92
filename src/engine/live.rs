//! One live experiment: its spec, its data epoch, and a posterior snapshot the assign path
//! reads without locks.
//!
//! The snapshot (counters, posteriors, Thompson win shares for propensities) is rebuilt from the
//! store's durable counters at most every [`SNAPSHOT_REFRESH_MS`]; exactly one request does the
//! rebuild while the others keep using the previous one. Thompson sampling tolerates this
//! staleness (DESIGN.md, "Scale"), and it is the same shape a multi-replica deployment has.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::policy::{self, ArmView, Mode, Params};
use crate::spec::{Experiment, Status};
use crate::stats::Posterior;
use crate::store::{ArmCounters, Epoch};

/// How old a posterior snapshot may get before an assign request rebuilds it.
pub const SNAPSHOT_REFRESH_MS: u64 = 100;

/// Monte Carlo draws for the Thompson win shares behind propensities.
pub const SHARE_DRAWS: usize = 4_000;

/// The posterior state of every arm at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_ms: u64,
    /// Durable N and R per arm, in spec order.
    pub counters: Vec<ArmCounters>,
    pub arms: Vec<ArmView>,
    /// P(arm k wins the Thompson argmax) under this snapshot.
    pub shares: Vec<f64>,
}

/// A running (or paused, or concluded) experiment as the engine serves it.
#[derive(Debug)]
pub struct LiveExperiment {
    pub spec: Experiment,
    pub epoch: Epoch,
    snapshot: ArcSwap<Snapshot>,
    refreshing: AtomicBool,
}

impl LiveExperiment {
    pub fn new<R: Rng + ?Sized>(
        spec: Experiment,
        counters: &HashMap<String, ArmCounters>,
        now_ms: u64,
        rng: &mut R,
    ) -> Self {
        let epoch = Epoch {
            experiment: spec.id.as_str().to_owned(),
            revision: spec.revision,
        };
        let snapshot = build_snapshot(&spec, counters, now_ms, rng);
        Self {
            spec,
            epoch,
            snapshot: ArcSwap::from_pointee(snapshot),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The experiment-level rule that applies now.
    pub fn mode(&self) -> Mode {
        let index = |id: &crate::spec::VariantId| self.spec.variant_index(id.as_str()).unwrap_or(0);
        match (self.spec.status, &self.spec.winner) {
            (Status::Paused, _) => Mode::Paused {
                default: index(&self.spec.default_variant),
            },
            (Status::Concluded, Some(winner)) => Mode::Fixed {
                winner: index(winner),
            },
            _ => Mode::Adaptive,
        }
    }

    pub fn params(&self) -> Params {
        Params {
            burn_in: self.spec.policy.burn_in,
            min_share: self.spec.policy.min_share,
        }
    }

    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Claims the right to rebuild a stale snapshot; false if fresh or someone else is on it.
    pub fn claim_refresh(&self, now_ms: u64) -> bool {
        let stale = now_ms.saturating_sub(self.snapshot.load().taken_ms) >= SNAPSHOT_REFRESH_MS;
        stale
            && self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Installs a snapshot built from `counters` and releases the refresh claim.
    pub fn install<R: Rng + ?Sized>(
        &self,
        counters: &HashMap<String, ArmCounters>,
        now_ms: u64,
        rng: &mut R,
    ) {
        let snapshot = build_snapshot(&self.spec, counters, now_ms, rng);
        self.snapshot.store(Arc::new(snapshot));
        self.refreshing.store(false, Ordering::Release);
    }

    /// Releases a refresh claim without installing (the store could not be read).
    pub fn abandon_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Traffic share per arm that the policy realises under the current snapshot.
    pub fn allocation(&self) -> Vec<f64> {
        let snapshot = self.snapshot();
        policy::allocation(self.mode(), self.params(), &snapshot.arms, &snapshot.shares)
            .unwrap_or_else(|_| vec![0.0; snapshot.arms.len()])
    }
}

fn build_snapshot<R: Rng + ?Sized>(
    spec: &Experiment,
    counters: &HashMap<String, ArmCounters>,
    now_ms: u64,
    rng: &mut R,
) -> Snapshot {
    let counters: Vec<ArmCounters> = spec
        .variants
        .iter()
        .map(|v| counters.get(v.id.as_str()).copied().unwrap_or_default())
        .collect();
    let arms: Vec<ArmView> = counters
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let prior = spec.arm_prior(k);
            let exposures = c.exposures as f64;
            let posterior =
                Posterior::from_counts(prior.alpha, prior.beta, exposures, c.reward_sum);
            ArmView {
                alpha: posterior.alpha,
                beta: posterior.beta,
                exposures,
                active: true,
            }
        })
        .collect();
    let shares = policy::thompson_shares_mc(&arms, SHARE_DRAWS, rng);
    Snapshot {
        taken_ms: now_ms,
        counters,
        arms,
        shares,
    }
}
