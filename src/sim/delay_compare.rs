//! `banditd simulate --delay-correction both`: the same scenario, same seeds, with the naive
//! and the delay-aware posterior, side by side: regret, how often the stopping rule declared
//! a worse arm, and the reliability of P(best) (README, "Simulating delayed conversions").

use serde::Serialize;

use super::error::SimError;
use super::run::RunOutcome;
use super::scenario::{Scenario, Settings};
use super::summary::{checkpoints, mean_and_std_error, run_all};
use crate::stats::BaseDelay;

/// P(best) reliability bins: [0, 0.1), [0.1, 0.2), … [0.9, 1].
pub const RELIABILITY_BINS: usize = 10;

/// One bin of the reliability table: of the (run, day, arm) triples whose P(best) fell in
/// [lower, upper), the share whose arm was truly best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    pub mean_prob_best: Option<f64>,
    pub best_share: Option<f64>,
    /// Binomial standard error of `best_share` (the triples of one run are correlated, so
    /// read it as a lower bound).
    pub best_share_std_error: Option<f64>,
}

/// What one posterior achieved over the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PosteriorResult {
    pub posterior: &'static str,
    /// Cumulative regret at the horizon on the metric (conversions within the window lost
    /// against always the best arm).
    pub regret: f64,
    pub regret_std_error: f64,
    /// Share of runs in which the stopping rule declared a winner.
    pub declared_share: f64,
    /// Share of runs in which it declared an arm that is not the best, and its standard
    /// error across runs.
    pub wrong_winner_share: f64,
    pub wrong_winner_std_error: f64,
    pub reliability: Vec<ReliabilityBin>,
}

/// Both posteriors on the same scenario and seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DelayComparison {
    pub runs: usize,
    pub horizon: u64,
    /// Every arm's rate on the metric (converted within the window), in variant order.
    pub metric_rates: Vec<f64>,
    pub naive: PosteriorResult,
    pub corrected: PosteriorResult,
}

/// Runs `scenario` twice: naive, and delay-aware (its own `reward.delay` model, or `auto`
/// when it has none).
pub fn compare_delay_correction(
    scenario: &Scenario,
    settings: &Settings,
) -> Result<DelayComparison, SimError> {
    settings.check(scenario)?;
    let points = checkpoints(settings.horizon);
    let naive = Scenario {
        delay_correction: None,
        ..scenario.clone()
    };
    let corrected = Scenario {
        delay_correction: Some(scenario.delay_correction.unwrap_or(BaseDelay::Learn)),
        ..scenario.clone()
    };
    let naive_runs = run_all(&naive, settings, &points)?;
    let corrected_runs = run_all(&corrected, settings, &points)?;
    let metric = metric_rates(scenario, settings);
    Ok(DelayComparison {
        runs: settings.runs,
        horizon: settings.horizon,
        naive: result("naive", &metric, &naive_runs),
        corrected: result("delay-aware", &metric, &corrected_runs),
        metric_rates: metric,
    })
}

/// Every arm's rate on the metric the server measures: converted within the reward window.
/// A conversion later than the window is rejected, so an arm whose users convert late can
/// be the better arm eventually and the worse one on the metric; the comparison judges
/// "best", regret and wrong winners by this rate.
pub fn metric_rates(scenario: &Scenario, settings: &Settings) -> Vec<f64> {
    (0..scenario.arms.len())
        .map(|k| {
            let within = match (scenario.delay_of(k, settings), scenario.reward_window_ms) {
                (Some(delay), Some(window_ms)) => delay.within(window_ms),
                _ => 1.0,
            };
            scenario.arms[k].rate * within
        })
        .collect()
}

