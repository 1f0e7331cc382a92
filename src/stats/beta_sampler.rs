//! Beta draws as X/(X+Y) with X ~ Gamma(alpha, 1), Y ~ Gamma(beta, 1) (e.g. Devroye 1986,
//! "Non-Uniform Random Variate Generation", ch. IX.4, Theorem 4.1).
//!
//! Why not `rand_distr::Beta`: Cheng's BB/BC rejection samplers need an `exp` and a `ln` per
//! attempt plus set-up work per parameter pair; two Marsaglia–Tsang Gamma draws are cheaper
//! (see `benches/policy.rs`). Why the log scale for shapes below 1: X = Gamma(a+1)·U^(1/a)
//! underflows to exactly 0 for a ≈ 1e-3 about half the time, and X + Y == 0 would be a 0/0.
//! Working with ln X and ln Y and returning the logistic of their difference gives the same
//! variate, exactly representable down to 0.0 and 1.0, with no NaN.

use super::error::{StatsError, check_shapes};
use super::gamma::GammaSampler;
use rand::Rng;

/// Smallest shape `sample_beta` accepts before clamping. Below ~1e-306 the log-scale draw
/// ln(U)/shape would overflow; 1e-300 keeps a margin and is far beyond any real prior.
pub const MIN_SAMPLED_SHAPE: f64 = 1e-300;
/// Largest shape `sample_beta` accepts before clamping, so that X + Y cannot overflow.
pub const MAX_SAMPLED_SHAPE: f64 = 1e300;

/// A Beta(alpha, beta) sampler with its Gamma constants precomputed, for callers that draw
/// repeatedly from one posterior state (the engine may keep one per arm). Copy, no heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaSampler {
    numerator: GammaSampler,
    complement: GammaSampler,
}

impl BetaSampler {
    /// A sampler for Beta(alpha, beta); both shapes must be finite and positive.
    pub fn new(alpha: f64, beta: f64) -> Result<Self, StatsError> {
        check_shapes(alpha, beta)?;
        Ok(Self::new_saturating(alpha, beta))
    }

    /// A sampler that never fails: shapes are clamped into
    /// [`MIN_SAMPLED_SHAPE`, `MAX_SAMPLED_SHAPE`] and NaN counts as the minimum. A corrupt
    /// posterior then makes its arm (almost) never win a Thompson draw instead of poisoning
    /// the argmax with NaN; posteriors built by `Posterior::from_counts` are always in range.
    pub fn new_saturating(alpha: f64, beta: f64) -> Self {
        Self {
            numerator: GammaSampler::new(saturate_shape(alpha)),
            complement: GammaSampler::new(saturate_shape(beta)),
        }
    }

    /// One draw in [0, 1]; never NaN.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        if !self.numerator.needs_log_scale() && !self.complement.needs_log_scale() {
            let x = self.numerator.sample(rng);
            let y = self.complement.sample(rng);
            let total = x + y;
            // Both draws are d·v with d ≥ 2/3 and v > 0, so total > 0 unless both cubes
            // underflowed (probability far below 1e-100); the log path covers even that.
            if total > 0.0 {
                return x / total;
            }
        }
        let ln_x = self.numerator.sample_ln(rng);
        let ln_y = self.complement.sample_ln(rng);
        logistic_of_negated(ln_y - ln_x)
    }
}

/// One Beta(alpha, beta) draw without keeping a sampler. Construction is a `sqrt` and a
/// division per shape, so this is only marginally slower than a cached [`BetaSampler`].
/// Out-of-range shapes are clamped as in [`BetaSampler::new_saturating`].
pub fn sample_beta<R: Rng + ?Sized>(rng: &mut R, alpha: f64, beta: f64) -> f64 {
    BetaSampler::new_saturating(alpha, beta).sample(rng)
}

/// X/(X+Y) = 1/(1 + e^t) for t = ln Y − ln X. For t > 0 it is evaluated as e^−t/(1 + e^−t),
/// so that results down to the smallest subnormal survive (1/(1 + e^t) would flush
/// everything below e^−709 to 0); for t < 0 the rounding to 1.0 is inherent in f64.
fn logistic_of_negated(t: f64) -> f64 {
    if t > 0.0 {
        let e = (-t).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + t.exp())
    }
}

