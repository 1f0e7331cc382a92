//! Pure statistics: Beta posteriors, fast Beta draws, credible intervals. No I/O, no clock;
//! randomness is passed in.

mod beta_sampler;
mod error;
mod gamma;
mod posterior;
mod quantile;
#[cfg(test)]
pub(crate) mod test_support;

pub use beta_sampler::{BetaSampler, MAX_SAMPLED_SHAPE, MIN_SAMPLED_SHAPE, sample_beta};
pub use error::StatsError;
pub use posterior::Posterior;
pub use quantile::{ASYMPTOTIC_MIN_SHAPE, beta_quantile};
