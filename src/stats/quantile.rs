//! Beta quantiles that terminate and stay accurate from shapes of 1e-3 to 1e8.
//!
//! Why not `statrs::distribution::Beta::inverse_cdf` directly: its AS 109 Newton iteration
//! does not terminate for Beta(1e-3, 1e8), and returns 4.7e-19 instead of (underflowed) 0 for
//! the 2.5% point of Beta(1e-3, 1e-3). Its CDF (`beta_reg`, a 140-term Lentz continued
//! fraction) is accurate to ~1e-7 or better everywhere we checked against mpmath, *except*
//! near the mean when both shapes exceed ~1e5, where the fraction has not converged (off by
//! 1e-2 at Beta(1e6, 9e6), and negative at Beta(1e8, 1e8)). So:
//! - min(alpha, beta) < [`ASYMPTOTIC_MIN_SHAPE`]: bisect statrs' CDF (or, for upper-tail
//!   probabilities, its survival function) over the *bit patterns*
//!   of f64 in [0, 1]. Positive floats order like their bits, so at most 62 halvings reach
//!   the exact float, subnormals included, whatever the shapes.
//! - both shapes ≥ [`ASYMPTOTIC_MIN_SHAPE`]: the Cornish–Fisher expansion to second order
//!   (Cornish & Fisher 1938; Abramowitz & Stegun 26.2.49) around the normal limit. Its error
//!   is O(n^(-3/2)) standard deviations, below 1e-9 absolute here.

use super::error::{StatsError, check_shapes};
use statrs::distribution::{Beta, ContinuousCDF};
use statrs::function::erf::erfc_inv;

/// Both shapes at or above this use the Cornish–Fisher expansion. statrs' CDF is still exact
/// to ~1e-10 at the mean for shapes of 3e4 (checked against mpmath), and the expansion's
/// error at 5e4 is ~1e-9 standard deviations, so the two agree across the switch.
pub const ASYMPTOTIC_MIN_SHAPE: f64 = 5e4;

/// The p-quantile of Beta(alpha, beta): the smallest f64 x with P(X ≤ x) ≥ p (true
/// quantiles below the smallest subnormal come out as 5e-324 or 0). `p` must lie in [0, 1].
pub fn beta_quantile(alpha: f64, beta: f64, p: f64) -> Result<f64, StatsError> {
    check_shapes(alpha, beta)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(StatsError::InvalidProbability(p));
    }
    if p <= 0.5 {
        quantile_by_tail(alpha, beta, Tail::Lower(p))
    } else {
        // 1 − p is exact for p ∈ [0.5, 1] (Sterbenz lemma).
        quantile_by_tail(alpha, beta, Tail::Upper(1.0 - p))
    }
}

/// Which tail probability a quantile is specified by. Upper-tail quantiles are searched with
/// the survival function, which statrs evaluates without the cancellation of 1 − cdf.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tail {
    /// x with P(X ≤ x) = p, for p ∈ [0, 0.5].
    Lower(f64),
    /// x with P(X > x) = q, for q ∈ [0, 0.5].
    Upper(f64),
}

/// Quantile of shapes already checked, specified by a tail probability in [0, 0.5].
pub(crate) fn quantile_by_tail(alpha: f64, beta: f64, tail: Tail) -> Result<f64, StatsError> {
    match tail {
        Tail::Lower(p) if p <= 0.0 => return Ok(0.0),
        Tail::Upper(q) if q <= 0.0 => return Ok(1.0),
        _ => {}
    }
    if alpha.min(beta) >= ASYMPTOTIC_MIN_SHAPE {
        let z = match tail {
            Tail::Lower(p) => standard_normal_quantile(p),
            Tail::Upper(q) => -standard_normal_quantile(q),
        };
        return Ok(cornish_fisher_quantile(alpha, beta, z));
    }
    let distribution =
        Beta::new(alpha, beta).map_err(|_| StatsError::InvalidShape { alpha, beta })?;
    let reached = |x: f64| match tail {
        Tail::Lower(p) => distribution.cdf(x) >= p,
        Tail::Upper(q) => distribution.sf(x) <= q,
    };
    // Invariant: !reached(from_bits(below)) && reached(from_bits(at_or_above)); the search
    // interval [0, 1] is bisected over bit patterns, so it ends after at most 62 steps.
    let mut below = 0.0f64.to_bits();
    let mut at_or_above = 1.0f64.to_bits();
    while at_or_above - below > 1 {
        let mid = below + (at_or_above - below) / 2;
        if reached(f64::from_bits(mid)) {
            at_or_above = mid;
        } else {
            below = mid;
        }
    }
    Ok(f64::from_bits(at_or_above))
}

