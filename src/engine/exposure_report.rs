//! The exposure side of a report: assigned counts and confirmation rates per arm (from the
//! on_render assignment ledger, see `exposure`), and which arm a sample-ratio alert is about.

use std::collections::HashMap;

use super::exposure::assignment_epoch;
use super::live::Snapshot;
use super::report::ArmReport;
use super::{Engine, EngineError, LiveExperiment};
use crate::spec::ExposureMode;
use crate::store::Epoch;

impl Engine {
    /// Assignments per variant in `revision` of an on_render experiment (`None` with
    /// on_assign, where every assignment is an exposure).
    pub(crate) async fn assigned_counts(
        &self,
        live: &LiveExperiment,
        revision: u32,
    ) -> Result<Option<HashMap<String, u64>>, EngineError> {
        if live.spec.exposure.mode == ExposureMode::OnAssign {
            return Ok(None);
        }
        let epoch = Epoch {
            experiment: live.epoch.experiment.clone(),
            revision,
        };
        let ledger = assignment_epoch(&live.spec, &epoch);
        let counters = self.store.counters(&ledger).await?;
        Ok(Some(
            counters
                .into_iter()
                .map(|(variant, c)| (variant, c.exposures))
                .collect(),
        ))
    }
}

/// `arm` with its assigned count and confirmation rate (`assigned`: the ledger's counts, or
/// `None` when every assignment is an exposure).
pub fn with_assigned(mut arm: ArmReport, assigned: Option<&HashMap<String, u64>>) -> ArmReport {
    match assigned {
        None => {
            arm.assigned = arm.exposures;
            arm.confirmation_rate = None;
        }
        Some(counts) => {
            arm.assigned = counts.get(&arm.variant).copied().unwrap_or(0);
            arm.confirmation_rate =
                (arm.assigned > 0).then(|| arm.exposures as f64 / arm.assigned as f64);
        }
    }
    arm
}

/// The arm whose exposures fall furthest below what the allocation predicted, by standardised
/// residual (N_k − E_k)/√E_k with E rescaled to the observed total, as `stats::srm_p_value`
/// does; `None` when no arm is below.
pub fn short_arm(snapshot: &Snapshot) -> Option<String> {
    let observed: f64 = snapshot.counters.iter().map(|c| c.exposures as f64).sum();
    let expected: f64 = snapshot.counters.iter().map(|c| c.expected_exposures).sum();
    if expected.is_nan() || expected <= 0.0 {
        return None;
    }
    let scale = observed / expected;
    snapshot
        .counters
        .iter()
        .zip(&snapshot.variant_ids)
        .filter(|(c, _)| c.expected_exposures > 0.0)
        .map(|(c, variant)| {
            let e = c.expected_exposures * scale;
            ((c.exposures as f64 - e) / e.sqrt(), variant)
        })
        .filter(|(residual, _)| *residual < 0.0)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, variant)| variant.clone())
}
