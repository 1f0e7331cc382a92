//! What analysts read: per-experiment summaries, per-arm statistics, the stopping decision
//! and the sample-ratio check.

use serde::Serialize;

use super::live::Snapshot;
use super::{Engine, EngineError, LiveExperiment};
use crate::spec::{AssignmentMode, Experiment, Status};
use crate::stats::{self, SRM_ALERT_P, Verdict};

/// Credible level when the caller does not ask for one.
pub const DEFAULT_CREDIBLE_LEVEL: f64 = 0.95;

/// One line of `GET /v1/experiments`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperimentSummary {
    pub id: String,
    pub description: String,
    pub owner: String,
    pub status: Status,
    pub assignment: AssignmentMode,
    pub revision: u32,
    pub variants: usize,
    pub exposures: u64,
    pub rewards: f64,
    /// `no_rule`, `collecting` or `winner`.
    #[schema(value_type = DecisionStatus)]
    pub decision: &'static str,
}

/// The stopping rule's state: a summary's `decision`, and the `status` of a report's `stopping`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    NoRule,
    Collecting,
    Winner,
    /// An earlier revision whose spec the store did not keep (served by a build from before
    /// specs were kept): whether it had a rule is not known.
    Unknown,
}

/// Per-arm statistics.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmReport {
    pub variant: String,
    /// Removed from the YAML: no new traffic; its data is kept and shown.
    pub retired: bool,
    /// A guardrail halt stops the arm (see `halts`): no new traffic, its sticky units move;
    /// false again once `resume_after_halt` names every halt of the arm.
    pub halted: bool,
    /// N: counted assignments.
    pub exposures: u64,
    /// R: summed rewards.
    pub rewards: f64,
    /// R / N; `null` before the first exposure.
    pub rate: Option<f64>,
    /// The counts the posterior uses: exponentially decayed with `policy.half_life`, else
    /// equal to the raw ones, and with the delay correction the exposures less the pending
    /// ones (`delay`) (`null` where the revision's spec is unknown).
    #[schema(value_type = Option<f64>)]
    pub effective_exposures: f64,
    #[schema(value_type = Option<f64>)]
    pub effective_rewards: f64,
    pub posterior: PosteriorReport,
    /// P(this arm has the highest rate), exact to 1e-6; `null` for a retired arm (it does not
    /// compete, so none is computed) and where the revision's spec is unknown.
    pub prob_best: Option<f64>,
    /// E[max rate − this arm's rate]: what choosing this arm gives up, in expectation; `null`
    /// where no P(best) is computed.
    pub expected_loss: Option<f64>,
    /// Share of new traffic the policy currently sends to this arm (for an earlier revision:
    /// sent when it ended; `null` where its spec is unknown).
    #[schema(value_type = Option<f64>)]
    pub traffic_share: f64,
    /// Exposures the policy's own allocation probabilities predict (sample-ratio check).
    pub expected_exposures: f64,
    /// Assignments handed out. With `exposure: on_assign` each is an exposure (equal to
    /// `exposures`); with `on_render`, `exposures` counts only the confirmed ones.
    pub assigned: u64,
    /// `on_render`: exposures / assigned, the share of assignments the page confirmed
    /// (`null` before the first assignment, and always with `on_assign`).
    pub confirmation_rate: Option<f64>,
    /// The delay-aware correction (README, delay-aware posterior): the naive figures and the
    /// arm's delay law. `null` with `reward.delay: off`, with `auto` before the first
    /// conversion, and for a revision whose spec is unknown; the figures above are then naive.
    pub delay: Option<super::delay_report::ArmDelayReport>,
}

/// Beta posterior of one arm: prior plus counts. Every number is `null` for an earlier
/// revision whose spec (so whose priors) the store did not keep.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PosteriorReport {
    #[schema(value_type = Option<f64>)]
    pub alpha: f64,
    #[schema(value_type = Option<f64>)]
    pub beta: f64,
    #[schema(value_type = Option<f64>)]
    pub mean: f64,
    pub credible_interval: CredibleInterval,
}

/// Equal-tailed credible interval.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredibleInterval {
    pub level: f64,
    #[schema(value_type = Option<f64>)]
    pub lower: f64,
    #[schema(value_type = Option<f64>)]
    pub upper: f64,
}

