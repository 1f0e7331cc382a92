//! Exponentially decayed evidence (`policy.half_life`, for non-stationary reward rates).
//!
//! A decayed sum at time T is D(T) = Σᵢ wᵢ · 2^(−(T − tᵢ)/h) over evidence i of weight wᵢ
//! observed at tᵢ: evidence loses half its weight every half-life h. This is discounted
//! Thompson sampling (Raj & Kalyani 2017, "Taming Non-stationary Bandits: A Bayesian
//! Approach", arXiv:1707.09727, Alg. 2, with discount γ = 2^(−Δt/h) per elapsed Δt instead of
//! per round; see also Russo et al. 2018, "A Tutorial on Thompson Sampling", §6.3).
//!
//! Because 2^(−a/h) · 2^(−b/h) = 2^(−(a+b)/h), D can be stored as of one reference time and
//! rescaled when time moves on, exactly: the store keeps one number per sum and touches it only
//! when the arm changes (lazy decay), and readers rescale it to their own clock with
//! `stats::DecayedCounts::decayed_to`. Decay never makes a value grow: a write or read whose clock lags the
//! reference time decays the NEW evidence instead of inflating the old.
//!
//! Decayed sums cannot be recomputed from the records (per-request exposures have none, and
//! the history of half-lives is not kept), so the audit does not check them.

use super::types::ArmCounters;
use crate::stats::{DecayedCounts, decay_weight};

/// The weight a reward enters the decayed R with: aged from its assignment (`assigned_ms` of
/// the sticky record, `issued_ms` of the token), not from its arrival, because it is evidence
/// about that exposure, whose own weight has been decaying since then. This keeps each
/// assignment's reward contribution at most its exposure contribution, so decayed R never
/// outruns decayed N.
pub fn reward_weight(reward: f64, assigned_ms: u64, now_ms: u64, half_life_ms: Option<u64>) -> f64 {
    match half_life_ms {
        Some(half_life_ms) => {
            reward * decay_weight(now_ms.saturating_sub(assigned_ms), half_life_ms)
        }
        None => reward,
    }
}

/// Folds one change of an arm, made at `now_ms`, into its decayed counters. The raw fields
/// must already include the change; `exposures` is the change to N (0 or 1), `reward` the
/// reward already weighted by [`reward_weight`].
///
/// Without a half-life the decayed sums are set to the raw ones: that is exactly what decay
/// with an infinite half-life gives, and it stays true even if a half-life was used earlier in
/// the epoch.
pub fn record_change(
    counters: &mut ArmCounters,
    now_ms: u64,
    half_life_ms: Option<u64>,
    exposures: f64,
    reward: f64,
) {
    match half_life_ms {
        Some(half_life_ms) => {
            let decayed = stored(counters).add(now_ms, half_life_ms, exposures, reward);
            counters.decayed_exposures = decayed.exposures;
            counters.decayed_reward_sum = decayed.reward_sum;
            counters.decayed_at_ms = decayed.at_ms;
        }
        None => {
            // Exact below 2^53 exposures.
            counters.decayed_exposures = counters.exposures as f64;
            counters.decayed_reward_sum = counters.reward_sum;
            counters.decayed_at_ms = counters.decayed_at_ms.max(now_ms);
        }
    }
}

impl ArmCounters {
    /// Decayed (N, R) as seen at `now_ms`: the raw N and R without a half-life, else the stored
    /// decayed sums rescaled from `decayed_at_ms` (see `stats::DecayedCounts::decayed_to`).
    pub fn decayed_as_of(&self, now_ms: u64, half_life_ms: Option<u64>) -> (f64, f64) {
        match half_life_ms {
            Some(half_life_ms) => {
                let decayed = stored(self).decayed_to(now_ms, half_life_ms);
                (decayed.exposures, decayed.reward_sum)
            }
            None => (self.exposures as f64, self.reward_sum),
        }
    }
}