/// Second-order Cornish–Fisher quantile, w = z + (z²−1)γ₁/6 + (z³−3z)γ₂/24 − (2z³−5z)γ₁²/36,
/// x = mean + sd·w, with the Beta skewness γ₁ and excess kurtosis γ₂ from Johnson, Kotz &
/// Balakrishnan, Continuous Univariate Distributions vol. 2, ch. 25.
fn cornish_fisher_quantile(alpha: f64, beta: f64, z: f64) -> f64 {
    let total = alpha + beta;
    let mean = alpha / total;
    let sd = (alpha * beta / (total * total * (total + 1.0))).sqrt();
    let skewness =
        2.0 * (beta - alpha) * (total + 1.0).sqrt() / ((total + 2.0) * (alpha * beta).sqrt());
    let excess_kurtosis = 6.0
        * ((alpha - beta).powi(2) * (total + 1.0) - alpha * beta * (total + 2.0))
        / (alpha * beta * (total + 2.0) * (total + 3.0));
    let w = z + (z * z - 1.0) * skewness / 6.0 + (z.powi(3) - 3.0 * z) * excess_kurtosis / 24.0
        - (2.0 * z.powi(3) - 5.0 * z) * skewness * skewness / 36.0;
    (mean + sd * w).clamp(0.0, 1.0)
}

