//! Pure statistics: Beta posteriors, fast Beta draws, credible intervals, P(best) and
//! expected loss, exponential decay, delay-aware exposure counts, sample-ratio checks, the
//! stopping rule and the guardrail halt test. No I/O, no clock (times are passed in as
//! milliseconds); randomness is passed in.

mod arm_comparison;
mod beta_sampler;
mod decay;
mod delay;
mod error;
mod gamma;
mod gauss_legendre;
mod guardrail;
mod logit_beta;
mod posterior;
mod quantile;
mod srm;
mod stopping;
#[cfg(test)]
pub(crate) mod test_support;

pub use arm_comparison::{ArmComparison, TAIL_MASS, compare_arms};
pub use beta_sampler::{BetaSampler, MAX_SAMPLED_SHAPE, MIN_SAMPLED_SHAPE, sample_beta};
pub use decay::{DecayedCounts, decay_weight};
pub use delay::{
    ARM_POOLING_CONVERSIONS, ArmDelayFit, BASE_LAW_CONVERSIONS, BaseDelay, DELAY_BIN_MS,
    DelayCounts, DelayLaw, FINE_EDGES_MS, bin_count, delay_bin, fit_delays, fit_exponential_median,
    pending_decayed_exposures, pending_exposures,
};
pub use error::StatsError;
pub use guardrail::{
    GuardrailRule, GuardrailVerdict, HaltEvidence, Harm, check_guardrail, prob_worse,
};
pub use posterior::Posterior;
pub use quantile::{ASYMPTOTIC_MIN_SHAPE, beta_quantile};
pub use srm::{SRM_ALERT_P, srm_p_value};
pub use stopping::{CollectingReason, StoppingRule, Verdict, evaluate};
