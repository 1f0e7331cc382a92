//! Gamma(shape, 1) draws on the log scale, the building block of [`super::BetaSampler`].
//!
//! Marsaglia & Tsang (2000), "A Simple Method for Generating Gamma Variables", ACM TOMS 26(3),
//! 363–372: for shape ≥ 1, with d = shape − 1/3 and c = 1/√(9d), draw x ~ N(0,1), set
//! v = (1 + c·x)³ and accept d·v when ln U < x²/2 + d − d·v + d·ln v (with the cheap squeeze
//! U < 1 − 0.0331·x⁴ first). For shape < 1 the same paper's boosting identity
//! Gamma(a) = Gamma(a + 1) · U^(1/a) is used, but evaluated as a logarithm: for a = 1e-3,
//! U^(1/a) underflows to 0 about half the time, which would make X/(X+Y) a 0/0.

use rand::{Rng, RngExt};
use rand_distr::{Open01, StandardNormal};

/// A Gamma(shape, 1) sampler whose constants are computed once. Construction costs one `sqrt`
/// and a division; keeping it lets a caller that draws repeatedly from the same posterior skip
/// even that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GammaSampler {
    /// d = max(shape, shape + 1) − 1/3 (Marsaglia & Tsang's d, after boosting).
    d: f64,
    /// c = 1/√(9d).
    c: f64,
    /// 1/shape when shape < 1 (boosting needed), else `None`.
    inv_shape_if_boosted: Option<f64>,
}

impl GammaSampler {
    /// Builds a sampler for a shape the caller has already checked to be finite and positive.
    pub(crate) fn new(shape: f64) -> Self {
        let (boosted_shape, inv_shape_if_boosted) = if shape < 1.0 {
            (shape + 1.0, Some(1.0 / shape))
        } else {
            (shape, None)
        };
        let d = boosted_shape - 1.0 / 3.0;
        Self {
            d,
            c: 1.0 / (9.0 * d).sqrt(),
            inv_shape_if_boosted,
        }
    }

    /// Whether draws must go through the log scale to avoid underflow (shape < 1).
    pub(crate) fn needs_log_scale(&self) -> bool {
        self.inv_shape_if_boosted.is_some()
    }

    /// One draw of Gamma(shape, 1). Only exact for shape ≥ 1 callers: for shape < 1 the
    /// value may underflow to 0, use [`Self::sample_ln`] there.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self.inv_shape_if_boosted {
            None => self.d * self.marsaglia_tsang_v(rng),
            Some(_) => self.sample_ln(rng).exp(),
        }
    }

    /// ln of one draw of Gamma(shape, 1); finite for every shape in (0, ∞) that is not so
    /// small that ln(U)/shape overflows (shape ≳ 1e-306).
    pub(crate) fn sample_ln<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let ln_boosted = (self.d * self.marsaglia_tsang_v(rng)).ln();
        match self.inv_shape_if_boosted {
            None => ln_boosted,
            Some(inv_shape) => {
                let u: f64 = rng.sample(Open01);
                ln_boosted + u.ln() * inv_shape
            }
        }
    }

    /// The accepted v = (1 + c·x)³ of Marsaglia & Tsang; the draw is d·v.
    fn marsaglia_tsang_v<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        loop {
            let x: f64 = rng.sample(StandardNormal);
            let v_cbrt = 1.0 + self.c * x;
            if v_cbrt <= 0.0 {
                continue;
            }
            let v = v_cbrt * v_cbrt * v_cbrt;
            let u: f64 = rng.sample(Open01);
            let x_sq = x * x;
            if u < 1.0 - 0.0331 * x_sq * x_sq || u.ln() < 0.5 * x_sq + self.d * (1.0 - v + v.ln()) {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::{KS_CRITICAL_0_001, ks_statistic};
    use rand::{SeedableRng, rngs::SmallRng};
    use statrs::distribution::{ContinuousCDF, Gamma};

    fn assert_matches_gamma_cdf(shape: f64, seed: u64) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let sampler = GammaSampler::new(shape);
        let mut draws: Vec<f64> = (0..20_000).map(|_| sampler.sample(&mut rng)).collect();
        let reference = Gamma::new(shape, 1.0).expect("valid constant shape");
        let d = ks_statistic(&mut draws, |x| reference.cdf(x));
        let critical = KS_CRITICAL_0_001 / (draws.len() as f64).sqrt();
        assert!(d < critical, "shape {shape}: KS D = {d} >= {critical}");
    }

    #[test]
    fn gamma_draws_follow_the_gamma_cdf_for_small_unit_and_large_shapes() {
        for (i, shape) in [0.3, 1.0, 2.5, 40.0].into_iter().enumerate() {
            assert_matches_gamma_cdf(shape, 100 + i as u64);
        }
    }

    #[test]
    fn log_scale_draws_stay_finite_for_tiny_shapes() {
        let mut rng = SmallRng::seed_from_u64(7);
        let sampler = GammaSampler::new(1e-3);
        assert!(sampler.needs_log_scale());
        let mut underflowed = 0;
        for _ in 0..10_000 {
            let ln_draw = sampler.sample_ln(&mut rng);
            assert!(ln_draw.is_finite(), "ln draw {ln_draw}");
            if ln_draw.exp() == 0.0 {
                underflowed += 1;
            }
        }
        // P(Gamma(1e-3) < e^-745) ≈ P(ln U < −0.745) = e^-0.745 ≈ 0.47: the linear scale would
        // have lost about half of these draws to underflow.
        assert!(underflowed > 4_000, "only {underflowed} draws underflowed");
    }
}
