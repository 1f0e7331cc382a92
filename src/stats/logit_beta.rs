//! One Beta posterior seen on the logit scale y = ln(x / (1 − x)), where [`super::compare_arms`]
//! integrates.
//!
//! Why the logit scale: if X ~ Beta(α, β) then Y = logit X has density
//! g(y) = x^α (1 − x)^β / B(α, β) (the type-IV logistic law; Johnson, Kotz & Balakrishnan,
//! Continuous Univariate Distributions vol. 2, §23.10). Unlike the Beta density on [0, 1],
//! g is smooth and bounded for *every* α, β > 0 (no x^(α−1) spike at 0 when α < 1), its tails
//! are plain exponentials e^(αy) and e^(−βy), and it is log-concave:
//! (ln g)'' = −(α + β)·x(1 − x) < 0. Log-concavity gives a rigorous, cheap tail bound
//! (for y right of the mode, ∫_y^∞ g ≤ g(y) / |(ln g)'(y)|, because ln g lies below its
//! tangent), so every arm's mass region is found without a single incomplete-beta call, and
//! ln x = −ln(1 + e^(−y)) never underflows, however small the shapes.

use super::error::{StatsError, check_shapes};
use statrs::function::beta::ln_beta;
use statrs::function::gamma::ln_gamma;

/// Shapes at or above this use Stirling's series for ln Γ; its first omitted term,
/// 691/(360360·z¹¹), is 2e-14 at z = 10 (Abramowitz & Stegun 6.1.41).
const STIRLING_MIN_SHAPE: f64 = 10.0;

/// Panel width limit, in local standard deviations (1/√((α+β)·x(1−x)), the curvature scale
/// of ln g): Gauss–Legendre with 16 nodes integrates a Gaussian over 3 sd to ~1e-15.
const WIDTH_IN_LOCAL_SD: f64 = 3.0;
/// Panel width limit near y = 0. ln x = −ln(1 + e^(−y)) is analytic only in the strip
/// |Im y| < π (poles of the logistic at ±iπ), so Gauss–Legendre on a panel of half-width h
/// around 0 converges like ρ^(−32) with ρ = the Bernstein-ellipse parameter of iπ/h
/// (Trefethen 2008, "Is Gauss quadrature better than Clenshaw–Curtis?", SIAM Rev. 50(1),
/// Thm 4.5); h = 3 gives ρ = 2.5, ρ^(−32) ≈ 2e-13. Shapes near or below 1, whose
/// curvature scale is long, would otherwise get panels too wide to see the kink of g at 0.
/// A panel whose near end is at |y| ≥ h keeps ρ ≥ 3.7, hence the limit max(6, 2|y|).
const WIDTH_NEAR_SINGULARITY: f64 = 6.0;
/// Panel width limit in e-folds of the density: |(ln g)'|·width ≤ this. Bounds the width
/// where the curvature scale is long (exponential tails), keeping 16 nodes exact to ~1e-13.
const WIDTH_IN_E_FOLDS: f64 = 16.0;
/// Halvings of one step at most; 2^-60 of any width in use is below rounding.
const MAX_HALVINGS: usize = 60;
/// Steps allowed for the outward march of one tail. Real shapes need a few dozen; a shape
/// of 1e-10 (tail out to y ≈ 3e11, panels doubling from 6) needs ~40, and one of 1e-100
/// about 340. A march that has not met the tail bound by then reports failure instead of
/// silently dropping mass.
const MAX_TAIL_STEPS: usize = 400;

/// A point y of the logit scale with the quantities every arm's density needs there,
/// computed once and shared by all arms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogitPoint {
    /// x = 1 / (1 + e^(−y)), the rate itself.
    pub(crate) x: f64,
    /// dx/dy = x(1 − x), without cancellation at either end.
    pub(crate) jacobian: f64,
    one_minus_x: f64,
    ln_x: f64,
    ln_one_minus_x: f64,
}

impl LogitPoint {
    pub(crate) fn new(y: f64) -> Self {
        // With e = e^(−|y|) ∈ (0, 1]: ln(1 + e^(−y)) = max(−y, 0) + ln1p(e), so both logs are
        // exact to rounding and finite for every finite y.
        let e = (-y.abs()).exp();
        let log_one_plus = e.ln_1p();
        let (x, one_minus_x, ln_x, ln_one_minus_x) = if y >= 0.0 {
            (
                1.0 / (1.0 + e),
                e / (1.0 + e),
                -log_one_plus,
                -y - log_one_plus,
            )
        } else {
            (
                e / (1.0 + e),
                1.0 / (1.0 + e),
                y - log_one_plus,
                -log_one_plus,
            )
        };
        Self {
            x,
            jacobian: e / ((1.0 + e) * (1.0 + e)),
            one_minus_x,
            ln_x,
            ln_one_minus_x,
        }
    }
}

/// Beta(α, β) on the logit scale: its log-density and its mass region.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogitBeta {
    alpha: f64,
    beta: f64,
    total: f64,
    ln_p: f64,
    ln_q: f64,
    /// α ln p + β ln q − ln B(α, β), with p = α/(α+β), q = β/(α+β).
    ln_norm: f64,
}

