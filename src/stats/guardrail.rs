//! The guardrail halt test: how probable it is that an arm's guardrail rate (refunds,
//! errors, unsubscribes) is worse than the comparison arm's by more than a tolerated
//! relative change, and whether that is enough to halt the arm.
//!
//! With independent posteriors X ~ Beta(a₁, b₁) (the arm) and Y ~ Beta(a₂, b₂) (the
//! comparison arm), "worse by more than δ" is X > (1 + δ)·Y when lower rates are better and
//! X < (1 − δ)·Y when higher rates are better. Conditioning on Y:
//!
//! both are P(W < k·V) with k ≤ 1 (X > (1 + δ)Y is Y < X/(1 + δ)), and
//!
//!   P(W < k·V) = ∫ g_V(v) · F_W(k·x(v)) dv
//!
//! over the logit scale v of V (density g_V, see `logit_beta`), with F_W the regularised
//! incomplete beta function (statrs' continued fraction). Since k ≤ 1 the argument never
//! leaves (0, 1), so the integrand is smooth on the whole line. The integral is a composite
//! 16-point Gauss–Legendre rule on panels that resolve both arms: V's own panels (≤ 3 local
//! standard deviations, over V's mass region with tails below `TAIL_MASS`) and W's panels
//! carried through w ↦ logit(x(w)/k), so the step of F_W is never wider than a panel
//! whichever posterior is sharper. Accuracy: ~1e-13 against mpmath references
//! (scripts/stats_references.py) up to shapes of 10⁴; beyond, statrs' ln B of large shapes
//! limits F_W to ~1e-9 relative, far below what moves a halt.

use statrs::function::beta::checked_beta_reg;

use super::arm_comparison::TAIL_MASS;
use super::error::{StatsError, check_shapes};
use super::gauss_legendre::{NODES, rule};
use super::logit_beta::{LogitBeta, LogitPoint};
use super::posterior::Posterior;

/// Which side of the comparison arm's rate is harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harm {
    /// The rate is a cost (refunds, errors): an arm above the comparison is worse.
    Higher,
    /// The rate is a benefit (retention): an arm below the comparison is worse.
    Lower,
}

/// One guardrail's halt rule, in the statistics layer's own terms (the spec's
/// `guardrails:` entry converts to it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardrailRule {
    pub harm: Harm,
    /// δ ≥ 0: the relative change tolerated before an arm counts as worse (0.1 = 10%).
    pub max_relative_change: f64,
    /// Halt once P(worse by more than δ) reaches this.
    pub confidence: f64,
    /// No verdict before both the arm and the comparison arm have this many exposures.
    pub min_exposures: u64,
}

/// What the rule says about one arm now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuardrailVerdict {
    /// Too few exposures on the arm or on the comparison arm.
    Collecting,
    /// Not (yet) worse with enough confidence.
    Clear { prob_worse: f64 },
    /// Worse by more than δ with probability at least `confidence`: halt the arm.
    Halt(HaltEvidence),
}

/// The numbers that justify a halt: what a durable halt record, a log line and the stats
/// show, so an analyst can check the decision without re-running anything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaltEvidence {
    /// P(arm worse than the comparison by more than δ).
    pub prob_worse: f64,
    pub arm: Posterior,
    pub reference: Posterior,
    pub arm_exposures: u64,
    pub reference_exposures: u64,
}

/// Applies `rule` to an arm and its comparison arm (posteriors of the guardrail rate and
/// raw exposure counts).
pub fn check_guardrail(
    rule: &GuardrailRule,
    arm: Posterior,
    arm_exposures: u64,
    reference: Posterior,
    reference_exposures: u64,
) -> Result<GuardrailVerdict, StatsError> {
    if arm_exposures < rule.min_exposures || reference_exposures < rule.min_exposures {
        return Ok(GuardrailVerdict::Collecting);
    }
    let prob_worse = prob_worse(arm, reference, rule.harm, rule.max_relative_change)?;
    if prob_worse >= rule.confidence {
        Ok(GuardrailVerdict::Halt(HaltEvidence {
            prob_worse,
            arm,
            reference,
            arm_exposures,
            reference_exposures,
        }))
    } else {
        Ok(GuardrailVerdict::Clear { prob_worse })
    }
}

