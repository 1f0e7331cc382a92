//! `banditd simulate`: the flags, and the shell that loads the experiment, runs the
//! simulation and prints the summary. Every flag also reads a `BANDITD_SIM_*` variable.

use std::path::PathBuf;
use std::process::ExitCode;

use super::delay::ConversionDelay;
use super::format::{render_csv, render_json, render_table};
use super::rates::RateSpec;
use super::scenario::{Scenario, Settings};
use super::summary::simulate;

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
    /// Delay until a conversion reaches the server: `exp:2d` (exponential, mean 2 days) or
    /// `fixed:1h`. Needs --arrival-rate.
    #[arg(long, env = "BANDITD_SIM_CONVERSION_DELAY", value_parser = parse_delay)]
    pub conversion_delay: Option<ConversionDelay>,
    /// Assignments per hour; places assignment i at i/rate hours (for a conversion delay,
    /// half_life and min_duration).
    #[arg(long, env = "BANDITD_SIM_ARRIVAL_RATE")]
    pub arrival_rate: Option<f64>,
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
            Scenario::from_experiment(experiment, &args.rates)
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
    let defaults = Settings::default();
    let settings = Settings {
        horizon: args.horizon,
        runs: args.runs,
        seed: args.seed,
        update_every: args.update_every,
        arrival_rate_per_hour: args.arrival_rate,
        conversion_delay: args.conversion_delay,
        threads: args.threads.unwrap_or(defaults.threads),
    };
    settings.check(&scenario).map_err(|e| e.to_string())?;
    Ok((scenario, settings))
}

fn parse_rates(text: &str) -> Result<RateSpec, String> {
    RateSpec::parse(text).map_err(|e| e.to_string())
}

fn parse_delay(text: &str) -> Result<ConversionDelay, String> {
    ConversionDelay::parse(text).map_err(|e| e.to_string())
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
