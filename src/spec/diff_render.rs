//! A [`Plan`] in words for the analyst who reviews a change: what differs, whether the
//! server would accept it, and what it does to live traffic. Pure: the traffic numbers are
//! handed in ([`TrafficFacts`]), fetched by the caller from the running server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::diff::{ChangeKind, ExperimentPlan, Plan, PlanVerdict, Verdict};
use super::model::Status;

/// Exposures the running server has counted, per experiment, per variant (its
/// `GET /v1/experiments/{id}` `arms[].exposures`). For a sticky experiment an exposure is
/// one remembered unit, so these are also the units a retired variant hands back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficFacts {
    /// `None`: no server was asked (folder comparison).
    exposures: Option<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl TrafficFacts {
    /// No traffic data: two folders compared without a server.
    pub fn unknown() -> Self {
        Self { exposures: None }
    }

    /// Exposures by experiment id, then variant id. An experiment missing from the map
    /// has no data on the server (e.g. a draft), and is described without numbers.
    pub fn from_exposures(exposures: BTreeMap<String, BTreeMap<String, u64>>) -> Self {
        Self {
            exposures: Some(exposures),
        }
    }

    /// Whether the numbers come from a server.
    pub fn is_known(&self) -> bool {
        self.exposures.is_some()
    }

    /// Exposures of one variant, if known.
    pub fn exposures(&self, experiment: &str, variant: &str) -> Option<u64> {
        self.exposures
            .as_ref()?
            .get(experiment)?
            .get(variant)
            .copied()
    }

    /// Exposures of all variants of one experiment, if known.
    pub fn total(&self, experiment: &str) -> Option<u64> {
        let arms = self.exposures.as_ref()?.get(experiment)?;
        Some(arms.values().fold(0_u64, |sum, n| sum.saturating_add(*n)))
    }
}

/// `1204` → `1,204`: counts an analyst reads at a glance.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// ` 1,204` when known, else nothing, so a sentence reads well either way.
fn count(n: Option<u64>) -> String {
    n.map(|n| format!(" {}", thousands(n))).unwrap_or_default()
}

impl Plan {
    /// One line per traffic consequence, `experiment: what happens`, in plan order. An
    /// experiment that needs a revision bump gets a line saying nothing changes yet.
    pub fn traffic_effects(&self, traffic: &TrafficFacts) -> Vec<String> {
        let mut lines = Vec::new();
        for e in &self.experiments {
            for effect in experiment_effects(e, traffic) {
                lines.push(format!("{}: {effect}", e.id));
            }
        }
        lines
    }

    /// The plan for a terminal or a pull-request comment: each experiment that differs with
    /// its changes and verdict, the unchanged ones on one line, the effect on traffic, and
    /// the overall verdict last.
    pub fn render_text(&self, traffic: &TrafficFacts) -> String {
        let mut out = String::new();
        let tally = |kind: ChangeKind| self.experiments.iter().filter(|e| e.kind == kind).count();
        let _ = writeln!(
            out,
            "Plan: {} added, {} changed, {} removed, {} unchanged",
            tally(ChangeKind::Added),
            tally(ChangeKind::Changed),
            tally(ChangeKind::Removed),
            tally(ChangeKind::Unchanged)
        );
        for e in self
            .experiments
            .iter()
            .filter(|e| e.kind != ChangeKind::Unchanged)
        {
            out.push('\n');
            render_experiment(&mut out, e);
        }
        let unchanged: Vec<&str> = self
            .experiments
            .iter()
            .filter(|e| e.kind == ChangeKind::Unchanged)
            .map(|e| e.id.as_str())
            .collect();
        if !unchanged.is_empty() {
            let _ = writeln!(out, "\n= unchanged: {}", unchanged.join(", "));
        }
        out.push_str("\nEffect on traffic");
        if !traffic.is_known() {
            out.push_str(" (no traffic data: folder comparison)");
        }
        out.push_str(":\n");
        let effects = self.traffic_effects(traffic);
        if effects.is_empty() {
            out.push_str("  none\n");
        }
        for line in effects {
            let _ = writeln!(out, "  {line}");
        }
        out.push('\n');
        let blocked = self
            .experiments
            .iter()
            .filter(|e| matches!(e.verdict, Verdict::NeedsRevisionBump { .. }))
            .count();
        match self.verdict() {
            PlanVerdict::Safe if self.is_noop() => {
                out.push_str("Verdict: SAFE: nothing to change\n");
            }
            PlanVerdict::Safe => out.push_str("Verdict: SAFE to apply\n"),
            PlanVerdict::DropsServed => {
                let dropped: Vec<String> = self
                    .experiments
                    .iter()
                    .filter(|e| e.drops_served())
                    .map(|e| dropped_line(e, traffic))
                    .collect();
                let _ = writeln!(
                    out,
                    "Verdict: DROPS SERVED EXPERIMENTS: the server would accept the reload, but \
                     {} served now would stop being served (assign answers 404 and the page \
                     renders its fallback):",
                    if dropped.len() == 1 {
                        "1 experiment".to_owned()
                    } else {
                        format!("{} experiments", dropped.len())
                    }
                );
                for line in dropped {
                    let _ = writeln!(out, "  {line}");
                }
                out.push_str(
                    "  If that is intended, apply it; to keep serving an experiment, keep its \
                     file (`status: paused` serves everybody its default variant)\n",
                );
            }
            PlanVerdict::Refused => {
                let _ = writeln!(
                    out,
                    "Verdict: REFUSED: {} needs a revision bump; the server would reject the \
                     whole reload and keep running the current set",
                    if blocked == 1 {
                        "1 experiment".to_owned()
                    } else {
                        format!("{blocked} experiments")
                    }
                );
            }
        }
        out
    }
}