/// The stopping rule's state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionReport {
    /// `no_rule`, `collecting`, `winner`, or `unknown` (see [`DecisionStatus`]).
    #[schema(value_type = DecisionStatus)]
    pub status: &'static str,
    /// The recorded decision (winner, time, the numbers that justified it, the rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<crate::store::Decision>,
    /// For a decision: whether the winner still meets the P(best) threshold now. A decision
    /// is never reversed; this says when later data disagrees with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_holds: Option<bool>,
    /// The experiment's `stopping:` thresholds as they apply now (`null` without a rule),
    /// shown before a winner is declared so a reader can see how far the data are.
    pub rule: Option<crate::store::DecisionRule>,
    /// In words: every unmet condition (`3 more days (min_duration 7d); 812 of 1,000
    /// exposures on 'c'; P(best) 0.42 of 0.95 (leader 'b')`), or how the decision stands.
    pub detail: String,
}

/// Sample-ratio check: observed exposures against what the allocation predicted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SrmReport {
    /// Pearson chi-square p-value; `null` with too little data.
    pub p_value: Option<f64>,
    /// True when p < 0.001: a broken frontend, bots or a caching bug (README, "Reading the
    /// results", says what each exposure mode can detect).
    pub alert: bool,
    /// With an alert: the arm furthest below its expected exposures (standardised residual),
    /// where the missing exposures are.
    pub short_arm: Option<String>,
}

/// `GET /v1/experiments/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperimentReport {
    #[serde(flatten)]
    pub summary: ExperimentSummary,
    pub default_variant: String,
    pub winner: Option<String>,
    pub burn_in: u64,
    pub min_share: f64,
    pub half_life: Option<String>,
    pub reward_window: String,
    /// When an assignment counts as an exposure.
    pub exposure: crate::spec::ExposureMode,
    /// `on_render`: how long after its assignment a confirmation is accepted.
    pub confirm_within: Option<String>,
    pub started_ms: Option<u64>,
    /// The revision the server serves now; `revision` is lower for an earlier revision's
    /// report (`?revision=N`), which shows that revision as it was served: its own variants,
    /// priors and stopping rule.
    pub current_revision: u32,
    /// When the numbers hold: now for the loaded revision; for an earlier one, its last
    /// recorded data (its start, or now, if it has none).
    pub as_of_ms: u64,
    pub stopping: DecisionReport,
    pub srm: SrmReport,
    /// For a concluded experiment: which exposures came before the conclusion and which after
    /// (README, "Concluded experiments"); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concluded: Option<super::conclusion::ConcludedReport>,
    /// Guardrail halts of this epoch, each with the numbers that justified it (README,
    /// "Guardrails"); a halted arm gets no new traffic unless `resumed`.
    pub halts: Vec<super::halts::HaltReport>,
    pub arms: Vec<ArmReport>,
}

impl Engine {
    pub async fn summaries(&self) -> Result<Vec<ExperimentSummary>, EngineError> {
        let catalog = self.catalog();
        let mut out = Vec::new();
        for live in catalog.all() {
            out.push(
                self.report_of(live, DEFAULT_CREDIBLE_LEVEL, None)
                    .await?
                    .summary,
            );
        }
        Ok(out)
    }

    /// The full report, with credible intervals at `level` (in (0, 1)).
    /// The full report, with credible intervals at `level` (in (0, 1)), of the current
    /// revision or of an earlier one (`revision`), whose data stays readable.
    pub async fn report(
        &self,
        id: &str,
        level: f64,
        revision: Option<u32>,
    ) -> Result<ExperimentReport, EngineError> {
        let live = self.loaded(id)?;
        self.report_of(&live, level, revision).await
    }

