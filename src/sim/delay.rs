//! How long after its assignment a conversion reaches the server (`--conversion-delay`).
//! Until then the posterior counts the exposure as a failure, exactly as the server does
//! (an exposure is counted when assigned; its reward only when the event arrives), so a
//! delay both slows learning and biases early posteriors low.

use rand::{Rng, RngExt};

use super::error::SimError;
use crate::spec::HumanDuration;

/// A conversion-delay distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConversionDelay {
    /// Every conversion arrives exactly this long after its assignment (`fixed:1h`).
    Fixed { ms: u64 },
    /// Exponentially distributed with this mean (`exp:2d`): the memoryless model of a
    /// visitor who converts at a constant hazard after seeing the variant.
    Exponential { mean_ms: u64 },
    /// Log-normal with this median and log-scale spread σ (`lognormal:1d:1.5`): the
    /// heavy-tailed delays of considered purchases.
    LogNormal { median_ms: u64, sigma: f64 },
}

impl ConversionDelay {
    /// Parses `exp:<duration>` or `fixed:<duration>`, the duration as in the experiment YAML
    /// (`45s`, `30m`, `12h`, `2d`, `1w`).
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let bad = |reason: String| SimError::BadDelay {
            text: text.to_owned(),
            reason,
        };
        let (kind, duration) = text.trim().split_once(':').ok_or_else(|| {
            bad("write a distribution and a duration, e.g. exp:2d (exponential, mean 2 days) or fixed:1h".to_owned())
        })?;
        let (duration, sigma) = match (kind.trim(), duration.split_once(':')) {
            ("lognormal", Some((median, sigma))) => (median, Some(sigma)),
            ("lognormal", None) => {
                return Err(bad(
                    "write lognormal:<median>:<sigma>, e.g. lognormal:1d:1.5".to_owned(),
                ));
            }
            _ => (duration, None),
        };
        let ms = HumanDuration::parse(duration)
            .map_err(|reason| bad(format!("the duration {reason}")))?
            .as_millis();
        match kind.trim() {
            "exp" => Ok(Self::Exponential { mean_ms: ms }),
            "fixed" => Ok(Self::Fixed { ms }),
            "lognormal" => {
                let sigma: f64 = sigma
                    .unwrap_or_default()
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 10.0)
                    .ok_or_else(|| bad("sigma must be a number in (0, 10]".to_owned()))?;
                Ok(Self::LogNormal {
                    median_ms: ms,
                    sigma,
                })
            }
            other => Err(bad(format!(
                "unknown distribution {other:?}; use exp (exponential), lognormal or fixed"
            ))),
        }
    }

    /// The mean delay in milliseconds (log-normal: median·e^{σ²/2}).
    pub fn mean_ms(self) -> u64 {
        match self {
            Self::Fixed { ms } => ms,
            Self::Exponential { mean_ms } => mean_ms,
            Self::LogNormal { median_ms, sigma } => {
                (median_ms as f64 * (sigma * sigma / 2.0).exp()) as u64
            }
        }
    }

    /// P(delay ≤ `window_ms`): the share of this arm's conversions that the metric ("converted
    /// within the reward window") counts. Log-normal: Φ(ln(W/median)/σ) through erfc.
    pub fn within(self, window_ms: u64) -> f64 {
        let window = window_ms as f64;
        match self {
            Self::Fixed { ms } => f64::from(u8::from(ms <= window_ms)),
            Self::Exponential { mean_ms: 0 } => 1.0,
            Self::Exponential { mean_ms } => -(-window / mean_ms as f64).exp_m1(),
            Self::LogNormal { median_ms, sigma } => {
                let z = (window / (median_ms.max(1) as f64)).ln() / sigma;
                0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
            }
        }
    }

    /// One delay in milliseconds. The exponential is drawn by inversion,
    /// −mean·ln(1 − U) with U uniform on [0, 1) (Devroye 1986, "Non-Uniform Random Variate
    /// Generation", §II.2.1), so the logarithm's argument is in (0, 1] and the draw finite.
    pub fn sample_ms<R: Rng + ?Sized>(self, rng: &mut R) -> u64 {
        match self {
            Self::Fixed { ms } => ms,
            Self::Exponential { mean_ms } => {
                let uniform: f64 = rng.random();
                // A float-to-int `as` saturates, and the value is finite and ≥ 0.
                (-(mean_ms as f64) * (1.0 - uniform).ln()).round() as u64
            }
            Self::LogNormal { median_ms, sigma } => {
                let normal: f64 = rng.sample(rand_distr::StandardNormal);
                (median_ms as f64 * (sigma * normal).exp()).round() as u64
            }
        }
    }
}

