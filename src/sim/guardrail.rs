//! Guardrails in `banditd simulate`: per arm a true guardrail rate
//! (`--guardrail refunds:control=0.01,bold=0.02`, repeatable), the experiment's halt rule
//! (`stats::check_guardrail`) evaluated every [`DEFAULT_CHECK_EVERY`] assignments, and a
//! halted arm taken out of the allocation like a retired variant, so the regret the summary
//! reports includes the halts. The summary gives, per arm, the share of runs that halted it
//! (with its binomial standard error) and the exposures it had when halted.

use rand::RngExt;
use serde::Serialize;

use super::error::SimError;
use super::rates::RateSpec;
use super::run::RunOutcome;
use super::summary::quantile;
use crate::policy::ArmView;
use crate::spec::{Experiment, GuardrailDirection};
use crate::stats::{GuardrailRule, GuardrailVerdict, Harm, Posterior, check_guardrail};

/// Assignments between two evaluations of the halt rule: the cadence the false-halt rates
/// in the README were measured with. More frequent looks only add chances of a false halt.
pub const DEFAULT_CHECK_EVERY: u64 = 1000;

/// One `--guardrail` flag: a metric and its true rate per arm.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailRates {
    pub metric: String,
    pub rates: RateSpec,
}

impl GuardrailRates {
    /// `metric:rates`, the rates as in `--rates`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (metric, rates) = text.split_once(':').ok_or_else(|| {
            format!(
                "{text:?} has no metric; write METRIC:RATES, e.g. refunds:control=0.01,bold=0.02"
            )
        })?;
        let metric = metric.trim();
        if metric.is_empty() {
            return Err(format!("{text:?}: the metric name before ':' is missing"));
        }
        let rates = RateSpec::parse(rates).map_err(|e| e.to_string())?;
        Ok(Self {
            metric: metric.to_owned(),
            rates,
        })
    }
}

/// A guardrail as the simulation runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGuardrail {
    pub metric: String,
    pub rule: GuardrailRule,
    /// Index of the comparison arm.
    pub reference: usize,
    /// True guardrail rate per arm.
    pub rates: Vec<f64>,
    /// The Beta prior of the guardrail rate (the experiment's prior).
    pub prior: (f64, f64),
}

/// Matches the `--guardrail` flags with the experiment's `guardrails:` list: every flag must
/// name a listed metric (the rule comes from the file), at most once.
pub fn from_experiment(
    experiment: &Experiment,
    flags: &[GuardrailRates],
) -> Result<Vec<SimGuardrail>, SimError> {
    let ids: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
    let mut out: Vec<SimGuardrail> = Vec::with_capacity(flags.len());
    for flag in flags {
        let Some(spec) = experiment
            .guardrails
            .iter()
            .find(|g| g.metric.as_str() == flag.metric)
        else {
            let listed: Vec<&str> = experiment
                .guardrails
                .iter()
                .map(|g| g.metric.as_str())
                .collect();
            return Err(SimError::Invalid(format!(
                "--guardrail {}: the experiment lists no guardrail with that metric (listed: {})",
                flag.metric,
                if listed.is_empty() {
                    "none".to_owned()
                } else {
                    listed.join(", ")
                }
            )));
        };
        if out.iter().any(|g| g.metric == flag.metric) {
            return Err(SimError::Invalid(format!(
                "--guardrail {} is given twice",
                flag.metric
            )));
        }
        let reference = experiment
            .variant_index(experiment.guardrail_reference(spec).as_str())
            .ok_or_else(|| SimError::Invalid("the comparison arm is not a variant".to_owned()))?;
        out.push(SimGuardrail {
            metric: flag.metric.clone(),
            rule: GuardrailRule {
                harm: match spec.direction {
                    GuardrailDirection::LowerIsBetter => Harm::Higher,
                    GuardrailDirection::HigherIsBetter => Harm::Lower,
                },
                max_relative_change: spec.max_relative_change,
                confidence: spec.confidence,
                min_exposures: spec.min_exposures,
            },
            reference,
            rates: flag.rates.resolve(&ids)?,
            prior: (experiment.prior.alpha, experiment.prior.beta),
        });
    }
    Ok(out)
}

/// When and why an arm was halted in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmHalt {
    pub arm: usize,
    pub metric: String,
    /// The arm's exposures when halted.
    pub exposures: u64,
    /// Assignments (all arms) before the halt.
    pub assignments: u64,
    pub prob_worse: f64,
}