    async fn report_of(
        &self,
        live: &LiveExperiment,
        level: f64,
        revision: Option<u32>,
    ) -> Result<ExperimentReport, EngineError> {
        if !(level > 0.0 && level < 1.0) {
            return Err(EngineError::BadLevel(level));
        }
        let now_ms = self.clock.now_ms();
        let current = live.epoch.revision;
        let revision = revision.unwrap_or(current);
        if revision == current {
            let snapshot = self.rebuild(live, now_ms).await?;
            let extras = self.report_extras(live, revision, &snapshot).await?;
            return Ok(report(&live.spec, &snapshot, level, current, extras));
        }
        let epoch = self.epoch_of(live, revision)?;
        let counters = self.store.counters(&epoch).await?;
        let info = self.store.epoch_info(&epoch).await?;
        // An earlier revision's numbers as they stood at its last data: decay, durations and
        // the rule are evaluated then, not now.
        let as_of_ms = counters
            .values()
            .map(|c| c.decayed_at_ms)
            .max()
            .or(info.started_ms)
            .unwrap_or(now_ms);
        Ok(match self.archived_spec(live, revision).await? {
            Some(archived) => {
                let histograms = match archived.spec.reward.delay.base() {
                    Some(_) => Some(self.store.delay_histograms(&epoch).await?),
                    None => None,
                };
                let snapshot = Snapshot::build_delayed(
                    &archived.spec,
                    &archived.retired,
                    &counters,
                    histograms.as_ref().map(|h| (h, None)),
                    info,
                    as_of_ms,
                );
                let extras = self.report_extras(live, revision, &snapshot).await?;
                report(&archived.spec, &snapshot, level, current, extras)
            }
            None => unknown_spec_report(&live.spec, revision, &counters, info, level, current),
        })
    }
}

/// What a report reads from the store beyond the snapshot: the assignments recorded per arm
/// (`exposure: on_render`, where they differ from the confirmed exposures) and the
/// conclusion's before/after split.
struct ReportExtras {
    assigned: Option<std::collections::HashMap<String, u64>>,
    concluded: Option<super::conclusion::ConcludedReport>,
}

impl Engine {
    async fn report_extras(
        &self,
        live: &LiveExperiment,
        revision: u32,
        snapshot: &Snapshot,
    ) -> Result<ReportExtras, EngineError> {
        Ok(ReportExtras {
            assigned: self.assigned_counts(live, revision).await?,
            concluded: self.concluded_report(live, revision, snapshot).await?,
        })
    }
}

/// The report of `spec`'s epoch from `snapshot`.
fn report(
    spec: &Experiment,
    snapshot: &Snapshot,
    level: f64,
    current: u32,
    extras: ReportExtras,
) -> ExperimentReport {
    let arms: Vec<ArmReport> = (0..snapshot.variant_ids.len())
        .map(|k| {
            let mut arm = arm_report(k, snapshot, level, snapshot.is_retired(spec, k));
            arm.halted = snapshot
                .halts
                .iter()
                .any(|h| h.variant == arm.variant && super::halts::in_force(spec, h));
            super::exposure_report::with_assigned(arm, extras.assigned.as_ref())
        })
        .collect();
    let p_value = snapshot.srm_p_value();
    let stopping = decision_report(spec, snapshot);
    ExperimentReport {
        summary: summary(spec, spec.revision, &arms, stopping.status),
        default_variant: spec.default_variant.as_str().to_owned(),
        winner: spec.winner.as_ref().map(|w| w.as_str().to_owned()),
        burn_in: spec.policy.burn_in,
        min_share: spec.policy.min_share,
        half_life: spec.policy.half_life.map(|h| h.to_string()),
        reward_window: spec.reward.window.to_string(),
        exposure: spec.exposure.mode,
        confirm_within: (spec.exposure.mode == crate::spec::ExposureMode::OnRender)
            .then(|| spec.exposure.confirm_within.to_string()),
        started_ms: snapshot.info.started_ms,
        current_revision: current,
        as_of_ms: snapshot.taken_ms,
        stopping,
        srm: SrmReport {
            p_value,
            alert: p_value.is_some_and(|p| p < SRM_ALERT_P),
            short_arm: p_value
                .filter(|p| *p < SRM_ALERT_P)
                .and_then(|_| super::exposure_report::short_arm(snapshot)),
        },
        concluded: extras.concluded,
        halts: super::halts::report(spec, &snapshot.halts),
        arms,
    }
}