impl std::fmt::Display for ConversionDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |ms: u64| HumanDuration::from_std(std::time::Duration::from_millis(ms));
        match self {
            Self::Fixed { ms } => write!(f, "fixed:{}", show(*ms)),
            Self::Exponential { mean_ms } => write!(f, "exp:{}", show(*mean_ms)),
            Self::LogNormal { median_ms, sigma } => {
                write!(f, "lognormal:{}:{sigma}", show(*median_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};

    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn exponential_and_fixed_delays_parse_with_yaml_durations() {
        assert_eq!(
            ConversionDelay::parse("exp:2d").unwrap(),
            ConversionDelay::Exponential {
                mean_ms: 48 * HOUR_MS
            }
        );
        assert_eq!(
            ConversionDelay::parse(" fixed:1h ").unwrap(),
            ConversionDelay::Fixed { ms: HOUR_MS }
        );
        assert_eq!(
            ConversionDelay::parse("exp:2d").unwrap().to_string(),
            "exp:2d"
        );
    }

    #[test]
    fn malformed_delays_are_rejected_with_the_accepted_form() {
        for text in [
            "2d",
            "gamma:2d",
            "exp:",
            "exp:1.5d",
            "fixed:-1h",
            "exp:2 days",
        ] {
            let error = ConversionDelay::parse(text).unwrap_err();
            assert!(matches!(error, SimError::BadDelay { .. }), "{text}");
        }
        let message = ConversionDelay::parse("2d").unwrap_err().to_string();
        assert!(message.contains("exp:2d"), "{message}");
    }

    #[test]
    fn exponential_delays_have_the_requested_mean_and_tail() {
        let delay = ConversionDelay::Exponential { mean_ms: HOUR_MS };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| delay.sample_ms(&mut rng) as f64).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        // Exponential: sd = mean, so the sample mean's standard error is mean/√n.
        let tolerance = 4.0 * HOUR_MS as f64 / (n as f64).sqrt();
        assert!((mean - HOUR_MS as f64).abs() < tolerance, "{mean}");
        // P(D > 2·mean) = e^−2 ≈ 0.1353; binomial standard error.
        let tail = draws.iter().filter(|&&d| d > 2.0 * HOUR_MS as f64).count() as f64 / n as f64;
        let p = (-2.0f64).exp();
        assert!(
            (tail - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt(),
            "{tail}"
        );
    }

    #[test]
    fn lognormal_delays_have_the_requested_median_and_spread() {
        let delay = ConversionDelay::parse("lognormal:1h:1.5").unwrap();
        assert_eq!(delay.to_string(), "lognormal:1h:1.5");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| delay.sample_ms(&mut rng) as f64).collect();
        // P(D ≤ median) = 1/2 and P(D ≤ median·e^σ) = Φ(1) = 0.841344746; binomial errors.
        for (bound, p) in [(1.0, 0.5), (1.5f64.exp(), 0.841_344_746_068_543)] {
            let share = draws
                .iter()
                .filter(|&&d| d <= bound * HOUR_MS as f64)
                .count() as f64
                / n as f64;
            assert!(
                (share - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt(),
                "{share} vs {p}"
            );
        }
        for bad in [
            "lognormal:1h",
            "lognormal:1h:0",
            "lognormal:1h:x",
            "lognormal:1h:-1",
        ] {
            assert!(ConversionDelay::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_share_within_a_window_has_its_closed_form() {
        let day = 24 * HOUR_MS;
        let exp = ConversionDelay::Exponential { mean_ms: day };
        assert!((exp.within(day) - (1.0 - (-1.0f64).exp())).abs() < 1e-15);
        // Φ(1) = 0.841344746068543 (Abramowitz & Stegun, Table 26.1).
        let lognormal = ConversionDelay::LogNormal {
            median_ms: HOUR_MS,
            sigma: 1.0,
        };
        let e_hours = (std::f64::consts::E * HOUR_MS as f64) as u64;
        // The window is whole milliseconds, e·1 h rounded down by under 1 ms (1e-7 relative),
        // which moves Φ by up to φ(1)·1e-7 ≈ 2.5e-8.
        assert!((lognormal.within(e_hours) - 0.841_344_746_068_543).abs() < 1e-7);
        assert!((lognormal.within(HOUR_MS) - 0.5).abs() < 1e-15);
        assert_eq!(ConversionDelay::Fixed { ms: 5 }.within(5), 1.0);
        assert_eq!(ConversionDelay::Fixed { ms: 6 }.within(5), 0.0);
    }

    #[test]
    fn fixed_delays_never_vary() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let delay = ConversionDelay::Fixed { ms: 42 };
        assert!((0..100).all(|_| delay.sample_ms(&mut rng) == 42));
    }
}
