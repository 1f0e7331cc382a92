//! Confirmed exposures in the simulator (`exposure: on_render`, `--confirm-rate`): each
//! assignment is confirmed by the page with its arm's probability; only confirmed ones are
//! exposures (the posterior's N) and only they can convert (the server refuses rewards of an
//! unconfirmed assignment). The sample-ratio check runs as the server runs it: confirmed
//! exposures per arm against the sum, over confirmed assignments, of the allocation at each
//! assignment, tested at the end of the run. The allocation of the moment needs the exact
//! Thompson probabilities of every snapshot (`stats::compare_arms`), which costs an
//! integration per refresh, so it is only computed when confirmation rates are given.

use super::error::SimError;
use super::rates::RateSpec;
use super::scenario::Scenario;
use crate::stats;

impl Scenario {
    /// `self` with the per-arm confirmation probabilities of `spec` (same syntax as the
    /// rates: by variant id or in variant order), each in [0, 1].
    pub fn with_confirm_rates(mut self, spec: &RateSpec) -> Result<Self, SimError> {
        let ids: Vec<&str> = self.arms.iter().map(|a| a.id.as_str()).collect();
        let rates = spec.resolve(&ids)?;
        for (arm, rate) in self.arms.iter_mut().zip(rates) {
            arm.confirm_rate = Some(rate);
        }
        Ok(self)
    }
}

/// One run's sample-ratio tally: confirmed exposures and expected exposures per arm.
#[derive(Debug, Clone)]
pub struct SrmTally {
    observed: Vec<f64>,
    expected: Vec<f64>,
}

impl SrmTally {
    pub fn new(arms: usize) -> Self {
        Self {
            observed: vec![0.0; arms],
            expected: vec![0.0; arms],
        }
    }

    /// One confirmed exposure of `arm`, assigned under `allocation` (one probability per
    /// arm), as the server's expected-exposure tally credits it.
    pub fn record(&mut self, arm: usize, allocation: &[f64]) {
        self.observed[arm] += 1.0;
        for (expected, p) in self.expected.iter_mut().zip(allocation) {
            *expected += p;
        }
    }

    /// Pearson's χ² p-value of the run (`None` with too little data), `stats::srm_p_value`.
    pub fn p_value(&self) -> Option<f64> {
        stats::srm_p_value(&self.observed, &self.expected)
    }
}

/// How often the sample-ratio check alerted at the end of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SrmSummary {
    /// The alert threshold (the server's `stats::SRM_ALERT_P`).
    pub alert_p: f64,
    /// Share of runs whose p-value was below `alert_p` (runs with too little data count as
    /// quiet).
    pub alert_share: f64,
    /// Its binomial standard error √(share·(1 − share)/runs).
    pub alert_share_std_error: f64,
    /// Each arm's confirmation probability, in arm order.
    pub confirm_rates: Vec<f64>,
}

/// The SRM summary of `p_values` (one per run), or `None` without confirmation rates (every
/// assignment is an exposure, and the check is not simulated).
pub fn srm_summary(scenario: &Scenario, p_values: &[Option<f64>]) -> Option<SrmSummary> {
    let confirm_rates = scenario
        .arms
        .iter()
        .map(|arm| arm.confirm_rate)
        .collect::<Option<Vec<f64>>>()?;
    let runs = p_values.len().max(1) as f64;
    let alerts = p_values
        .iter()
        .filter(|p| p.is_some_and(|p| p < stats::SRM_ALERT_P))
        .count() as f64;
    let share = alerts / runs;
    Some(SrmSummary {
        alert_p: stats::SRM_ALERT_P,
        alert_share: share,
        alert_share_std_error: (share * (1.0 - share) / runs).sqrt(),
        confirm_rates,
    })
}

#[cfg(test)]
#[path = "confirm_tests.rs"]
mod tests;
