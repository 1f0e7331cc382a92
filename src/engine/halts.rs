//! Guardrail halts, checked on snapshot rebuilds once every [`GUARDRAIL_CHECK_EVERY`]
//! exposures: each guardrail compares every arm of the spec with its comparison arm
//! (`stats::check_guardrail`, after `min_exposures`); a halt is written durably (first write
//! wins per metric and arm, `store::halts`) before anybody acts on it, logged, and from then
//! on the arm gets no new traffic: the snapshot marks it inactive, exactly as a retired arm,
//! and the assign path re-assigns its sticky units as for a retired variant. Only a reviewed
//! spec edit lets it back in (`resume_after_halt`).
//!
//! A resumed arm is not checked again on that metric in the same epoch: the evidence that
//! halted it is still in the counters, so a check would only repeat the halt the analyst
//! overrode. A bumped `revision` starts fresh data, and the guardrail watches every arm
//! again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::live::{LiveExperiment, Snapshot};
use super::{Engine, EngineError};
use crate::spec::{Experiment, Guardrail, GuardrailDirection, Status};
use crate::stats::{
    GuardrailRule, GuardrailVerdict, HaltEvidence, Harm, Posterior, check_guardrail,
};
use crate::store::guardrail_events::guardrail_epoch;
use crate::store::{ArmCounters, Halt};

/// How often the guardrails are checked: once each time the epoch's exposures (every arm,
/// every replica) pass another multiple of this. Every look is a chance for a harmless arm
/// to look harmful by luck, so the server looks at the cadence `banditd simulate` measured
/// the defaults' false-halt rate with (README, "Guardrails"), not at every snapshot refresh.
pub const GUARDRAIL_CHECK_EVERY: u64 = 1000;

/// The statistics layer's rule for a spec entry.
pub fn rule_of(guardrail: &Guardrail) -> GuardrailRule {
    GuardrailRule {
        harm: match guardrail.direction {
            GuardrailDirection::LowerIsBetter => Harm::Higher,
            GuardrailDirection::HigherIsBetter => Harm::Lower,
        },
        max_relative_change: guardrail.max_relative_change,
        confidence: guardrail.confidence,
        min_exposures: guardrail.min_exposures,
    }
}

/// Whether `halt` still stops its arm: yes unless the arm's spec names exactly this halt in
/// `resume_after_halt` (a resume written for an earlier halt does not undo a later one).
pub fn in_force(spec: &Experiment, halt: &Halt) -> bool {
    spec.variants
        .iter()
        .find(|v| v.id.as_str() == halt.variant)
        .is_none_or(|v| v.resume_after_halt != Some(halt.halted_ms))
}

impl Engine {
    /// The epoch's halts after checking every guardrail on `snapshot` (new ones recorded
    /// durably first). Nothing is read for an experiment without guardrails.
    pub(crate) async fn check_guardrails(
        &self,
        live: &LiveExperiment,
        snapshot: &Snapshot,
        now_ms: u64,
    ) -> Result<Vec<Halt>, EngineError> {
        let spec = &live.spec;
        if spec.guardrails.is_empty() {
            return Ok(Vec::new());
        }
        let mut halts = self.store.halts(&live.epoch).await?;
        let exposures: u64 = snapshot.counters.iter().map(|c| c.exposures).sum();
        let checkpoint = exposures / GUARDRAIL_CHECK_EVERY;
        let checked = live
            .guardrail_checkpoint
            .fetch_max(checkpoint, Ordering::AcqRel);
        if spec.status != Status::Running || checkpoint == 0 || checked >= checkpoint {
            return Ok(halts);
        }
        for guardrail in &spec.guardrails {
            let metric = guardrail.metric.as_str();
            let against = spec.guardrail_reference(guardrail).as_str();
            let Some(reference) = spec.variant_index(against) else {
                continue;
            };
            let events = self
                .store
                .counters(&guardrail_epoch(&live.epoch, metric))
                .await?;
            for (k, variant) in spec.variants.iter().enumerate() {
                let variant = variant.id.as_str();
                let held = halts
                    .iter()
                    .any(|h| h.metric == metric && h.variant == variant);
                if k == reference || held {
                    continue;
                }
                let Some(evidence) = evidence(spec, snapshot, guardrail, &events, k, reference)
                else {
                    continue;
                };
                let proposed = halt_record(spec, guardrail, &evidence, k, reference, now_ms);
                let held = self.store.record_halt(&live.epoch, proposed).await?;
                tracing::warn!(
                    experiment = %live.epoch.experiment,
                    revision = live.epoch.revision,
                    arm = %held.variant,
                    metric = %held.metric,
                    against = %held.against,
                    prob_worse = held.prob_worse,
                    exposures = held.exposures,
                    events = held.events,
                    against_exposures = held.against_exposures,
                    against_events = held.against_events,
                    halted_ms = held.halted_ms,
                    "guardrail halted an arm: it gets no new traffic until a reviewed \
                     `resume_after_halt`"
                );
                halts.push(held);
            }
        }
        Ok(halts)
    }
}

