//! `banditd-fill --events N`: N applied events with distinct ids, so that a store holds N kept
//! event ids (`benches/load/restart.sh` measures restart time and memory with them).
//!
//! An id is kept only by an event the store *applies* (`store::apply`): a duplicate or a
//! refused event (unit not assigned, already rewarded, outside the window) keeps nothing. A
//! sticky unit takes one credit, so N ids need N credits. Event j credits the unit
//! `{prefix}{start + j}` of this run if asked to (banditd-fill --credit-units) and j is below
//! the run's count of units; otherwise it credits a per-request assignment of its own
//! (`RewardTarget::Token`: assignment id = the event id, issued now, variant j mod K), as a
//! verified assign token would, after counting that assignment's exposure
//! (`Store::count_exposure`, as a per-request assign does) so that no arm has more rewards
//! than exposures. A token credit is a credit mark in the store besides the id; a store with
//! many kept ids holds those in production too (per-request and guardrail events are token
//! credits). A second fill of the same ids finds them kept (`Duplicate`) but counts their
//! exposures again: fill a range once.
//!
//! The events go through `Store::apply_rewards` in calls of 1,024 ops by default (one writer
//! request each, up to the writer's batch weight per group commit), several calls in flight
//! so that the next batch is queued while one is on disk. Any outcome other than `Applied`
//! (or `Duplicate`, for ids a previous fill of the same range kept) stops the fill: the
//! tooling must never measure a store without the ids it claims.

use std::sync::Arc;
use std::time::Instant;

use banditd::engine::{Clock, SystemClock};
use banditd::spec::Experiment;
use banditd::store::{Epoch, RewardOp, RewardOutcome, RewardTarget, Store, Tally};
use futures_util::StreamExt;

/// Events per progress line.
const PROGRESS_EVERY_EVENTS: u64 = 5_000_000;

/// What the events part of a fill is asked to do.
#[derive(Debug, Clone)]
pub struct EventPlan {
    /// How many events.
    pub events: u64,
    /// First j: event ids are `{event_prefix}{j}`.
    pub start: u64,
    pub event_prefix: String,
    /// Credit the run's units first (unit `{unit_prefix}{unit_start + j}` for j < `units`).
    pub credit_units: bool,
    pub unit_prefix: String,
    pub unit_start: u64,
    pub units: u64,
    /// Ops per `apply_rewards` call, and calls in flight at once.
    pub per_call: usize,
    pub in_flight: usize,
}

/// What the events part of a fill did.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventReport {
    /// Applied by this run: each keeps its id.
    pub applied: u64,
    /// Per-request exposures counted for the token events.
    pub exposures: u64,
    /// Kept already (the same range was filled before): kept ids too.
    pub duplicate: u64,
    pub seconds: f64,
}

/// Whether event `j` credits one of the run's units (else a token of its own).
fn credits_unit(plan: &EventPlan, j: u64) -> bool {
    plan.credit_units && j < plan.units
}

/// The op of event `j`.
fn event_op(plan: &EventPlan, j: u64, epoch: &Epoch, spec: &EventSpec) -> RewardOp {
    let event_id = format!("{}{j}", plan.event_prefix);
    let target = if credits_unit(plan, j) {
        RewardTarget::Unit(format!(
            "{}{}",
            plan.unit_prefix,
            plan.unit_start.saturating_add(j)
        ))
    } else {
        RewardTarget::Token {
            assignment_id: event_id.clone(),
            // j mod K < K = variants.len(), so the index is in range.
            variant: spec.variant(j).to_owned(),
            issued_ms: spec.now_ms,
            propensity: 1.0 / spec.variants.len() as f64,
            confirmed_only: false,
        }
    };
    RewardOp {
        epoch: epoch.clone(),
        event_id,
        target,
        reward: 1.0,
        occurred_ms: None,
        now_ms: spec.now_ms,
        window_ms: spec.window_ms,
        half_life_ms: spec.half_life_ms,
    }
}

/// The experiment's figures every op carries.
struct EventSpec {
    variants: Vec<String>,
    now_ms: u64,
    window_ms: u64,
    half_life_ms: Option<u64>,
    /// A token's exposure: now, under the uniform allocation.
    tally: Tally,
}

