//! One live experiment: its spec, its data epoch, and a posterior snapshot the assign path
//! reads without locks.
//!
//! The snapshot (counters, posteriors, exact P(best) and expected loss, the allocation the
//! policy realises, the stopping decision) is rebuilt from the store's durable state at most
//! every [`SNAPSHOT_REFRESH_MS`]; exactly one request does the rebuild while the others keep
//! using the previous one. Thompson sampling tolerates this staleness
//! (docs/ARCHITECTURE.md, "Snapshots"), and it is the same shape a multi-replica deployment
//! has. Caching P(best) per snapshot is what makes exact propensities affordable on the assign
//! path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use super::delay_view::LawCache;
use crate::policy::{self, ArmView, Mode, Params};
use crate::spec::{Experiment, OnWinner, Prior, Status};
use crate::stats::{self, ArmComparison, DecayedCounts, Posterior, StoppingRule, Verdict};
use crate::store::{ArmCounters, DelayHistograms, Epoch, EpochInfo, Tally};

/// How old a posterior snapshot may get before an assign request rebuilds it.
pub const SNAPSHOT_REFRESH_MS: u64 = 100;

/// The posterior state of every arm at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_ms: u64,
    /// Every arm: the spec's variants in order, then retired ones (served in this revision,
    /// no longer in the spec; sorted), which get no traffic but keep being reported, with or
    /// without exposures.
    pub variant_ids: Vec<String>,
    /// Durable raw counters per arm.
    pub counters: Vec<ArmCounters>,
    /// The counts the posterior uses: decayed to `taken_ms` with a half-life, else raw.
    pub effective: Vec<DecayedCounts>,
    pub arms: Vec<ArmView>,
    /// Exact P(best) per arm: the Thompson win probability behind propensities.
    pub shares: Vec<f64>,
    /// Expected loss per arm (NaN if the comparison failed).
    pub expected_loss: Vec<f64>,
    /// The traffic share the policy realises now, by variant id; handed to the store with
    /// every counted exposure for the sample-ratio check.
    pub allocation: Arc<[(String, f64)]>,
    pub info: EpochInfo,
    /// The stopping rule's current verdict (`None` without a rule).
    pub verdict: Option<Verdict>,
    /// Exposures this process counted while this snapshot was current, for burn-in
    /// (see `burn_in`).
    pub fresh: super::burn_in::FreshExposures,
    /// The epoch's guardrail halts, including any a resume overrides (see `halts`).
    pub halts: Vec<crate::store::Halt>,
    /// The delay-aware correction per arm, when one applies (`delay_view`): then `effective`,
    /// `arms`, `shares` and everything after them use the corrected counts, and `naive`
    /// holds what they would have been without it.
    pub delays: Option<Vec<super::delay_view::ArmDelay>>,
    pub naive: Option<NaiveView>,
}

/// The naive posterior of a delay-corrected snapshot, for the stats.
#[derive(Debug, Clone)]
pub struct NaiveView {
    /// The counts without the correction (decayed with a half-life, else raw).
    pub effective: Vec<DecayedCounts>,
    /// Beta shapes (alpha, beta) per arm.
    pub shapes: Vec<(f64, f64)>,
    /// The arms that compete (the first ones).
    active: usize,
    /// Exact P(best) per arm (0 for retired arms), computed when first asked for: only the
    /// stats read it, and a snapshot is rebuilt far more often than they are.
    prob_best: std::sync::OnceLock<Vec<f64>>,
}

impl NaiveView {
    /// P(best) of every arm under the naive posteriors (NaN if the comparison failed).
    pub fn prob_best(&self) -> &[f64] {
        self.prob_best.get_or_init(|| {
            let mut prob_best = match stats::compare_arms(&self.shapes[..self.active]) {
                Ok(comparison) => comparison.prob_best,
                Err(error) => {
                    tracing::error!(%error, "naive P(best) failed");
                    vec![f64::NAN; self.active]
                }
            };
            prob_best.resize(self.shapes.len(), 0.0);
            prob_best
        })
    }
}

