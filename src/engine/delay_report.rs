//! What the stats show of the delay-aware correction (`delay_view`) per arm: the naive
//! posterior beside the corrected one, and the arm's estimated delay law.

use serde::Serialize;

use super::live::Snapshot;

/// The delay-aware correction of one arm. The arm's `effective_exposures`, `posterior`,
/// `prob_best` and `expected_loss` are the corrected figures (what the policy and the
/// stopping rule use); this holds the naive ones beside them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmDelayReport {
    /// Exposures whose conversion, if it comes within the reward window, has not arrived yet
    /// (decayed like `effective_exposures` with a half-life): `naive.exposures` minus
    /// `effective_exposures`.
    pub pending_exposures: f64,
    /// The delay by which half of the arm's within-window conversions arrive (estimated),
    /// in milliseconds.
    pub delay_median_ms: f64,
    /// The delay by which nine tenths of them arrive, in milliseconds.
    pub delay_p90_ms: f64,
    pub naive: NaiveArmReport,
}

/// One arm's posterior without the delay correction (every exposure a whole trial).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NaiveArmReport {
    /// N as the naive posterior counts it (decayed with a half-life, else raw).
    pub exposures: f64,
    pub alpha: f64,
    pub beta: f64,
    /// P(best) under the naive posteriors of every arm; `null` for a retired arm.
    #[schema(value_type = Option<f64>)]
    pub prob_best: Option<f64>,
}

/// Arm `k`'s delay report, if the snapshot is corrected.
pub fn arm_delay(snapshot: &Snapshot, k: usize, retired: bool) -> Option<ArmDelayReport> {
    let delay = snapshot.delays.as_ref()?.get(k)?;
    let naive = snapshot.naive.as_ref()?;
    let (alpha, beta) = *naive.shapes.get(k)?;
    Some(ArmDelayReport {
        pending_exposures: naive.effective.get(k)?.exposures - snapshot.effective.get(k)?.exposures,
        delay_median_ms: delay.median_ms,
        delay_p90_ms: delay.p90_ms,
        naive: NaiveArmReport {
            exposures: naive.effective.get(k)?.exposures,
            alpha,
            beta,
            prob_best: (!retired)
                .then(|| naive.prob_best().get(k).copied())
                .flatten()
                .filter(|p| p.is_finite()),
        },
    })
}