/// Φ⁻¹(p) = −√2·erfc⁻¹(2p) (Abramowitz & Stegun 26.2.2 with 7.1.2), for p ∈ (0, 0.5] as
/// guaranteed by the callers; statrs' `erfc_inv` does not panic on that range.
fn standard_normal_quantile(p: f64) -> f64 {
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::SQRT_2;

    fn quantile(alpha: f64, beta: f64, p: f64) -> f64 {
        beta_quantile(alpha, beta, p).expect("valid constant arguments")
    }

    fn assert_relative(actual: f64, expected: f64, tolerance: f64, what: &str) {
        let error = ((actual - expected) / expected).abs();
        assert!(
            error <= tolerance,
            "{what}: {actual} vs {expected} (rel {error:e})"
        );
    }

    const PROBABILITIES: [f64; 5] = [0.001, 0.025, 0.5, 0.975, 0.999];

    #[test]
    fn uniform_quantiles_are_the_probabilities_themselves() {
        for p in PROBABILITIES {
            assert_relative(quantile(1.0, 1.0, p), p, 1e-15, "Beta(1,1)");
        }
    }

    #[test]
    fn beta_one_b_quantiles_match_the_closed_form() {
        // F(x) = 1 − (1−x)^b, so Q(p) = 1 − (1−p)^(1/b), written with ln_1p/exp_m1 to keep
        // precision. b = 1e8 is looser: statrs' ln Γ(1e8) cancellation costs ~2e-7 relative.
        for (b, tolerance) in [(2.0, 1e-12), (40.0, 1e-12), (1e3, 1e-10), (1e8, 2e-6)] {
            for p in PROBABILITIES {
                let expected = -((-p).ln_1p() / b).exp_m1();
                assert_relative(
                    quantile(1.0, b, p),
                    expected,
                    tolerance,
                    &format!("Beta(1,{b}) p={p}"),
                );
            }
        }
    }

    #[test]
    fn beta_a_one_quantiles_match_the_closed_form() {
        // F(x) = x^a, so Q(p) = p^(1/a). For a = 1e-3 the low quantiles underflow (0.025^1000
        // = 1e-1602), so only p ≥ 0.5 is checked there.
        for (a, tolerance) in [(0.5, 1e-12), (3.0, 1e-12), (1e-3, 1e-9), (1e8, 2e-6)] {
            for p in PROBABILITIES.into_iter().filter(|&p| a > 0.01 || p >= 0.5) {
                let expected = p.powf(1.0 / a);
                assert_relative(
                    quantile(a, 1.0, p),
                    expected,
                    tolerance,
                    &format!("Beta({a},1) p={p}"),
                );
            }
        }
    }

    #[test]
    fn arcsine_quantiles_match_the_closed_form() {
        // Beta(1/2, 1/2) is the arcsine law: F(x) = (2/π)·asin(√x), Q(p) = sin²(πp/2).
        for p in PROBABILITIES {
            let expected = (std::f64::consts::FRAC_PI_2 * p).sin().powi(2);
            assert_relative(quantile(0.5, 0.5, p), expected, 1e-12, &format!("p={p}"));
        }
    }

    #[test]
    fn quantiles_match_high_precision_references_across_the_shape_range() {
        // References: bisection on mpmath 1.3 quadrature of the Beta density at 30 digits;
        // the upper points via Q(a,b;0.975) = 1 − Q(b,a;0.025).
        let cases = [
            (2.0, 40.0, 0.025, 0.0059631182410428306, 1e-11),
            (2.0, 40.0, 0.975, 1.0 - 0.8714459796158537, 1e-11),
            (101.0, 901.0, 0.025, 0.08293639849581785, 1e-11),
            (101.0, 901.0, 0.975, 1.0 - 0.8798308701241394, 1e-11),
            (1e6 + 1.0, 9e6 + 1.0, 0.025, 0.0998142172397858, 1e-11),
            (1e6 + 1.0, 9e6 + 1.0, 0.975, 1.0 - 0.8998139056954149, 1e-11),
            (1e8, 1e8, 0.025, 0.4999307048090286, 1e-13),
            // statrs' ln Γ(1e8) cancellation leaves ~2.6e-7 absolute error in the tail
            // probability; with dF/d(ln x) ≈ a = 1e-3 that is ~3e-4 relative in x.
            (1e-3, 1e8, 0.975, 5.67925202519116e-20, 1e-3),
        ];
        for (a, b, p, expected, tolerance) in cases {
            assert_relative(
                quantile(a, b, p),
                expected,
                tolerance,
                &format!("Beta({a},{b}) p={p}"),
            );
        }
    }

    #[test]
    fn both_methods_agree_across_the_asymptotic_switch() {
        // Just below the switch statrs' CDF is bisected, just above Cornish–Fisher is used;
        // both are accurate there, so a wrong expansion term would show up as a jump.
        let below = ASYMPTOTIC_MIN_SHAPE * (1.0 - 1e-12);
        for (a, b) in [(below, below), (below, 9.0 * below), (below, 2e7)] {
            for p in PROBABILITIES {
                let bisected = quantile(a, b, p);
                let expanded = cornish_fisher_quantile(a, b, -SQRT_2 * erfc_inv(2.0 * p));
                let sd = (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
                assert!(
                    (bisected - expanded).abs() < 1e-5 * sd,
                    "Beta({a},{b}) p={p}"
                );
            }
        }
    }

    #[test]
    fn tiny_shapes_give_the_underflowed_limits_without_hanging() {
        // Beta(1e-3, 1e-3) is nearly Bernoulli(1/2): its 2.5% point is ~1e-1301 (0 in f64).
        assert!(quantile(1e-3, 1e-3, 0.025) <= f64::from_bits(1));
        assert_eq!(quantile(1e-3, 1e-3, 0.975), 1.0);
        assert!((quantile(1e-3, 1e-3, 0.5) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn quantiles_are_ordered_and_finite_over_extreme_shapes() {
        let shapes = [1e-3, 0.5, 1.0, 7.0, 1e3, 6e4, 1e8];
        for &a in &shapes {
            for &b in &shapes {
                let mut previous = 0.0;
                for p in PROBABILITIES {
                    let q = quantile(a, b, p);
                    assert!(
                        q.is_finite() && (0.0..=1.0).contains(&q),
                        "Beta({a},{b}) p={p}: {q}"
                    );
                    assert!(q >= previous, "Beta({a},{b}) not monotone at p={p}");
                    previous = q;
                }
            }
        }
    }

    #[test]
    fn probabilities_outside_the_unit_interval_and_bad_shapes_are_errors() {
        assert_eq!(
            beta_quantile(1.0, 1.0, 1.5),
            Err(StatsError::InvalidProbability(1.5))
        );
        assert!(beta_quantile(1.0, 1.0, f64::NAN).is_err());
        assert!(beta_quantile(0.0, 1.0, 0.5).is_err());
        assert_eq!(quantile(2.0, 3.0, 0.0), 0.0);
        assert_eq!(quantile(2.0, 3.0, 1.0), 1.0);
    }
}
