//! Allocation policy: which arm a request gets, and with what probability. Pure: the caller
//! hands in the arms' state and the RNG; the simulator and the server share this code.
//!
//! Rules (docs/ARCHITECTURE.md, "Allocation"): paused → the default arm, uncounted; fixed →
//! the winner; adaptive → uniform over active arms during burn-in, then with probability
//! K·min_share a uniform active arm (the floor), else Thompson sampling (Thompson 1933; Russo
//! et al. 2018, "A Tutorial on Thompson Sampling", §3): one draw per active posterior, take the
//! argmax.
//! Every decision carries its propensity, P(this arm | state), so that logged assignments
//! support unbiased off-policy estimates (inverse propensity weighting).

use crate::stats::sample_beta;
use rand::{Rng, RngExt};

/// What the policy needs to know about one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmView {
    /// Posterior alpha = prior alpha + R.
    pub alpha: f64,
    /// Posterior beta = prior beta + N − R.
    pub beta: f64,
    /// N (exposures), for burn-in.
    pub exposures: f64,
    /// Retired arms (removed from the YAML) get no new traffic.
    pub active: bool,
}

/// The experiment-level state that overrides adaptive allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serve arm `default`, do not count it.
    Paused { default: usize },
    /// Serve arm `winner` to everybody, counted.
    Fixed { winner: usize },
    /// A stopping rule declared `winner` with `on_winner: exploit`: the winner gets all
    /// traffic except the `min_share` floor, which keeps every active arm observed so that
    /// the stats can still show if later data disagrees with the decision.
    Exploit { winner: usize },
    /// Burn-in, floor and Thompson sampling.
    Adaptive,
}

/// Adaptive allocation knobs (from `policy:` in the YAML).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Uniform allocation until every active arm has this many exposures.
    pub burn_in: u64,
    /// Share of traffic every active arm keeps. The floor's total K·min_share is capped at 1
    /// (allocation is then uniform), and a negative or NaN value counts as 0.
    pub min_share: f64,
}

/// Why the policy could not choose an arm. The engine answers these by serving the default
/// variant uncounted (docs/ARCHITECTURE.md, "When something fails") and logging the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Adaptive allocation with every arm retired.
    #[error("no active arm to allocate traffic to")]
    NoActiveArm,
    /// A paused default or fixed winner that names no arm.
    #[error("arm index {arm} is out of range for {arms} arms")]
    ArmOutOfRange { arm: usize, arms: usize },
    /// A fixed winner that has been retired: retired arms get no new traffic.
    #[error("arm {0} is retired and cannot receive traffic as the fixed winner")]
    RetiredWinner(usize),
    /// `thompson_shares` must hold one entry per arm.
    #[error("{shares} Thompson shares were given for {arms} arms")]
    SharesLengthMismatch { shares: usize, arms: usize },
}

/// Which rule chose the arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Paused,
    Fixed,
    BurnIn,
    Floor,
    Thompson,
    /// The declared winner, outside the floor.
    Exploit,
    /// The policy could not decide (inconsistent state); the engine served the default
    /// variant uncounted rather than fail the request.
    Fallback,
}

/// The policy's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub arm: usize,
    /// P(this policy picks `arm` right now), in (0, 1].
    pub propensity: f64,
    /// Whether the assignment counts as an exposure (false when paused).
    pub counted: bool,
    pub reason: Reason,
}

