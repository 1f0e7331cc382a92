//! The delay-aware posterior against the naive one in simulation. The fast tests run a
//! scaled-down scenario on fixed seeds; the ignored one is the full-scale proof of the README
//! (`cargo test --release --lib sim::delay_compare -- --ignored --nocapture`).

use std::path::Path;

use super::*;
use crate::sim::{ConversionDelay, RateSpec};

const HOUR_MS: u64 = 3_600_000;

/// The experiment both posteriors run: burn-in 100, floor 2%, stop at P(best) ≥ 0.95 with
/// expected loss ≤ 0.001, not before one window has passed, then exploit.
fn scenario(window: &str, rates: &str, delays: [Option<ConversionDelay>; 2]) -> Scenario {
    let text = format!(
        "id: delayed\ndescription: d\nowner: o\nstatus: running\n\
         reward: {{ window: {window}, delay: auto }}\n\
         policy: {{ burn_in: 100, min_share: 0.02 }}\n\
         stopping: {{ prob_best: 0.95, max_expected_loss: 0.001, min_duration: {window}, on_winner: exploit }}\n\
         default_variant: control\n\
         variants:\n  - id: control\n    payload: {{}}\n  - id: bold\n    payload: {{}}\n"
    );
    let experiment = crate::spec::parse_experiment(Path::new("delayed.yaml"), &text).unwrap();
    let mut scenario =
        Scenario::from_experiment(&experiment, &RateSpec::parse(rates).unwrap()).unwrap();
    for (arm, delay) in scenario.arms.iter_mut().zip(delays) {
        arm.delay = delay;
    }
    scenario
}

fn settings(per_hour: f64, horizon: u64, runs: usize, seed: u64) -> Settings {
    Settings {
        horizon,
        runs,
        seed,
        update_every: 100,
        arrival_rate_per_hour: Some(per_hour),
        conversion_delay: None,
        threads: 2,
    }
}

fn exp_median(median_ms: u64) -> Option<ConversionDelay> {
    Some(ConversionDelay::Exponential {
        mean_ms: (median_ms as f64 / std::f64::consts::LN_2).round() as u64,
    })
}

/// Paired difference naive − corrected must exceed `sigmas` standard errors (the two
/// estimates' errors combined as if independent, which is conservative for paired seeds).
fn clearly_lower(lower: (f64, f64), higher: (f64, f64), sigmas: f64) -> bool {
    let se = (lower.1 * lower.1 + higher.1 * higher.1).sqrt();
    higher.0 - lower.0 > sigmas * se
}

#[test]
fn the_metric_counts_only_conversions_within_the_window() {
    let s = scenario(
        "1d",
        "control=0.05,bold=0.06",
        [None, exp_median(24 * HOUR_MS)],
    );
    let rates = metric_rates(&s, &settings(100.0, 10, 1, 1));
    assert_eq!(rates[0], 0.05);
    // Half of an exponential of median 1 day comes within 1 day (the mean is rounded to a
    // whole millisecond, a 1e-8 relative change).
    assert!((rates[1] - 0.03).abs() < 1e-9, "{rates:?}");
}

#[test]
fn a_later_converting_better_arm_is_found_faster_with_the_correction() {
    // Scaled down: 1 d window, control median 30 min, bold (better within the window) median
    // 8 h, 400 assignments an hour for 2 days, 40 runs.
    let within = ConversionDelay::Exponential {
        mean_ms: (8.0 * HOUR_MS as f64 / std::f64::consts::LN_2) as u64,
    }
    .within(24 * HOUR_MS);
    let bold_rate = 0.06 / within;
    let s = scenario(
        "1d",
        &format!("control=0.05,bold={bold_rate}"),
        [exp_median(HOUR_MS / 2), exp_median(8 * HOUR_MS)],
    );
    let comparison = compare_delay_correction(&s, &settings(400.0, 19_200, 40, 7)).unwrap();
    let (naive, corrected) = (&comparison.naive, &comparison.corrected);
    assert!(
        clearly_lower(
            (corrected.regret, corrected.regret_std_error),
            (naive.regret, naive.regret_std_error),
            2.0
        ),
        "{}",
        render_comparison(&comparison)
    );
    assert!(
        corrected.wrong_winner_share <= naive.wrong_winner_share,
        "{}",
        render_comparison(&comparison)
    );
}

#[test]
fn without_delays_the_correction_costs_nothing_measurable() {
    let s = scenario("1d", "control=0.05,bold=0.06", [None, None]);
    let comparison = compare_delay_correction(&s, &settings(400.0, 9_600, 40, 8)).unwrap();
    let (naive, corrected) = (&comparison.naive, &comparison.corrected);
    let se = (naive.regret_std_error.powi(2) + corrected.regret_std_error.powi(2)).sqrt();
    assert!(
        (corrected.regret - naive.regret).abs() <= 3.0 * se,
        "{}",
        render_comparison(&comparison)
    );
}

/// The proof in the README, at the scale: 5.0% (6 h median) against 5.5% (3 d
/// median), 7 d window, 10,000 assignments a day for 21 days, 200 runs; then equal delays and
/// no delay. Prints the tables. Minutes in a release build.
#[test]
#[ignore = "long: run with --release -- --ignored --nocapture"]
fn full_scale_delay_proof() {
    let day = 24 * HOUR_MS;
    let per_hour = 10_000.0 / 24.0;
    let horizon = 21 * 10_000;
    let late = exp_median(3 * day);
    let early = exp_median(6 * HOUR_MS);
    let within = late.unwrap().within(7 * day);
    // Rates within the window (the metric): 5.0% and 5.5%.
    let bold = 0.055 / within;
    let cases = [
        (
            "better arm converts later",
            format!("control=0.05,bold={bold}"),
            [early, late],
            11,
        ),
        (
            "equal delays",
            format!("control={},bold={bold}", 0.05 / within),
            [late, late],
            12,
        ),
        (
            "no delay",
            "control=0.05,bold=0.055".to_owned(),
            [None, None],
            13,
        ),
    ];
    for (name, rates, delays, seed) in cases {
        let s = scenario("7d", &rates, delays);
        let comparison =
            compare_delay_correction(&s, &settings(per_hour, horizon, 200, seed)).unwrap();
        println!("== {name}\n{}", render_comparison(&comparison));
    }
}