/// P(X > (1 + δ)·Y) for `Harm::Higher`, P(X < (1 − δ)·Y) for `Harm::Lower`, with X the
/// arm's and Y the reference's posterior. δ must be finite and ≥ 0 (a δ ≥ 1 with
/// `Harm::Lower` asks for a negative rate: probability 0).
pub fn prob_worse(
    arm: Posterior,
    reference: Posterior,
    harm: Harm,
    max_relative_change: f64,
) -> Result<f64, StatsError> {
    prob_worse_refined(arm, reference, harm, max_relative_change, 1)
}

/// [`prob_worse`] with every panel split into `refinement` equal parts (the tests show
/// convergence with finer grids).
pub(crate) fn prob_worse_refined(
    arm: Posterior,
    reference: Posterior,
    harm: Harm,
    max_relative_change: f64,
    refinement: usize,
) -> Result<f64, StatsError> {
    check_shapes(arm.alpha, arm.beta)?;
    let delta = max_relative_change;
    if !(delta.is_finite() && delta >= 0.0) {
        return Err(StatsError::InvalidRelativeChange(delta));
    }
    // Both harms are P(W < k·V) with k ≤ 1: for Harm::Higher, P(X > cY) = P(Y < X/c)
    // (V = X, W = Y, k = 1/c); for Harm::Lower, P(X < cY) (V = Y, W = X, k = c). With
    // k ≤ 1 the argument k·x(v) stays inside (0, 1) over the whole logit line, so the
    // integrand has no cut and no endpoint singularity, however small the shapes.
    let (outer, inner, k) = match harm {
        Harm::Higher => (arm, reference, 1.0 / (1.0 + delta)),
        Harm::Lower => (reference, arm, 1.0 - delta),
    };
    if k <= 0.0 {
        return Ok(0.0);
    }
    let outer_logit = LogitBeta::new(outer.alpha, outer.beta)?;
    let inner_logit = LogitBeta::new(inner.alpha, inner.beta)?;
    let unbounded = |p: Posterior| StatsError::InvalidShape {
        alpha: p.alpha,
        beta: p.beta,
    };
    let own = outer_logit
        .breakpoints(TAIL_MASS, 1.0)
        .ok_or(unbounded(outer))?;
    let carried = inner_logit
        .breakpoints(TAIL_MASS, 1.0)
        .ok_or(unbounded(inner))?;
    let (lo, hi) = (own[0], own[own.len() - 1]);
    // W's step sits at x(v) = x_w / k: its panels carried there resolve it.
    let mut edges: Vec<f64> = own
        .iter()
        .copied()
        .chain(carried.iter().filter_map(|&w| {
            let r = LogitPoint::new(w).x / k;
            (r > 0.0 && r < 1.0).then(|| logit(r))
        }))
        .filter(|v| (lo..=hi).contains(v))
        .collect();
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup();

    let gauss = rule();
    let parts = refinement.max(1);
    let mut total = 0.0;
    for pair in edges.windows(2) {
        let step = (pair[1] - pair[0]) / parts as f64;
        for part in 0..parts {
            let half = 0.5 * step;
            let mid = pair[0] + step * part as f64 + half;
            let mut panel = 0.0;
            for i in 0..NODES {
                let point = LogitPoint::new(mid + half * gauss.nodes[i]);
                let density = outer_logit.ln_density(&point).exp();
                if density > 0.0 {
                    panel += gauss.weights[i] * density * cdf(inner, k * point.x);
                }
            }
            total += half * panel;
        }
    }
    Ok(total.clamp(0.0, 1.0))
}

/// F_W(t) = I_t(a, b) for t in (0, 1).
fn cdf(w: Posterior, t: f64) -> f64 {
    // The shapes were checked and t lies in (0, 1), so statrs cannot refuse them.
    checked_beta_reg(w.alpha, w.beta, t).unwrap_or(0.0)
}

/// ln(r / (1 − r)) for r in (0, 1).
fn logit(r: f64) -> f64 {
    r.ln() - (-r).ln_1p()
}

#[cfg(test)]
#[path = "guardrail_tests.rs"]
mod tests;