impl Snapshot {
    /// Builds the snapshot of `spec` from durable state at `now_ms`. `retired` holds the
    /// prior each retired variant was counted under (see `epoch_spec`); a retired arm with
    /// data but no known prior (served before the store kept specs) uses the experiment's.
    pub fn build(
        spec: &Experiment,
        retired: &BTreeMap<String, Prior>,
        counters: &HashMap<String, ArmCounters>,
        info: EpochInfo,
        now_ms: u64,
    ) -> Self {
        Self::build_delayed(spec, retired, counters, None, info, now_ms)
    }

    /// [`Snapshot::build`] with the epoch's delay histograms: the posterior is corrected for
    /// conversions not yet arrived unless `reward.delay` is `off` (`delay_view`). `None`
    /// (histograms not read) builds the naive snapshot.
    pub fn build_delayed(
        spec: &Experiment,
        retired: &BTreeMap<String, Prior>,
        counters: &HashMap<String, ArmCounters>,
        histograms: Option<(&HashMap<String, DelayHistograms>, Option<&LawCache>)>,
        info: EpochInfo,
        now_ms: u64,
    ) -> Self {
        let half_life_ms = spec.policy.half_life.map(|h| h.as_millis());
        let active = spec.variants.len();
        let retired_ids: std::collections::BTreeSet<&String> = counters
            .keys()
            .chain(retired.keys())
            .filter(|v| spec.variant_index(v).is_none())
            .collect();
        let variant_ids: Vec<String> = spec
            .variants
            .iter()
            .map(|v| v.id.as_str().to_owned())
            .chain(retired_ids.into_iter().cloned())
            .collect();
        let counters: Vec<ArmCounters> = variant_ids
            .iter()
            .map(|v| counters.get(v).copied().unwrap_or_default())
            .collect();
        let effective: Vec<DecayedCounts> = counters
            .iter()
            .map(|c| {
                let (exposures, reward_sum) = c.decayed_as_of(now_ms, half_life_ms);
                DecayedCounts {
                    exposures,
                    reward_sum,
                    at_ms: now_ms,
                }
            })
            .collect();
        let delays = histograms.and_then(|(histograms, cache)| {
            super::delay_view::correction(
                spec,
                &variant_ids,
                &counters,
                &effective,
                histograms,
                cache,
                now_ms,
            )
        });
        // A retired arm (k ≥ active) keeps the prior it was counted under.
        let prior_of = |k: usize| {
            if k < active {
                spec.arm_prior(k)
            } else {
                retired.get(&variant_ids[k]).copied().unwrap_or(spec.prior)
            }
        };
        let naive = delays
            .as_ref()
            .map(|_| naive_view(&effective, &prior_of, active));
        let effective: Vec<DecayedCounts> = match &delays {
            Some(delays) => effective
                .iter()
                .zip(delays)
                .map(|(e, d)| super::delay_view::corrected(*e, d))
                .collect(),
            None => effective,
        };
        let arms: Vec<ArmView> = effective
            .iter()
            .zip(&counters)
            .enumerate()
            .map(|(k, (e, c))| {
                let prior = prior_of(k);
                let posterior =
                    Posterior::from_counts(prior.alpha, prior.beta, e.exposures, e.reward_sum);
                ArmView {
                    alpha: posterior.alpha,
                    beta: posterior.beta,
                    // Burn-in counts real exposures, not decayed ones.
                    exposures: c.exposures as f64,
                    active: k < active,
                }
            })
            .collect();
        // Only active arms compete; they are the first `active` entries.
        let shapes: Vec<(f64, f64)> = arms[..active].iter().map(|a| (a.alpha, a.beta)).collect();
        let comparison = stats::compare_arms(&shapes).unwrap_or_else(|error| {
            tracing::error!(experiment = %spec.id, %error, "P(best) failed; using uniform shares");
            ArmComparison {
                prob_best: vec![1.0 / active.max(1) as f64; active],
                expected_loss: vec![f64::NAN; active],
            }
        });
        let verdict = spec.stopping.as_ref().map(|rule| {
            let rule = StoppingRule {
                prob_best: rule.prob_best,
                max_expected_loss: rule.max_expected_loss,
                min_exposures: rule.required_exposures(),
                min_duration_ms: rule.min_duration.map_or(0, |d| d.as_millis()),
            };
            let exposures: Vec<u64> = counters[..active].iter().map(|c| c.exposures).collect();
            stats::evaluate(
                &rule,
                &comparison,
                &exposures,
                info.started_ms.unwrap_or(now_ms),
                now_ms,
            )
        });
        let retired_arms = variant_ids.len() - active;
        // Exposures are tallied live only while some arm is short of its burn-in: past it, the
        // count would change no draw, so a snapshot beyond burn-in costs the assign path nothing.
        let burn_in = spec.policy.burn_in as f64;
        let fresh_arms = if arms.iter().any(|a| a.active && a.exposures < burn_in) {
            variant_ids.len()
        } else {
            0
        };
        let mut shares = comparison.prob_best;
        shares.extend(std::iter::repeat_n(0.0, retired_arms));
        let mut expected_loss = comparison.expected_loss;
        expected_loss.extend(std::iter::repeat_n(f64::NAN, retired_arms));
        let mut snapshot = Self {
            taken_ms: now_ms,
            variant_ids,
            counters,
            effective,
            arms,
            shares,
            expected_loss,
            allocation: Arc::from(Vec::new()),
            info,
            verdict,
            fresh: super::burn_in::FreshExposures::new(fresh_arms),
            halts: Vec::new(),
            delays,
            naive,
        };
        let shares = policy::allocation(
            mode_of(spec, &snapshot),
            params_of(spec),
            &snapshot.arms,
            &snapshot.shares,
        )
        .unwrap_or_else(|_| vec![0.0; snapshot.variant_ids.len()]);
        snapshot.allocation = snapshot.variant_ids.iter().cloned().zip(shares).collect();
        snapshot
    }

