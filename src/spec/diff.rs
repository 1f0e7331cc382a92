//! What a reload would change, and whether the running data stays truthful afterwards.
//!
//! Counters and sticky assignments belong to a data epoch, `(experiment, revision)`
//! (docs/ARCHITECTURE.md, "A reload"). An edit is compatible when the stored records still describe
//! what the new spec serves: knobs that only steer future allocation (priors, policy,
//! stopping, status, ownership) apply to the existing counts; adding a variant starts it at
//! its prior; removing one retires it (no new traffic, its data kept). An edit that would
//! make stored records lie (a kept variant showing different content, a different
//! assignment mode, a retired id brought back) needs a new epoch: `revision` bumped.
//! A revision bump therefore makes every edit compatible; a revision going down would
//! reopen history and is refused. Pure: no I/O, so every rule is tested exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use serde::Serialize;
use serde::ser::SerializeStruct;

use super::model::{AssignmentMode, Experiment, Prior, Status, StoppingSpec};

/// How one experiment differs between the running and the proposed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the proposed set: starts being served.
    Added,
    /// Only in the running set: stops being served, its data is kept.
    Removed,
    /// In both, with at least one difference.
    Changed,
    /// In both, identical apart from the file it was read from and variant order.
    Unchanged,
}

/// One top-level or nested field that differs, e.g. `policy.min_share: 0.02 → 0.05`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Path as written in the YAML, e.g. `policy.min_share`.
    pub field: String,
    /// The running value for display (`none` when unset, `all` for environments).
    pub old: String,
    /// The proposed value for display.
    pub new: String,
}

/// A kept variant whose `payload` or own `prior` differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantChange {
    pub variant: String,
    /// `payload` or `prior`.
    pub field: String,
    /// Compact JSON for payloads; `{alpha: 1, beta: 19}` or `none` for priors.
    pub old: String,
    pub new: String,
}

/// Whether one experiment's edit can be applied to its current data epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    Compatible,
    /// The stored records would no longer describe what is served. Each reason names the
    /// file, what is wrong and what to do.
    NeedsRevisionBump {
        reasons: Vec<String>,
    },
}

/// Whether the whole reload can be applied, and whether it loses anything. Reloads are
/// all-or-nothing, so one experiment that needs a revision bump refuses everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanVerdict {
    /// Accepted, and every experiment that is served now is still served.
    Safe,
    /// Accepted, but at least one experiment that is served now (running, paused or
    /// concluded) would stop being served: removed from the folder or from this
    /// environment, or set back to `draft`. Its units lose their experiment (assign answers
    /// 404, the page renders its fallback). Never called safe: it may be exactly what the
    /// analyst wants, but a reviewer has to see it.
    DropsServed,
    /// Refused: at least one experiment needs a revision bump.
    Refused,
}

/// The plan of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentPlan {
    pub id: String,
    pub kind: ChangeKind,
    /// The proposed file, or the running one for an experiment removed from a running
    /// folder; `None` for one removed from a running server, which has no file of it.
    pub file: Option<String>,
    /// `None` when absent from that side.
    pub running_revision: Option<u32>,
    pub proposed_revision: Option<u32>,
    /// The proposed revision is above the running one: new counters, new assignments.
    pub fresh_epoch: bool,
    pub changes: Vec<FieldChange>,
    pub variants_added: Vec<String>,
    /// In the running spec, not in the proposed one: no new traffic, data kept.
    pub variants_retired: Vec<String>,
    pub variants_changed: Vec<VariantChange>,
    pub verdict: Verdict,
    /// Facts the traffic summary needs that are not changes themselves.
    #[serde(skip)]
    pub(crate) context: PlanContext,
}

/// The settings that decide how an edit moves traffic (see `diff_render`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PlanContext {
    /// The running experiment's mode (the proposed one's when added): whether retiring a
    /// variant re-assigns remembered units.
    pub sticky: bool,
    /// Proposed `policy.burn_in` (running one when removed).
    pub burn_in: u64,
    /// Proposed status, default variant and winner (running ones when removed).
    pub status: Option<Status>,
    pub default_variant: String,
    pub winner: Option<String>,
    pub variant_count: usize,
}

/// Every experiment of both sets, by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub experiments: Vec<ExperimentPlan>,
}

impl Plan {
    /// `Refused` if any experiment needs a revision bump, else `DropsServed` if any served
    /// experiment stops being served, else `Safe`.
    pub fn verdict(&self) -> PlanVerdict {
        if self
            .experiments
            .iter()
            .any(|e| matches!(e.verdict, Verdict::NeedsRevisionBump { .. }))
        {
            PlanVerdict::Refused
        } else if self.experiments.iter().any(ExperimentPlan::drops_served) {
            PlanVerdict::DropsServed
        } else {
            PlanVerdict::Safe
        }
    }

