//! Counts before and after `status: concluded`. A concluded experiment counts every new unit as
//! an exposure of its winner with propensity 1 (README, "Concluded experiments"): evidence about
//! nothing but the winner, which an analyst must be able to tell apart from the experiment's
//! data. So the first snapshot after the conclusion records the per-arm exposures of that
//! moment, once and durably, as a first-write-wins decision in a ledger epoch beside the
//! counted one (`<id>~concluded`; `~` cannot occur in an id), on every backend through the
//! store's own `record_decision`; the report subtracts it from the current counts.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::live::{LiveExperiment, Snapshot};
use super::{Engine, EngineError};
use crate::spec::Status;
use crate::store::{Decision, DecisionRule, Epoch};

/// Appended to an experiment id to name the epoch that holds its conclusion record.
pub const CONCLUSION_LEDGER_SUFFIX: &str = "~concluded";

/// The report's `concluded` block.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConcludedReport {
    pub winner: String,
    /// The engine's clock at the first snapshot after the conclusion.
    pub concluded_ms: u64,
    /// Exposures per arm up to `concluded_ms`: the experiment's evidence.
    pub exposures_before: BTreeMap<String, u64>,
    /// Exposures per arm since: new units served the winner, counted with propensity 1.
    pub exposures_after: BTreeMap<String, u64>,
}

fn conclusion_epoch(epoch: &Epoch) -> Epoch {
    Epoch {
        experiment: format!("{}{CONCLUSION_LEDGER_SUFFIX}", epoch.experiment),
        revision: epoch.revision,
    }
}

impl Engine {
    /// Records the counts of `snapshot` as the conclusion's, if `live` is concluded and none
    /// is recorded yet (first write wins; checked once per loaded experiment).
    pub(crate) async fn note_conclusion(
        &self,
        live: &LiveExperiment,
        snapshot: &Snapshot,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        if live.spec.status != Status::Concluded || live.conclusion_noted.load(Ordering::Acquire) {
            return Ok(());
        }
        let epoch = conclusion_epoch(&live.epoch);
        if self.store.epoch_info(&epoch).await?.decision.is_none() {
            let winner = live
                .spec
                .winner
                .as_ref()
                .map(|w| w.as_str().to_owned())
                .unwrap_or_default();
            let arm = snapshot.variant_ids.iter().position(|v| *v == winner);
            let record = Decision {
                decided_ms: now_ms,
                expected_loss: arm.map_or(f64::NAN, |k| snapshot.expected_loss[k]),
                exposures: snapshot
                    .variant_ids
                    .iter()
                    .cloned()
                    .zip(snapshot.counters.iter().map(|c| c.exposures))
                    .collect(),
                prob_best: arm.map_or(f64::NAN, |k| snapshot.shares[k]),
                rule: DecisionRule::default(),
                variant: winner,
            };
            self.store.record_decision(&epoch, record).await?;
        }
        live.conclusion_noted.store(true, Ordering::Release);
        Ok(())
    }

    /// The `concluded` block of a report of `revision` (`None` unless the experiment is
    /// concluded and its conclusion was recorded in that revision).
    pub(crate) async fn concluded_report(
        &self,
        live: &LiveExperiment,
        revision: u32,
        snapshot: &Snapshot,
    ) -> Result<Option<ConcludedReport>, EngineError> {
        if live.spec.status != Status::Concluded {
            return Ok(None);
        }
        let epoch = Epoch {
            experiment: live.epoch.experiment.clone(),
            revision,
        };
        let Some(record) = self
            .store
            .epoch_info(&conclusion_epoch(&epoch))
            .await?
            .decision
        else {
            return Ok(None);
        };
        let exposures_after = snapshot
            .variant_ids
            .iter()
            .zip(&snapshot.counters)
            .map(|(variant, c)| {
                let before = record.exposures.get(variant).copied().unwrap_or(0);
                (variant.clone(), c.exposures.saturating_sub(before))
            })
            .collect();
        Ok(Some(ConcludedReport {
            winner: record.variant,
            concluded_ms: record.decided_ms,
            exposures_before: record.exposures,
            exposures_after,
        }))
    }
}
