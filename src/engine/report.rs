//! What analysts read: per-experiment summaries and per-arm statistics.

use serde::Serialize;

use super::{Engine, EngineError, LiveExperiment};
use crate::spec::{AssignmentMode, Status};
use crate::stats::Posterior;

/// Credible level reported by the stats endpoint.
pub const CREDIBLE_LEVEL: f64 = 0.95;

/// One line of `GET /v1/experiments`.
#[derive(Debug, Clone, Serialize)]
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
}

/// Per-arm statistics.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    pub variant: String,
    /// N: counted assignments.
    pub exposures: u64,
    /// R: summed rewards.
    pub rewards: f64,
    /// R / N; `null` before the first exposure.
    pub rate: Option<f64>,
    pub posterior: PosteriorReport,
    /// Share of new traffic the policy currently sends to this arm.
    pub traffic_share: f64,
}

/// Beta posterior of one arm.
#[derive(Debug, Clone, Serialize)]
pub struct PosteriorReport {
    pub alpha: f64,
    pub beta: f64,
    pub mean: f64,
    /// Equal-tailed 95% credible interval.
    pub ci95: [f64; 2],
}

/// `GET /v1/experiments/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    #[serde(flatten)]
    pub summary: ExperimentSummary,
    pub default_variant: String,
    pub winner: Option<String>,
    pub burn_in: u64,
    pub min_share: f64,
    pub reward_window: String,
    pub arms: Vec<ArmReport>,
}

impl Engine {
    pub async fn summaries(&self) -> Result<Vec<ExperimentSummary>, EngineError> {
        let catalog = self.catalog();
        let mut out = Vec::new();
        for live in catalog.all() {
            out.push(self.report_of(live).await?.summary);
        }
        Ok(out)
    }

    pub async fn report(&self, id: &str) -> Result<ExperimentReport, EngineError> {
        let live = self.loaded(id)?;
        self.report_of(&live).await
    }

    async fn report_of(&self, live: &LiveExperiment) -> Result<ExperimentReport, EngineError> {
        let spec = &live.spec;
        let counters = self.store.counters(&live.epoch).await?;
        let shares = live.allocation();
        let arms: Vec<ArmReport> = spec
            .variants
            .iter()
            .enumerate()
            .map(|(k, variant)| {
                let c = counters
                    .get(variant.id.as_str())
                    .copied()
                    .unwrap_or_default();
                let prior = spec.arm_prior(k);
                let posterior = Posterior::from_counts(
                    prior.alpha,
                    prior.beta,
                    c.exposures as f64,
                    c.reward_sum,
                );
                // The level is a valid constant, so this only fails on corrupt shapes.
                let (lo, hi) = posterior
                    .credible_interval(CREDIBLE_LEVEL)
                    .unwrap_or((f64::NAN, f64::NAN));
                ArmReport {
                    variant: variant.id.as_str().to_owned(),
                    exposures: c.exposures,
                    rewards: c.reward_sum,
                    rate: (c.exposures > 0).then(|| c.reward_sum / c.exposures as f64),
                    posterior: PosteriorReport {
                        alpha: posterior.alpha,
                        beta: posterior.beta,
                        mean: posterior.mean(),
                        ci95: [lo, hi],
                    },
                    traffic_share: shares.get(k).copied().unwrap_or(0.0),
                }
            })
            .collect();
        Ok(ExperimentReport {
            summary: ExperimentSummary {
                id: spec.id.as_str().to_owned(),
                description: spec.description.clone(),
                owner: spec.owner.clone(),
                status: spec.status,
                assignment: spec.assignment,
                revision: spec.revision,
                variants: spec.variants.len(),
                exposures: arms.iter().map(|a| a.exposures).sum(),
                rewards: arms.iter().map(|a| a.rewards).sum(),
            },
            default_variant: spec.default_variant.as_str().to_owned(),
            winner: spec.winner.as_ref().map(|w| w.as_str().to_owned()),
            burn_in: spec.policy.burn_in,
            min_share: spec.policy.min_share,
            reward_window: spec.reward.window.to_string(),
            arms,
        })
    }
}