    /// Whether arm `k` is retired (no longer in the spec).
    pub fn is_retired(&self, spec: &Experiment, k: usize) -> bool {
        k >= spec.variants.len()
    }

    /// The decided winner's arm index, if a decision is recorded for this epoch.
    pub fn decided_arm(&self, spec: &Experiment) -> Option<usize> {
        let decision = self.info.decision.as_ref()?;
        spec.variant_index(&decision.variant)
    }

    /// A winner the rule declares now, for a running experiment that has no decision yet.
    pub fn new_winner(&self, spec: &Experiment) -> Option<(usize, f64, f64)> {
        if spec.status != Status::Running || self.info.decision.is_some() {
            return None;
        }
        match self.verdict {
            Some(Verdict::Winner {
                arm,
                prob_best,
                expected_loss,
            }) => Some((arm, prob_best, expected_loss)),
            _ => None,
        }
    }
}

/// The naive posterior beside a corrected one: shapes and P(best) from the uncorrected counts.
fn naive_view(
    effective: &[DecayedCounts],
    prior_of: &dyn Fn(usize) -> Prior,
    active: usize,
) -> NaiveView {
    let shapes: Vec<(f64, f64)> = effective
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let prior = prior_of(k);
            let posterior =
                Posterior::from_counts(prior.alpha, prior.beta, e.exposures, e.reward_sum);
            (posterior.alpha, posterior.beta)
        })
        .collect();
    NaiveView {
        effective: effective.to_vec(),
        shapes,
        active,
        prob_best: std::sync::OnceLock::new(),
    }
}

/// The experiment-level rule that applies under `snapshot`.
fn mode_of(spec: &Experiment, snapshot: &Snapshot) -> Mode {
    let index = |id: &crate::spec::VariantId| spec.variant_index(id.as_str()).unwrap_or(0);
    match (spec.status, &spec.winner) {
        (Status::Paused, _) => Mode::Paused {
            default: index(&spec.default_variant),
        },
        (Status::Concluded, Some(winner)) => Mode::Fixed {
            winner: index(winner),
        },
        _ => match (snapshot.decided_arm(spec), &spec.stopping) {
            (Some(winner), Some(rule)) if rule.on_winner == OnWinner::Exploit => {
                Mode::Exploit { winner }
            }
            _ => Mode::Adaptive,
        },
    }
}

fn params_of(spec: &Experiment) -> Params {
    Params {
        burn_in: spec.policy.burn_in,
        min_share: spec.policy.min_share,
    }
}