impl LogitBeta {
    pub(crate) fn new(alpha: f64, beta: f64) -> Result<Self, StatsError> {
        check_shapes(alpha, beta)?;
        let total = alpha + beta;
        if !total.is_finite() {
            return Err(StatsError::InvalidShape { alpha, beta });
        }
        // ln p = −ln(1 + β/α) keeps full relative precision when p is near 1 (likewise q).
        let ln_p = -(beta / alpha).ln_1p();
        let ln_q = -(alpha / beta).ln_1p();
        Ok(Self {
            alpha,
            beta,
            total,
            ln_p,
            ln_q,
            ln_norm: ln_norm(alpha, beta, total, ln_p, ln_q),
        })
    }

    /// E[X] = α/(α+β).
    pub(crate) fn mean(&self) -> f64 {
        self.alpha / self.total
    }

    /// ln g(y) = α(ln x − ln p) + β(ln(1−x) − ln q) + ln_norm. The differences are taken
    /// before scaling by the shapes, so at counts of 10^7 the rounding is ~a·1e-16·|ln x|,
    /// about 1e-9 relative in g, instead of the 1e-8 that ln Γ(10^7) differences would cost.
    pub(crate) fn ln_density(&self, point: &LogitPoint) -> f64 {
        self.alpha * (point.ln_x - self.ln_p)
            + self.beta * (point.ln_one_minus_x - self.ln_q)
            + self.ln_norm
    }

    /// (ln g)'(y) = α(1 − x) − βx.
    fn slope(&self, point: &LogitPoint) -> f64 {
        self.alpha * point.one_minus_x - self.beta * point.x
    }

    /// The widest panel this arm accepts at `point` and `y` (see the width constants),
    /// times `scale`.
    fn panel_width(&self, y: f64, point: &LogitPoint, scale: f64) -> f64 {
        let by_curvature = WIDTH_IN_LOCAL_SD / (self.total * point.jacobian).sqrt();
        let by_slope = WIDTH_IN_E_FOLDS / self.slope(point).abs();
        let by_singularity = WIDTH_NEAR_SINGULARITY.max(2.0 * y.abs());
        scale * by_curvature.min(by_slope).min(by_singularity)
    }

    /// Panel boundaries covering this arm's mass region [lo, hi], ascending; the first is
    /// lo and the last hi. Outside it each tail holds at most `tail_mass` (log-concave bound
    /// ∫_y^∞ g ≤ g(y)/|(ln g)'(y)|, see the module docs). `width_scale` ≤ 1 narrows every
    /// panel (the caller's allowance for products of many CDFs, which are sharper than any
    /// one arm). `None` when a tail cannot be bounded within [`MAX_TAIL_STEPS`] (shapes
    /// below ~1e-100).
    pub(crate) fn breakpoints(&self, tail_mass: f64, width_scale: f64) -> Option<Vec<f64>> {
        let mode = self.ln_p - self.ln_q;
        let ln_tail = tail_mass.ln();
        let mut left = self.march(mode, -1.0, ln_tail, width_scale)?;
        let right = self.march(mode, 1.0, ln_tail, width_scale)?;
        left.reverse();
        left.extend_from_slice(&right[1..]);
        Some(left)
    }

    /// Breakpoints from the mode outward in `direction` (±1), the mode first, up to the
    /// first point where the tail bound holds.
    fn march(&self, mode: f64, direction: f64, ln_tail: f64, scale: f64) -> Option<Vec<f64>> {
        let mut y = mode;
        let mut points = Vec::with_capacity(16);
        for _ in 0..MAX_TAIL_STEPS {
            points.push(y);
            let point = LogitPoint::new(y);
            let slope = self.slope(&point) * direction;
            if slope < 0.0 && self.ln_density(&point) - (-slope).ln() <= ln_tail {
                return Some(points);
            }
            // The step must suit both of its ends: halve it until the far end accepts it
            // (the width can collapse within one step, e.g. into a double-exponential tail).
            let mut width = self.panel_width(y, &point, scale);
            for _ in 0..MAX_HALVINGS {
                let far = y + direction * width;
                if width <= self.panel_width(far, &LogitPoint::new(far), scale) {
                    break;
                }
                width *= 0.5;
            }
            let next = y + direction * width;
            if !(next.is_finite() && next != y) {
                return None;
            }
            y = next;
        }
        None
    }
}

/// Stirling's correction ω(z) = ln Γ(z) − [(z − ½) ln z − z + ½ ln 2π] (A&S 6.1.41), z ≥ 10.
fn stirling_correction(z: f64) -> f64 {
    let inv = 1.0 / z;
    let inv_sq = inv * inv;
    inv * (1.0 / 12.0
        - inv_sq
            * (1.0 / 360.0 - inv_sq * (1.0 / 1260.0 - inv_sq * (1.0 / 1680.0 - inv_sq / 1188.0))))
}