fn saturate_shape(shape: f64) -> f64 {
    if shape.is_nan() {
        MIN_SAMPLED_SHAPE
    } else {
        shape.clamp(MIN_SAMPLED_SHAPE, MAX_SAMPLED_SHAPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::{KS_CRITICAL_0_001, ks_statistic, mean_and_variance};
    use rand::{SeedableRng, rngs::SmallRng};
    use statrs::distribution::{Beta, ContinuousCDF, Normal};

    const DRAWS: usize = 20_000;

    fn draws(alpha: f64, beta: f64, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..DRAWS)
            .map(|_| sample_beta(&mut rng, alpha, beta))
            .collect()
    }

    fn ks_critical() -> f64 {
        KS_CRITICAL_0_001 / (DRAWS as f64).sqrt()
    }

    #[test]
    fn draws_pass_a_kolmogorov_smirnov_test_against_the_beta_cdf() {
        // Tiny shapes are checked separately: their draws round to atoms at 0.0 and 1.0,
        // which the continuous KS statistic would misread.
        let cases = [
            (0.5, 0.5),
            (1.0, 1.0),
            (2.0, 40.0),
            (101.0, 901.0),
            (0.3, 7.0),
            (0.05, 2.0),
        ];
        for (i, (alpha, beta)) in cases.into_iter().enumerate() {
            let mut sample = draws(alpha, beta, 10 + i as u64);
            let reference = Beta::new(alpha, beta).expect("valid constant shapes");
            let d = ks_statistic(&mut sample, |x| reference.cdf(x));
            assert!(d < ks_critical(), "Beta({alpha},{beta}): D = {d}");
        }
    }

    #[test]
    fn tiny_shape_draws_have_the_right_mass_below_points_at_every_scale() {
        // Beta(1e-3, 1e-3) puts mass ~x^a/2 below tiny x: about half the draws lie below
        // 1e-16, a quarter below 1e-300, and the upper half rounds to 1.0 beyond 1 − 1e-16.
        // Each empirical fraction is a binomial proportion; 4 standard errors apply.
        let (alpha, beta) = (1e-3, 1e-3);
        let mut sample = draws(alpha, beta, 21);
        sample.sort_by(f64::total_cmp);
        let reference = Beta::new(alpha, beta).expect("valid constant shapes");
        let n = DRAWS as f64;
        for point in [1e-300, 1e-100, 1e-10, 0.5, 1.0 - 1e-10] {
            let expected = reference.cdf(point);
            let observed = sample.partition_point(|&x| x <= point) as f64 / n;
            let se = (expected * (1.0 - expected) / n).sqrt();
            assert!(
                (observed - expected).abs() < 4.0 * se,
                "P(X <= {point}): {observed} vs {expected}"
            );
        }
    }

    #[test]
    fn draws_for_huge_counts_pass_a_kolmogorov_smirnov_test_against_their_normal_limit() {
        // statrs' incomplete beta runs a 140-term continued fraction that has not converged
        // near the mean for shapes ≥ 1e6 (its CDF is off by 1e-2 there), so it cannot be the
        // reference. The normal with the same mean and variance can: by the Edgeworth
        // expansion its sup-distance to the Beta is about |skewness|·φ(0)/6 = 1.1e-4 here,
        // a hundredth of the KS critical value 0.0138.
        let (alpha, beta): (f64, f64) = (1e6 + 1.0, 9e6 + 1.0);
        let total = alpha + beta;
        let mean = alpha / total;
        let sd = (alpha * beta / (total * total * (total + 1.0))).sqrt();
        let reference = Normal::new(mean, sd).expect("valid constant normal");
        let mut sample = draws(alpha, beta, 3);
        let d = ks_statistic(&mut sample, |x| reference.cdf(x));
        assert!(d < ks_critical(), "D = {d}");
    }

    #[test]
    fn sample_mean_and_variance_match_the_closed_form_within_four_standard_errors() {
        let cases = [
            (0.5, 0.5),
            (2.0, 40.0),
            (101.0, 901.0),
            (1e-3, 1e-3),
            (1e6 + 1.0, 9e6 + 1.0),
        ];
        for (i, (a, b)) in cases.into_iter().enumerate() {
            let sample = draws(a, b, 40 + i as u64);
            let (mean, variance) = mean_and_variance(&sample);
            let n = DRAWS as f64;
            let s = a + b;
            let true_mean = a / s;
            let true_var = a * b / (s * s * (s + 1.0));
            // Excess kurtosis of Beta(a, b) (Johnson, Kotz & Balakrishnan, Continuous
            // Univariate Distributions vol. 2, eq. 25.17); Var(sample variance) ≈ (κ+2)σ⁴/n.
            let kurtosis = 6.0 * ((a - b).powi(2) * (s + 1.0) - a * b * (s + 2.0))
                / (a * b * (s + 2.0) * (s + 3.0));
            let mean_se = (true_var / n).sqrt();
            let var_se = ((kurtosis + 2.0) / n).sqrt() * true_var;
            assert!(
                (mean - true_mean).abs() < 4.0 * mean_se,
                "Beta({a},{b}) mean {mean}"
            );
            assert!(
                (variance - true_var).abs() < 4.0 * var_se,
                "Beta({a},{b}) var {variance}"
            );
        }
    }

    #[test]
    fn extreme_shapes_never_produce_nan_or_values_outside_the_unit_interval() {
        let shapes = [1e-3, 0.5, 1.0, 3.0, 1e3, 1e8];
        let mut rng = SmallRng::seed_from_u64(5);
        for &alpha in &shapes {
            for &beta in &shapes {
                for _ in 0..2_000 {
                    let x = sample_beta(&mut rng, alpha, beta);
                    assert!((0.0..=1.0).contains(&x), "Beta({alpha},{beta}) drew {x}");
                }
            }
        }
    }

    #[test]
    fn invalid_shapes_are_rejected_by_new_and_clamped_by_sample_beta() {
        for (alpha, beta) in [
            (0.0, 1.0),
            (1.0, -2.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
        ] {
            assert!(
                BetaSampler::new(alpha, beta).is_err(),
                "({alpha},{beta}) accepted"
            );
            let mut rng = SmallRng::seed_from_u64(6);
            let x = sample_beta(&mut rng, alpha, beta);
            assert!((0.0..=1.0).contains(&x), "({alpha},{beta}) drew {x}");
        }
        // A NaN alpha counts as the minimum shape, so its draws sit at 0 and lose argmaxes.
        let mut rng = SmallRng::seed_from_u64(8);
        assert!((0..100).all(|_| sample_beta(&mut rng, f64::NAN, 1.0) < 1e-6));
    }

    #[test]
    fn cached_sampler_draws_the_same_stream_as_the_free_function() {
        let sampler = BetaSampler::new(2.0, 40.0).expect("valid constant shapes");
        let mut cached_rng = SmallRng::seed_from_u64(9);
        let mut free_rng = SmallRng::seed_from_u64(9);
        for _ in 0..1_000 {
            assert_eq!(
                sampler.sample(&mut cached_rng),
                sample_beta(&mut free_rng, 2.0, 40.0)
            );
        }
    }
}