/// The guardrail state of one run: event counts per guardrail and arm, and the halts.
#[derive(Debug, Clone)]
pub(crate) struct GuardrailRun<'s> {
    guardrails: &'s [SimGuardrail],
    /// `events[g][k]`: guardrail g's events on arm k.
    events: Vec<Vec<u64>>,
    halted: Vec<bool>,
    pub(crate) halts: Vec<ArmHalt>,
}

impl<'s> GuardrailRun<'s> {
    pub(crate) fn new(guardrails: &'s [SimGuardrail], arms: usize) -> Self {
        Self {
            guardrails,
            events: vec![vec![0; arms]; guardrails.len()],
            halted: vec![false; arms],
            halts: Vec::new(),
        }
    }

    /// One exposure of `arm`: each guardrail's event happens with the arm's true rate. No
    /// draw at all without guardrails, so runs without them keep their random streams.
    pub(crate) fn observe(&mut self, arm: usize, rng: &mut impl rand::Rng) {
        for (g, guardrail) in self.guardrails.iter().enumerate() {
            if rng.random::<f64>() < guardrail.rates[arm] {
                self.events[g][arm] += 1;
            }
        }
    }

    /// Evaluates every guardrail on every arm not yet halted (the comparison arm is never
    /// halted by its own guardrail). `exposures` per arm; `assignments` so far.
    pub(crate) fn check(&mut self, exposures: &[u64], assignments: u64) {
        for (g, guardrail) in self.guardrails.iter().enumerate() {
            let posterior = |k: usize| {
                Posterior::from_counts(
                    guardrail.prior.0,
                    guardrail.prior.1,
                    exposures[k] as f64,
                    self.events[g][k] as f64,
                )
            };
            let reference = guardrail.reference;
            for arm in 0..exposures.len() {
                if arm == reference || self.halted[arm] {
                    continue;
                }
                let verdict = check_guardrail(
                    &guardrail.rule,
                    posterior(arm),
                    exposures[arm],
                    posterior(reference),
                    exposures[reference],
                );
                if let Ok(GuardrailVerdict::Halt(evidence)) = verdict {
                    self.halted[arm] = true;
                    self.halts.push(ArmHalt {
                        arm,
                        metric: guardrail.metric.clone(),
                        exposures: exposures[arm],
                        assignments,
                        prob_worse: evidence.prob_worse,
                    });
                }
            }
        }
    }

    /// Halted arms get no traffic: the policy treats them as retired.
    pub(crate) fn retire_halted(&self, views: &mut [ArmView]) {
        for (view, &halted) in views.iter_mut().zip(&self.halted) {
            if halted {
                view.active = false;
            }
        }
    }
}

/// Per arm, how often and how soon it was halted across the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaltSummary {
    pub arm: String,
    /// Share of runs in which the arm was halted, and its binomial standard error
    /// √(p(1 − p)/runs).
    pub halted_share: f64,
    pub halted_share_std_error: f64,
    /// The arm's exposures when halted, over the runs that halted it.
    pub median_exposures_to_halt: Option<f64>,
    pub p90_exposures_to_halt: Option<f64>,
}

