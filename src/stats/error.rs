//! Errors of the pure statistics layer.

/// Why a statistic could not be computed. Callers get these instead of a panic or a NaN, so a
/// corrupt counter or a bad request parameter degrades one answer rather than the server.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A Beta shape parameter was zero, negative, infinite or NaN.
    #[error("Beta shape parameters must be finite and positive, got alpha={alpha}, beta={beta}")]
    InvalidShape { alpha: f64, beta: f64 },
    /// A probability outside [0, 1] (or NaN) given to a quantile function.
    #[error("probability must lie in [0, 1], got {0}")]
    InvalidProbability(f64),
    /// A credible level outside the open interval (0, 1).
    #[error("credible level must lie strictly between 0 and 1, got {0}")]
    InvalidLevel(f64),
    /// A delay law was asked for over a reward window of zero length.
    #[error("a delay law needs a reward window longer than 0")]
    EmptyWindow,
    /// A guardrail's tolerated relative change that is negative, infinite or NaN.
    #[error("relative change must be finite and at least 0, got {0}")]
    InvalidRelativeChange(f64),
}

/// Checks that both shapes describe a proper Beta distribution.
pub(crate) fn check_shapes(alpha: f64, beta: f64) -> Result<(), StatsError> {
    let valid = |shape: f64| shape.is_finite() && shape > 0.0;
    if valid(alpha) && valid(beta) {
        Ok(())
    } else {
        Err(StatsError::InvalidShape { alpha, beta })
    }
}