fn summary(
    spec: &Experiment,
    revision: u32,
    arms: &[ArmReport],
    decision: &'static str,
) -> ExperimentSummary {
    ExperimentSummary {
        id: spec.id.as_str().to_owned(),
        description: spec.description.clone(),
        owner: spec.owner.clone(),
        status: spec.status,
        assignment: spec.assignment,
        revision,
        variants: arms.iter().filter(|a| !a.retired).count(),
        exposures: arms.iter().map(|a| a.exposures).sum(),
        rewards: arms.iter().map(|a| a.rewards).sum(),
        decision,
    }
}

/// An earlier revision whose spec the store did not keep (it was served by a build from
/// before specs were kept): its counts are known, its priors, rule and settings are not, so
/// every number that depends on them is `null` rather than recomputed under today's spec.
fn unknown_spec_report(
    live_spec: &Experiment,
    revision: u32,
    counters: &std::collections::HashMap<String, crate::store::ArmCounters>,
    info: crate::store::EpochInfo,
    level: f64,
    current: u32,
) -> ExperimentReport {
    let mut variants: Vec<_> = counters.iter().collect();
    variants.sort_by(|a, b| a.0.cmp(b.0));
    let unknown = f64::NAN;
    let arms: Vec<ArmReport> = variants
        .into_iter()
        .map(|(variant, c)| ArmReport {
            halted: false,
            variant: variant.clone(),
            retired: false,
            exposures: c.exposures,
            rewards: c.reward_sum,
            // The assignments recorded apart from the exposures are unknown here; the
            // exposures are what the counters hold.
            assigned: c.exposures,
            confirmation_rate: None,
            rate: (c.exposures > 0).then(|| c.reward_sum / c.exposures as f64),
            effective_exposures: unknown,
            effective_rewards: unknown,
            posterior: PosteriorReport {
                alpha: unknown,
                beta: unknown,
                mean: unknown,
                credible_interval: CredibleInterval {
                    level,
                    lower: unknown,
                    upper: unknown,
                },
            },
            prob_best: None,
            expected_loss: None,
            traffic_share: unknown,
            expected_exposures: c.expected_exposures,
            delay: None,
        })
        .collect();
    let observed: Vec<f64> = arms.iter().map(|a| a.exposures as f64).collect();
    let expected: Vec<f64> = arms.iter().map(|a| a.expected_exposures).collect();
    let p_value = stats::srm_p_value(&observed, &expected);
    let status = if info.decision.is_some() {
        "winner"
    } else {
        "unknown"
    };
    let stopping = DecisionReport {
        status,
        decided: info.decision.clone(),
        still_holds: None,
        rule: None,
        detail: format!(
            "revision {revision} was served before banditd kept each revision's spec: its \
             priors and stopping rule are unknown, so only its counts are reported"
        ),
    };
    let mut summary = summary(live_spec, revision, &arms, status);
    summary.variants = arms.len();
    ExperimentReport {
        summary,
        default_variant: live_spec.default_variant.as_str().to_owned(),
        winner: None,
        burn_in: live_spec.policy.burn_in,
        min_share: live_spec.policy.min_share,
        half_life: None,
        reward_window: live_spec.reward.window.to_string(),
        exposure: live_spec.exposure.mode,
        confirm_within: None,
        started_ms: info.started_ms,
        current_revision: current,
        as_of_ms: counters
            .values()
            .map(|c| c.decayed_at_ms)
            .max()
            .or(info.started_ms)
            .unwrap_or_default(),
        stopping,
        srm: SrmReport {
            p_value,
            alert: p_value.is_some_and(|p| p < SRM_ALERT_P),
            short_arm: None,
        },
        concluded: None,
        halts: Vec::new(),
        arms,
    }
}