/// The stored decayed sums as the pure decay type that owns the arithmetic.
fn stored(counters: &ArmCounters) -> DecayedCounts {
    DecayedCounts {
        exposures: counters.decayed_exposures,
        reward_sum: counters.decayed_reward_sum,
        at_ms: counters.decayed_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 14 * 24 * 60 * 60 * 1000;

    fn exposure(counters: &mut ArmCounters, now_ms: u64, half_life_ms: Option<u64>) {
        counters.exposures += 1;
        record_change(counters, now_ms, half_life_ms, 1.0, 0.0);
    }

    #[test]
    fn retention_halves_every_half_life_exactly() {
        assert_eq!(decay_weight(0, H), 1.0);
        assert_eq!(decay_weight(H, H), 0.5);
        assert_eq!(decay_weight(2 * H, H), 0.25);
        assert_eq!(decay_weight(10 * H, H), 1.0 / 1024.0);
        assert!((decay_weight(H / 2, H) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
    }

    #[test]
    fn a_zero_half_life_forgets_instead_of_dividing_by_zero() {
        assert_eq!(decay_weight(0, 0), 1.0);
        assert_eq!(decay_weight(5_000, 0), 0.0);
    }

    #[test]
    fn exposures_at_zero_and_one_half_life_read_at_two_half_lives_are_three_quarters() {
        let mut arm = ArmCounters::default();
        exposure(&mut arm, 0, Some(H));
        exposure(&mut arm, H, Some(H));
        assert_eq!((arm.decayed_exposures, arm.decayed_at_ms), (1.5, H));
        // 2^-2 + 2^-1, exact in binary floating point.
        assert_eq!(arm.decayed_as_of(2 * H, Some(H)).0, 0.75);
    }

    #[test]
    fn a_reward_is_aged_from_its_assignment_not_its_arrival() {
        let mut arm = ArmCounters::default();
        exposure(&mut arm, 0, Some(H));
        arm.reward_sum += 1.0;
        let weighted = reward_weight(1.0, 0, H, Some(H));
        assert_eq!(weighted, 0.5);
        record_change(&mut arm, H, Some(H), 0.0, weighted);
        assert_eq!(arm.decayed_as_of(H, Some(H)), (0.5, 0.5));
        assert_eq!(arm.decayed_as_of(2 * H, Some(H)), (0.25, 0.25));
    }

    #[test]
    fn a_lagging_clock_decays_the_new_evidence_and_never_grows_the_old() {
        let mut arm = ArmCounters::default();
        exposure(&mut arm, H, Some(H));
        exposure(&mut arm, 0, Some(H));
        assert_eq!((arm.decayed_exposures, arm.decayed_at_ms), (1.5, H));
        // Reads behind the reference time see the stored value, never more.
        assert_eq!(arm.decayed_as_of(0, Some(H)).0, 1.5);
        // A no-op change at a lagging time leaves the sums alone.
        let before = arm;
        record_change(&mut arm, H / 3, Some(H), 0.0, 0.0);
        assert_eq!(arm, before);
        // A reward assigned "in the future" of its arrival still weighs at most 1.
        assert_eq!(reward_weight(0.75, 2 * H, H, Some(H)), 0.75);
    }

    #[test]
    fn without_a_half_life_the_decayed_counters_are_the_raw_ones() {
        let mut arm = ArmCounters::default();
        exposure(&mut arm, 0, Some(H));
        exposure(&mut arm, H, None);
        arm.reward_sum += 0.3;
        record_change(
            &mut arm,
            H / 2,
            None,
            0.0,
            reward_weight(0.3, 0, H / 2, None),
        );
        assert_eq!(arm.decayed_exposures, 2.0);
        assert_eq!(arm.decayed_reward_sum, 0.3);
        assert_eq!(arm.decayed_at_ms, H, "the reference time never moves back");
        assert_eq!(arm.decayed_as_of(50 * H, None), (2.0, 0.3));
    }

    #[test]
    fn decayed_rewards_never_outrun_decayed_exposures() {
        // Every assignment rewarded 1.0 at various delays: R must equal N up to rounding.
        let mut arm = ArmCounters::default();
        for (assigned, delay) in [(0, 5), (H / 7, H), (3 * H, 0), (2 * H, 4 * H)] {
            exposure(&mut arm, assigned, Some(H));
            let arrival = assigned + delay;
            arm.reward_sum += 1.0;
            record_change(
                &mut arm,
                arrival,
                Some(H),
                0.0,
                reward_weight(1.0, assigned, arrival, Some(H)),
            );
        }
        let (exposures, rewards) = arm.decayed_as_of(7 * H, Some(H));
        assert!(
            rewards <= exposures * (1.0 + 1e-12),
            "{rewards} > {exposures}"
        );
        assert!((rewards - exposures).abs() <= 1e-12 * exposures);
    }
}