impl EventSpec {
    /// The variant of event `j`'s token: j mod K.
    fn variant(&self, j: u64) -> &str {
        // j mod K < K = variants.len(), so the index is in range.
        &self.variants[(j % self.variants.len() as u64) as usize]
    }
}

/// Counts one per-request exposure for each token event of `events`; fails if the store
/// takes none.
fn count_token_exposures(
    store: &dyn Store,
    plan: &EventPlan,
    epoch: &Epoch,
    spec: &EventSpec,
    events: std::ops::Range<u64>,
) -> Result<u64, String> {
    let mut counted = 0;
    for j in events.filter(|&j| !credits_unit(plan, j)) {
        if !store.count_exposure(epoch, spec.variant(j), spec.tally.clone()) {
            return Err(format!("the store is not writable (event {j})"));
        }
        counted += 1;
    }
    Ok(counted)
}

/// Writes the plan's events; fails at the first outcome that keeps no id.
pub async fn fill_events(
    store: Arc<dyn Store>,
    experiment: &Experiment,
    plan: &EventPlan,
) -> Result<EventReport, String> {
    let (epoch, variants) = epoch_and_variants(experiment);
    let share = 1.0 / variants.len() as f64;
    let now_ms = SystemClock.now_ms();
    let half_life_ms = experiment.policy.half_life.map(|h| h.as_millis());
    let spec = EventSpec {
        tally: Tally {
            now_ms,
            half_life_ms,
            allocation: variants.iter().map(|v| (v.clone(), share)).collect(),
        },
        variants,
        now_ms,
        window_ms: experiment.reward.window.as_millis(),
        half_life_ms,
    };
    let mut report = EventReport::default();
    let per_call = plan.per_call.max(1) as u64;
    let end = plan.start.saturating_add(plan.events);
    let started = Instant::now();
    let calls = (plan.start..end).step_by(per_call as usize).map(|first| {
        let last = first.saturating_add(per_call).min(end);
        let ops: Vec<RewardOp> = (first..last)
            .map(|j| event_op(plan, j, &epoch, &spec))
            .collect();
        // Each token's exposure, queued before its reward: folded into the counters at the
        // next group commit, so it is durable no later than the reward.
        let counted = count_token_exposures(store.as_ref(), plan, &epoch, &spec, first..last);
        let store = Arc::clone(&store);
        async move {
            let result = match counted {
                Ok(exposures) => store
                    .apply_rewards(ops)
                    .await
                    .map(|outcomes| (exposures, outcomes))
                    .map_err(|e| format!("apply_rewards failed: {e}")),
                Err(error) => Err(error),
            };
            (first, result)
        }
    });
    let mut calls = futures_util::stream::iter(calls).buffer_unordered(plan.in_flight.max(1));
    let mut next_progress = PROGRESS_EVERY_EVENTS;
    while let Some((first, result)) = calls.next().await {
        let (exposures, outcomes) = result?;
        report.exposures += exposures;
        for (offset, outcome) in outcomes.iter().enumerate() {
            match outcome {
                RewardOutcome::Applied { .. } => report.applied += 1,
                RewardOutcome::Duplicate => report.duplicate += 1,
                refused => {
                    return Err(format!(
                        "event {}{} was not applied ({refused:?}): it keeps no id",
                        plan.event_prefix,
                        first + offset as u64
                    ));
                }
            }
        }
        let done = report.applied + report.duplicate;
        if done >= next_progress {
            next_progress += PROGRESS_EVERY_EVENTS;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "banditd-fill: {done} events in {secs:.1} s ({:.0} events/s)",
                done as f64 / secs.max(1e-9)
            );
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The epoch the experiment is served under, and its variant ids in order (variant `i mod K`
/// is unit `i`'s, see `fill`).
pub fn epoch_and_variants(experiment: &Experiment) -> (Epoch, Vec<String>) {
    let epoch = Epoch {
        experiment: experiment.id.as_str().to_owned(),
        revision: experiment.revision,
    };
    let variants = experiment
        .variants
        .iter()
        .map(|v| v.id.as_str().to_owned())
        .collect();
    (epoch, variants)
}
