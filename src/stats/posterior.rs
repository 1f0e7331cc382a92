//! The Beta posterior of one arm's reward rate (docs/ARCHITECTURE.md, "Posterior").

use super::beta_sampler::BetaSampler;
use super::error::{StatsError, check_shapes};
use super::quantile::{Tail, quantile_by_tail};

/// Beta(alpha, beta) posterior of a Bernoulli-like reward rate. Rewards in [0, 1] enter as
/// fractional successes (alpha += r, beta += 1 − r): the deterministic counterpart of Agrawal
/// & Goyal's randomised Bernoulli trick; `stats::decay`'s module docs explain the choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

impl Posterior {
    /// Beta(prior_alpha + R, prior_beta + N − R) for N exposures and reward sum R.
    ///
    /// N − R is clamped at 0 because the counters are not updated atomically together:
    /// with many replicas a reward can be counted before its exposure's batched increment
    /// lands, and exponential decay (`half_life`) scales N and R separately so rounding can
    /// leave R a hair above N. A negative Beta shape would be meaningless, while R > N by a
    /// few units only sharpens alpha slightly until the exposure arrives. Counters that are
    /// negative or not finite (corruption) are treated as 0, i.e. "no evidence". The priors
    /// are taken as given: the spec layer validates them, and methods that need valid shapes
    /// report an error instead of panicking.
    pub fn from_counts(prior_alpha: f64, prior_beta: f64, exposures: f64, reward_sum: f64) -> Self {
        let exposures = finite_non_negative(exposures);
        let rewards = finite_non_negative(reward_sum);
        Self {
            alpha: prior_alpha + rewards,
            beta: prior_beta + (exposures - rewards).max(0.0),
        }
    }

    /// Posterior mean alpha / (alpha + beta).
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// Posterior variance alpha·beta / ((alpha + beta)²·(alpha + beta + 1)).
    pub fn variance(&self) -> f64 {
        let total = self.alpha + self.beta;
        self.alpha * self.beta / (total * total * (total + 1.0))
    }

    /// Equal-tailed credible interval: the ((1 − level)/2, (1 + level)/2) quantiles.
    ///
    /// `level` must lie strictly inside (0, 1); 0 and 1 give degenerate intervals that no
    /// caller means, so they are reported as [`StatsError::InvalidLevel`] rather than
    /// clamped, letting the HTTP layer answer 400. Accurate and terminating for shapes from
    /// 1e-3 to 1e8 (see [`super::beta_quantile`] for why it does not call statrs' inverse CDF).
    pub fn credible_interval(&self, level: f64) -> Result<(f64, f64), StatsError> {
        if !(level > 0.0 && level < 1.0) {
            return Err(StatsError::InvalidLevel(level));
        }
        check_shapes(self.alpha, self.beta)?;
        let tail = (1.0 - level) / 2.0;
        let lower = quantile_by_tail(self.alpha, self.beta, Tail::Lower(tail))?;
        // Specified by its upper tail, so that 1 − tail is never rounded.
        let upper = quantile_by_tail(self.alpha, self.beta, Tail::Upper(tail))?;
        Ok((lower, upper))
    }

    /// A cached sampler for Thompson draws from this posterior (never fails; see
    /// [`BetaSampler::new_saturating`]).
    pub fn sampler(&self) -> BetaSampler {
        BetaSampler::new_saturating(self.alpha, self.beta)
    }
}

