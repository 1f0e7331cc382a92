//! Posterior density curves: Beta(α, β) densities sampled on a common x range, so that every
//! arm's posterior can be drawn on one plot.

use statrs::function::beta::ln_beta;

use crate::stats::Posterior;

/// Points per density curve: smooth at any plot width the dashboard uses.
pub const DENSITY_POINTS: usize = 241;

/// Posterior mass that the plotted x range leaves out of each arm, split between the tails:
/// the range is the union of every arm's central 99.9% interval.
pub const PLOTTED_LEVEL: f64 = 0.999;

/// The Beta(α, β) density at `x` (0 outside [0, 1]): x^(α−1) (1−x)^(β−1) / B(α, β), evaluated
/// through logarithms so that shapes in the millions do not overflow.
pub fn beta_density(alpha: f64, beta: f64, x: f64) -> f64 {
    if !(0.0..=1.0).contains(&x) || alpha <= 0.0 || beta <= 0.0 {
        return 0.0;
    }
    let log = |shape: f64, at: f64| {
        if shape == 1.0 {
            0.0
        } else {
            (shape - 1.0) * at.ln()
        }
    };
    (log(alpha, x) + log(beta, 1.0 - x) - ln_beta(alpha, beta)).exp()
}

/// The x range that shows every posterior: the union of their central [`PLOTTED_LEVEL`]
/// intervals, widened by 5% on each side and kept inside [0, 1].
pub fn plotted_range(posteriors: &[Posterior]) -> (f64, f64) {
    let (lo, hi) = posteriors
        .iter()
        .filter_map(|p| p.credible_interval(PLOTTED_LEVEL).ok())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, u)| {
            (lo.min(l), hi.max(u))
        });
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (0.0, 1.0);
    }
    let pad = (hi - lo) * 0.05;
    ((lo - pad).max(0.0), (hi + pad).min(1.0))
}

/// `points` samples (x, density) of Beta(α, β) evenly over [`lo`, `hi`]. The ends 0 and 1
/// are moved inwards by a millionth of the range, where a shape below 1 makes the density
/// infinite.
pub fn density_curve(alpha: f64, beta: f64, lo: f64, hi: f64, points: usize) -> Vec<(f64, f64)> {
    let points = points.max(2);
    let inset = (hi - lo) * 1e-6;
    (0..points)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / (points - 1) as f64;
            let x = x.clamp(inset, 1.0 - inset);
            (x, beta_density(alpha, beta, x))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ln((n−1)!) by summing logarithms: an independent route to the Beta function of
    /// integer shapes, B(a, b) = (a−1)! (b−1)! / (a+b−1)!.
    fn ln_factorial(n: u64) -> f64 {
        (2..=n).map(|k| (k as f64).ln()).sum()
    }

    #[test]
    fn the_density_matches_closed_forms_of_small_shapes() {
        for x in [0.01, 0.2, 0.5, 0.77, 0.99] {
            // Beta(1, 1) is uniform; Beta(2, 3) = 12 x (1−x)²; Beta(3, 1) = 3x².
            assert!((beta_density(1.0, 1.0, x) - 1.0).abs() < 1e-12);
            let expected = 12.0 * x * (1.0 - x) * (1.0 - x);
            assert!((beta_density(2.0, 3.0, x) - expected).abs() < 1e-12 * expected.max(1.0));
            assert!((beta_density(3.0, 1.0, x) - 3.0 * x * x).abs() < 1e-12);
            // Beta(½, ½) = 1 / (π √(x(1−x))), the arcsine law.
            let arcsine = 1.0 / (std::f64::consts::PI * (x * (1.0 - x)).sqrt());
            assert!((beta_density(0.5, 0.5, x) - arcsine).abs() < 1e-10 * arcsine);
        }
    }

    #[test]
    fn the_density_matches_factorials_at_shapes_of_real_experiments() {
        // 120 conversions of 2,000 exposures on a uniform prior: Beta(121, 1881).
        let (a, b) = (121u64, 1881u64);
        let ln_b = ln_factorial(a - 1) + ln_factorial(b - 1) - ln_factorial(a + b - 1);
        for x in [0.05, 0.06, 0.07] {
            let expected =
                ((a - 1) as f64 * f64::ln(x) + (b - 1) as f64 * f64::ln(1.0 - x) - ln_b).exp();
            let got = beta_density(a as f64, b as f64, x);
            assert!(
                (got - expected).abs() < 1e-9 * expected,
                "{x}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn the_density_is_zero_outside_the_unit_interval() {
        assert_eq!(beta_density(2.0, 2.0, -0.1), 0.0);
        assert_eq!(beta_density(2.0, 2.0, 1.1), 0.0);
        assert_eq!(beta_density(0.0, 2.0, 0.5), 0.0);
    }

    #[test]
    fn a_sampled_curve_integrates_to_one_over_the_plotted_range() {
        let posterior = Posterior {
            alpha: 31.0,
            beta: 471.0,
        };
        let (lo, hi) = plotted_range(&[posterior]);
        assert!(lo > 0.0 && hi < 0.2, "{lo}..{hi}");
        let curve = density_curve(posterior.alpha, posterior.beta, lo, hi, DENSITY_POINTS);
        // Trapezoids: the curve holds ≥ 99.9% of the mass, and the rule errs by far less.
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((area - 1.0).abs() < 2e-3, "{area}");
    }

    #[test]
    fn the_plotted_range_covers_every_arm_and_stays_in_the_unit_interval() {
        let arms = [
            Posterior {
                alpha: 11.0,
                beta: 91.0,
            },
            Posterior {
                alpha: 81.0,
                beta: 21.0,
            },
        ];
        let (lo, hi) = plotted_range(&arms);
        assert!(
            lo < 0.06 && hi > 0.87 && lo >= 0.0 && hi <= 1.0,
            "{lo}..{hi}"
        );
        assert_eq!(plotted_range(&[]), (0.0, 1.0));
    }

    #[test]
    fn curve_ends_at_zero_and_one_stay_finite_for_shapes_below_one() {
        let curve = density_curve(0.5, 0.5, 0.0, 1.0, 11);
        assert!(curve.iter().all(|(_, y)| y.is_finite()));
        assert_eq!(curve.len(), 11);
    }
}