/// The halt evidence for arm `k` against `reference`, if the rule says halt now.
fn evidence(
    spec: &Experiment,
    snapshot: &Snapshot,
    guardrail: &Guardrail,
    events: &HashMap<String, ArmCounters>,
    k: usize,
    reference: usize,
) -> Option<HaltEvidence> {
    let posterior = |k: usize| {
        let variant = spec.variants[k].id.as_str();
        let exposures = snapshot.counters.get(k).map_or(0, |c| c.exposures);
        let counted = events.get(variant).map_or(0.0, |c| c.reward_sum);
        let prior = spec.arm_prior(k);
        (
            Posterior::from_counts(prior.alpha, prior.beta, exposures as f64, counted),
            exposures,
        )
    };
    let (arm, arm_exposures) = posterior(k);
    let (against, against_exposures) = posterior(reference);
    match check_guardrail(
        &rule_of(guardrail),
        arm,
        arm_exposures,
        against,
        against_exposures,
    ) {
        Ok(GuardrailVerdict::Halt(evidence)) => Some(evidence),
        Ok(_) => None,
        Err(error) => {
            tracing::error!(experiment = %spec.id, metric = %guardrail.metric, %error,
                "guardrail check failed; no halt decided");
            None
        }
    }
}

fn halt_record(
    spec: &Experiment,
    guardrail: &Guardrail,
    evidence: &HaltEvidence,
    k: usize,
    reference: usize,
    now_ms: u64,
) -> Halt {
    let prior = |k: usize| spec.arm_prior(k);
    Halt {
        metric: guardrail.metric.as_str().to_owned(),
        variant: spec.variants[k].id.as_str().to_owned(),
        against: spec.variants[reference].id.as_str().to_owned(),
        halted_ms: now_ms,
        direction: match guardrail.direction {
            GuardrailDirection::LowerIsBetter => "lower_is_better",
            GuardrailDirection::HigherIsBetter => "higher_is_better",
        }
        .to_owned(),
        max_relative_change: guardrail.max_relative_change,
        confidence: guardrail.confidence,
        prob_worse: evidence.prob_worse,
        exposures: evidence.arm_exposures,
        against_exposures: evidence.reference_exposures,
        events: evidence.arm.alpha - prior(k).alpha,
        against_events: evidence.reference.alpha - prior(reference).alpha,
        posterior: [evidence.arm.alpha, evidence.arm.beta],
        against_posterior: [evidence.reference.alpha, evidence.reference.beta],
    }
}

/// Whether a halt in force stops arm `k` of `spec` (the default variant is never stopped).
pub fn stops(spec: &Experiment, halts: &[Halt], k: usize) -> bool {
    spec.variants.get(k).is_some_and(|variant| {
        variant.id != spec.default_variant
            && halts
                .iter()
                .any(|h| h.variant == variant.id.as_str() && in_force(spec, h))
    })
}

/// One guardrail halt as the stats show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HaltReport {
    #[serde(flatten)]
    pub halt: Halt,
    /// The arm's `resume_after_halt` names this halt: it gets traffic again.
    pub resumed: bool,
}

/// The halts of `spec`'s epoch for the stats, by metric then arm.
pub fn report(spec: &Experiment, halts: &[Halt]) -> Vec<HaltReport> {
    let mut out: Vec<HaltReport> = halts
        .iter()
        .map(|halt| HaltReport {
            halt: halt.clone(),
            resumed: !in_force(spec, halt),
        })
        .collect();
    out.sort_by(|a, b| (&a.halt.metric, &a.halt.variant).cmp(&(&b.halt.metric, &b.halt.variant)));
    out
}

/// Takes the halted arms out of `snapshot`'s traffic (inactive, like retired arms) and
/// re-computes the allocation; the default variant is never taken out (it is what is served
/// when nothing else may be).
pub(crate) fn apply(live: &LiveExperiment, snapshot: &mut Snapshot, halts: Vec<Halt>) {
    let mut changed = false;
    for k in 0..live.spec.variants.len() {
        if stops(&live.spec, &halts, k)
            && let Some(arm) = snapshot.arms.get_mut(k)
            && arm.active
        {
            arm.active = false;
            changed = true;
        }
    }
    snapshot.halts = halts;
    if !changed {
        return;
    }
    let mode = live.mode(snapshot);
    let shares = crate::policy::allocation(mode, live.params(), &snapshot.arms, &snapshot.shares)
        .unwrap_or_else(|_| vec![0.0; snapshot.variant_ids.len()]);
    snapshot.allocation = snapshot.variant_ids.iter().cloned().zip(shares).collect();
}

#[cfg(test)]
#[path = "halts_tests.rs"]
mod tests;