    /// Whether applying the plan changes nothing at all.
    pub fn is_noop(&self) -> bool {
        self.experiments
            .iter()
            .all(|e| e.kind == ChangeKind::Unchanged)
    }
}

impl ExperimentPlan {
    /// Whether an experiment served now (running, paused or concluded: assign answers for
    /// it) stops being served: removed, or set back to `draft`.
    pub fn drops_served(&self) -> bool {
        match self.kind {
            ChangeKind::Removed => self.context.status != Some(Status::Draft),
            ChangeKind::Changed => {
                self.context.status == Some(Status::Draft)
                    && self
                        .changes
                        .iter()
                        .any(|c| c.field == "status" && c.old != Status::Draft.as_str())
            }
            ChangeKind::Added | ChangeKind::Unchanged => false,
        }
    }
}

/// JSON for CI bots: `{"verdict": "safe" | "drops_served" | "refused", "experiments": [...]}`.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Plan", 2)?;
        out.serialize_field("verdict", &self.verdict())?;
        out.serialize_field("experiments", &self.experiments)?;
        out.end()
    }
}

/// Compares the running experiments with the proposed ones. `retired` maps an experiment id
/// to the variant ids that have data in its current revision but are no longer in its spec
/// (the server knows them from its store; a folder comparison passes an empty map).
pub fn plan(
    running: &[Experiment],
    proposed: &[Experiment],
    retired: &BTreeMap<String, BTreeSet<String>>,
) -> Plan {
    let running: BTreeMap<&str, &Experiment> = running.iter().map(|e| (e.id.as_str(), e)).collect();
    let proposed: BTreeMap<&str, &Experiment> =
        proposed.iter().map(|e| (e.id.as_str(), e)).collect();
    let ids: BTreeSet<&str> = running.keys().chain(proposed.keys()).copied().collect();
    let no_retired = BTreeSet::new();
    let experiments = ids
        .into_iter()
        .filter_map(|id| match (running.get(id), proposed.get(id)) {
            (None, Some(new)) => Some(added(new)),
            (Some(old), None) => Some(removed(old)),
            (Some(old), Some(new)) => {
                Some(compared(old, new, retired.get(id).unwrap_or(&no_retired)))
            }
            (None, None) => None,
        })
        .collect();
    Plan { experiments }
}

fn context(e: &Experiment, sticky_from: &Experiment) -> PlanContext {
    PlanContext {
        sticky: sticky_from.assignment == AssignmentMode::Sticky,
        burn_in: e.policy.burn_in,
        status: Some(e.status),
        default_variant: e.default_variant.to_string(),
        winner: e.winner.as_ref().map(ToString::to_string),
        variant_count: e.variants.len(),
    }
}

fn added(new: &Experiment) -> ExperimentPlan {
    ExperimentPlan {
        id: new.id.to_string(),
        kind: ChangeKind::Added,
        file: Some(new.source.display().to_string()),
        running_revision: None,
        proposed_revision: Some(new.revision),
        fresh_epoch: false,
        changes: Vec::new(),
        variants_added: new.variants.iter().map(|v| v.id.to_string()).collect(),
        variants_retired: Vec::new(),
        variants_changed: Vec::new(),
        verdict: Verdict::Compatible,
        context: context(new, new),
    }
}

fn removed(old: &Experiment) -> ExperimentPlan {
    ExperimentPlan {
        id: old.id.to_string(),
        kind: ChangeKind::Removed,
        file: Some(old.source.display().to_string()),
        running_revision: Some(old.revision),
        proposed_revision: None,
        fresh_epoch: false,
        changes: Vec::new(),
        variants_added: Vec::new(),
        variants_retired: Vec::new(),
        variants_changed: Vec::new(),
        verdict: Verdict::Compatible,
        context: context(old, old),
    }
}

