//! `banditd simulate`: the flags, and the shell that loads the experiment, runs the
//! simulation and prints the summary. Every flag also reads a `BANDITD_SIM_*` variable.

use std::path::PathBuf;
use std::process::ExitCode;

use super::delay::ConversionDelay;
use super::delay_compare::{compare_delay_correction, render_comparison};
use super::format::{render_csv, render_json, render_table};
use super::guardrail::{self, GuardrailRates};
use super::rates::RateSpec;
use super::scenario::{Scenario, Settings};
use super::summary::simulate;
use crate::stats::BaseDelay;

/// Which posterior the simulated server uses (`--delay-correction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DelayCorrection {
    /// As the experiment's `reward.delay` says (a bare bandit: naive).
    #[default]
    Experiment,
    /// Delay-aware: the experiment's model, or `auto` when it has `off` or none.
    On,
    /// Naive: every exposure is a whole trial at once.
    Off,
    /// Both, on the same seeds, side by side (regret, wrong winners, P(best) reliability).
    Both,
}

/// `--conversion-delay`: one delay for every arm, or one per variant id.
#[derive(Debug, Clone, PartialEq)]
pub enum DelayFlag {
    All(ConversionDelay),
    PerArm(Vec<(String, ConversionDelay)>),
}

/// How the summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

/// Forecast an experiment before launch: the server's policy and stopping rule against
/// true conversion rates, over many simulated runs.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("arms_source").required(true).args(["experiment", "arms"]))]
pub struct SimulateArgs {
    /// Experiment file (or a folder; then pick one with --id). Its priors, policy
    /// (burn_in, min_share, half_life) and stopping rule are used as the server uses them.
    #[arg(env = "BANDITD_SIM_EXPERIMENT")]
    pub experiment: Option<PathBuf>,
    /// Which experiment of the folder to simulate.
    #[arg(long, env = "BANDITD_SIM_ID")]
    pub id: Option<String>,
    /// Instead of a file: a bare Thompson bandit with this many Beta(1,1) arms (no burn-in,
    /// no floor, no stopping rule).
    #[arg(long, env = "BANDITD_SIM_ARMS")]
    pub arms: Option<usize>,
    /// True conversion rates: by variant id (`control=0.05,bold=0.06`, every variant) or in
    /// variant order (`0.05,0.06`).
    #[arg(long, env = "BANDITD_SIM_RATES", value_parser = parse_rates)]
    pub rates: RateSpec,
    /// Assignments per run.
    #[arg(long, env = "BANDITD_SIM_HORIZON", default_value_t = 10_000)]
    pub horizon: u64,
    /// Independent runs.
    #[arg(long, env = "BANDITD_SIM_RUNS", default_value_t = 100)]
    pub runs: usize,
    /// Seed; the output is identical for the same seed, whatever --threads.
    #[arg(long, env = "BANDITD_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// The policy's posterior is refreshed every N assignments (the staleness of a
    /// snapshot, or of replicas sharing counters).
    #[arg(long, env = "BANDITD_SIM_UPDATE_EVERY", default_value_t = 1)]
    pub update_every: u64,
    /// Delay until a conversion reaches the server: `exp:2d` (exponential, mean 2 days),
    /// `lognormal:1d:1.5` (median 1 day, log-scale σ 1.5) or `fixed:1h`; for every arm, or
    /// per variant id (`control=exp:6h,bold=lognormal:3d:1`; unnamed arms convert at
    /// once). Needs --arrival-rate.
    #[arg(long, env = "BANDITD_SIM_CONVERSION_DELAY", value_parser = parse_delay)]
    pub conversion_delay: Option<DelayFlag>,
    /// Which posterior the simulated server uses: the experiment's `reward.delay`, on, off,
    /// or both side by side on the same seeds.
    #[arg(
        long,
        env = "BANDITD_SIM_DELAY_CORRECTION",
        value_enum,
        default_value = "experiment"
    )]
    pub delay_correction: DelayCorrection,
    /// Assignments per hour; places assignment i at i/rate hours (for a conversion delay,
    /// half_life and min_duration).
    #[arg(long, env = "BANDITD_SIM_ARRIVAL_RATE")]
    pub arrival_rate: Option<f64>,
    /// Guardrail rates per arm, `METRIC:RATES` with the rates as in --rates
    /// (`refunds:control=0.01,bold=0.02`); repeatable, one per guardrail. The metric must be
    /// in the experiment's `guardrails:` list, whose rule decides the halts; a halted arm
    /// gets no more traffic.
    #[arg(
        long = "guardrail",
        env = "BANDITD_SIM_GUARDRAIL",
        value_delimiter = ';',
        value_parser = GuardrailRates::parse
    )]
    pub guardrails: Vec<GuardrailRates>,
    /// `exposure: on_render`: the probability that the page confirms an assignment, per arm
    /// (`control=1,bold=0.5`, or in variant order). Only confirmed assignments count and
    /// convert; the output says how often the sample-ratio check alerted. Default: all 1.
    #[arg(long, env = "BANDITD_SIM_CONFIRM_RATE", value_parser = parse_rates)]
    pub confirm_rate: Option<RateSpec>,
    /// Output format.
    #[arg(long, env = "BANDITD_SIM_FORMAT", value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Worker threads (default: one per core).
    #[arg(long, env = "BANDITD_SIM_THREADS")]
    pub threads: Option<usize>,
}

