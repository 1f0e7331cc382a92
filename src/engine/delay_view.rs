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

use crate::spec::Experiment;
use crate::stats::{self, DecayedCounts, DelayCounts};
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
    let fits = match stats::fit_delays(&counts, base, window_ms, now_ms) {
        Ok(Some((_, fits))) => fits,
        Ok(None) => return None,
        Err(error) => {
            tracing::error!(experiment = %spec.id, %error, "delay fit failed; posterior stays naive");
            return None;
        }
    };
    Some(
        fits.iter()
            .zip(&counts)
            .zip(effective)
            .map(|((fit, counts), e)| {
                let pending =
                    stats::pending_decayed_exposures(&fit.law, counts, now_ms, half_life_ms);
                let room = (e.exposures - e.reward_sum).max(0.0);
                ArmDelay {
                    pending_exposures: if pending.is_finite() {
                        pending.clamp(0.0, room)
                    } else {
                        0.0
                    },
                    median_ms: fit.law.quantile_ms(0.5),
                    p90_ms: fit.law.quantile_ms(0.9),
                }
            })
            .collect(),
    )
}

/// The counts the corrected posterior uses: `effective` less the pending exposures.
pub fn corrected(effective: DecayedCounts, delay: &ArmDelay) -> DecayedCounts {
    DecayedCounts {
        exposures: (effective.exposures - delay.pending_exposures).max(effective.reward_sum),
        ..effective
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corrected_exposures_never_fall_below_the_rewards() {
        let effective = DecayedCounts {
            exposures: 10.0,
            reward_sum: 4.0,
            at_ms: 0,
        };
        let delay = ArmDelay {
            pending_exposures: 8.0,
            median_ms: 1.0,
            p90_ms: 2.0,
        };
        assert_eq!(corrected(effective, &delay).exposures, 4.0);
        let some = ArmDelay {
            pending_exposures: 2.5,
            ..delay
        };
        assert_eq!(corrected(effective, &some).exposures, 7.5);
    }
}
