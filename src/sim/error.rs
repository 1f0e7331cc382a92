//! Why a simulation cannot run: bad command-line input, or an inconsistent setup. Every
//! message names the flag and says what to write instead, so the CLI prints it as is.

use crate::policy::PolicyError;

/// A simulation input error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("--rates is empty; give one rate per variant, e.g. control=0.05,bold=0.06")]
    EmptyRates,
    #[error("--rates item {item:?} is not a rate: {reason}")]
    BadRate { item: String, reason: String },
    #[error(
        "--rates mixes `id=rate` items with bare rates; use one form, e.g. control=0.05,bold=0.06 or 0.05,0.06"
    )]
    MixedRates,
    #[error("the rate {value} of {what} is outside [0, 1]; a conversion rate is a probability")]
    RateOutOfRange { what: String, value: f64 },
    #[error("--rates gives a rate for {id:?} twice")]
    DuplicateRate { id: String },
    #[error("--rates names the unknown variant {id:?}; the variants are {known}")]
    UnknownVariant { id: String, known: String },
    #[error("--rates has no rate for {missing}; every variant needs one (variants: {known})")]
    MissingRates { missing: String, known: String },
    #[error("--rates gives {given} rates for {expected} arms; give exactly one per arm, in order")]
    WrongCount { given: usize, expected: usize },
    #[error("--conversion-delay {text:?}: {reason}")]
    BadDelay { text: String, reason: String },
    /// A setting out of range, or a combination that cannot be simulated.
    #[error("{0}")]
    Invalid(String),
    /// The policy refused the simulated state (a bug: the simulator builds valid states).
    #[error("the policy failed: {0}")]
    Policy(#[from] PolicyError),
}