/// Runs `banditd simulate`; prints the summary, or the error and exit code 1.
pub fn run_simulate(args: &SimulateArgs) -> ExitCode {
    let rendered = prepare(args).and_then(|(scenario, settings)| {
        if args.delay_correction == DelayCorrection::Both {
            let comparison =
                compare_delay_correction(&scenario, &settings).map_err(|e| e.to_string())?;
            return match args.format {
                OutputFormat::Json => {
                    serde_json::to_string_pretty(&comparison).map_err(|e| e.to_string())
                }
                OutputFormat::Table | OutputFormat::Csv => Ok(render_comparison(&comparison)),
            };
        }
        let summary = simulate(&scenario, &settings).map_err(|e| e.to_string())?;
        match args.format {
            OutputFormat::Table => Ok(render_table(&summary)),
            OutputFormat::Json => render_json(&summary).map_err(|e| e.to_string()),
            OutputFormat::Csv => Ok(render_csv(&summary)),
        }
    });
    match rendered {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("banditd simulate: {message}");
            ExitCode::from(1)
        }
    }
}

/// The scenario and settings the flags describe; the error is the message to print.
pub(crate) fn prepare(args: &SimulateArgs) -> Result<(Scenario, Settings), String> {
    let scenario = match (&args.experiment, args.arms) {
        (Some(path), None) => {
            let experiments = crate::catalog::load_paths(std::slice::from_ref(path), None)
                .map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    format!("the experiment file is invalid:\n{}", lines.join("\n"))
                })?;
            let experiment = match &args.id {
                Some(id) => experiments
                    .iter()
                    .find(|e| e.id.as_str() == id)
                    .ok_or_else(|| format!("no experiment {id:?} in {}", path.display()))?,
                None => match experiments.as_slice() {
                    [only] => only,
                    [] => return Err(format!("no experiment in {}", path.display())),
                    many => {
                        let ids: Vec<&str> = many.iter().map(|e| e.id.as_str()).collect();
                        return Err(format!(
                            "{} holds several experiments ({}); choose one with --id",
                            path.display(),
                            ids.join(", ")
                        ));
                    }
                },
            };
            Scenario::from_experiment(experiment, &args.rates).and_then(|mut scenario| {
                scenario.guardrails = guardrail::from_experiment(experiment, &args.guardrails)?;
                Ok(scenario)
            })
        }
        (None, Some(_)) if !args.guardrails.is_empty() => {
            return Err(
                "--guardrail needs an experiment file: the halt rule comes from its \
                        `guardrails:` list"
                    .to_owned(),
            );
        }
        (None, Some(arms)) => Scenario::bare(arms, &args.rates),
        // clap's group makes exactly one of them present.
        _ => return Err("give an experiment file or --arms K, not both".to_owned()),
    }
    .map_err(|e| e.to_string())?;
    let scenario = match &args.confirm_rate {
        None => scenario,
        Some(rates) => scenario
            .with_confirm_rates(rates)
            .map_err(|e| format!("--confirm-rate: {e}"))?,
    };
    let mut scenario = scenario;
    scenario.delay_correction = match args.delay_correction {
        DelayCorrection::Experiment | DelayCorrection::Both => scenario.delay_correction,
        DelayCorrection::On => Some(scenario.delay_correction.unwrap_or(BaseDelay::Learn)),
        DelayCorrection::Off => None,
    };
    let shared_delay = match &args.conversion_delay {
        None => None,
        Some(DelayFlag::All(delay)) => Some(*delay),
        Some(DelayFlag::PerArm(delays)) => {
            for (id, delay) in delays {
                let arm = scenario
                    .arms
                    .iter_mut()
                    .find(|arm| &arm.id == id)
                    .ok_or_else(|| format!("--conversion-delay names no variant {id:?}"))?;
                arm.delay = Some(*delay);
            }
            None
        }
    };
    let defaults = Settings::default();
    let settings = Settings {
        horizon: args.horizon,
        runs: args.runs,
        seed: args.seed,
        update_every: args.update_every,
        arrival_rate_per_hour: args.arrival_rate,
        conversion_delay: shared_delay,
        threads: args.threads.unwrap_or(defaults.threads),
    };
    settings.check(&scenario).map_err(|e| e.to_string())?;
    Ok((scenario, settings))
}

fn parse_rates(text: &str) -> Result<RateSpec, String> {
    RateSpec::parse(text).map_err(|e| e.to_string())
}