fn compared(old: &Experiment, new: &Experiment, retired: &BTreeSet<String>) -> ExperimentPlan {
    let changes = field_changes(old, new);
    let kept: Vec<(&super::model::Variant, &super::model::Variant)> = new
        .variants
        .iter()
        .filter_map(|n| {
            old.variant_index(n.id.as_str())
                .and_then(|k| old.variants.get(k))
                .map(|o| (o, n))
        })
        .collect();
    let variants_added: Vec<String> = new
        .variants
        .iter()
        .filter(|v| old.variant_index(v.id.as_str()).is_none())
        .map(|v| v.id.to_string())
        .collect();
    let variants_retired: Vec<String> = old
        .variants
        .iter()
        .filter(|v| new.variant_index(v.id.as_str()).is_none())
        .map(|v| v.id.to_string())
        .collect();
    let mut variants_changed = Vec::new();
    for (o, n) in &kept {
        if o.payload != n.payload {
            variants_changed.push(VariantChange {
                variant: n.id.to_string(),
                field: "payload".into(),
                old: o.payload.to_string(),
                new: n.payload.to_string(),
            });
        }
        if o.resume_after_halt != n.resume_after_halt {
            variants_changed.push(VariantChange {
                variant: n.id.to_string(),
                field: "resume_after_halt".into(),
                old: optional(o.resume_after_halt.map(|t| t.to_string())),
                new: optional(n.resume_after_halt.map(|t| t.to_string())),
            });
        }
        if o.prior != n.prior {
            variants_changed.push(VariantChange {
                variant: n.id.to_string(),
                field: "prior".into(),
                old: optional(o.prior.map(show_prior)),
                new: optional(n.prior.map(show_prior)),
            });
        }
    }
    let fresh_epoch = new.revision > old.revision;
    let reasons = if fresh_epoch {
        Vec::new()
    } else {
        reasons(old, new, &variants_added, &variants_changed, retired)
    };
    let kind = if changes.is_empty()
        && variants_added.is_empty()
        && variants_retired.is_empty()
        && variants_changed.is_empty()
    {
        ChangeKind::Unchanged
    } else {
        ChangeKind::Changed
    };
    ExperimentPlan {
        id: new.id.to_string(),
        kind,
        file: Some(new.source.display().to_string()),
        running_revision: Some(old.revision),
        proposed_revision: Some(new.revision),
        fresh_epoch,
        changes,
        variants_added,
        variants_retired,
        variants_changed,
        verdict: if reasons.is_empty() {
            Verdict::Compatible
        } else {
            Verdict::NeedsRevisionBump { reasons }
        },
        context: context(new, old),
    }
}

/// Why the edit cannot apply to the current epoch; empty when it can. Each sentence names
/// the file and both ways out.
fn reasons(
    old: &Experiment,
    new: &Experiment,
    variants_added: &[String],
    variants_changed: &[VariantChange],
    retired: &BTreeSet<String>,
) -> Vec<String> {
    let file = new.source.display();
    let next = old.revision.saturating_add(1);
    let bump = format!("bump `revision` to {next} to start a fresh data epoch");
    let mut reasons = Vec::new();
    if new.revision < old.revision {
        reasons.push(format!(
            "{file}: `revision` goes down from {} to {}; earlier revisions are read-only \
             history and cannot be reopened. Set `revision: {}` to keep the current data, \
             or {next} to start a fresh data epoch",
            old.revision, new.revision, old.revision
        ));
    }
    if old.assignment != new.assignment {
        reasons.push(format!(
            "{file}: `assignment` changes from {} to {}; the stored exposures and assignments \
             were counted as {} and cannot be mixed with {} ones. {}, or keep \
             `assignment: {}`",
            old.assignment,
            new.assignment,
            old.assignment,
            new.assignment,
            capitalised(&bump),
            old.assignment
        ));
    }
    if old.exposure.mode != new.exposure.mode {
        reasons.push(format!(
            "{file}: `exposure` changes from {} to {}; the stored exposures were counted {} \
             and cannot be mixed with exposures counted {} (nor can the assignments already \
             handed out be confirmed under the other mode). {}, or keep `exposure: {}`",
            old.exposure.mode,
            new.exposure.mode,
            when_counted(old.exposure.mode),
            when_counted(new.exposure.mode),
            capitalised(&bump),
            old.exposure.mode
        ));
    }
    for change in variants_changed.iter().filter(|c| c.field == "payload") {
        reasons.push(format!(
            "{file}: the payload of variant `{}` changes; its stored exposures would claim \
             that visitors saw the new content. {}, or restore the payload (or add the new \
             content as a variant with a new id)",
            change.variant,
            capitalised(&bump)
        ));
    }
    for id in variants_added.iter().filter(|id| retired.contains(*id)) {
        reasons.push(format!(
            "{file}: variant `{id}` was retired but still has data in revision {}; nothing \
             proves the re-added variant shows the same content as before. {}, or give the \
             variant a new id",
            old.revision,
            capitalised(&bump)
        ));
    }
    reasons
}

