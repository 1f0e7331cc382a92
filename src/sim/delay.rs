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
        let ms = HumanDuration::parse(duration)
            .map_err(|reason| bad(format!("the duration {reason}")))?
            .as_millis();
        match kind.trim() {
            "exp" => Ok(Self::Exponential { mean_ms: ms }),
            "fixed" => Ok(Self::Fixed { ms }),
            other => Err(bad(format!(
                "unknown distribution {other:?}; use exp (exponential) or fixed"
            ))),
        }
    }

    /// The mean delay in milliseconds.
    pub fn mean_ms(self) -> u64 {
        match self {
            Self::Fixed { ms } => ms,
            Self::Exponential { mean_ms } => mean_ms,
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
        }
    }
}

impl std::fmt::Display for ConversionDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, ms) = match self {
            Self::Fixed { ms } => ("fixed", *ms),
            Self::Exponential { mean_ms } => ("exp", *mean_ms),
        };
        let duration = HumanDuration::from_std(std::time::Duration::from_millis(ms));
        write!(f, "{kind}:{duration}")
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
    fn fixed_delays_never_vary() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let delay = ConversionDelay::Fixed { ms: 42 };
        assert!((0..100).all(|_| delay.sample_ms(&mut rng) == 42));
    }
}