fn arm_report(k: usize, snapshot: &Snapshot, level: f64, retired: bool) -> ArmReport {
    let c = snapshot.counters[k];
    let e = snapshot.effective[k];
    let view = snapshot.arms[k];
    let posterior = stats::Posterior {
        alpha: view.alpha,
        beta: view.beta,
    };
    // The level was checked by the caller, so this only fails on corrupt shapes.
    let (lower, upper) = posterior
        .credible_interval(level)
        .unwrap_or((f64::NAN, f64::NAN));
    ArmReport {
        halted: false,
        variant: snapshot.variant_ids[k].clone(),
        retired,
        exposures: c.exposures,
        rewards: c.reward_sum,
        rate: (c.exposures > 0).then(|| c.reward_sum / c.exposures as f64),
        effective_exposures: e.exposures,
        effective_rewards: e.reward_sum,
        posterior: PosteriorReport {
            alpha: posterior.alpha,
            beta: posterior.beta,
            mean: posterior.mean(),
            credible_interval: CredibleInterval {
                level,
                lower,
                upper,
            },
        },
        prob_best: (!retired).then(|| snapshot.shares[k]),
        expected_loss: Some(snapshot.expected_loss[k]).filter(|loss| loss.is_finite()),
        traffic_share: snapshot.allocation.get(k).map_or(0.0, |(_, p)| *p),
        expected_exposures: c.expected_exposures,
        // Filled in by `exposure_report::with_assigned`.
        assigned: c.exposures,
        confirmation_rate: None,
        delay: super::delay_report::arm_delay(snapshot, k, retired),
    }
}

/// The stopping rule's states, as [`DecisionReport::status`] and the metrics name them.
pub const DECISION_STATES: [&str; 3] = ["no_rule", "collecting", "winner"];

/// The [`DecisionReport::status`] of `snapshot`, without building its detail (the metrics
/// read it at every scrape).
pub fn decision_state(spec: &Experiment, snapshot: &Snapshot) -> &'static str {
    match (&spec.stopping, &snapshot.info.decision) {
        (None, _) => DECISION_STATES[0],
        (Some(_), None) => DECISION_STATES[1],
        (Some(_), Some(_)) => DECISION_STATES[2],
    }
}

impl Snapshot {
    /// The sample-ratio check's p-value: observed exposures against those the policy's own
    /// allocation predicted (`None` with too little data).
    pub fn srm_p_value(&self) -> Option<f64> {
        let observed: Vec<f64> = self.counters.iter().map(|c| c.exposures as f64).collect();
        let expected: Vec<f64> = self.counters.iter().map(|c| c.expected_exposures).collect();
        stats::srm_p_value(&observed, &expected)
    }
}

fn decision_report(spec: &Experiment, snapshot: &Snapshot) -> DecisionReport {
    let name = |k: usize| spec.variants.get(k).map_or("?", |v| v.id.as_str());
    let Some(rule) = &spec.stopping else {
        return DecisionReport {
            status: "no_rule",
            decided: None,
            still_holds: None,
            rule: None,
            detail: "no stopping rule: add `stopping:` to the YAML to declare winners".into(),
        };
    };
    if let Some(decided) = &snapshot.info.decision {
        let arm = snapshot.decided_arm(spec);
        let now = arm.map(|k| snapshot.shares[k]);
        let still_holds = now.is_some_and(|p| p >= rule.prob_best);
        let detail = match (arm, now) {
            (Some(k), Some(p)) if still_holds => format!(
                "'{}' was declared the winner; its P(best) is {p:.4} now (threshold {})",
                name(k),
                rule.prob_best
            ),
            (Some(k), Some(p)) => format!(
                "'{}' was declared the winner, but its P(best) has dropped to {p:.4}, under the \
                 threshold {}; the decision stands until an analyst acts (e.g. bump `revision`)",
                name(k),
                rule.prob_best
            ),
            _ => "the declared winner is no longer a variant of this experiment".into(),
        };
        return DecisionReport {
            status: "winner",
            decided: Some(decided.clone()),
            still_holds: Some(still_holds),
            rule: super::stopping_detail::rule_of(spec),
            detail,
        };
    }
    let detail = match &snapshot.verdict {
        Some(Verdict::Collecting { reasons }) => {
            let min_duration = rule.min_duration.map(|d| d.to_string());
            super::stopping_detail::collecting_detail(reasons, min_duration.as_deref(), &name)
        }
        Some(Verdict::Winner { arm, .. }) if spec.status != Status::Running => format!(
            "'{}' meets the rule, but decisions are only recorded while the experiment runs",
            name(*arm)
        ),
        _ => "collecting".into(),
    };
    DecisionReport {
        status: "collecting",
        decided: None,
        still_holds: None,
        rule: super::stopping_detail::rule_of(spec),
        detail,
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