/// How the exposures of a mode were counted, for the revision-bump message.
fn when_counted(mode: super::model::ExposureMode) -> &'static str {
    match mode {
        super::model::ExposureMode::OnAssign => "when assigned",
        super::model::ExposureMode::OnRender => "when the page confirmed them",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Every differing field of the experiment itself (variants are compared separately).
fn field_changes(old: &Experiment, new: &Experiment) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut diff = |field: &str, o: String, n: String| {
        if o != n {
            changes.push(FieldChange {
                field: field.to_owned(),
                old: o,
                new: n,
            });
        }
    };
    diff(
        "description",
        old.description.clone(),
        new.description.clone(),
    );
    diff("owner", old.owner.clone(), new.owner.clone());
    diff("status", old.status.to_string(), new.status.to_string());
    diff(
        "environments",
        show_environments(old.environments.as_deref()),
        show_environments(new.environments.as_deref()),
    );
    diff(
        "revision",
        old.revision.to_string(),
        new.revision.to_string(),
    );
    diff(
        "assignment",
        old.assignment.to_string(),
        new.assignment.to_string(),
    );
    diff(
        "exposure",
        old.exposure.mode.to_string(),
        new.exposure.mode.to_string(),
    );
    diff(
        "confirm_within",
        old.exposure.confirm_within.to_string(),
        new.exposure.confirm_within.to_string(),
    );
    diff(
        "reward.window",
        old.reward.window.to_string(),
        new.reward.window.to_string(),
    );
    // Compatible: the delay model only changes how the stored counts are read.
    diff(
        "reward.delay",
        old.reward.delay.to_string(),
        new.reward.delay.to_string(),
    );
    diff("prior", show_prior(old.prior), show_prior(new.prior));
    diff(
        "policy.burn_in",
        old.policy.burn_in.to_string(),
        new.policy.burn_in.to_string(),
    );
    diff(
        "policy.min_share",
        old.policy.min_share.to_string(),
        new.policy.min_share.to_string(),
    );
    diff(
        "policy.half_life",
        optional(old.policy.half_life),
        optional(new.policy.half_life),
    );
    // Guardrails only decide which arms keep getting traffic, like the stopping rule, so
    // any change is compatible (see `show_guardrails` for what the data means afterwards).
    diff("guardrails", show_guardrails(old), show_guardrails(new));
    match (&old.stopping, &new.stopping) {
        (Some(o), Some(n)) => {
            diff(
                "stopping.prob_best",
                o.prob_best.to_string(),
                n.prob_best.to_string(),
            );
            diff(
                "stopping.max_expected_loss",
                o.max_expected_loss.to_string(),
                n.max_expected_loss.to_string(),
            );
            diff(
                "stopping.min_exposures",
                o.min_exposures.to_string(),
                n.min_exposures.to_string(),
            );
            diff(
                "stopping.min_duration",
                optional(o.min_duration),
                optional(n.min_duration),
            );
            diff(
                "stopping.on_winner",
                o.on_winner.to_string(),
                n.on_winner.to_string(),
            );
            diff(
                "stopping.allow_prior_only_decision",
                o.allow_prior_only_decision.to_string(),
                n.allow_prior_only_decision.to_string(),
            );
        }
        (o, n) => diff(
            "stopping",
            optional(o.as_ref().map(show_stopping)),
            optional(n.as_ref().map(show_stopping)),
        ),
    }
    diff(
        "default_variant",
        old.default_variant.to_string(),
        new.default_variant.to_string(),
    );
    diff(
        "winner",
        optional(old.winner.as_ref()),
        optional(new.winner.as_ref()),
    );
    changes
}

fn optional<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn show_environments(list: Option<&[String]>) -> String {
    list.map_or_else(|| "all".to_owned(), |l| format!("[{}]", l.join(", ")))
}

/// `refunds lower_is_better 0.1 @0.99 ≥1000 vs control; …`, or `none`. Guardrail events
/// are kept per metric name, so a renamed metric starts from no events (the old name's
/// events stay stored but no rule reads them), while a changed direction, tolerance or
/// confidence re-reads the same events under the new rule.
fn show_guardrails(e: &Experiment) -> String {
    if e.guardrails.is_empty() {
        return "none".to_owned();
    }
    e.guardrails
        .iter()
        .map(|g| {
            format!(
                "{} {} {} @{} ≥{} vs {}",
                g.metric,
                g.direction,
                g.max_relative_change,
                g.confidence,
                g.min_exposures,
                e.guardrail_reference(g)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn show_prior(prior: Prior) -> String {
    format!("{{alpha: {}, beta: {}}}", prior.alpha, prior.beta)
}

fn show_stopping(s: &StoppingSpec) -> String {
    let mut text = format!(
        "{{prob_best: {}, max_expected_loss: {}, min_exposures: {}",
        s.prob_best, s.max_expected_loss, s.min_exposures
    );
    if let Some(d) = s.min_duration {
        text.push_str(&format!(", min_duration: {d}"));
    }
    text.push_str(&format!(", on_winner: {}", s.on_winner));
    if s.allow_prior_only_decision {
        text.push_str(", allow_prior_only_decision: true");
    }
    text.push('}');
    text
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
