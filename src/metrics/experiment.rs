//! One experiment's counters, resolved when it is loaded: the assign and ingest paths then
//! bump an atomic by index, with no label hashing and no allocation. Experiment and variant
//! ids are labels (a bounded set, fixed by the YAML); units and event ids never are.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::Metrics;
use super::registry::{AssignLabels, EventLabels};

/// The experiment label of an event that names no loaded experiment (or none at all): one
/// value, whatever the event said. Parentheses cannot occur in an experiment id.
pub const UNKNOWN_EXPERIMENT: &str = "(unknown)";

/// What one assign answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOutcome {
    /// Counted an exposure (a new sticky unit, or a per-request draw).
    Counted,
    /// `count=false`: shown, not counted.
    Peek,
    /// The store could not make the exposure durable: the default variant, no token.
    Degraded,
    /// The experiment is paused: its default variant, uncounted.
    Paused,
    /// Nothing new to count: a sticky unit's remembered variant (or, after a policy error,
    /// which is logged, the default variant).
    Returning,
    /// A new assignment of an `exposure: on_render` experiment: made by this call, counted
    /// once the page confirms it (`POST /v1/exposures`).
    New,
}

impl AssignOutcome {
    pub const ALL: [Self; 6] = [
        Self::Counted,
        Self::Peek,
        Self::Degraded,
        Self::Paused,
        Self::Returning,
        Self::New,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counted => "counted",
            Self::Peek => "peek",
            Self::Degraded => "degraded",
            Self::Paused => "paused",
            Self::Returning => "returning",
            Self::New => "new",
        }
    }
}

/// An event outcome's label: `applied`, `duplicate`, or a rejection reason's name.
pub type EventOutcome = &'static str;

/// The counters of one loaded experiment.
#[derive(Debug)]
pub struct ExperimentMetrics {
    /// By variant index (the spec's order), then by `AssignOutcome::ALL` order.
    assignments: Vec<[Counter; AssignOutcome::ALL.len()]>,
    /// By outcome name; a handful of entries, so a scan beats a hash.
    events: Vec<(EventOutcome, Counter)>,
}

impl ExperimentMetrics {
    /// Counts one answer for the variant at `arm`; an index out of range counts nothing.
    pub fn assigned(&self, arm: usize, outcome: AssignOutcome) {
        if let Some(counters) = self.assignments.get(arm) {
            counters[outcome as usize].inc();
        }
    }

    /// The counter of `outcome`, if it was resolved with the experiment.
    fn event(&self, outcome: EventOutcome) -> Option<&Counter> {
        self.events
            .iter()
            .find(|(name, _)| *name == outcome)
            .map(|(_, counter)| counter)
    }
}

impl Metrics {
    /// Resolves the counters of `experiment` with `variants` (the spec's order) and the event
    /// outcomes the engine can report. Counts carry over from a previous load of the same ids.
    pub fn experiment(
        &self,
        experiment: &str,
        variants: &[&str],
        event_outcomes: &[EventOutcome],
    ) -> ExperimentMetrics {
        let assignments = variants
            .iter()
            .map(|variant| {
                AssignOutcome::ALL.map(|outcome| {
                    self.assignments.get_or_create_owned(&AssignLabels {
                        experiment: experiment.to_owned(),
                        variant: (*variant).to_owned(),
                        outcome: outcome.as_str(),
                    })
                })
            })
            .collect();
        let events = event_outcomes
            .iter()
            .map(|&outcome| (outcome, self.event_counter(experiment, outcome)))
            .collect();
        ExperimentMetrics {
            assignments,
            events,
        }
    }

    fn event_counter(&self, experiment: &str, outcome: EventOutcome) -> Counter {
        self.events.get_or_create_owned(&EventLabels {
            experiment: experiment.to_owned(),
            outcome,
        })
    }
}

/// Counts the outcomes of one event batch by the experiment each event named.
#[derive(Debug)]
pub struct EventRecorder {
    metrics: &'static Metrics,
    /// By position in the batch: the named experiment's counters, if it is loaded.
    targets: Vec<Option<Arc<ExperimentMetrics>>>,
}

impl EventRecorder {
    /// A recorder for a batch of `len` events; `None` when metrics are off.
    pub fn start(len: usize) -> Option<Self> {
        super::get().map(|metrics| Self::with(metrics, len))
    }

    /// A recorder counting into `metrics`.
    pub fn with(metrics: &'static Metrics, len: usize) -> Self {
        Self {
            metrics,
            targets: Vec::with_capacity(len),
        }
    }

    /// The experiment of the next event in the batch (`None`: not loaded, or not readable).
    pub fn target(&mut self, experiment: Option<Arc<ExperimentMetrics>>) {
        self.targets.push(experiment);
    }

    /// Counts the event at `index` with `outcome`.
    pub fn record(&self, index: usize, outcome: EventOutcome) {
        let resolved = self
            .targets
            .get(index)
            .and_then(Option::as_ref)
            .and_then(|experiment| experiment.event(outcome));
        match resolved {
            Some(counter) => {
                counter.inc();
            }
            None => {
                self.metrics
                    .event_counter(UNKNOWN_EXPERIMENT, outcome)
                    .inc();
            }
        }
    }
}
