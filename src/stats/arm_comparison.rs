//! Probability that each arm is best, and the expected loss of choosing it, for K
//! independent Beta posteriors, by deterministic quadrature, not noisy Monte Carlo
//! (docs/ARCHITECTURE.md, "Statistics").
//!
//! With F_j, g_j the CDF and density of arm j on the logit scale (see [`super::logit_beta`]
//! for why that scale):
//! - P(θ_k = max) = ∫ g_k(y) Π_{j≠k} F_j(y) dy (order statistics of independent variables;
//!   the logit is monotone, so the event is the same on either scale);
//! - E[max_j θ_j] = ∫_0^1 (1 − Π_j F_j) dx, and the loss of choosing k is
//!   E[max_j θ_j − θ_k] = E[max] − α_k/(α_k+β_k), the "expected loss" of Stucchio 2015
//!   ("Bayesian A/B Testing at VWO", §4) and the "value remaining" of Scott 2015
//!   ("Multi-armed bandit experiments in the online service economy", ASMBI 31(1)).
//!
//! Method. Every arm proposes panel boundaries over its own mass region (log-concave tail
//! bound, mass ≤ [`TAIL_MASS`] outside each end). The integration region is
//! [max_j lo_j, max_j hi_j]: below the largest lower bound that arm's CDF is ≤ TAIL_MASS,
//! so every product Π_{j≠k} F_j (and g_k for that arm) is negligible; above the largest
//! upper bound every F_j is 1 within TAIL_MASS. It is cut into panels as wide as possible
//! but no wider than any arm panel they overlap. On each panel 16-point Gauss–Legendre
//! evaluates each arm's log-density once per node; the CDFs come from the same values,
//! carried from the top down with the spectral cumulative matrix
//! ([`super::gauss_legendre`]), so F_j = 1 − ∫_y^∞ g_j is accurate in absolute terms
//! without any incomplete-beta call. Products Π_{j≠k} F_j at a node come from prefix and
//! suffix products over the arms, O(K) per node; F_j ∈ [0, 1], so an underflow to 0 only
//! drops terms below 1e-308 (no logs needed).
//!
//! Accuracy (tests in `arm_comparison_tests.rs`, references from
//! `scripts/stats_references.py`): within 1e-12 of mpmath and of Evan Miller's closed form
//! from Beta(1,1) to counts of 10^4 and for Jeffreys shapes below 1; within 1e-11 at counts
//! of 10^6–10^7, where the rounding of ln g (~α·1e-16·|ln x|) sets the floor. The raw
//! P(best) sum is 1 within 1e-12 before the final normalisation. Shapes so extreme that
//! f64 cannot resolve them (a tail beyond y = 1e300, or shapes of ~1e15) are reported as
//! errors, never returned as numbers.

use super::error::StatsError;
use super::gauss_legendre::{NODES, rule};
use super::logit_beta::{LogitBeta, LogitPoint};

/// Mass each arm may leave outside its integration region, per side. The neglected total is
/// at most 2·K·TAIL_MASS = 2e-13 for 100 arms.
pub const TAIL_MASS: f64 = 1e-15;

/// Beyond this many arms panels shrink like (MANY_ARMS/K)^(1/3): the density of the max of
/// K arms, g_k·Π_{j≠k} F_j, rises like a Gumbel law (a double exponential) and narrows like
/// 1/√(2 ln K) standard deviations (Gumbel limit of normal maxima), so one arm's panels no
/// longer resolve it to full precision (measured against an 8× finer grid, 100 arms near
/// Beta(3, 7): 1e-8 without the factor, 1e-16 with; 2e-10 and 5e-16 at 30 arms).
const MANY_ARMS: f64 = 16.0;

/// P(best) and expected loss of every arm, in the order the arms were given.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmComparison {
    /// P(θ_k = max_j θ_j); each in [0, 1], summing to 1.
    pub prob_best: Vec<f64>,
    /// E[max_j θ_j − θ_k] ≥ 0: the reward rate given up, in expectation, by choosing k.
    pub expected_loss: Vec<f64>,
}