/// Chooses an arm for one request. No heap allocation; O(K) work plus, on the Thompson branch,
/// one Beta draw per active arm.
///
/// `thompson_shares[k]` is P(arm k wins the Thompson argmax) for the current posteriors,
/// supplied by the caller (the engine caches the exact `stats::compare_arms` P(best) per
/// posterior snapshot). It only enters the propensity:
/// whichever branch picks arm k, P(k) = floor/K + (1 − floor)·share_k with floor =
/// min(K·min_share, 1), which equals [`allocation`]`(..)[k]`. Shares are sanitised the same
/// way in both functions: retired arms, negatives and NaN count as 0, and the rest is
/// renormalised to sum to 1 (uniform if nothing is left). If P(best) underflows to exactly 0
/// for the chosen arm and there is no floor, the propensity is reported as
/// `f64::MIN_POSITIVE` ("vanishingly rare") so that it stays in (0, 1].
pub fn decide<R: Rng + ?Sized>(
    mode: Mode,
    params: Params,
    arms: &[ArmView],
    thompson_shares: &[f64],
    rng: &mut R,
) -> Result<Decision, PolicyError> {
    match mode {
        Mode::Paused { default } => {
            check_index(default, arms)?;
            Ok(certain(default, false, Reason::Paused))
        }
        Mode::Fixed { winner } => {
            check_winner(winner, arms)?;
            Ok(certain(winner, true, Reason::Fixed))
        }
        Mode::Exploit { winner } => {
            check_winner(winner, arms)?;
            let plan = ExploitPlan::new(params, arms);
            let (arm, reason) = if rng.random::<f64>() < plan.floor_total() {
                (uniform_active_arm(plan.active, arms, rng), Reason::Floor)
            } else {
                (winner, Reason::Exploit)
            };
            Ok(Decision {
                arm,
                propensity: plan.propensity(arm == winner),
                counted: true,
                reason,
            })
        }
        Mode::Adaptive => {
            let plan = AdaptivePlan::new(params, arms, thompson_shares)?;
            let (arm, reason) = if plan.burn_in {
                (plan.uniform_active_arm(arms, rng), Reason::BurnIn)
            } else if rng.random::<f64>() < plan.floor_total {
                (plan.uniform_active_arm(arms, rng), Reason::Floor)
            } else {
                (thompson_winner(arms, rng), Reason::Thompson)
            };
            let propensity = plan
                .propensity(arms, thompson_shares, arm)
                .max(f64::MIN_POSITIVE);
            Ok(Decision {
                arm,
                propensity,
                counted: true,
                reason,
            })
        }
    }
}

/// The probability vector over arms that [`decide`] realises right now: the current traffic
/// share of every arm (retired arms 0), summing to 1. `decide`'s propensity for arm k is
/// exactly `allocation(..)[k]`. Fails in the same cases as `decide`.
pub fn allocation(
    mode: Mode,
    params: Params,
    arms: &[ArmView],
    thompson_shares: &[f64],
) -> Result<Vec<f64>, PolicyError> {
    let one_hot = |chosen: usize| -> Vec<f64> {
        (0..arms.len())
            .map(|k| if k == chosen { 1.0 } else { 0.0 })
            .collect()
    };
    match mode {
        Mode::Paused { default } => check_index(default, arms).map(|()| one_hot(default)),
        Mode::Fixed { winner } => check_winner(winner, arms).map(|()| one_hot(winner)),
        Mode::Exploit { winner } => {
            check_winner(winner, arms)?;
            let plan = ExploitPlan::new(params, arms);
            Ok((0..arms.len())
                .map(|k| {
                    if arms[k].active {
                        plan.propensity(k == winner)
                    } else {
                        0.0
                    }
                })
                .collect())
        }
        Mode::Adaptive => {
            let plan = AdaptivePlan::new(params, arms, thompson_shares)?;
            Ok((0..arms.len())
                .map(|k| {
                    if arms[k].active {
                        plan.propensity(arms, thompson_shares, k)
                    } else {
                        0.0
                    }
                })
                .collect())
        }
    }
}

/// What adaptive allocation needs, validated once per call.
struct AdaptivePlan {
    active: usize,
    burn_in: bool,
    /// min(K·min_share, 1): the probability of the floor branch.
    floor_total: f64,
    /// floor_total / K, computed exactly where possible (see [`floor_part`]).
    floor_part: f64,
    /// Sum of the sanitised shares of active arms, for renormalisation.
    share_sum: f64,
}

impl AdaptivePlan {
    fn new(params: Params, arms: &[ArmView], shares: &[f64]) -> Result<Self, PolicyError> {
        if shares.len() != arms.len() {
            return Err(PolicyError::SharesLengthMismatch {
                shares: shares.len(),
                arms: arms.len(),
            });
        }
        let active = arms.iter().filter(|arm| arm.active).count();
        if active == 0 {
            return Err(PolicyError::NoActiveArm);
        }
        let burn_in_exposures = params.burn_in as f64;
        let burn_in = arms
            .iter()
            .any(|arm| arm.active && arm.exposures < burn_in_exposures);
        let share_sum = (0..arms.len())
            .map(|k| sanitised_share(arms, shares, k))
            .sum();
        Ok(Self {
            active,
            burn_in,
            floor_total: floor_total(params, active),
            floor_part: floor_part(params, active),
            share_sum,
        })
    }

    /// P(arm k) for an active arm k.
    fn propensity(&self, arms: &[ArmView], shares: &[f64], k: usize) -> f64 {
        let uniform = 1.0 / self.active as f64;
        if self.burn_in {
            return uniform;
        }
        let thompson = if self.share_sum > 0.0 && self.share_sum.is_finite() {
            sanitised_share(arms, shares, k) / self.share_sum
        } else {
            uniform
        };
        if thompson == 0.0 {
            // The floor alone: `min_share` as written (0.05), not 0.1 / 2 recomputed.
            return self.floor_part;
        }
        if thompson == 1.0 {
            // What the others' floor leaves, exact as in `ExploitPlan::propensity`.
            return 1.0 - (self.active - 1) as f64 * self.floor_part;
        }
        self.floor_part + (1.0 - self.floor_total) * thompson
    }

