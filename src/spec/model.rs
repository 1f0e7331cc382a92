//! The validated experiment model. Values here can only be built through `spec::parse_*`,
//! so past the boundary nothing re-checks them (parse, don't validate).

use std::path::PathBuf;

use super::duration::HumanDuration;
use super::error::Position;

/// Experiment id: `[a-z0-9_-]{1,64}`, unique across the folder. Used in URLs and store keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId(String);

/// Variant id: `[a-z0-9_-]{1,64}`, unique within an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VariantId(String);

/// Guardrail metric name: `[a-z0-9_-]{1,64}` (the id rules: it travels in event bodies
/// and in metric labels), unique within an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricName(String);

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    #[error("contains {0:?}; only lowercase letters, digits, '-' and '_' are allowed")]
    BadChar(char),
}

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let len = s.chars().count();
    if len > 64 {
        return Err(IdError::TooLong(len));
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(IdError::BadChar(c)),
        None => Ok(()),
    }
}

impl ExperimentId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_id(s).map(|()| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl VariantId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_id(s).map(|()| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl MetricName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_id(s).map(|()| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MetricName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for VariantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle of an experiment, as the analyst sets it in YAML.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not served: assign answers 404.
    Draft,
    /// Allocating by the policy.
    Running,
    /// Serves `default_variant`, uncounted.
    Paused,
    /// Serves `winner` to everybody.
    Concluded,
}

impl Status {
    /// The YAML spelling, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Concluded => "concluded",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a unit maps to assignments.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentMode {
    /// One assignment per unit per revision, remembered; counted once.
    Sticky,
    /// A fresh draw on every call; every call is an exposure; rewards by token only.
    PerRequest,
}

impl AssignmentMode {
    /// The YAML spelling, e.g. `per_request`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentMode::Sticky => "sticky",
            AssignmentMode::PerRequest => "per_request",
        }
    }
}

impl std::fmt::Display for AssignmentMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When an assignment counts as an exposure (`exposure:` in the YAML).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ExposureMode {
    /// Counted when the server hands the assignment out: observed follows the allocation by
    /// construction, so the sample-ratio check sees only server-side faults.
    OnAssign,
    /// Recorded when handed out, counted when the page confirms it rendered the variant
    /// (`POST /v1/exposures`): a frontend that drops a variant shows up as a mismatch.
    OnRender,
}

impl ExposureMode {
    /// The YAML spelling, e.g. `on_render`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureMode::OnAssign => "on_assign",
            ExposureMode::OnRender => "on_render",
        }
    }
}

