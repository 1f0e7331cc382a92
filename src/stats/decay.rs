//! Exponentially decayed exposure and reward counters for non-stationary rates
//! (`policy.half_life` in the experiment YAML; docs/ARCHITECTURE.md, "Decay").
//!
//! An observation of age Δ counts with weight 2^(−Δ/h) ("discounted Thompson sampling",
//! Raj & Kalyani 2017, arXiv:1707.09727, with γ = 2^(−1/h) per millisecond). Because the
//! weights factor, 2^(−(T−t)/h) = 2^(−(T−s)/h)·2^(−(s−t)/h), the sums need not be rescanned:
//! the counters store Σ w_i at a reference time `at_ms` and are rescaled lazily, on the next
//! write or read. The result is exact (up to rounding) whatever the order of writes and
//! reads, so replicas and replays agree.
//!
//! Rewards in [0, 1] enter as fractional successes: an exposure with reward r adds 1 to N
//! and r to R, so the posterior is Beta(α₀ + R, β₀ + N − R) (`Posterior::from_counts`). This
//! is the deterministic counterpart of the "Bernoulli trick" of Agrawal & Goyal 2012 ("Analysis
//! of Thompson Sampling for the Multi-armed Bandit Problem", COLT, §2), which instead draws a
//! Bernoulli(r) success. The deterministic update is preferred because:
//! - the counters are a pure function of the stored records, so after any crash, replay or
//!   replica merge they equal exactly what the assignment and event records imply
//!   (docs/ARCHITECTURE.md, "Durability"); a coin flip in the write path would make them depend on
//!   RNG state and would need an RNG there;
//! - the posterior mean (α₀ + R)/(α₀ + β₀ + N) still converges to the true mean reward, since
//!   R/N is the sample mean of the rewards (test `uniform_rewards_drive_the_posterior_mean_to_
//!   the_true_mean`); the Bernoulli trick only adds Bernoulli noise of variance r(1 − r) per
//!   observation on top of it.
//!
//! The price is that Beta(α₀ + R, β₀ + N − R) is not an exact Bayesian posterior for
//! non-binary rewards (no conjugate family covers arbitrary rewards in [0, 1]); it is a
//! pseudo-posterior, exact for 0/1 rewards and conservative otherwise: its variance is about
//! μ(1 − μ)/N, while the sample mean's is σ²/N ≤ μ(1 − μ)/N (a [0, 1] variable with mean μ
//! has variance at most μ(1 − μ)). Agrawal & Goyal's regret analysis is for the randomised
//! variant; for the deterministic one we rely on this conservativeness.

/// Exposures and reward sum discounted to the time `at_ms` (milliseconds since the Unix
/// epoch, or any monotone clock the caller uses consistently).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecayedCounts {
    /// Σ 2^(−(at_ms − t_i)/h) over exposures at times t_i.
    pub exposures: f64,
    /// Σ r_i · 2^(−(at_ms − t_i)/h) over rewards r_i credited at times t_i.
    pub reward_sum: f64,
    /// The time the sums are discounted to.
    pub at_ms: u64,
}

impl DecayedCounts {
    /// Empty counters referenced at `at_ms`.
    pub fn new(at_ms: u64) -> Self {
        Self {
            exposures: 0.0,
            reward_sum: 0.0,
            at_ms,
        }
    }

    /// The counters discounted to `now_ms`: multiplied by 2^(−(now_ms − at_ms)/h). A
    /// `now_ms` at or before `at_ms` leaves them unchanged (a clock that steps back must not
    /// make evidence grow). A half-life of 0 means "forget everything older than now".
    pub fn decayed_to(self, now_ms: u64, half_life_ms: u64) -> Self {
        if now_ms <= self.at_ms {
            return self;
        }
        let weight = decay_weight(now_ms - self.at_ms, half_life_ms);
        Self {
            exposures: self.exposures * weight,
            reward_sum: self.reward_sum * weight,
            at_ms: now_ms,
        }
    }

    /// Decays to `now_ms`, then adds `d_exposures` and `d_reward` observed at `now_ms`.
    ///
    /// An observation older than the counters (`now_ms < at_ms`, e.g. a late event from a
    /// replica whose clock lags) is discounted by its age relative to `at_ms` before it is
    /// added, so that the counters stay exactly Σ d_i·2^(−(at_ms − t_i)/h) whatever the
    /// order in which observations arrive.
    pub fn add(self, now_ms: u64, half_life_ms: u64, d_exposures: f64, d_reward: f64) -> Self {
        let decayed = self.decayed_to(now_ms, half_life_ms);
        let weight = decay_weight(decayed.at_ms - now_ms.min(decayed.at_ms), half_life_ms);
        Self {
            exposures: decayed.exposures + d_exposures * weight,
            reward_sum: decayed.reward_sum + d_reward * weight,
            at_ms: decayed.at_ms,
        }
    }
}

