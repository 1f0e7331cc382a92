//! `banditd simulate`: forecasts an experiment before launch by running the server's own
//! policy (`policy::decide`) and stopping rule (`stats::compare_arms` + `stats::evaluate`)
//! against true conversion rates, many times in parallel. Pure simulation here; `cli`
//! parses the flags and prints the summary that `format` renders.

mod cli;
mod confirm;
mod delay;
mod delay_compare;
mod delay_posterior;
mod error;
mod even_split;
mod format;
mod guardrail;
mod rates;
mod run;
mod scenario;
mod summary;

pub use cli::{DelayCorrection, DelayFlag, OutputFormat, SimulateArgs, run_simulate};
pub use confirm::SrmTally;
pub use delay::ConversionDelay;
pub use delay_compare::{
    DelayComparison, PosteriorResult, RELIABILITY_BINS, ReliabilityBin, compare_delay_correction,
    render_comparison,
};
pub use error::SimError;
pub use even_split::{EvenSplit, even_split};
pub use format::{render_csv, render_json, render_table};
pub use guardrail::{ArmHalt, DEFAULT_CHECK_EVERY, GuardrailRates, HaltSummary, SimGuardrail};
pub use rates::RateSpec;
pub use run::{DeclaredWinner, RunOutcome, run_once, run_rng};
pub use scenario::{MIN_EVALUATE_EVERY, MS_PER_HOUR, Scenario, Settings, SimArm, SimStopping};
pub use summary::{
    ArmSummary, LeaderShare, RegretPoint, Spread, StoppingSummary, Summary, checkpoints,
    mean_and_std_error, quantile, simulate,
};