    fn uniform_active_arm<R: Rng + ?Sized>(&self, arms: &[ArmView], rng: &mut R) -> usize {
        uniform_active_arm(self.active, arms, rng)
    }
}

/// Exploitation of a declared winner: the floor, else the winner.
struct ExploitPlan {
    active: usize,
    floor_part: f64,
}

impl ExploitPlan {
    /// Callers have checked that the winner is active, so `active ≥ 1`.
    fn new(params: Params, arms: &[ArmView]) -> Self {
        let active = arms.iter().filter(|arm| arm.active).count().max(1);
        Self {
            active,
            floor_part: floor_part(params, active),
        }
    }

    /// The probability of the floor branch, for the draw in [`decide`].
    fn floor_total(&self) -> f64 {
        (self.floor_part * self.active as f64).min(1.0)
    }

    /// P(arm) for an active arm: floor/K, and for the winner what the others leave,
    /// 1 − (K − 1)·floor/K. Written that way it is exact for a decimal `min_share` that the
    /// sum floor/K + (1 − floor) is not: 1 − 0.05 is 0.95, 0.05 + 0.9 is 0.9500000000000001.
    fn propensity(&self, is_winner: bool) -> f64 {
        if is_winner {
            1.0 - (self.active - 1) as f64 * self.floor_part
        } else {
            self.floor_part.max(f64::MIN_POSITIVE)
        }
    }
}

/// Each active arm's part of the floor, floor_total / K: `min_share` itself while K·min_share
/// ≤ 1 (so 0.1 stays 0.1 instead of 3 × 0.1 / 3 = 0.10000000000000002), 1/K once capped.
fn floor_part(params: Params, active: usize) -> f64 {
    let total = floor_total(params, active);
    if total >= 1.0 {
        1.0 / active.max(1) as f64
    } else if total > 0.0 {
        params.min_share
    } else {
        0.0
    }
}

/// min(K·min_share, 1); a negative or NaN `min_share` counts as 0.
fn floor_total(params: Params, active: usize) -> f64 {
    let min_share = if params.min_share > 0.0 {
        params.min_share
    } else {
        0.0
    };
    (active as f64 * min_share).min(1.0)
}

/// A uniformly chosen active arm; `active` is the number of active arms (≥ 1).
fn uniform_active_arm<R: Rng + ?Sized>(active: usize, arms: &[ArmView], rng: &mut R) -> usize {
    let target = rng.random_range(0..active.max(1));
    arms.iter()
        .enumerate()
        .filter(|(_, arm)| arm.active)
        .nth(target)
        .map_or(0, |(k, _)| k) // `target < active` always finds an arm.
}

fn sanitised_share(arms: &[ArmView], shares: &[f64], k: usize) -> f64 {
    let share = shares[k];
    if arms[k].active && share.is_finite() && share > 0.0 {
        share
    } else {
        0.0
    }
}

/// One Thompson draw per active arm; the index of the largest (first on ties). Callers have
/// checked that an active arm exists.
fn thompson_winner<R: Rng + ?Sized>(arms: &[ArmView], rng: &mut R) -> usize {
    let draws = arms
        .iter()
        .enumerate()
        .filter(|(_, arm)| arm.active)
        .map(|(k, arm)| (k, sample_beta(rng, arm.alpha, arm.beta)));
    first_argmax(draws).unwrap_or(0)
}

/// Index of the largest value; the first one wins ties (strict comparison).
fn first_argmax(values: impl Iterator<Item = (usize, f64)>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (k, value) in values {
        if best.is_none_or(|(_, best_value)| value > best_value) {
            best = Some((k, value));
        }
    }
    best.map(|(k, _)| k)
}

fn certain(arm: usize, counted: bool, reason: Reason) -> Decision {
    Decision {
        arm,
        propensity: 1.0,
        counted,
        reason,
    }
}

fn check_index(arm: usize, arms: &[ArmView]) -> Result<(), PolicyError> {
    if arm < arms.len() {
        Ok(())
    } else {
        Err(PolicyError::ArmOutOfRange {
            arm,
            arms: arms.len(),
        })
    }
}

fn check_winner(winner: usize, arms: &[ArmView]) -> Result<(), PolicyError> {
    check_index(winner, arms)?;
    if arms[winner].active {
        Ok(())
    } else {
        Err(PolicyError::RetiredWinner(winner))
    }
}

#[cfg(test)]
mod tests;
