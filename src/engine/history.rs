//! Durable history: one snapshot of every served experiment per interval, so the dashboard
//! can plot how posteriors, P(best) and traffic moved. Written by a background task; the
//! time comes from the engine's clock. Each revision keeps its own points: a revision bump
//! starts new ones and leaves the earlier ones readable.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::spec::Status;
pub use crate::store::HistoryPoint;
use crate::store::{Epoch, HistoryArm};

/// Default interval between history points.
pub const DEFAULT_HISTORY_INTERVAL_MS: u64 = 60_000;

/// Most points one history request returns.
pub const MAX_HISTORY_POINTS: usize = 10_000;

/// How many revisions, counting back from the loaded one, a history request without a
/// `revision` reads: enough for any experiment's life, and a bound on the store reads of one
/// request whatever number the analyst gave `revision`.
pub const MAX_HISTORY_REVISIONS: u32 = 50;

/// Which points a history request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// One revision; `None`: the loaded one and the [`MAX_HISTORY_REVISIONS`] − 1 before it.
    pub revision: Option<u32>,
    /// Points at or after this time (Unix milliseconds).
    pub since_ms: u64,
    /// Most points returned (capped at [`MAX_HISTORY_POINTS`]).
    pub limit: usize,
    /// The newest `limit` points, newest first; otherwise the oldest, oldest first.
    pub newest_first: bool,
}

/// One point of `GET /v1/experiments/{id}/history`: a stored point with its revision and its
/// time in words.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub at_ms: u64,
    /// `at_ms` as RFC 3339 UTC with milliseconds, e.g. `2026-11-26T12:00:00.250Z`.
    pub at: String,
    /// The revision (data epoch) the point belongs to.
    pub revision: u32,
    pub arms: Vec<HistoryArm>,
}

impl HistoryEntry {
    fn of(point: HistoryPoint, revision: u32) -> Self {
        Self {
            at: super::export::rfc3339_utc(point.at_ms).unwrap_or_default(),
            at_ms: point.at_ms,
            revision,
            arms: point.arms,
        }
    }
}

impl Engine {
    /// Appends one history point per served experiment at the clock's now. Returns how many.
    /// Also writes the spec records a load could not write (see `epoch_spec`).
    pub async fn record_history(&self) -> Result<usize, EngineError> {
        self.record_pending_specs().await?;
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
                        // A retired arm does not compete: its P(best) is not computed (null).
                        prob_best: if arm.active {
                            snapshot.shares[k]
                        } else {
                            f64::NAN
                        },
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

    /// History points of an experiment: of one revision, or of the loaded one and those
    /// before it (in time order, which is revision order), from `since_ms`.
    pub async fn history(
        &self,
        id: &str,
        query: HistoryQuery,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        let live = self.loaded(id)?;
        let current = live.epoch.revision;
        let revisions: Vec<u32> = match query.revision {
            Some(revision) => vec![self.epoch_of(&live, revision)?.revision],
            None => (current.saturating_sub(MAX_HISTORY_REVISIONS - 1).max(1)..=current).collect(),
        };
        let limit = query.limit.min(MAX_HISTORY_POINTS);
        let mut entries = Vec::new();
        let ordered: Box<dyn Iterator<Item = u32>> = if query.newest_first {
            Box::new(revisions.into_iter().rev())
        } else {
            Box::new(revisions.into_iter())
        };
        for revision in ordered {
            let left = limit - entries.len();
            if left == 0 {
                break;
            }
            let epoch = Epoch {
                experiment: live.epoch.experiment.clone(),
                revision,
            };
            let points = if query.newest_first {
                self.store
                    .history_newest_first(&epoch, query.since_ms, left)
                    .await?
            } else {
                self.store.history(&epoch, query.since_ms, left).await?
            };
            entries.extend(points.into_iter().map(|p| HistoryEntry::of(p, revision)));
        }
        Ok(entries)
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
}