impl std::fmt::Display for ExposureMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `exposure` and `confirm_within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExposureSpec {
    pub mode: ExposureMode,
    /// With `on_render`: confirmations later than this after the assignment are refused.
    pub confirm_within: HumanDuration,
}

/// Beta prior parameters; both finite and > 0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prior {
    pub alpha: f64,
    pub beta: f64,
}

impl Default for Prior {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

/// Reward settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardSpec {
    /// Rewards later than this after the assignment are rejected: the metric is "converted
    /// within `window` of the assignment".
    pub window: HumanDuration,
    /// How the posterior accounts for conversions that have not arrived yet.
    pub delay: DelayModel,
}

/// `reward.delay`: whether and how the posterior counts a recent exposure as only partly
/// observed (stats::delay). Changing it changes no stored data, only how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayModel {
    /// Learn the delay law from the data (the default: with no delay it costs nothing, and
    /// with one the naive posterior is biased against the arm with later conversions).
    #[default]
    Auto,
    /// Every exposure counts as a whole trial at once: the naive posterior.
    Off,
    /// Learn from the data, starting from an exponential delay with this median (a cold-start
    /// model for the weeks before the data have shown the tail of the delay law).
    Prior { median: HumanDuration },
}

impl DelayModel {
    /// The estimator's base law; `None` for `off`.
    pub fn base(self) -> Option<crate::stats::BaseDelay> {
        match self {
            DelayModel::Auto => Some(crate::stats::BaseDelay::Learn),
            DelayModel::Off => None,
            DelayModel::Prior { median } => Some(crate::stats::BaseDelay::ExponentialMedian {
                median_ms: median.as_millis(),
            }),
        }
    }
}

impl std::fmt::Display for DelayModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DelayModel::Auto => f.write_str("auto"),
            DelayModel::Off => f.write_str("off"),
            DelayModel::Prior { median } => write!(f, "{{median: {median}}}"),
        }
    }
}

/// Allocation knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicySpec {
    /// Uniform allocation until every active arm has this many exposures.
    pub burn_in: u64,
    /// Every active arm keeps at least this share of traffic; `min_share * K < 1`.
    pub min_share: f64,
    /// Old evidence decays exponentially: an exposure or reward `t` old counts with weight
    /// `2^(−t / half_life)`, so the posterior follows rates that drift (a discounted
    /// Thompson sampler, Raj & Kalyani 2017, "Taming non-stationary bandits"). `None`: every
    /// observation counts fully, the stationary model.
    pub half_life: Option<HumanDuration>,
}

/// What happens once the stopping rule names a winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWinner {
    /// The winner gets all traffic except the `min_share` floor of every other arm, which
    /// keeps measuring them (so a winner that fades can still be overtaken).
    Exploit,
    /// Allocation goes on unchanged; the winner is only flagged in the stats, for an analyst
    /// to conclude the experiment by hand.
    Report,
}

impl OnWinner {
    /// The YAML spelling, e.g. `exploit`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnWinner::Exploit => "exploit",
            OnWinner::Report => "report",
        }
    }
}

impl std::fmt::Display for OnWinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When to declare a winner: one arm is almost surely best (`prob_best`, the
/// probability-of-best criterion of Scott 2015, "Multi-armed bandit experiments in the
/// online service economy") and choosing it now costs almost nothing in expectation
/// (`max_expected_loss`, the "threshold of caring" of Stucchio 2015, "Bayesian A/B Testing
/// at VWO"; in conversion-rate units, so 0.001 is 0.1 percentage points).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoppingSpec {
    /// An arm is the winner once its P(best) reaches this. In (0.5, 1): above 0.5 at most
    /// one arm can qualify (the P(best) of all arms sum to 1), and 1 itself is never reached
    /// with finite data.
    pub prob_best: f64,
    /// ... and its expected loss `E[max_j θ_j − θ_k]` is at most this. In (0, 1]: the loss
    /// of a finite sample is never exactly 0, and a rate difference never exceeds 1.
    pub max_expected_loss: f64,
    /// Every active arm needs at least this many exposures before a winner is declared.
    pub min_exposures: u64,
    /// No winner before this long after the experiment's data epoch (its revision) started,
    /// so weekday/weekend cycles are seen at least once.
    pub min_duration: Option<HumanDuration>,
    pub on_winner: OnWinner,
    /// Whether the priors alone (no exposure of some arm) may declare a winner. False by
    /// default: every active arm then needs at least one exposure, whatever `min_exposures`.
    pub allow_prior_only_decision: bool,
}

impl StoppingSpec {
    /// The exposures every active arm needs before a decision: `min_exposures`, and at least
    /// one unless `allow_prior_only_decision` (no analyst expects a winner without data).
    pub fn required_exposures(&self) -> u64 {
        if self.allow_prior_only_decision {
            self.min_exposures
        } else {
            self.min_exposures.max(1)
        }
    }
}

/// Which guardrail rates are good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardrailDirection {
    /// A cost (refunds, errors): an arm above the comparison is worse.
    LowerIsBetter,
    /// A benefit (retention): an arm below the comparison is worse.
    HigherIsBetter,
}

impl GuardrailDirection {
    /// The YAML spelling, e.g. `lower_is_better`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailDirection::LowerIsBetter => "lower_is_better",
            GuardrailDirection::HigherIsBetter => "higher_is_better",
        }
    }
}

impl std::fmt::Display for GuardrailDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A second metric that must not get worse: an arm whose rate is worse than the
/// comparison arm's by more than `max_relative_change`, with posterior probability at
/// least `confidence` (after `min_exposures` on both), is halted (`stats::check_guardrail`).
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrail {
    pub metric: MetricName,
    pub direction: GuardrailDirection,
    /// δ ≥ 0 (below 1 when higher is better): 0.1 tolerates a 10% relative worsening.
    pub max_relative_change: f64,
    /// In (0.5, 1).
    pub confidence: f64,
    pub min_exposures: u64,
    /// The comparison arm; `None`: the experiment's `default_variant`.
    pub against: Option<VariantId>,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: VariantId,
    /// Any YAML value, handed to the frontend as JSON.
    pub payload: serde_json::Value,
    /// Overrides the experiment prior for this arm.
    pub prior: Option<Prior>,
    /// Lets the arm back in after the guardrail halt made at this time (its `halted_ms`, Unix
    /// milliseconds, as the stats and the log show it): an analyst's reviewed resume. It
    /// overrides only that halt, so a stale resume cannot undo a later one.
    pub resume_after_halt: Option<u64>,
}

/// A validated experiment definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: ExperimentId,
    pub description: String,
    pub owner: String,
    pub status: Status,
    /// Environments where it is live; `None` means all.
    pub environments: Option<Vec<String>>,
    /// Data epoch; bumping it starts fresh counters and assignments.
    pub revision: u32,
    pub assignment: AssignmentMode,
    /// When an assignment counts as an exposure, and how long a confirmation may take.
    pub exposure: ExposureSpec,
    pub reward: RewardSpec,
    pub prior: Prior,
    pub policy: PolicySpec,
    /// When to declare a winner; `None`: never, the analyst concludes by hand.
    pub stopping: Option<StoppingSpec>,
    /// Second metrics that halt an arm that harms them; empty when the file lists none.
    pub guardrails: Vec<Guardrail>,
    pub default_variant: VariantId,
    /// Required when (and only allowed when) `status: concluded`.
    pub winner: Option<VariantId>,
    pub variants: Vec<Variant>,
    /// File the experiment was read from, for messages.
    pub source: PathBuf,
    /// Where the `id` value sits in `source`, so a clash between two files can name both
    /// places (see `spec::check_set`).
    pub id_position: Position,
}

impl Experiment {
    /// Index of a variant by id.
    pub fn variant_index(&self, id: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.id.as_str() == id)
    }

    /// The prior of arm `k`: its own, else the experiment's.
    pub fn arm_prior(&self, k: usize) -> Prior {
        self.variants
            .get(k)
            .and_then(|v| v.prior)
            .unwrap_or(self.prior)
    }

    /// The comparison arm of a guardrail: its `against`, else `default_variant`.
    pub fn guardrail_reference<'a>(&'a self, guardrail: &'a Guardrail) -> &'a VariantId {
        guardrail.against.as_ref().unwrap_or(&self.default_variant)
    }

    /// Whether the experiment is loaded in `environment` (`None`: no filter).
    pub fn is_live_in(&self, environment: Option<&str>) -> bool {
        match (environment, &self.environments) {
            (None, _) | (_, None) => true,
            (Some(env), Some(list)) => list.iter().any(|e| e == env),
        }
    }
}
