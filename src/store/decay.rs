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
//! [`decayed_sum_as_of`]. Decay never makes a value grow: a write or read whose clock lags the
//! reference time decays the NEW evidence instead of inflating the old.
//!
//! Decayed sums cannot be recomputed from the records (per-request exposures have none, and
//! the history of half-lives is not kept), so the audit does not check them.

use super::ArmCounters;

/// 2^(−age_ms / half_life_ms): the share of its weight evidence keeps after `age_ms`.
///
/// A zero half-life is read as 1 ms: the spec layer rejects it, and the store must never
/// compute 0/0.
pub fn retention(age_ms: u64, half_life_ms: u64) -> f64 {
    // u64 → f64 rounds above 2^53 ms (285,000 years); irrelevant for ages.
    (-(age_ms as f64) / half_life_ms.max(1) as f64).exp2()
}

/// Adds `delta`, observed at `now_ms`, to the decayed sum `sum` held as of `at_ms`; returns the
/// new sum and its reference time, max(at_ms, now_ms).
///
/// This is the one update formula of the store: D ← D · 2^(−(now − at)/h) + δ when the clock
/// moved forward, D ← D + δ · 2^(−(at − now)/h) when it lags.
pub fn add_decayed(sum: f64, at_ms: u64, now_ms: u64, delta: f64, half_life_ms: u64) -> (f64, u64) {
    if now_ms >= at_ms {
        (
            sum * retention(now_ms - at_ms, half_life_ms) + delta,
            now_ms,
        )
    } else {
        (sum + delta * retention(at_ms - now_ms, half_life_ms), at_ms)
    }
}

/// The value at `now_ms` of a decayed sum held as of `at_ms`. A clock behind `at_ms` sees the
/// stored value: decay never runs backwards into growth.
pub fn decayed_sum_as_of(sum: f64, at_ms: u64, now_ms: u64, half_life_ms: u64) -> f64 {
    sum * retention(now_ms.saturating_sub(at_ms), half_life_ms)
}

/// The weight a reward enters the decayed R with: aged from its assignment (`assigned_ms` of
/// the sticky record, `issued_ms` of the token), not from its arrival, because it is evidence
/// about that exposure, whose own weight has been decaying since then. This keeps each
/// assignment's reward contribution at most its exposure contribution, so decayed R never
/// outruns decayed N.
pub fn reward_weight(reward: f64, assigned_ms: u64, now_ms: u64, half_life_ms: Option<u64>) -> f64 {
    match half_life_ms {
        Some(half_life_ms) => reward * retention(now_ms.saturating_sub(assigned_ms), half_life_ms),
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
            let at_ms = counters.decayed_at_ms;
            let (decayed_exposures, new_at_ms) = add_decayed(
                counters.decayed_exposures,
                at_ms,
                now_ms,
                exposures,
                half_life_ms,
            );
            let (decayed_reward_sum, _) = add_decayed(
                counters.decayed_reward_sum,
                at_ms,
                now_ms,
                reward,
                half_life_ms,
            );
            counters.decayed_exposures = decayed_exposures;
            counters.decayed_reward_sum = decayed_reward_sum;
            counters.decayed_at_ms = new_at_ms;
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
    /// decayed sums rescaled from `decayed_at_ms` (see [`decayed_sum_as_of`]).
    pub fn decayed_as_of(&self, now_ms: u64, half_life_ms: Option<u64>) -> (f64, f64) {
        match half_life_ms {
            Some(half_life_ms) => (
                decayed_sum_as_of(
                    self.decayed_exposures,
                    self.decayed_at_ms,
                    now_ms,
                    half_life_ms,
                ),
                decayed_sum_as_of(
                    self.decayed_reward_sum,
                    self.decayed_at_ms,
                    now_ms,
                    half_life_ms,
                ),
            ),
            None => (self.exposures as f64, self.reward_sum),
        }
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
        assert_eq!(retention(0, H), 1.0);
        assert_eq!(retention(H, H), 0.5);
        assert_eq!(retention(2 * H, H), 0.25);
        assert_eq!(retention(10 * H, H), 1.0 / 1024.0);
        assert!((retention(H / 2, H) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
    }

    #[test]
    fn a_zero_half_life_forgets_instead_of_dividing_by_zero() {
        assert_eq!(retention(0, 0), 1.0);
        assert_eq!(retention(5_000, 0), 0.0);
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
