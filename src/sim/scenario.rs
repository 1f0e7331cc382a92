//! What is simulated: the arms (true rate and prior), the policy knobs and the stopping
//! rule, taken from an experiment file exactly as the server reads them, or a bare
//! Thompson bandit; and how (horizon, runs, seed, snapshot delay, traffic timing).

use super::delay::ConversionDelay;
use super::error::SimError;
use super::guardrail::SimGuardrail;
use super::rates::RateSpec;
use crate::policy::Params;
use crate::spec::{Experiment, OnWinner, Prior};
use crate::stats::{BaseDelay, StoppingRule};

/// Milliseconds per hour: arrival rates are given per hour.
pub const MS_PER_HOUR: f64 = 3_600_000.0;

/// One arm: its id, its true conversion rate, and the prior the server would use.
#[derive(Debug, Clone, PartialEq)]
pub struct SimArm {
    pub id: String,
    pub rate: f64,
    pub prior: Prior,
    /// This arm's conversion delay (`--conversion-delay control=exp:6h,…`); `None`: the
    /// delay of `Settings::conversion_delay`, if any.
    pub delay: Option<ConversionDelay>,
    /// Probability that the page confirms an assignment of this arm (`--confirm-rate`,
    /// `exposure: on_render`); `None` counts every assignment, as `on_assign` does.
    pub confirm_rate: Option<f64>,
}

/// The experiment's stopping rule and what happens on a winner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimStopping {
    /// A `min_duration_ms` needs a clock (`--arrival-rate`); [`Settings::check`] refuses it
    /// without one rather than silently ignoring it.
    pub rule: StoppingRule,
    pub on_winner: OnWinner,
}

/// Everything the policy and the stopping rule see, independent of how long or how often
/// it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub arms: Vec<SimArm>,
    pub params: Params,
    pub stopping: Option<SimStopping>,
    /// `policy.half_life` in milliseconds; needs a clock to mean anything.
    pub half_life_ms: Option<u64>,
    /// `reward.window`: the server rejects conversions that arrive later than this after
    /// their assignment. Only a conversion delay can exceed it.
    pub reward_window_ms: Option<u64>,
    /// `reward.delay`: the delay-aware posterior's base law, `None` for the naive posterior.
    /// Needs a clock and a reward window to mean anything.
    pub delay_correction: Option<BaseDelay>,
    /// Guardrails with their true rates (`--guardrail`); a halted arm gets no more traffic.
    pub guardrails: Vec<SimGuardrail>,
}

impl Scenario {
    /// The experiment as the server would run it (status is ignored: a forecast assumes
    /// `running`), against `rates`.
    pub fn from_experiment(experiment: &Experiment, rates: &RateSpec) -> Result<Self, SimError> {
        let ids: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
        let rates = rates.resolve(&ids)?;
        let arms = ids
            .iter()
            .zip(rates)
            .enumerate()
            .map(|(k, (id, rate))| SimArm {
                id: (*id).to_owned(),
                rate,
                prior: experiment.arm_prior(k),
                delay: None,
                confirm_rate: None,
            })
            .collect();
        Ok(Self {
            arms,
            params: Params {
                burn_in: experiment.policy.burn_in,
                min_share: experiment.policy.min_share,
            },
            stopping: experiment.stopping.map(|stopping| SimStopping {
                rule: StoppingRule {
                    prob_best: stopping.prob_best,
                    max_expected_loss: stopping.max_expected_loss,
                    min_exposures: stopping.required_exposures(),
                    min_duration_ms: stopping.min_duration.map_or(0, |d| d.as_millis()),
                },
                on_winner: stopping.on_winner,
            }),
            half_life_ms: experiment.policy.half_life.map(|h| h.as_millis()),
            reward_window_ms: Some(experiment.reward.window.as_millis()),
            delay_correction: experiment.reward.delay.base(),
            guardrails: Vec::new(),
        })
    }