/// `homepage-headline: 30,003 sticky units would lose their experiment`.
fn dropped_line(e: &ExperimentPlan, traffic: &TrafficFacts) -> String {
    let how = if e.kind == ChangeKind::Removed {
        "removed"
    } else {
        "set back to draft"
    };
    match (traffic.total(&e.id), e.context.sticky) {
        (Some(n), true) => format!(
            "{} ({how}): {} sticky units would lose their experiment",
            e.id,
            thousands(n)
        ),
        (Some(n), false) => format!(
            "{} ({how}): it has {} exposures and would get no more",
            e.id,
            thousands(n)
        ),
        (None, _) => format!("{} ({how})", e.id),
    }
}

fn render_experiment(out: &mut String, e: &ExperimentPlan) {
    let revision = match (e.running_revision, e.proposed_revision) {
        (Some(old), Some(new)) if old != new => format!("revision {old} → {new}"),
        (_, Some(rev)) | (Some(rev), None) => format!("revision {rev}"),
        (None, None) => String::new(),
    };
    let (mark, what) = match e.kind {
        ChangeKind::Added => ("+", "added"),
        ChangeKind::Removed => ("-", "removed"),
        ChangeKind::Changed => ("~", "changed"),
        ChangeKind::Unchanged => ("=", "unchanged"),
    };
    let file = e
        .file
        .as_deref()
        .unwrap_or("no file: it runs on the server and is not in the proposed folder");
    let _ = writeln!(out, "{mark} {}  {what}, {revision}  ({file})", e.id);
    match e.kind {
        ChangeKind::Added => {
            let _ = writeln!(out, "    variants: {}", e.variants_added.join(", "));
        }
        ChangeKind::Removed => {
            out.push_str("    stops being served; its data is kept\n");
        }
        ChangeKind::Changed | ChangeKind::Unchanged => {
            for c in &e.changes {
                let _ = writeln!(out, "    {}: {} → {}", c.field, c.old, c.new);
            }
            for id in &e.variants_added {
                let _ = writeln!(out, "    + variant '{id}' added (starts at its prior)");
            }
            for id in &e.variants_retired {
                let _ = writeln!(
                    out,
                    "    - variant '{id}' retired (no new traffic; its data is kept)"
                );
            }
            for c in &e.variants_changed {
                let _ = writeln!(
                    out,
                    "    ~ variant '{}' {}: {} → {}",
                    c.variant, c.field, c.old, c.new
                );
            }
        }
    }
    if e.fresh_epoch {
        let _ = writeln!(
            out,
            "    starts a fresh data epoch: new counters and assignments; revision {} stays \
             as read-only history",
            e.running_revision.unwrap_or_default()
        );
    }
    match &e.verdict {
        Verdict::Compatible => out.push_str("    verdict: compatible\n"),
        Verdict::NeedsRevisionBump { reasons } => {
            out.push_str("    verdict: NEEDS A REVISION BUMP\n");
            for reason in reasons {
                let _ = writeln!(out, "      - {reason}");
            }
        }
    }
}

