//! `banditd simulate`: forecasts an experiment before launch by running the server's own
//! policy (`policy::decide`) and stopping rule (`stats::compare_arms` + `stats::evaluate`)
//! against true conversion rates, many times in parallel. Pure simulation here; `cli`
//! parses the flags and prints the summary that `format` renders.

mod cli;
mod confirm;
mod delay;
mod error;
mod format;
mod rates;
mod run;
mod scenario;
mod summary;

pub use cli::{OutputFormat, SimulateArgs, run_simulate};
pub use confirm::SrmTally;
pub use delay::ConversionDelay;
pub use error::SimError;
pub use format::{render_csv, render_json, render_table};
pub use rates::RateSpec;
pub use run::{DeclaredWinner, RunOutcome, run_once, run_rng};
pub use scenario::{MIN_EVALUATE_EVERY, MS_PER_HOUR, Scenario, Settings, SimArm, SimStopping};
pub use summary::{
    ArmSummary, RegretPoint, StoppingSummary, Summary, checkpoints, mean_and_std_error, quantile,
    simulate,
};
