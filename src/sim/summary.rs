//! Many runs in parallel, summarised: the regret curve with its spread, the traffic the
//! best arm got, and how often and how soon the stopping rule named the right winner.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::error::SimError;
use super::even_split::{EvenSplit, even_split, percent_of};
use super::guardrail::{self, HaltSummary};
use super::run::{RunOutcome, run_once};
use super::scenario::{MS_PER_HOUR, Scenario, Settings};

/// Milliseconds per day: decision times are reported in days.
const MS_PER_DAY: f64 = 24.0 * MS_PER_HOUR;

/// The mean, spread and percentiles of cumulative regret after `assignments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegretPoint {
    pub assignments: u64,
    /// Simulated hours at that point, with `--arrival-rate`.
    pub hours: Option<f64>,
    pub mean: f64,
    /// Standard error of the mean across runs (sample sd / √runs).
    pub std_error: f64,
    pub p5: f64,
    pub p95: f64,
    /// The mean as a percentage of what always showing the best arm earns by then
    /// (assignments × best rate); `None` when the best rate is 0.
    pub percent_of_best: Option<f64>,
}

/// The 10th, 50th and 90th percentiles of a quantity over runs (Hyndman & Fan type 7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        (!values.is_empty()).then(|| Self {
            p10: quantile(values, 0.1),
            p50: quantile(values, 0.5),
            p90: quantile(values, 0.9),
        })
    }
}

/// How often an arm led at the horizon in the runs that declared no winner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderShare {
    pub id: String,
    /// Has the highest true rate.
    pub best: bool,
    /// Share of the undecided runs in which it had the highest P(best) at the horizon.
    pub share: f64,
}

/// Per-arm true rate and mean traffic share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmSummary {
    pub id: String,
    pub true_rate: f64,
    pub best: bool,
    pub traffic_share: f64,
}

/// How the stopping rule fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoppingSummary {
    /// The rule was evaluated every this many assignments.
    pub evaluate_every: u64,
    /// Share of runs that declared a winner within the horizon.
    pub declared_share: f64,
    /// Among those, the share whose winner has the highest true rate (`None`: none declared).
    pub winner_is_best: Option<f64>,
    /// Assignments before the decision, over the runs that decided (`None`: none did).
    pub assignments_to_decision: Option<Spread>,
    /// The same in days, with `--arrival-rate`.
    pub days_to_decision: Option<Spread>,
    /// Which arm led (highest P(best)) at the horizon in the runs that declared no winner,
    /// most frequent first; empty when every run decided.
    pub undecided_leaders: Vec<LeaderShare>,
}

/// The forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub horizon: u64,
    pub seed: u64,
    pub update_every: u64,
    pub arrival_rate_per_hour: Option<f64>,
    pub conversion_delay: Option<String>,
    pub arms: Vec<ArmSummary>,
    /// Cumulative pseudo-regret Σ (p* − p_chosen), in conversions lost against always
    /// showing the best arm, at 1-2-5 checkpoints and the horizon.
    pub regret: Vec<RegretPoint>,
    /// Mean share of assignments that went to a best arm, over the run and over its last
    /// tenth.
    pub best_arm_share: f64,
    pub best_arm_share_last_tenth: f64,
    /// Share of conversions dropped because their delay exceeded the reward window (only
    /// with a conversion delay and an experiment file).
    pub conversions_outside_window: Option<f64>,
    pub stopping: Option<StoppingSummary>,
    /// Share of runs whose pick at the horizon (the declared winner, else the leader by
    /// P(best)) has the highest true rate: to set beside `even_split.picks_best`.
    pub final_pick_is_best: f64,
    /// A fixed-horizon test splitting the same horizon evenly (exact figures).
    pub even_split: EvenSplit,
    /// Conversions the bandit kept over the even split: the split's regret minus the
    /// bandit's mean regret at the horizon (negative: the bandit lost more).
    pub conversions_saved_vs_even_split: f64,
    /// Per arm, how often and how soon a guardrail halted it (empty without guardrails).
    pub halts: Vec<HaltSummary>,
    /// The sample-ratio check over the runs (only with `--confirm-rate`).
    pub srm: Option<super::confirm::SrmSummary>,
}

/// Runs `settings.runs` runs of `scenario` on `settings.threads` threads and summarises
/// them. Run r always uses the generator of (seed, r), and the summary reads the runs in
/// index order, so the result is the same for any thread count.
pub fn simulate(scenario: &Scenario, settings: &Settings) -> Result<Summary, SimError> {
    settings.check(scenario)?;
    let checkpoints = checkpoints(settings.horizon);
    let outcomes = run_all(scenario, settings, &checkpoints)?;
    Ok(summarise(scenario, settings, &checkpoints, &outcomes))
}