/// What applying this experiment's plan does to traffic, as sentence fragments.
fn experiment_effects(e: &ExperimentPlan, traffic: &TrafficFacts) -> Vec<String> {
    let ctx = &e.context;
    let mut effects = Vec::new();
    if let Verdict::NeedsRevisionBump { .. } = e.verdict {
        effects.push("nothing changes until the revision problem above is fixed".to_owned());
        return effects;
    }
    match e.kind {
        ChangeKind::Unchanged => {}
        ChangeKind::Added => effects.push(match ctx.status {
            Some(Status::Draft) => "added as a draft: not served yet".to_owned(),
            Some(Status::Paused) => format!(
                "added paused: everybody gets '{}', nothing is counted",
                ctx.default_variant
            ),
            Some(Status::Concluded) => format!(
                "added concluded: everybody gets '{}'",
                ctx.winner.as_deref().unwrap_or_default()
            ),
            Some(Status::Running) | None => format!(
                "starts serving {} variants{}",
                ctx.variant_count,
                burn_in_clause(ctx.burn_in)
            ),
        }),
        ChangeKind::Removed => {
            let total = count(traffic.total(&e.id));
            effects.push(if ctx.sticky {
                format!(
                    "no longer served (assign answers 404); the assignments of its{total} \
                     sticky units and all its data are kept"
                )
            } else {
                format!("no longer served (assign answers 404); its{total} exposures are kept")
            });
        }
        ChangeKind::Changed if e.fresh_epoch => {
            let rev = e.running_revision.unwrap_or_default();
            let total = count(traffic.total(&e.id));
            effects.push(if ctx.sticky {
                format!(
                    "fresh data epoch: the{total} exposures of revision {rev} become read-only \
                     history; every unit is assigned afresh{}",
                    burn_in_clause(ctx.burn_in)
                )
            } else {
                format!(
                    "fresh data epoch: the{total} exposures of revision {rev} become read-only \
                     history; counting restarts from zero{}",
                    burn_in_clause(ctx.burn_in)
                )
            });
        }
        ChangeKind::Changed => {
            changed_effects(e, traffic, &mut effects);
        }
    }
    effects
}

fn changed_effects(e: &ExperimentPlan, traffic: &TrafficFacts, effects: &mut Vec<String>) {
    let ctx = &e.context;
    if let Some(status) = e.changes.iter().find(|c| c.field == "status") {
        effects.push(match ctx.status {
            Some(Status::Draft) => "back to draft: no longer served (assign answers 404)".into(),
            Some(Status::Paused) => format!(
                "paused: everybody gets '{}', nothing is counted",
                ctx.default_variant
            ),
            Some(Status::Concluded) => format!(
                "concluded: everybody gets '{}'",
                ctx.winner.as_deref().unwrap_or_default()
            ),
            Some(Status::Running) | None => format!(
                "running again (was {}): the policy allocates traffic",
                status.old
            ),
        });
    }
    for id in &e.variants_retired {
        let n = count(traffic.exposures(&e.id, id));
        effects.push(if ctx.sticky {
            format!("variant '{id}' retired; its{n} sticky units will be re-assigned")
        } else {
            format!("variant '{id}' retired; it gets no more traffic (its{n} exposures are kept)")
        });
    }
    for id in &e.variants_added {
        effects.push(if ctx.burn_in > 0 {
            format!(
                "variant '{id}' added at its prior; traffic is split evenly again until it has \
                 {} exposures (policy.burn_in)",
                thousands(ctx.burn_in)
            )
        } else {
            format!("variant '{id}' added at its prior; Thompson sampling starts it from there")
        });
    }
}

fn burn_in_clause(burn_in: u64) -> String {
    if burn_in > 0 {
        format!(
            ", split evenly until every variant has {} exposures",
            thousands(burn_in)
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
#[path = "diff_render_tests.rs"]
mod tests;