fn finite_non_negative(count: f64) -> f64 {
    if count.is_finite() {
        count.max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_update_the_prior_conjugately() {
        let posterior = Posterior::from_counts(2.0, 40.0, 100.0, 7.5);
        assert_eq!(
            posterior,
            Posterior {
                alpha: 9.5,
                beta: 132.5
            }
        );
    }

    #[test]
    fn rewards_above_exposures_do_not_make_beta_fall_below_the_prior() {
        let posterior = Posterior::from_counts(1.0, 1.0, 10.0, 12.0);
        assert_eq!(
            posterior,
            Posterior {
                alpha: 13.0,
                beta: 1.0
            }
        );
    }

    #[test]
    fn negative_or_non_finite_counters_count_as_no_evidence() {
        for (exposures, rewards) in [(-5.0, 1.0), (f64::NAN, 0.0), (3.0, f64::INFINITY)] {
            let posterior = Posterior::from_counts(1.0, 1.0, exposures, rewards);
            assert!(
                posterior.alpha >= 1.0 && posterior.beta >= 1.0,
                "{posterior:?}"
            );
            assert!(posterior.alpha.is_finite() && posterior.beta.is_finite());
        }
        assert_eq!(
            Posterior::from_counts(1.0, 1.0, f64::NAN, f64::NAN),
            Posterior {
                alpha: 1.0,
                beta: 1.0
            }
        );
    }

    #[test]
    fn mean_and_variance_follow_the_closed_form() {
        // Beta(2, 3): mean 2/5, variance 6 / (25·6) = 1/25.
        let posterior = Posterior {
            alpha: 2.0,
            beta: 3.0,
        };
        assert!((posterior.mean() - 0.4).abs() < 1e-15);
        assert!((posterior.variance() - 0.04).abs() < 1e-15);
    }

    #[test]
    fn uniform_posterior_has_the_2_5_and_97_5_percent_points_as_its_95_percent_interval() {
        let (lower, upper) = Posterior {
            alpha: 1.0,
            beta: 1.0,
        }
        .credible_interval(0.95)
        .expect("valid level");
        assert!((lower - 0.025).abs() < 1e-15, "{lower}");
        assert!((upper - 0.975).abs() < 1e-15, "{upper}");
    }

    #[test]
    fn interval_of_beta_one_b_matches_the_closed_form_quantiles() {
        // Q(p) = 1 − (1−p)^(1/b) for Beta(1, b).
        let b = 40.0;
        let (lower, upper) = Posterior {
            alpha: 1.0,
            beta: b,
        }
        .credible_interval(0.9)
        .expect("valid level");
        let closed_form = |p: f64| 1.0 - (1.0 - p).powf(1.0 / b);
        assert!((lower / closed_form(0.05) - 1.0).abs() < 1e-12, "{lower}");
        assert!((upper / closed_form(0.95) - 1.0).abs() < 1e-12, "{upper}");
    }

    #[test]
    fn interval_for_huge_counts_matches_the_high_precision_reference() {
        // mpmath 1.3 reference (see quantile.rs): Beta(1e6+1, 9e6+1) 95% interval.
        let (lower, upper) = Posterior::from_counts(1.0, 1.0, 1e7, 1e6)
            .credible_interval(0.95)
            .expect("valid level");
        assert!((lower - 0.0998142172397858).abs() < 1e-12, "{lower}");
        assert!(
            (upper - (1.0 - 0.8998139056954149)).abs() < 1e-12,
            "{upper}"
        );
    }

    #[test]
    fn levels_outside_the_open_unit_interval_are_errors() {
        let posterior = Posterior {
            alpha: 2.0,
            beta: 3.0,
        };
        for level in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert!(matches!(
                posterior.credible_interval(level),
                Err(StatsError::InvalidLevel(_))
            ));
        }
    }

    #[test]
    fn invalid_shapes_are_errors_not_panics() {
        let posterior = Posterior {
            alpha: 0.0,
            beta: f64::NAN,
        };
        assert!(matches!(
            posterior.credible_interval(0.95),
            Err(StatsError::InvalidShape { .. })
        ));
    }

    #[test]
    fn intervals_are_ordered_for_extreme_shapes_and_contain_the_mean_when_shapes_exceed_one() {
        // With a shape below 1 the mean can legitimately lie outside the 95% interval:
        // Beta(1e-3, 0.5) has mean 0.002 but P(X > 0.002) < 1%.
        let shapes = [1e-3, 0.5, 2.0, 1e4, 1e8];
        for &alpha in &shapes {
            for &beta in &shapes {
                let posterior = Posterior { alpha, beta };
                let (lower, upper) = posterior.credible_interval(0.95).expect("valid level");
                assert!(
                    0.0 <= lower && lower <= upper && upper <= 1.0,
                    "Beta({alpha},{beta})"
                );
                let mean = posterior.mean();
                if alpha >= 1.0 && beta >= 1.0 {
                    assert!(
                        lower <= mean && mean <= upper,
                        "Beta({alpha},{beta}): {lower}..{upper}"
                    );
                }
            }
        }
    }
}