/// α ln p + β ln q − ln B(α, β), without the cancellation of ln Γ differences at large
/// shapes. Substituting Stirling's series (the route of DiDonato & Morris 1992, ACM TOMS 708,
/// `betaln`/`bcorr`) the large terms cancel symbolically:
/// - both ≥ 10: ½ ln(αβ / (2π(α+β))) − ω(α) − ω(β) + ω(α+β);
/// - α < 10 ≤ β: α ln α − α − ln Γ(α) + ½ ln q − ω(β) + ω(α+β) (and symmetrically);
/// - both < 10: direct, with statrs' ln B (accurate to ~1e-15 at such shapes).
fn ln_norm(alpha: f64, beta: f64, total: f64, ln_p: f64, ln_q: f64) -> f64 {
    let small = alpha.min(beta);
    let large = alpha.max(beta);
    if small >= STIRLING_MIN_SHAPE {
        0.5 * (alpha * beta / (std::f64::consts::TAU * total)).ln()
            - stirling_correction(alpha)
            - stirling_correction(beta)
            + stirling_correction(total)
    } else if large >= STIRLING_MIN_SHAPE {
        let ln_q_of_large = if alpha >= beta { ln_p } else { ln_q };
        small * small.ln() - small - ln_gamma(small) + 0.5 * ln_q_of_large
            - stirling_correction(large)
            + stirling_correction(total)
    } else {
        alpha * ln_p + beta * ln_q - ln_beta(alpha, beta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_constant_matches_high_precision_references_across_shapes() {
        // ln_norm = a ln p + b ln q − ln B(a, b), mpmath 1.3 at mp.dps = 40, printed by
        // `python3 scripts/stats_references.py` (section "log_beta"). The direct f64 formula
        // would lose ~1e-8 at (1e7, 1e7) to the ln Γ cancellation; this one must not.
        let cases = [
            (1.0, 1.0, -1.386_294_361_119_890_6),
            (2.0, 3.0, -0.880_151_685_258_281_9),
            (0.5, 0.5, -1.837_877_066_409_345_5),
            (3.0, 12.0, -0.510_270_196_767_967_8),
            (1.0, 1e7, -1.000_000_049_999_998_3),
            (1001.0, 9001.0, 2.482_629_984_448_009),
            (50001.0, 950_001.0, 4.465_311_817_003_834),
            (1e7, 1e7, 6.793_535_689_494_514),
        ];
        for (a, b, expected) in cases {
            let got = LogitBeta::new(a, b).expect("valid constant shapes").ln_norm;
            assert!(
                (got - expected).abs() <= 1e-14,
                "ln_norm({a},{b}) = {got}, expected {expected}"
            );
        }
    }

    #[test]
    fn logit_point_logs_stay_exact_and_finite_far_into_both_tails() {
        for y in [-800.0, -40.0, -1.0, 0.0, 2.5, 40.0, 800.0] {
            let point = LogitPoint::new(y);
            // ln x − ln(1−x) = y exactly in exact arithmetic.
            assert!(
                ((point.ln_x - point.ln_one_minus_x) - y).abs() <= 1e-15 * (1.0 + y.abs()),
                "y = {y}"
            );
            assert!(point.ln_x <= 0.0 && point.ln_one_minus_x <= 0.0);
            assert!(point.jacobian >= 0.0 && point.jacobian <= 0.25);
        }
        assert_eq!(LogitPoint::new(-800.0).ln_x, -800.0);
    }

    #[test]
    fn a_tail_too_long_to_bound_is_reported_instead_of_truncated() {
        // Beta(1e-300, 1e-300) puts half its mass beyond y = 1e300 on each side.
        let arm = LogitBeta::new(1e-300, 1e-300).expect("valid shapes");
        assert_eq!(arm.breakpoints(1e-15, 1.0), None);
        let arm = LogitBeta::new(1e-10, 1e-10).expect("valid shapes");
        assert!(arm.breakpoints(1e-15, 1.0).is_some());
    }

    #[test]
    fn breakpoints_cover_the_mass_region_with_tails_below_the_requested_mass() {
        // Uniform Beta(1,1) is the standard logistic on the logit scale: P(Y > y) = 1/(1+e^y),
        // so a right tail of 1e-14 needs hi ≥ ln(1e14 − 1) ≈ 32.2.
        let points = LogitBeta::new(1.0, 1.0)
            .expect("valid")
            .breakpoints(1e-14, 1.0)
            .expect("a uniform prior's tails are bounded");
        let lo = points.first().copied().unwrap_or(f64::NAN);
        let hi = points.last().copied().unwrap_or(f64::NAN);
        assert!(hi >= 32.2 && lo <= -32.2, "[{lo}, {hi}]");
        assert!(points.windows(2).all(|w| w[0] < w[1]));
        // No panel wider than the slope limit allows in the exponential tails.
        assert!(
            points
                .windows(2)
                .all(|w| w[1] - w[0] <= WIDTH_IN_E_FOLDS + 1e-9)
        );
    }
}