/// P(best) and expected loss for arms given as posterior shapes (alpha, beta), computed from
/// one quadrature grid. The caller passes only the arms that compete (active ones).
///
/// Zero arms give empty vectors and one arm gives P = 1, loss = 0. Any shape that is not
/// finite and positive, or a pair whose sum overflows, is [`StatsError::InvalidShape`].
pub fn compare_arms(arms: &[(f64, f64)]) -> Result<ArmComparison, StatsError> {
    let posteriors = arms
        .iter()
        .map(|&(alpha, beta)| LogitBeta::new(alpha, beta))
        .collect::<Result<Vec<_>, _>>()?;
    if posteriors.len() < 2 {
        return Ok(ArmComparison {
            prob_best: vec![1.0; posteriors.len()],
            expected_loss: vec![0.0; posteriors.len()],
        });
    }
    let integrals = integrate(&posteriors, 1).map_err(|k| {
        let (alpha, beta) = arms[k];
        StatsError::InvalidShape { alpha, beta }
    })?;
    let total: f64 = integrals.prob_best.iter().sum();
    // Every term is finite and ≥ 0 and the exact sum is G(hi) − G(lo) ≥ 1 − 2K·TAIL_MASS,
    // so a sum far from 1 means the shapes are beyond what f64 resolves (e.g. 1e-300):
    // report it rather than return a made-up distribution.
    if !(total.is_finite() && (total - 1.0).abs() < 1e-3) {
        let &(alpha, beta) = arms
            .iter()
            .min_by(|x, y| x.0.min(x.1).total_cmp(&y.0.min(y.1)))
            .unwrap_or(&(f64::NAN, f64::NAN));
        return Err(StatsError::InvalidShape { alpha, beta });
    }
    // Dividing by the sum removes the truncated tails (≤ 2K·TAIL_MASS) and the quadrature
    // error's common part, so that the vector is an exact distribution for the caller.
    let prob_best = integrals.prob_best.iter().map(|p| p / total).collect();
    let expected_loss = posteriors
        .iter()
        .map(|arm| (integrals.expected_max - arm.mean()).max(0.0))
        .collect();
    Ok(ArmComparison {
        prob_best,
        expected_loss,
    })
}

/// Unnormalised quadrature results, exposed to the tests.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Integrals {
    /// ∫ g_k Π_{j≠k} F_j over the region, per arm.
    pub(crate) prob_best: Vec<f64>,
    /// E[max_j θ_j].
    pub(crate) expected_max: f64,
}

/// The integrals over panels each split into `refinement` equal parts (1 in production;
/// the tests use finer grids to show convergence). Needs at least two arms. `Err(k)` when
/// arm k's mass region cannot be bounded (see [`LogitBeta::breakpoints`]).
pub(crate) fn integrate(arms: &[LogitBeta], refinement: usize) -> Result<Integrals, usize> {
    let rule = rule();
    let width_scale = (MANY_ARMS / arms.len() as f64).cbrt().min(1.0);
    let breakpoints = arms
        .iter()
        .enumerate()
        .map(|(k, arm)| arm.breakpoints(TAIL_MASS, width_scale).ok_or(k))
        .collect::<Result<Vec<Vec<f64>>, usize>>()?;
    // `breakpoints` never returns an empty list (the mode is always its first point).
    let lo: Vec<f64> = breakpoints.iter().map(|p| p[0]).collect();
    let hi: Vec<f64> = breakpoints.iter().map(|p| p[p.len() - 1]).collect();
    let region_lo = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let region_hi = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let edges = panel_edges(&breakpoints, region_lo, region_hi, refinement.max(1));

    let count = arms.len();
    // mass_above[j] = ∫ g_j from the current panel's right edge to region_hi.
    let mut mass_above = vec![0.0; count];
    let mut prob_best = vec![0.0; count];
    let mut expected_max = LogitPoint::new(region_lo).x;
    let mut density = vec![[0.0; NODES]; count];
    let mut cdf = vec![[0.0; NODES]; count];
    let mut active: Vec<usize> = Vec::with_capacity(count);
    let mut prefix = vec![0.0; count + 1];

    for panel in edges.windows(2).rev() {
        let (left, right) = (panel[0], panel[1]);
        let half = 0.5 * (right - left);
        let mid = 0.5 * (right + left);
        let points: [LogitPoint; NODES] =
            std::array::from_fn(|i| LogitPoint::new(mid + half * rule.nodes[i]));
        // Arms whose region ends below this panel have F = 1 and g ≈ 0 here: skipped.
        active.clear();
        active.extend((0..count).filter(|&j| hi[j] > left));
        for &j in &active {
            let values = &mut density[j];
            for (value, point) in values.iter_mut().zip(&points) {
                *value = arms[j].ln_density(point).exp();
            }
            // above[i] = ∫ g_j from node i to the panel's right edge (in units of `half`).
            let mut above = [0.0; NODES];
            for (row, &g) in rule.tail.iter().zip(values.iter()) {
                for (sum, &t) in above.iter_mut().zip(row) {
                    *sum += t * g;
                }
            }
            for (cdf_value, above_node) in cdf[j].iter_mut().zip(above) {
                *cdf_value = (1.0 - mass_above[j] - half * above_node).clamp(0.0, 1.0);
            }
            let panel_mass: f64 = rule
                .weights
                .iter()
                .zip(values.iter())
                .map(|(w, g)| w * g)
                .sum();
            mass_above[j] += half * panel_mass;
        }
        for (i, point) in points.iter().enumerate() {
            let weight = half * rule.weights[i];
            prefix[0] = 1.0;
            for (t, &j) in active.iter().enumerate() {
                prefix[t + 1] = prefix[t] * cdf[j][i];
            }
            expected_max += weight * (1.0 - prefix[active.len()]) * point.jacobian;
            let mut suffix = 1.0;
            for (t, &j) in active.iter().enumerate().rev() {
                prob_best[j] += weight * density[j][i] * prefix[t] * suffix;
                suffix *= cdf[j][i];
            }
        }
    }
    Ok(Integrals {
        prob_best,
        expected_max,
    })
}