fn result(posterior: &'static str, metric: &[f64], runs: &[RunOutcome]) -> PosteriorResult {
    let best_rate = metric.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let is_best = |arm: usize| metric.get(arm).is_some_and(|&rate| rate == best_rate);
    // Σ_k N_k·(p*_W − p_k,W): pseudo-regret on the metric.
    let regrets: Vec<f64> = runs
        .iter()
        .map(|run| {
            run.arm_assignments
                .iter()
                .zip(metric)
                .map(|(&n, &rate)| n as f64 * (best_rate - rate))
                .sum()
        })
        .collect();
    let (regret, regret_std_error) = mean_and_std_error(&regrets);
    let declared: Vec<f64> = runs
        .iter()
        .map(|run| f64::from(u8::from(run.winner.is_some())))
        .collect();
    let wrong: Vec<f64> = runs
        .iter()
        .map(|run| f64::from(u8::from(run.winner.is_some_and(|w| !is_best(w.arm)))))
        .collect();
    let (wrong_winner_share, wrong_winner_std_error) = mean_and_std_error(&wrong);
    let mut sums = vec![(0u64, 0.0f64, 0u64); RELIABILITY_BINS];
    for run in runs {
        for day in &run.daily_prob_best {
            for (arm, &p) in day.iter().enumerate() {
                let bin = ((p * RELIABILITY_BINS as f64) as usize).min(RELIABILITY_BINS - 1);
                let slot = &mut sums[bin];
                slot.0 += 1;
                slot.1 += p;
                slot.2 += u64::from(is_best(arm));
            }
        }
    }
    let reliability = sums
        .iter()
        .enumerate()
        .map(|(bin, &(count, p_sum, hits))| {
            let n = count as f64;
            let share = (count > 0).then(|| hits as f64 / n);
            ReliabilityBin {
                lower: bin as f64 / RELIABILITY_BINS as f64,
                upper: (bin + 1) as f64 / RELIABILITY_BINS as f64,
                count,
                mean_prob_best: (count > 0).then(|| p_sum / n),
                best_share: share,
                best_share_std_error: share.map(|s| (s * (1.0 - s) / n).sqrt()),
            }
        })
        .collect();
    PosteriorResult {
        posterior,
        regret,
        regret_std_error,
        declared_share: mean_and_std_error(&declared).0,
        wrong_winner_share,
        wrong_winner_std_error,
        reliability,
    }
}

/// The comparison as a plain-text table.
pub fn render_comparison(comparison: &DelayComparison) -> String {
    let rates: Vec<String> = comparison
        .metric_rates
        .iter()
        .map(|r| format!("{:.4}", r))
        .collect();
    let mut out = format!(
        "{} runs of {} assignments, naive vs delay-aware posterior (same seeds)\n\
         rates within the reward window (the metric): {}\n\n",
        comparison.runs,
        comparison.horizon,
        rates.join(", ")
    );
    out.push_str(&format!(
        "{:<12} {:>22} {:>10} {:>24}\n",
        "posterior", "regret ± SE", "declared", "declared worse ± SE"
    ));
    for r in [&comparison.naive, &comparison.corrected] {
        out.push_str(&format!(
            "{:<12} {:>22} {:>9.1}% {:>24}\n",
            r.posterior,
            format!("{:.1} ± {:.1}", r.regret, r.regret_std_error),
            100.0 * r.declared_share,
            format!(
                "{:.1}% ± {:.1}%",
                100.0 * r.wrong_winner_share,
                100.0 * r.wrong_winner_std_error
            ),
        ));
    }
    out.push_str("\nP(best) reliability (daily, every arm): mean P(best) → share truly best\n");
    out.push_str(&format!(
        "{:<12} {:>30} {:>30}\n",
        "P(best) bin", "naive", "delay-aware"
    ));
    let cell =
        |bin: &ReliabilityBin| match (bin.mean_prob_best, bin.best_share, bin.best_share_std_error)
        {
            (Some(p), Some(s), Some(se)) => {
                format!("{p:.3} → {s:.3} ± {se:.3} (n={})", bin.count)
            }
            _ => "-".to_owned(),
        };
    for (n, c) in comparison
        .naive
        .reliability
        .iter()
        .zip(&comparison.corrected.reliability)
    {
        out.push_str(&format!(
            "{:<12} {:>30} {:>30}\n",
            format!("[{:.1}, {:.1})", n.lower, n.upper),
            cell(n),
            cell(c)
        ));
    }
    out
}

#[cfg(test)]
#[path = "delay_compare_tests.rs"]
mod tests;
