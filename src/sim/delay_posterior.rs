//! The delay-aware posterior inside a simulated run: per arm, exposures by assignment hour and
//! conversions by delay bin (the histograms `stats::fit_delays` reads), refitted once per
//! simulated hour (the law moves slowly; a refit costs far more than a refresh) and read at
//! every posterior refresh.

use crate::stats::{self, BaseDelay, DELAY_BIN_MS, DelayCounts, DelayLaw, bin_count, delay_bin};

/// Per-arm delay data of one run and the laws last fitted to it.
#[derive(Debug, Clone)]
pub(super) struct DelayTracker {
    base: BaseDelay,
    window_ms: u64,
    counts: Vec<DelayCounts>,
    laws: Option<Vec<DelayLaw>>,
    fitted_bin: Option<u64>,
}

impl DelayTracker {
    pub(super) fn new(base: BaseDelay, window_ms: u64, arms: usize) -> Self {
        let counts = DelayCounts {
            cohorts: Vec::new(),
            delays: vec![0.0; bin_count(window_ms)],
            exposures: 0.0,
        };
        Self {
            base,
            window_ms,
            counts: vec![counts; arms],
            laws: None,
            fitted_bin: None,
        }
    }

    /// One exposure of `arm` at `now_ms`.
    pub(super) fn expose(&mut self, arm: usize, now_ms: u64) {
        let Some(counts) = self.counts.get_mut(arm) else {
            return;
        };
        counts.exposures += 1.0;
        let bin = now_ms / DELAY_BIN_MS;
        match counts.cohorts.last_mut() {
            Some((last, exposures)) if *last == bin => *exposures += 1.0,
            _ => counts.cohorts.push((bin, 1.0)),
        }
    }

    /// One conversion of `arm` reaching the server (within the window, as the server only
    /// accepts those).
    pub(super) fn convert(&mut self, arm: usize, assigned_ms: u64, arrived_ms: u64) {
        if let Some(counts) = self.counts.get_mut(arm) {
            let bin = delay_bin(arrived_ms.saturating_sub(assigned_ms));
            if let Some(slot) = counts.delays.get_mut(bin) {
                *slot += 1.0;
            }
        }
    }

    /// Every arm's pending exposures at `now_ms` (0 while nothing can be learnt). The laws
    /// are refitted when the hour changes; cohorts older than the window are dropped (they
    /// count fully, through the arm's total exposures).
    pub(super) fn pending(&mut self, now_ms: u64, out: &mut Vec<f64>) {
        let bin = now_ms / DELAY_BIN_MS;
        if self.fitted_bin != Some(bin) {
            let horizon_bin = now_ms.saturating_sub(self.window_ms) / DELAY_BIN_MS;
            for counts in &mut self.counts {
                counts.cohorts.retain(|(b, _)| *b + 1 >= horizon_bin);
            }
            self.laws = stats::fit_delays(&self.counts, self.base, self.window_ms, now_ms)
                .ok()
                .flatten()
                .map(|(_, fits)| fits.into_iter().map(|fit| fit.law).collect());
            self.fitted_bin = Some(bin);
        }
        out.clear();
        match &self.laws {
            Some(laws) => out.extend(
                laws.iter()
                    .zip(&self.counts)
                    .map(|(law, counts)| stats::pending_exposures(law, counts, now_ms)),
            ),
            None => out.resize(self.counts.len(), 0.0),
        }
    }
}