/// Panel edges over [lo, hi]: from lo, each panel is as wide as possible but no wider than
/// any panel of any arm it overlaps, so every arm keeps its own resolution where it lives,
/// without the slivers that the union of all breakpoints would create. Then each panel is
/// split into `refinement` equal parts.
fn panel_edges(breakpoints: &[Vec<f64>], lo: f64, hi: f64, refinement: usize) -> Vec<f64> {
    // Every arm panel as (left end, width), by left end.
    let mut arm_panels: Vec<(f64, f64)> = breakpoints
        .iter()
        .flat_map(|points| points.windows(2).map(|pair| (pair[0], pair[1] - pair[0])))
        .collect();
    arm_panels.sort_unstable_by(|p, q| p.0.total_cmp(&q.0));
    // Each edge passes the start of an arm panel or the end of one, so valid input needs
    // fewer steps than this; the bound only stops a runaway on corrupt (NaN) input.
    let max_edges = 2 * arm_panels.len() + 16;
    let mut upcoming = 0;
    let mut edges = vec![lo];
    let mut start = lo;
    while start < hi && edges.len() < max_edges {
        while upcoming < arm_panels.len() && arm_panels[upcoming].0 <= start {
            upcoming += 1;
        }
        // The widest width w with w ≤ the width of every arm panel overlapping
        // (start, start + w): begin with the panels containing start, then admit the
        // panels starting further right one by one while they still fit.
        let mut width = breakpoints
            .iter()
            .map(|points| containing_panel_width(points, start))
            .fold(f64::INFINITY, f64::min);
        for &(left, arm_width) in &arm_panels[upcoming..] {
            if start + width <= left {
                break;
            }
            let narrower = width.min(arm_width);
            if start + narrower <= left {
                width = left - start;
                break;
            }
            width = narrower;
        }
        let end = (start + width).min(hi);
        if end.is_nan() || end <= start {
            break;
        }
        edges.push(end);
        start = end;
    }
    if edges.last() != Some(&hi) {
        edges.push(hi);
    }
    if refinement == 1 {
        return edges;
    }
    let mut refined = Vec::with_capacity((edges.len() - 1) * refinement + 1);
    for pair in edges.windows(2) {
        let step = (pair[1] - pair[0]) / refinement as f64;
        refined.extend((0..refinement).map(|part| pair[0] + step * part as f64));
    }
    refined.push(hi);
    refined
}

/// Width of the arm panel [p_i, p_{i+1}) that contains `y`; infinite outside the arm's
/// breakpoints.
fn containing_panel_width(points: &[f64], y: f64) -> f64 {
    let after = points.partition_point(|&p| p <= y);
    if after == 0 || after == points.len() {
        f64::INFINITY
    } else {
        points[after] - points[after - 1]
    }
}

#[cfg(test)]
#[path = "arm_comparison_tests.rs"]
mod tests;
