//! Experiment YAML: typed, validated experiment definitions. Pure: no file system access
//! (see `crate::catalog` for reading a folder), so every rule is exactly testable.
//! `parse_experiment` is the only way to build an `Experiment`; `check_set` adds the rules
//! that span files; `json_schema` describes the same format to editors; `plan` says what a
//! reload from one set to another would change and whether the running data survives it.

pub mod diff;
mod diff_render;
mod document;
pub mod duration;
pub mod error;
mod exposure;
mod fields;
mod guardrails;
mod lint;
pub mod model;
mod node;
mod parse;
pub mod schema;
mod set;
mod stopping;

pub use diff::{
    ChangeKind, ExperimentPlan, FieldChange, Plan, PlanVerdict, VariantChange, Verdict, plan,
};
pub use diff_render::{TrafficFacts, thousands};
pub use duration::HumanDuration;
pub use error::{MAX_EXCERPT_CHARS, Position, SpecError, excerpt, quoted};
pub use exposure::DEFAULT_CONFIRM_WITHIN_SECONDS;
pub use guardrails::{
    DEFAULT_GUARDRAIL_CONFIDENCE, DEFAULT_GUARDRAIL_MIN_EXPOSURES, PRIMARY_METRIC,
};
pub use lint::lint_experiment;
pub use model::{
    AssignmentMode, DelayModel, Experiment, ExperimentId, ExposureMode, ExposureSpec, Guardrail,
    GuardrailDirection, IdError, MetricName, OnWinner, PolicySpec, Prior, RewardSpec, Status,
    StoppingSpec, Variant, VariantId,
};
pub use parse::{
    DEFAULT_BURN_IN, DEFAULT_MIN_SHARE, DEFAULT_REVISION, DEFAULT_REWARD_WINDOW_SECONDS,
    MAX_VARIANTS, parse_experiment,
};
pub use schema::{SCHEMA_FILE, json_schema, json_schema_text};
pub use set::check_set;
pub use stopping::{DEFAULT_MIN_EXPOSURES, DEFAULT_ON_WINNER};
