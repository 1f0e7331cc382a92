//! The delay-aware correction of a posterior snapshot (README, delay-aware posterior): per
//! arm, the delay law fitted by `stats::fit_delays` (pooled toward the experiment's) from the
//! store's histograms (`store::delay_histograms`), and the exposures whose conversion, if it
//! comes within the window, has not arrived yet.
//!
//! The posterior then counts N_eff = N − pending instead of N. With `policy.half_life` the
//! posterior's N is decayed, and so is the pending mass: an exposure of age a counts
//! 2^(−a/h) in the decayed N, and (1 − G(a)) of it is pending, so the decayed pending mass is
//! Σ (1 − G(a))·2^(−a/h) (`stats::pending_decayed_exposures`). Both are clamped so that
//! N_eff never falls below R (nor below 0): a posterior with more successes than trials is
//! not a Beta, and an arm whose conversions ran ahead of the law's forecast has simply
//! nothing pending.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::spec::Experiment;
use crate::stats::{self, DecayedCounts, DelayCounts, DelayLaw};
use crate::store::{ArmCounters, DelayHistograms};

/// The correction of one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmDelay {
    /// Exposures still pending, in the posterior's units (decayed with a half-life); already
    /// capped so that N_eff ≥ R.
    pub pending_exposures: f64,
    /// The arm's delay law: the delay by which half (nine tenths) of its within-window
    /// conversions have arrived, in milliseconds.
    pub median_ms: f64,
    pub p90_ms: f64,
}

/// The correction of every arm of a snapshot (`variant_ids` order), or `None` when there is
/// none: `reward.delay: off`, or `auto` before the first conversion (nothing to learn from).
/// `effective` holds the naive counts the posterior would use.
pub fn correction(
    spec: &Experiment,
    variant_ids: &[String],
    counters: &[ArmCounters],
    effective: &[DecayedCounts],
    histograms: &HashMap<String, DelayHistograms>,
    cache: Option<&LawCache>,
    now_ms: u64,
) -> Option<Vec<ArmDelay>> {
    let base = spec.reward.delay.base()?;
    let window_ms = spec.reward.window.as_millis();
    let half_life_ms = spec.policy.half_life.map(|h| h.as_millis());
    let counts: Vec<DelayCounts> = variant_ids
        .iter()
        .zip(counters)
        .map(|(variant, c)| {
            histograms.get(variant).map_or_else(
                || DelayHistograms::default().counts(c.exposures, window_ms, now_ms),
                |h| h.counts(c.exposures, window_ms, now_ms),
            )
        })
        .collect();
    let fit = || match stats::fit_delays(&counts, base, window_ms, now_ms) {
        Ok(Some((_, fits))) => Some(fits.into_iter().map(|fit| fit.law).collect()),
        Ok(None) => None,
        Err(error) => {
            tracing::error!(experiment = %spec.id, %error, "delay fit failed; posterior stays naive");
            None
        }
    };
    let laws: Vec<DelayLaw> = match cache {
        Some(cache) => cache.laws(variant_ids, now_ms, fit)?,
        None => fit()?,
    };
    Some(
        laws.iter()
            .zip(&counts)
            .zip(effective)
            .map(|((law, counts), e)| {
                let pending = stats::pending_decayed_exposures(law, counts, now_ms, half_life_ms);
                let room = (e.exposures - e.reward_sum).max(0.0);
                ArmDelay {
                    pending_exposures: if pending.is_finite() {
                        pending.clamp(0.0, room)
                    } else {
                        0.0
                    },
                    median_ms: law.quantile_ms(0.5),
                    p90_ms: law.quantile_ms(0.9),
                }
            })
            .collect(),
    )
}

/// How long a fitted set of delay laws serves the snapshots of a live experiment before it is
/// fitted again: the laws move slowly (a refit costs far more than a snapshot), while the
/// pending exposures are recomputed from the current histograms at every snapshot.
pub const REFIT_EVERY_MS: u64 = 10_000;

/// The laws last fitted for one live experiment (see [`REFIT_EVERY_MS`]).
#[derive(Debug, Default)]
pub struct LawCache(Mutex<Option<CachedLaws>>);

#[derive(Debug)]
struct CachedLaws {
    fitted_ms: u64,
    variant_ids: Vec<String>,
    /// `None`: nothing to learn from yet (no conversion under `auto`).
    laws: Option<Vec<DelayLaw>>,
}

impl LawCache {
    /// The laws for `variant_ids` at `now_ms`: the cached ones while fresh (same arms, fitted
    /// less than [`REFIT_EVERY_MS`] ago, not in the future), else `fit()`'s, cached.
    fn laws(
        &self,
        variant_ids: &[String],
        now_ms: u64,
        fit: impl FnOnce() -> Option<Vec<DelayLaw>>,
    ) -> Option<Vec<DelayLaw>> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = held.as_ref().filter(|c| {
            c.variant_ids == variant_ids
                && now_ms >= c.fitted_ms
                && now_ms - c.fitted_ms < REFIT_EVERY_MS
        }) {
            return cached.laws.clone();
        }
        let laws = fit();
        *held = Some(CachedLaws {
            fitted_ms: now_ms,
            variant_ids: variant_ids.to_vec(),
            laws: laws.clone(),
        });
        laws
    }
}

/// The counts the corrected posterior uses: `effective` less the pending exposures.
pub fn corrected(effective: DecayedCounts, delay: &ArmDelay) -> DecayedCounts {
    DecayedCounts {
        exposures: (effective.exposures - delay.pending_exposures).max(effective.reward_sum),
        ..effective
    }
}

#[cfg(test)]
#[path = "delay_view_tests.rs"]
mod tests;