    /// A plain Thompson sampler over `arms` arms with Beta(1, 1) priors: no burn-in, no
    /// floor, no stopping rule (Chapelle & Li 2011, "An Empirical Evaluation of Thompson
    /// Sampling", NIPS, Algorithm 2). Arms are named `arm-0`, `arm-1`, ….
    pub fn bare(arms: usize, rates: &RateSpec) -> Result<Self, SimError> {
        if arms < 2 {
            return Err(SimError::Invalid(format!(
                "--arms {arms}: a bandit needs at least 2 arms"
            )));
        }
        let ids: Vec<String> = (0..arms).map(|k| format!("arm-{k}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let rates = rates.resolve(&id_refs)?;
        Ok(Self {
            arms: ids
                .into_iter()
                .zip(rates)
                .map(|(id, rate)| SimArm {
                    id,
                    rate,
                    prior: Prior::default(),
                    delay: None,
                    confirm_rate: None,
                })
                .collect(),
            params: Params {
                burn_in: 0,
                min_share: 0.0,
            },
            stopping: None,
            half_life_ms: None,
            reward_window_ms: None,
            delay_correction: None,
            guardrails: Vec::new(),
        })
    }

    /// Arm `k`'s conversion delay: its own, else the one every arm shares.
    pub fn delay_of(&self, k: usize, settings: &Settings) -> Option<ConversionDelay> {
        self.arms
            .get(k)
            .and_then(|arm| arm.delay)
            .or(settings.conversion_delay)
    }

    /// The highest true rate.
    pub fn best_rate(&self) -> f64 {
        self.arms
            .iter()
            .map(|arm| arm.rate)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// How the scenario is run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Assignments per run.
    pub horizon: u64,
    pub runs: usize,
    /// Run r draws from a generator seeded by (seed, r) only, so results do not depend on
    /// the thread count or on which thread ran which run.
    pub seed: u64,
    /// The posterior the policy sees is rebuilt every this many assignments: the snapshot
    /// staleness of the server (100 ms) or of many replicas sharing counters.
    pub update_every: u64,
    /// Assignments per hour: assignment i happens at i/rate hours. Needed for a conversion
    /// delay, a half-life and a `min_duration`.
    pub arrival_rate_per_hour: Option<f64>,
    pub conversion_delay: Option<ConversionDelay>,
    /// Worker threads; the results are identical for any value.
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            horizon: 10_000,
            runs: 100,
            seed: 1,
            update_every: 1,
            arrival_rate_per_hour: None,
            conversion_delay: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Settings {
    /// Rejects settings that cannot be simulated, or that would silently mean something
    /// else than the analyst wrote.
    pub fn check(&self, scenario: &Scenario) -> Result<(), SimError> {
        let invalid = |message: String| Err(SimError::Invalid(message));
        if self.horizon == 0 {
            return invalid("--horizon must be at least 1 assignment".to_owned());
        }
        if self.runs == 0 {
            return invalid("--runs must be at least 1".to_owned());
        }
        if self.update_every == 0 {
            return invalid("--update-every must be at least 1 assignment".to_owned());
        }
        if self.threads == 0 {
            return invalid("--threads must be at least 1".to_owned());
        }
        if let Some(rate) = self.arrival_rate_per_hour
            && !(rate.is_finite() && rate > 0.0)
        {
            return invalid(format!(
                "--arrival-rate {rate}: give a positive number of assignments per hour"
            ));
        }
        if self.arrival_rate_per_hour.is_none() {
            if let Some(delay) = self
                .conversion_delay
                .or_else(|| scenario.arms.iter().find_map(|arm| arm.delay))
            {
                return invalid(format!(
                    "--conversion-delay {delay} needs --arrival-rate (assignments per hour) to place assignments in time"
                ));
            }
            if let Some(stopping) = scenario.stopping
                && stopping.rule.min_duration_ms > 0
            {
                let written = crate::spec::HumanDuration::from_std(
                    std::time::Duration::from_millis(stopping.rule.min_duration_ms),
                );
                return invalid(format!(
                    "the experiment has stopping.min_duration: {written}, which only binds when time passes: give --arrival-rate (assignments per hour) so that the forecast knows when {written} have passed (without it, every min_duration would give the same answer)"
                ));
            }
            if scenario.half_life_ms.is_some() {
                return invalid(
                    "the experiment has policy.half_life, which decays evidence by time: give --arrival-rate (assignments per hour) so that time can be simulated".to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The time of assignment `index` in milliseconds since the start, or 0 without a clock.
    pub fn time_ms(&self, index: u64) -> u64 {
        self.arrival_rate_per_hour.map_or(0, |rate| {
            // Saturating float-to-int conversion; finite and ≥ 0 after `check`.
            (index as f64 * MS_PER_HOUR / rate) as u64
        })
    }

    /// How often the stopping rule is evaluated: the smallest multiple of `update_every`
    /// that is at least [`MIN_EVALUATE_EVERY`], so evaluations coincide with posterior
    /// refreshes (the server evaluates on its snapshots too).
    pub fn evaluate_every(&self) -> u64 {
        let step = self.update_every.max(1);
        MIN_EVALUATE_EVERY.div_ceil(step) * step
    }
}

/// At least this many assignments between stopping-rule evaluations. One evaluation
/// (`stats::compare_arms`) costs 10–100 µs, about as much as 100 Thompson assignments of
/// 10 arms, so this at most doubles the cost of a run while delaying a decision by fewer
/// than 100 assignments, well below the thousands a decision usually takes.
pub const MIN_EVALUATE_EVERY: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const EXPERIMENT: &str = "
id: headline
description: d
owner: o
status: paused
prior: { alpha: 1, beta: 1 }
policy: { burn_in: 50, min_share: 0.02 }
stopping: { prob_best: 0.95, max_expected_loss: 0.001, min_exposures: 500, min_duration: 1d, on_winner: report }
default_variant: control
variants:
  - id: control
    payload: {}
  - id: bold
    payload: {}
    prior: { alpha: 2, beta: 40 }
";

    fn experiment() -> Experiment {
        crate::spec::parse_experiment(Path::new("headline.yaml"), EXPERIMENT).unwrap()
    }

    #[test]
    fn an_experiment_keeps_its_priors_policy_and_stopping_rule() {
        let rates = RateSpec::parse("bold=0.06,control=0.05").unwrap();
        let scenario = Scenario::from_experiment(&experiment(), &rates).unwrap();
        assert_eq!(scenario.arms[0].id, "control");
        assert_eq!(scenario.arms[0].rate, 0.05);
        assert_eq!(scenario.arms[0].prior, Prior::default());
        assert_eq!(scenario.arms[1].rate, 0.06);
        assert_eq!(
            scenario.arms[1].prior,
            Prior {
                alpha: 2.0,
                beta: 40.0
            }
        );
        assert_eq!(scenario.params.burn_in, 50);
        assert_eq!(scenario.params.min_share, 0.02);
        let stopping = scenario.stopping.unwrap();
        assert_eq!(stopping.rule.min_exposures, 500);
        assert_eq!(stopping.rule.min_duration_ms, 86_400_000);
        assert_eq!(stopping.on_winner, OnWinner::Report);
        assert_eq!(scenario.reward_window_ms, Some(7 * 86_400_000));
        assert_eq!(scenario.best_rate(), 0.06);
    }

    #[test]
    fn a_bare_bandit_is_plain_thompson_sampling() {
        let scenario = Scenario::bare(3, &RateSpec::parse("0.5,0.4,0.4").unwrap()).unwrap();
        assert_eq!(scenario.arms[2].id, "arm-2");
        assert_eq!(scenario.params.burn_in, 0);
        assert_eq!(scenario.params.min_share, 0.0);
        assert!(scenario.stopping.is_none());
        assert!(Scenario::bare(1, &RateSpec::parse("0.5").unwrap()).is_err());
        assert!(Scenario::bare(2, &RateSpec::parse("arm-0=0.5,arm-1=0.4").unwrap()).is_ok());
    }

    #[test]
    fn time_dependent_inputs_need_an_arrival_rate() {
        let scenario = Scenario::bare(2, &RateSpec::parse("0.5,0.4").unwrap()).unwrap();
        let delayed = Settings {
            conversion_delay: Some(ConversionDelay::Fixed { ms: 1 }),
            ..Settings::default()
        };
        assert!(delayed.check(&scenario).is_err());
        let timed = Settings {
            arrival_rate_per_hour: Some(100.0),
            ..delayed
        };
        assert!(timed.check(&scenario).is_ok());
        let decaying = Scenario {
            half_life_ms: Some(1000),
            ..scenario.clone()
        };
        assert!(Settings::default().check(&decaying).is_err());
        for bad in [
            Settings {
                horizon: 0,
                ..Settings::default()
            },
            Settings {
                runs: 0,
                ..Settings::default()
            },
            Settings {
                update_every: 0,
                ..Settings::default()
            },
            Settings {
                arrival_rate_per_hour: Some(0.0),
                ..Settings::default()
            },
        ] {
            assert!(bad.check(&scenario).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn assignments_are_spread_evenly_in_time_and_evaluations_fall_on_refreshes() {
        let settings = Settings {
            arrival_rate_per_hour: Some(1000.0),
            update_every: 30,
            ..Settings::default()
        };
        assert_eq!(settings.time_ms(1000), 3_600_000);
        assert_eq!(settings.time_ms(1), 3_600);
        assert_eq!(settings.evaluate_every(), 120);
        assert_eq!(Settings::default().evaluate_every(), 100);
        assert_eq!(Settings::default().time_ms(5000), 0);
    }
}