fn parse_delay(text: &str) -> Result<DelayFlag, String> {
    if !text.contains('=') {
        return ConversionDelay::parse(text)
            .map(DelayFlag::All)
            .map_err(|e| e.to_string());
    }
    text.split(',')
        .map(|pair| {
            let (id, delay) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: write variant=delay, e.g. bold=exp:3d"))?;
            let delay = ConversionDelay::parse(delay).map_err(|e| e.to_string())?;
            Ok((id.trim().to_owned(), delay))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(DelayFlag::PerArm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn args(line: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("simulate").chain(line.iter().copied()))
            .map(|w| w.args)
    }

    fn headline() -> String {
        format!(
            "{}/experiments/homepage-headline.yaml",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn the_bundled_experiment_is_simulated_with_its_own_policy() {
        let path = headline();
        let parsed = args(&[
            &path,
            "--rates",
            "control=0.05,bold=0.06,question=0.04",
            "--runs",
            "3",
            "--update-every",
            "10",
        ])
        .unwrap();
        let (scenario, settings) = prepare(&parsed).unwrap();
        assert_eq!(scenario.arms.len(), 3);
        assert_eq!(scenario.params.burn_in, 100);
        assert_eq!(scenario.params.min_share, 0.02);
        assert!(scenario.stopping.is_some());
        assert_eq!(settings.runs, 3);
        assert_eq!(settings.update_every, 10);
        assert_eq!(settings.horizon, 10_000);
    }

    #[test]
    fn rate_errors_name_the_variant() {
        let path = headline();
        let parsed = args(&[&path, "--rates", "control=0.05,bold=0.06"]).unwrap();
        let message = prepare(&parsed).unwrap_err();
        assert!(message.contains("question"), "{message}");
        let parsed = args(&[
            &path,
            "--rates",
            "control=0.05,bold=0.06,question=0.1,x=0.1",
        ])
        .unwrap();
        assert!(prepare(&parsed).unwrap_err().contains("\"x\""));
        assert!(args(&["--arms", "2", "--rates", "0.5,1.5"]).is_err());
        assert!(
            args(&[
                "--arms",
                "2",
                "--rates",
                "0.5,0.4",
                "--conversion-delay",
                "2d"
            ])
            .is_err()
        );
    }

    #[test]
    fn conversion_delays_are_given_per_variant_and_the_correction_can_be_forced() {
        let path = headline();
        let parsed = args(&[
            &path,
            "--rates",
            "control=0.05,bold=0.06,question=0.04",
            "--conversion-delay",
            "control=exp:6h,bold=lognormal:3d:1",
            "--arrival-rate",
            "400",
            "--delay-correction",
            "off",
        ])
        .unwrap();
        let (scenario, settings) = prepare(&parsed).unwrap();
        assert_eq!(
            scenario.arms[0].delay,
            Some(ConversionDelay::Exponential {
                mean_ms: 6 * 3_600_000
            })
        );
        assert!(matches!(
            scenario.arms[1].delay,
            Some(ConversionDelay::LogNormal { .. })
        ));
        assert_eq!(scenario.arms[2].delay, None);
        assert_eq!(settings.conversion_delay, None);
        assert_eq!(scenario.delay_correction, None);
        let unknown = args(&[
            &path,
            "--rates",
            "control=0.05,bold=0.06,question=0.04",
            "--conversion-delay",
            "nope=exp:6h",
            "--arrival-rate",
            "400",
        ])
        .unwrap();
        assert!(prepare(&unknown).unwrap_err().contains("nope"));
        assert!(
            args(&[
                "--arms",
                "2",
                "--rates",
                "0.5,0.4",
                "--conversion-delay",
                "a=6h"
            ])
            .is_err()
        );
        let forced = args(&[
            "--arms",
            "2",
            "--rates",
            "0.5,0.4",
            "--delay-correction",
            "on",
        ])
        .unwrap();
        assert_eq!(
            prepare(&forced).unwrap().0.delay_correction,
            Some(BaseDelay::Learn)
        );
    }

    #[test]
    fn either_a_file_or_a_bare_bandit_is_required() {
        assert!(args(&["--rates", "0.5,0.4"]).is_err());
        assert!(args(&[&headline(), "--arms", "2", "--rates", "0.5,0.4"]).is_err());
        let parsed = args(&["--arms", "3", "--rates", "0.5,0.4,0.4", "--format", "csv"]).unwrap();
        assert_eq!(parsed.format, OutputFormat::Csv);
        assert_eq!(prepare(&parsed).unwrap().0.arms.len(), 3);
        let wrong = args(&["--arms", "3", "--rates", "0.5,0.4"]).unwrap();
        assert!(prepare(&wrong).unwrap_err().contains("2 rates for 3 arms"));
    }

    #[test]
    fn a_folder_of_several_experiments_needs_an_id() {
        let folder = format!("{}/experiments", env!("CARGO_MANIFEST_DIR"));
        let parsed = args(&[&folder, "--rates", "0.1,0.2"]).unwrap();
        assert!(prepare(&parsed).unwrap_err().contains("--id"));
        let parsed = args(&[&folder, "--id", "nope", "--rates", "0.1,0.2"]).unwrap();
        assert!(
            prepare(&parsed)
                .unwrap_err()
                .contains("no experiment \"nope\"")
        );
    }
}