/// A running (or paused, or concluded) experiment as the engine serves it.
#[derive(Debug)]
pub struct LiveExperiment {
    pub spec: Experiment,
    /// Where the counted exposures, the rewards and the decision live.
    pub epoch: Epoch,
    /// The prior each variant retired in this epoch was counted under, by variant id.
    pub retired: BTreeMap<String, Prior>,
    /// Whether the epoch's spec record (`epoch_spec`) still has to be written: a load whose
    /// write failed leaves it to the history task to retry.
    pub(crate) spec_unrecorded: AtomicBool,
    /// Where sticky assignments are kept: `epoch` itself, or with `exposure: on_render` a
    /// ledger of assignments beside it (see `engine::exposure`).
    pub assignment_epoch: Epoch,
    /// Each variant's payload as JSON text, by variant index: encoded once per reload instead
    /// of once per assign call.
    payloads: Vec<Option<Box<serde_json::value::RawValue>>>,
    snapshot: ArcSwap<Snapshot>,
    refreshing: AtomicBool,
    /// The delay laws last fitted for this experiment's snapshots (`delay_view`).
    pub(crate) delay_laws: super::delay_view::LawCache,
    /// Assign and event counters, resolved once per load (`None`: metrics are off).
    pub metrics: Option<Arc<crate::metrics::ExperimentMetrics>>,
    /// A concluded experiment's conclusion counts are known to be recorded (`conclusion`).
    pub(crate) conclusion_noted: AtomicBool,
    /// The last guardrail checkpoint this process checked (see `halts`).
    pub(crate) guardrail_checkpoint: std::sync::atomic::AtomicU64,
}

impl LiveExperiment {
    pub fn new(spec: Experiment, retired: BTreeMap<String, Prior>, snapshot: Snapshot) -> Self {
        let epoch = epoch_of(&spec);
        let assignment_epoch = super::exposure::assignment_epoch(&spec, &epoch);
        let payloads = spec
            .variants
            .iter()
            .map(|variant| serde_json::value::to_raw_value(&variant.payload).ok())
            .collect();
        let metrics = crate::metrics::get().map(|metrics| {
            let variants: Vec<&str> = spec.variants.iter().map(|v| v.id.as_str()).collect();
            Arc::new(metrics.experiment(
                spec.id.as_str(),
                &variants,
                &super::events::EVENT_OUTCOMES,
            ))
        });
        Self {
            spec,
            epoch,
            retired,
            spec_unrecorded: AtomicBool::new(false),
            assignment_epoch,
            payloads,
            snapshot: ArcSwap::from_pointee(snapshot),
            refreshing: AtomicBool::new(false),
            delay_laws: super::delay_view::LawCache::default(),
            metrics,
            conclusion_noted: AtomicBool::new(false),
            guardrail_checkpoint: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The JSON text of variant `arm`'s payload (`None` only for an index out of range).
    pub fn payload_json(&self, arm: usize) -> Option<&serde_json::value::RawValue> {
        self.payloads.get(arm).and_then(|raw| raw.as_deref())
    }

    /// The experiment-level rule that applies under `snapshot`.
    pub fn mode(&self, snapshot: &Snapshot) -> Mode {
        mode_of(&self.spec, snapshot)
    }

    pub fn params(&self) -> Params {
        params_of(&self.spec)
    }

    /// Index of `default_variant` (validated to exist).
    pub fn default_arm(&self) -> usize {
        self.spec
            .variant_index(self.spec.default_variant.as_str())
            .unwrap_or(0)
    }

    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The store's write context for one counted exposure under `snapshot`.
    pub fn tally(&self, snapshot: &Snapshot, now_ms: u64) -> Tally {
        Tally {
            now_ms,
            half_life_ms: self.spec.policy.half_life.map(|h| h.as_millis()),
            allocation: snapshot.allocation.clone(),
        }
    }

    /// Claims the right to rebuild a stale snapshot; false if fresh or someone else is on it.
    pub fn claim_refresh(&self, now_ms: u64) -> bool {
        let stale = now_ms.saturating_sub(self.snapshot.load().taken_ms) >= SNAPSHOT_REFRESH_MS;
        stale
            && self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Installs a rebuilt snapshot and releases any refresh claim.
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
        self.refreshing.store(false, Ordering::Release);
    }

    /// Releases a refresh claim without installing (the store could not be read).
    pub fn abandon_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }
}

pub fn epoch_of(spec: &Experiment) -> Epoch {
    Epoch {
        experiment: spec.id.as_str().to_owned(),
        revision: spec.revision,
    }
}