/// 10, 20, 50, 100, 200, 500, … below the horizon, then the horizon.
pub fn checkpoints(horizon: u64) -> Vec<u64> {
    let mut points = Vec::new();
    let mut decade: u64 = 10;
    'outer: loop {
        for factor in [1, 2, 5] {
            let Some(point) = decade.checked_mul(factor) else {
                break 'outer;
            };
            if point >= horizon {
                break 'outer;
            }
            points.push(point);
        }
        match decade.checked_mul(10) {
            Some(next) => decade = next,
            None => break,
        }
    }
    points.push(horizon);
    points
}

pub(super) fn run_all(
    scenario: &Scenario,
    settings: &Settings,
    checkpoints: &[u64],
) -> Result<Vec<RunOutcome>, SimError> {
    let next_run = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunOutcome, SimError>>>> =
        Mutex::new(vec![None; settings.runs]);
    let threads = settings.threads.clamp(1, settings.runs);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let run = next_run.fetch_add(1, Ordering::Relaxed);
                    if run >= settings.runs {
                        break;
                    }
                    let outcome = run_once(scenario, settings, checkpoints, run as u64);
                    // A poisoned lock only means another worker panicked; its slot stays
                    // empty and is reported below.
                    if let Ok(mut slots) = results.lock() {
                        slots[run] = Some(outcome);
                    }
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .map_err(|_| SimError::Invalid("a simulation thread panicked".to_owned()))?;
    slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| {
                Err(SimError::Invalid(
                    "a simulation thread stopped before finishing its run".to_owned(),
                ))
            })
        })
        .collect()
}

fn summarise(
    scenario: &Scenario,
    settings: &Settings,
    checkpoints: &[u64],
    outcomes: &[RunOutcome],
) -> Summary {
    let runs = outcomes.len() as f64;
    let horizon = settings.horizon as f64;
    let best_rate = scenario.best_rate();
    let hours = |assignments: u64| {
        settings
            .arrival_rate_per_hour
            .map(|_| settings.time_ms(assignments) as f64 / MS_PER_HOUR)
    };
    let regret = checkpoints
        .iter()
        .enumerate()
        .map(|(c, &assignments)| {
            let values: Vec<f64> = outcomes.iter().map(|o| o.regret_at[c]).collect();
            let (mean, std_error) = mean_and_std_error(&values);
            RegretPoint {
                assignments,
                hours: hours(assignments),
                mean,
                std_error,
                p5: quantile(&values, 0.05),
                p95: quantile(&values, 0.95),
                percent_of_best: percent_of(mean, assignments as f64 * best_rate),
            }
        })
        .collect::<Vec<RegretPoint>>();
    let arms = scenario
        .arms
        .iter()
        .enumerate()
        .map(|(k, arm)| ArmSummary {
            id: arm.id.clone(),
            true_rate: arm.rate,
            best: arm.rate == best_rate,
            traffic_share: outcomes
                .iter()
                .map(|o| o.arm_assignments[k] as f64 / horizon)
                .sum::<f64>()
                / runs,
        })
        .collect();
    let last_tenth = (settings.horizon / 10).max(1) as f64;
    let mean_of =
        |value: &dyn Fn(&RunOutcome) -> f64| outcomes.iter().map(value).sum::<f64>() / runs;
    let conversions: u64 = outcomes.iter().map(|o| o.conversions).sum();
    let rates: Vec<f64> = scenario.arms.iter().map(|arm| arm.rate).collect();
    let even_split = even_split(&rates, settings.horizon);
    let bandit_regret = regret.last().map_or(0.0, |point| point.mean);
    let picked_best = outcomes
        .iter()
        .filter(|o| {
            o.winner
                .map(|w| w.arm)
                .or(o.leader_at_end)
                .is_some_and(|k| scenario.arms[k].rate == best_rate)
        })
        .count() as f64;
    let outside: u64 = outcomes.iter().map(|o| o.conversions_outside_window).sum();
    Summary {
        runs: outcomes.len(),
        horizon: settings.horizon,
        seed: settings.seed,
        update_every: settings.update_every,
        arrival_rate_per_hour: settings.arrival_rate_per_hour,
        conversion_delay: settings.conversion_delay.map(|d| d.to_string()),
        arms,
        regret,
        best_arm_share: mean_of(&|o| o.best_assignments as f64 / horizon),
        best_arm_share_last_tenth: if settings.horizon >= 10 {
            mean_of(&|o| o.best_assignments_last_tenth as f64 / last_tenth)
        } else {
            mean_of(&|o| o.best_assignments as f64 / horizon)
        },
        conversions_outside_window: (settings.conversion_delay.is_some()
            && scenario.reward_window_ms.is_some())
        .then(|| {
            if conversions == 0 {
                0.0
            } else {
                outside as f64 / conversions as f64
            }
        }),
        stopping: scenario
            .stopping
            .map(|_| stopping_summary(scenario, settings, outcomes)),
        final_pick_is_best: picked_best / runs,
        conversions_saved_vs_even_split: even_split.regret - bandit_regret,
        even_split,
        halts: if scenario.guardrails.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<String> = scenario.arms.iter().map(|a| a.id.clone()).collect();
            guardrail::summarise(&ids, outcomes)
        },
        srm: super::confirm::srm_summary(
            scenario,
            &outcomes.iter().map(|o| o.srm_p_value).collect::<Vec<_>>(),
        ),
    }
}