/// 2^(−age/h): the share of its weight evidence keeps after `age_ms`; exactly 1 at age 0 and
/// exactly 0.5 at age h (exp2 is exact at integers). A zero half-life forgets everything older
/// than now.
pub fn decay_weight(age_ms: u64, half_life_ms: u64) -> f64 {
    if age_ms == 0 {
        1.0
    } else if half_life_ms == 0 {
        0.0
    } else {
        (-(age_ms as f64) / half_life_ms as f64).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Posterior;
    use rand::{RngExt, SeedableRng, rngs::SmallRng};

    const DAY_MS: u64 = 86_400_000;

    fn assert_relative(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance * expected.abs(),
            "{actual} vs {expected}"
        );
    }

    #[test]
    fn after_exactly_one_half_life_the_weight_is_exactly_one_half() {
        let counts = DecayedCounts {
            exposures: 1000.0,
            reward_sum: 37.0,
            at_ms: 5,
        };
        let later = counts.decayed_to(5 + 14 * DAY_MS, 14 * DAY_MS);
        assert_eq!(later.exposures, 500.0);
        assert_eq!(later.reward_sum, 18.5);
        assert_eq!(later.at_ms, 5 + 14 * DAY_MS);
        let two_half_lives = counts.decayed_to(5 + 28 * DAY_MS, 14 * DAY_MS);
        assert_eq!(two_half_lives.exposures, 250.0);
    }

    #[test]
    fn reading_at_or_before_the_reference_time_changes_nothing() {
        let counts = DecayedCounts {
            exposures: 10.0,
            reward_sum: 3.0,
            at_ms: 1_000,
        };
        assert_eq!(counts.decayed_to(1_000, DAY_MS), counts);
        assert_eq!(counts.decayed_to(10, DAY_MS), counts);
    }

    #[test]
    fn a_sequence_of_adds_equals_the_directly_weighted_sum() {
        let half_life = 3 * DAY_MS;
        let events: [(u64, f64, f64); 5] = [
            (0, 1.0, 1.0),
            (7_200_000, 3.0, 0.5),
            (DAY_MS + 17, 2.0, 0.0),
            (4 * DAY_MS, 5.0, 2.25),
            (4 * DAY_MS + 1, 1.0, 1.0),
        ];
        let read_at = 9 * DAY_MS + 12_345;
        let mut counts = DecayedCounts::new(0);
        for &(t, n, r) in &events {
            counts = counts.add(t, half_life, n, r);
        }
        let counts = counts.decayed_to(read_at, half_life);
        let weight = |t: u64| 0.5f64.powf((read_at - t) as f64 / half_life as f64);
        let expected_n: f64 = events.iter().map(|&(t, n, _)| n * weight(t)).sum();
        let expected_r: f64 = events.iter().map(|&(t, _, r)| r * weight(t)).sum();
        assert_relative(counts.exposures, expected_n, 1e-13);
        assert_relative(counts.reward_sum, expected_r, 1e-13);
    }

    #[test]
    fn any_interleaving_of_adds_and_reads_gives_the_same_counts() {
        let half_life = DAY_MS;
        let events: Vec<(u64, f64, f64)> = (0..40u64)
            .map(|i| {
                (
                    i * 3_600_000 + i * i * 977,
                    1.0 + (i % 3) as f64,
                    (i % 5) as f64 * 0.25,
                )
            })
            .collect();
        let final_ms = 3 * DAY_MS;
        let mut in_order = DecayedCounts::new(0);
        for &(t, n, r) in &events {
            in_order = in_order.add(t, half_life, n, r);
        }
        let in_order = in_order.decayed_to(final_ms, half_life);
        // Reverse arrival (every event "late"), with reads at arbitrary times in between.
        let mut reversed = DecayedCounts::new(0);
        for (i, &(t, n, r)) in events.iter().rev().enumerate() {
            reversed = reversed.add(t, half_life, n, r);
            if i % 7 == 0 {
                reversed = reversed.decayed_to(t + 1_000, half_life);
            }
        }
        let reversed = reversed.decayed_to(final_ms, half_life);
        assert_relative(reversed.exposures, in_order.exposures, 1e-12);
        assert_relative(reversed.reward_sum, in_order.reward_sum, 1e-12);
        assert_eq!(reversed.at_ms, final_ms);
    }

    #[test]
    fn decay_never_makes_counts_grow_and_zero_half_life_forgets_the_past() {
        let counts = DecayedCounts {
            exposures: 8.0,
            reward_sum: 2.0,
            at_ms: 100,
        };
        for now in [101, 1_000, u64::MAX] {
            let later = counts.decayed_to(now, 50);
            assert!(later.exposures <= counts.exposures && later.exposures >= 0.0);
        }
        let forgotten = counts.add(101, 0, 1.0, 1.0);
        assert_eq!((forgotten.exposures, forgotten.reward_sum), (1.0, 1.0));
    }

    #[test]
    fn uniform_rewards_drive_the_posterior_mean_to_the_true_mean() {
        // 10^5 Uniform(0,1) rewards (true mean 0.5) as fractional successes: the posterior
        // mean (1 + R)/(2 + N) must lie within 4 standard errors of the sample mean's
        // sampling distribution, sqrt(1/12/N) = 9.1e-4, around 0.5.
        let draws = 100_000;
        let mut rng = SmallRng::seed_from_u64(2024);
        let mut counts = DecayedCounts::new(0);
        for _ in 0..draws {
            let reward: f64 = rng.random();
            counts = counts.add(0, DAY_MS, 1.0, reward);
        }
        let posterior = Posterior::from_counts(1.0, 1.0, counts.exposures, counts.reward_sum);
        let standard_error = (1.0 / 12.0 / draws as f64).sqrt();
        assert!(
            (posterior.mean() - 0.5).abs() < 4.0 * standard_error,
            "posterior mean {}",
            posterior.mean()
        );
        // And the counters are exactly what the records imply: N is the count.
        assert_eq!(counts.exposures, draws as f64);
    }
}
