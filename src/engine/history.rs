//! Durable history: one snapshot of every served experiment per interval, so the dashboard
//! can plot how posteriors, P(best) and traffic moved. Written by a background task; the
//! time comes from the engine's clock.

use super::{Engine, EngineError};
use crate::spec::Status;
use crate::store::HistoryArm;
pub use crate::store::HistoryPoint;

/// Default interval between history points.
pub const DEFAULT_HISTORY_INTERVAL_MS: u64 = 60_000;

/// Most points one history request returns.
pub const MAX_HISTORY_POINTS: usize = 10_000;

impl Engine {
    /// Appends one history point per served experiment at the clock's now. Returns how many.
    pub async fn record_history(&self) -> Result<usize, EngineError> {
        let now_ms = self.clock.now_ms();
        let catalog = self.catalog();
        let mut written = 0;
        for live in catalog.all().filter(|l| l.spec.status != Status::Draft) {
            let snapshot = self.rebuild(live, now_ms).await?;
            let arms = snapshot
                .variant_ids
                .iter()
                .enumerate()
                .map(|(k, variant)| {
                    let arm = snapshot.arms[k];
                    HistoryArm {
                        variant: variant.clone(),
                        exposures: snapshot.counters[k].exposures,
                        rewards: snapshot.counters[k].reward_sum,
                        posterior_mean: arm.alpha / (arm.alpha + arm.beta),
                        prob_best: snapshot.shares[k],
                        expected_loss: snapshot.expected_loss[k],
                        traffic_share: snapshot.allocation.get(k).map_or(0.0, |(_, p)| *p),
                    }
                })
                .collect();
            let point = HistoryPoint {
                at_ms: now_ms,
                arms,
            };
            self.store.append_history(&live.epoch, point).await?;
            written += 1;
        }
        Ok(written)
    }

    /// History points of revision `revision` of an experiment (`None`: the current one) at or
    /// after `since_ms`: an earlier revision's history stays readable after a bump, like its
    /// report.
    pub async fn revision_history(
        &self,
        id: &str,
        revision: Option<u32>,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, EngineError> {
        let live = self.loaded(id)?;
        let current = live.epoch.revision;
        let revision = revision.unwrap_or(current);
        if revision == 0 || revision > current {
            return Err(EngineError::UnknownRevision {
                experiment: live.epoch.experiment.clone(),
                revision,
                current,
            });
        }
        let epoch = crate::store::Epoch {
            experiment: live.epoch.experiment.clone(),
            revision,
        };
        Ok(self
            .store
            .history(&epoch, since_ms, limit.min(MAX_HISTORY_POINTS))
            .await?)
    }

    /// History points of an experiment's current revision at or after `since_ms`.
    pub async fn history(
        &self,
        id: &str,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, EngineError> {
        self.revision_history(id, None, since_ms, limit).await
    }
}