fn stopping_summary(
    scenario: &Scenario,
    settings: &Settings,
    outcomes: &[RunOutcome],
) -> StoppingSummary {
    let best_rate = scenario.best_rate();
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.winner).collect();
    let declared = winners.len() as f64;
    let correct = winners
        .iter()
        .filter(|w| scenario.arms[w.arm].rate == best_rate)
        .count() as f64;
    let assignments: Vec<f64> = winners.iter().map(|w| w.assignments as f64).collect();
    let days: Vec<f64> = winners
        .iter()
        .map(|w| w.time_ms as f64 / MS_PER_DAY)
        .collect();
    let any = !winners.is_empty();
    let undecided: Vec<usize> = outcomes
        .iter()
        .filter(|o| o.winner.is_none())
        .filter_map(|o| o.leader_at_end)
        .collect();
    let mut undecided_leaders: Vec<LeaderShare> = scenario
        .arms
        .iter()
        .enumerate()
        .map(|(k, arm)| LeaderShare {
            id: arm.id.clone(),
            best: arm.rate == best_rate,
            share: undecided.iter().filter(|&&leader| leader == k).count() as f64
                / undecided.len().max(1) as f64,
        })
        .filter(|leader| leader.share > 0.0)
        .collect();
    // Most frequent first; the sort is stable, so ties keep the variant order.
    undecided_leaders.sort_by(|a, b| b.share.total_cmp(&a.share));
    StoppingSummary {
        evaluate_every: settings.evaluate_every(),
        declared_share: declared / outcomes.len().max(1) as f64,
        winner_is_best: any.then(|| correct / declared),
        assignments_to_decision: Spread::of(&assignments),
        days_to_decision: if settings.arrival_rate_per_hour.is_some() {
            Spread::of(&days)
        } else {
            None
        },
        undecided_leaders,
    }
}

/// Sample mean and its standard error s/√n (0 for a single value).
pub fn mean_and_std_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

/// The q-quantile by linear interpolation between order statistics (Hyndman & Fan 1996,
/// "Sample quantiles in statistical packages", definition 7, R's default): position
/// (n − 1)·q in the sorted values. NaN for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_1_2_5_per_decade_and_end_at_the_horizon() {
        assert_eq!(
            checkpoints(10_000),
            vec![10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]
        );
        assert_eq!(checkpoints(300), vec![10, 20, 50, 100, 200, 300]);
        assert_eq!(checkpoints(5), vec![5]);
        assert_eq!(*checkpoints(u64::MAX).last().unwrap(), u64::MAX);
    }

    #[test]
    fn quantiles_match_r_type_7() {
        // R: quantile(c(1, 2, 3, 4, 10), c(0.05, 0.5, 0.95)) = 1.2, 3.0, 8.8
        let values = [10.0, 2.0, 4.0, 1.0, 3.0];
        assert!((quantile(&values, 0.05) - 1.2).abs() < 1e-12);
        assert_eq!(quantile(&values, 0.5), 3.0);
        assert!((quantile(&values, 0.95) - 8.8).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_standard_error_is_the_sample_sd_over_root_n() {
        // sd(c(1, 2, 3, 4)) = 1.290994; / 2 = 0.645497
        let (mean, std_error) = mean_and_std_error(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mean, 2.5);
        assert!((std_error - 0.645_497_224_367_903).abs() < 1e-12);
    }
}