/// The halt summary of every arm.
pub(crate) fn summarise(arm_ids: &[String], outcomes: &[RunOutcome]) -> Vec<HaltSummary> {
    let runs = outcomes.len() as f64;
    arm_ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let exposures: Vec<f64> = outcomes
                .iter()
                .filter_map(|o| o.halts.iter().find(|h| h.arm == k))
                .map(|h| h.exposures as f64)
                .collect();
            let share = exposures.len() as f64 / runs;
            HaltSummary {
                arm: id.clone(),
                halted_share: share,
                halted_share_std_error: (share * (1.0 - share) / runs).sqrt(),
                median_exposures_to_halt: (!exposures.is_empty())
                    .then(|| quantile(&exposures, 0.5)),
                p90_exposures_to_halt: (!exposures.is_empty()).then(|| quantile(&exposures, 0.9)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sim::{Scenario, Settings, run_once, simulate};
    use crate::spec::parse_experiment;

    const EXPERIMENT: &str = "id: checkout\ndescription: Which checkout?\nowner: growth\n\
        status: running\npolicy: { burn_in: 0 }\nguardrails:\n  - metric: refunds\n    \
        direction: lower_is_better\n    max_relative_change: 0.1\n    min_exposures: 200\n\
        default_variant: control\nvariants:\n  - id: control\n    payload: {}\n  - id: bold\n    \
        payload: {}\n";

    fn scenario(flags: &[&str]) -> Result<Scenario, SimError> {
        let experiment = parse_experiment(Path::new("checkout.yaml"), EXPERIMENT).unwrap();
        let flags: Vec<GuardrailRates> = flags
            .iter()
            .map(|f| GuardrailRates::parse(f).unwrap())
            .collect();
        let mut scenario = Scenario::from_experiment(
            &experiment,
            &RateSpec::parse("control=0.05,bold=0.06").unwrap(),
        )?;
        scenario.guardrails = from_experiment(&experiment, &flags)?;
        Ok(scenario)
    }

    fn settings(horizon: u64, runs: usize) -> Settings {
        Settings {
            horizon,
            runs,
            seed: 5,
            threads: 2,
            ..Settings::default()
        }
    }

    #[test]
    fn the_flag_is_a_metric_and_rates() {
        let flag = GuardrailRates::parse("refunds:control=0.01,bold=0.02").unwrap();
        assert_eq!(flag.metric, "refunds");
        assert_eq!(
            flag.rates,
            RateSpec::Named(vec![("control".into(), 0.01), ("bold".into(), 0.02)])
        );
        assert!(
            GuardrailRates::parse("control=0.01")
                .unwrap_err()
                .contains("METRIC:RATES")
        );
        assert!(
            GuardrailRates::parse(":0.1,0.2")
                .unwrap_err()
                .contains("missing")
        );
        assert!(GuardrailRates::parse("refunds:0.1,2").is_err());
    }

    #[test]
    fn a_metric_the_experiment_does_not_list_is_refused_with_the_listed_ones() {
        let error = scenario(&["errors:0.01,0.02"]).unwrap_err().to_string();
        assert!(error.contains("listed: refunds"), "{error}");
        let twice = scenario(&["refunds:0.01,0.02", "refunds:0.01,0.02"]).unwrap_err();
        assert!(twice.to_string().contains("given twice"), "{twice}");
    }

    #[test]
    fn a_halted_arm_gets_no_traffic_after_the_halt() {
        // Refunds of 50% against 1%: halted at the first check once both arms have 200
        // exposures. The primary rate favours the halted arm, so only the halt keeps traffic
        // away from it.
        let scenario = scenario(&["refunds:control=0.01,bold=0.5"]).unwrap();
        let settings = settings(20_000, 1);
        for run in 0..5 {
            let outcome = run_once(&scenario, &settings, &[20_000], run).unwrap();
            let [halt] = outcome.halts.as_slice() else {
                panic!("expected one halt, got {:?}", outcome.halts);
            };
            assert_eq!((halt.arm, halt.metric.as_str()), (1, "refunds"));
            assert!(halt.exposures >= 200 && halt.assignments % DEFAULT_CHECK_EVERY == 0);
            assert!(halt.prob_worse >= 0.99);
            assert_eq!(outcome.arm_assignments[1], halt.exposures, "run {run}");
            assert_eq!(outcome.arm_assignments[0], 20_000 - halt.exposures);
        }
    }

    #[test]
    fn the_summary_reports_halt_shares_with_binomial_errors() {
        let harmful = simulate(
            &scenario(&["refunds:control=0.01,bold=0.5"]).unwrap(),
            &settings(20_000, 20),
        )
        .unwrap();
        assert_eq!(harmful.halts.len(), 2);
        assert_eq!(harmful.halts[0].halted_share, 0.0, "the comparison arm");
        // Thompson sampling can starve the comparison arm below `min_exposures` (the primary
        // favours the harmful arm), which postpones a halt: most runs, not all, halt.
        let share = harmful.halts[1].halted_share;
        assert!(share >= 0.8, "{share}");
        let expected_error = (share * (1.0 - share) / 20.0).sqrt();
        assert!((harmful.halts[1].halted_share_std_error - expected_error).abs() < 1e-15);
        assert!(harmful.halts[1].median_exposures_to_halt.is_some());
        // No flag, no guardrail summary (and no extra random draws: the same regret).
        let plain = simulate(&scenario(&[]).unwrap(), &settings(2_000, 4)).unwrap();
        assert!(plain.halts.is_empty());
    }
}
