use super::*;
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

const HOUR_MS: u64 = DELAY_BIN_MS;

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

/// The arm of `scripts/stats_references.py`, section "delay": window 3 h (10 delay bins), now
/// 10 h.
fn reference_arm() -> DelayCounts {
    DelayCounts {
        cohorts: vec![(7, 300.0), (8, 300.0), (9, 400.0)],
        delays: vec![5.0, 4.0, 6.0, 5.0, 6.0, 5.0, 4.0, 5.0, 15.0, 5.0],
        exposures: 2000.0,
    }
}

/// F(x) of an exponential of median 1 h conditioned on a 3 h window, x in hours.
fn exponential_cdf(x_hours: f64) -> f64 {
    (1.0 - 0.5f64.powf(x_hours)) / (1.0 - 0.125)
}

/// The grid's bin edges in hours up to a 3 h window.
const EDGES_H: [f64; 11] = [
    0.0,
    1.0 / 60.0,
    2.0 / 60.0,
    5.0 / 60.0,
    10.0 / 60.0,
    20.0 / 60.0,
    0.5,
    0.75,
    1.0,
    2.0,
    3.0,
];

#[test]
fn delays_fall_into_minute_bins_in_the_first_hour_and_hourly_bins_after() {
    assert_eq!(delay_bin(0), 0);
    assert_eq!(delay_bin(59_999), 0);
    assert_eq!(delay_bin(60_000), 1);
    assert_eq!(delay_bin(299_999), 2);
    assert_eq!(delay_bin(3_599_999), 7);
    assert_eq!(delay_bin(HOUR_MS), 8);
    assert_eq!(delay_bin(2 * HOUR_MS - 1), 8);
    assert_eq!(delay_bin(2 * HOUR_MS), 9);
    assert_eq!(bin_count(3 * HOUR_MS), 10);
    assert_eq!(bin_count(7 * 24 * HOUR_MS), 8 + 7 * 24 - 1);
    assert_eq!(bin_count(30 * 60_000), 6);
    assert_eq!(bin_count(1), 1);
}

#[test]
fn an_exponential_law_on_the_grid_has_its_closed_form_bins() {
    let law = DelayLaw::exponential(HOUR_MS as f64, 3 * HOUR_MS);
    let bins = law.bin_probabilities();
    assert_eq!(bins.len(), 10);
    for (j, actual) in bins.iter().enumerate() {
        let expected = exponential_cdf(EDGES_H[j + 1]) - exponential_cdf(EDGES_H[j]);
        close(*actual, expected, 1e-14);
    }
    // The first hour holds 4/7, the next two 2/7 and 1/7; G is linear inside a bin.
    close(law.completion(1.5 * HOUR_MS as f64), 5.0 / 7.0, 1e-14);
    close(law.completion(0.0), 0.0, 0.0);
    close(law.completion(4.0 * HOUR_MS as f64), 1.0, 0.0);
    // The median lies in the 45–60 minute bin, by linear interpolation between its ends.
    let (low, high) = (exponential_cdf(0.75), exponential_cdf(1.0));
    let expected = 0.75 + 0.25 * (0.5 - low) / (high - low);
    close(law.quantile_ms(0.5) / HOUR_MS as f64, expected, 1e-9);
    // The mean of G over ages [1 h, 2 h] is the midpoint of a linear piece: 4/7 + 1/7.
    close(
        law.mean_completion(HOUR_MS as f64, 2.0 * HOUR_MS as f64),
        5.0 / 7.0,
        1e-14,
    );
}

#[test]
fn a_uniform_law_has_linear_completion_and_quantiles() {
    // Probabilities proportional to the bins' widths: uniform on the window.
    let window = 10 * HOUR_MS;
    let widths: Vec<f64> = (0..bin_count(window))
        .map(|j| (bin_start_ms(j + 1).min(window) - bin_start_ms(j)) as f64)
        .collect();
    let law = DelayLaw::from_bin_probabilities(window, &widths);
    close(law.completion(2.5 * HOUR_MS as f64), 0.25, 1e-14);
    close(law.completion(0.1 * HOUR_MS as f64), 0.01, 1e-14);
    close(law.quantile_ms(0.5), 5.0 * HOUR_MS as f64, 1e-6);
    close(law.quantile_ms(0.9), 9.0 * HOUR_MS as f64, 1e-6);
    close(law.mean_completion(0.0, 2.0 * HOUR_MS as f64), 0.1, 1e-14);
}

#[test]
fn a_window_off_the_grid_ends_in_a_short_last_bin() {
    // 90 minutes: the last bin is [1 h, 1.5 h); mass is per bin, not per hour.
    let window = 90 * 60_000;
    assert_eq!(bin_count(window), 9);
    let mut probabilities = vec![0.0; 9];
    probabilities[7] = 1.0;
    probabilities[8] = 1.0;
    let law = DelayLaw::from_bin_probabilities(window, &probabilities);
    close(law.completion(75.0 * 60_000.0), 0.75, 1e-14);
    close(law.quantile_ms(1.0), window as f64, 1e-6);
}

#[test]
fn complete_cohorts_give_the_dirichlet_posterior_mode_in_closed_form() {
    // Every exposure is older than the window: M_j = N, θ = D/N, and the mode is
    // (D_j + κ·g_j) / (D + κ) for the experiment, then again with the experiment's law as g.
    let histogram = |first: f64, second: f64, third: f64| {
        let mut delays = vec![0.0; 10];
        delays[0] = first;
        delays[8] = second;
        delays[9] = third;
        delays
    };
    let arms = vec![
        DelayCounts {
            cohorts: vec![],
            delays: histogram(30.0, 20.0, 10.0),
            exposures: 1000.0,
        },
        DelayCounts {
            cohorts: vec![],
            delays: histogram(2.0, 0.0, 8.0),
            exposures: 500.0,
        },
    ];
    let base = BaseDelay::ExponentialMedian { median_ms: HOUR_MS };
    let (experiment, fits) = fit_delays(&arms, base, 3 * HOUR_MS, 100 * HOUR_MS)
        .unwrap()
        .unwrap();
    let kappa = BASE_LAW_CONVERSIONS;
    let g: Vec<f64> = (0..10)
        .map(|j| exponential_cdf(EDGES_H[j + 1]) - exponential_cdf(EDGES_H[j]))
        .collect();
    let pooled = histogram(32.0, 20.0, 18.0);
    let expected: Vec<f64> = (0..10)
        .map(|j| (pooled[j] + kappa * g[j]) / (70.0 + kappa))
        .collect();
    for (actual, expected) in experiment.bin_probabilities().iter().zip(&expected) {
        close(*actual, *expected, 1e-12);
    }
    // No recent cohort: nothing is pending.
    assert_eq!(fits[0].pending_exposures, 0.0);
    assert_eq!(fits[1].observed_conversions, 10.0);
}

#[test]
fn an_arm_without_conversions_follows_the_experiments_law() {
    let silent = DelayCounts {
        cohorts: vec![(99, 50.0)],
        delays: vec![0.0; 10],
        exposures: 50.0,
    };
    let base = BaseDelay::ExponentialMedian { median_ms: HOUR_MS };
    let (_, fits) = fit_delays(&[silent], base, 3 * HOUR_MS, 100 * HOUR_MS)
        .unwrap()
        .unwrap();
    for (j, actual) in fits[0].law.bin_probabilities().iter().enumerate() {
        let expected = exponential_cdf(EDGES_H[j + 1]) - exponential_cdf(EDGES_H[j]);
        close(*actual, expected, 1e-14);
    }
    // The bin's ages spread over [0, 1 h]: pending is 50 times 1 − (mean of G over the first
    // hour); G is piecewise linear through the exponential's values at the edges, so its
    // mean is the trapezoid rule over the edges.
    let mut mean = 0.0;
    for j in 0..8 {
        let width = EDGES_H[j + 1] - EDGES_H[j];
        mean += width * (exponential_cdf(EDGES_H[j]) + exponential_cdf(EDGES_H[j + 1])) / 2.0;
    }
    close(fits[0].pending_exposures, 50.0 * (1.0 - mean), 1e-9);
}

#[test]
fn truncated_cohorts_match_the_high_precision_posterior_mode() {
    // `python3 scripts/stats_references.py`, section "delay" (mpmath, Newton on the Lagrange
    // conditions of the penalised likelihood, 30 digits).
    let base = BaseDelay::ExponentialMedian { median_ms: HOUR_MS };
    let (experiment, fits) = fit_delays(&[reference_arm()], base, 3 * HOUR_MS, 10 * HOUR_MS)
        .unwrap()
        .unwrap();
    let reference_experiment = [
        0.05696562704249163,
        0.04622917586075688,
        0.07376301216144136,
        0.06848522542235683,
        0.09250654484161679,
        0.08072276939266015,
        0.07875813223474534,
        0.08973829249913245,
        0.2854632011858469,
        0.12736801935895165,
    ];
    for (actual, expected) in experiment
        .bin_probabilities()
        .iter()
        .zip(reference_experiment)
    {
        close(*actual, expected, 1e-10);
    }
    // The arm's own median (0.70477 h) shrunk toward the stated 1 h: 0.76919 h, then the
    // Dirichlet mode on that base. The median is a maximiser found by golden-section search,
    // so it is known to about √ε relative (a smooth maximum is flat to second order); 1e-8
    // on the law is what that allows.
    let reference_arm_law = [
        0.057887904940479185,
        0.04707691126009679,
        0.07586015574691735,
        0.07137035904303794,
        0.09695897379048539,
        0.08386794143688035,
        0.08137873864344129,
        0.09066233323695783,
        0.2793236105533843,
        0.11561307134831961,
    ];
    for (actual, expected) in fits[0]
        .law
        .bin_probabilities()
        .iter()
        .zip(reference_arm_law)
    {
        close(*actual, expected, 1e-8);
    }
    // Σ cohorts · (1 − mean of G over the cohort's ages), mpmath quadrature; within the √ε
    // precision of the fitted median, as the law above.
    close(fits[0].pending_exposures, 333.6518024114064, 1e-5);
}

#[test]
fn the_exponential_fit_matches_the_high_precision_maximum_likelihood_median() {
    // `scripts/stats_references.py`, section "delay": 0.7047682881821637 h.
    let median = fit_exponential_median(&[reference_arm()], 3 * HOUR_MS, 10 * HOUR_MS).unwrap();
    close(median / HOUR_MS as f64, 0.7047682881821637, 1e-7);
    assert!(fit_exponential_median(&[DelayCounts::default()], HOUR_MS, HOUR_MS).is_none());
}

#[test]
fn learning_without_a_conversion_leaves_the_posterior_naive() {
    let arm = DelayCounts {
        cohorts: vec![(0, 10.0)],
        delays: vec![],
        exposures: 10.0,
    };
    assert!(
        fit_delays(&[arm], BaseDelay::Learn, HOUR_MS, HOUR_MS / 2)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        fit_delays(&[], BaseDelay::Learn, 0, 0).unwrap_err(),
        StatsError::EmptyWindow
    );
}

#[test]
fn garbage_counts_are_treated_as_no_evidence() {
    let arm = DelayCounts {
        cohorts: vec![(9, f64::NAN), (8, -5.0), (u64::MAX, 3.0)],
        delays: vec![f64::INFINITY, 2.0, -1.0, 7.0, 9.0],
        exposures: f64::NAN,
    };
    let (law, fits) = fit_delays(&[arm], BaseDelay::Learn, 3 * HOUR_MS, 10 * HOUR_MS)
        .unwrap()
        .unwrap();
    assert!(law.bin_probabilities().iter().all(|p| p.is_finite()));
    assert!(fits[0].pending_exposures.is_finite());
    assert!(fits[0].pending_exposures >= 0.0);
}

/// One synthetic stream: `per_hour` exposures an hour for `hours`, each converting with
/// probability `rate` after an exponential delay of median `median_h` hours; conversions
/// after the window are not counted (the metric). Returns the arm's counts at the end and
/// the conversions that have arrived.
fn stream(
    seed: u64,
    rate: f64,
    median_h: f64,
    hours: u64,
    per_hour: u64,
    window: u64,
) -> (DelayCounts, f64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let now = hours * HOUR_MS;
    let mut counts = DelayCounts {
        cohorts: Vec::new(),
        delays: vec![0.0; bin_count(window)],
        exposures: 0.0,
    };
    let mut arrived = 0.0;
    for hour in 0..hours {
        counts.cohorts.push((hour, per_hour as f64));
        counts.exposures += per_hour as f64;
        for i in 0..per_hour {
            let assigned = hour * HOUR_MS + i * HOUR_MS / per_hour;
            if rng.random::<f64>() >= rate {
                continue;
            }
            let delay = -(median_h / std::f64::consts::LN_2) * (1.0 - rng.random::<f64>()).ln();
            let delay_ms = (delay * HOUR_MS as f64) as u64;
            if delay_ms <= window && assigned + delay_ms <= now {
                counts.delays[delay_bin(delay_ms)] += 1.0;
                arrived += 1.0;
            }
        }
    }
    (counts, arrived)
}

#[test]
fn the_corrected_rate_is_unbiased_while_the_naive_rate_is_biased_low() {
    // A 7-day window, two days of traffic, exponential delays of median 1 day: most
    // conversions have not arrived. θ_W = P(convert within W) = 0.1·(1 − 2^−7).
    let window = 7 * 24 * HOUR_MS;
    let theta = 0.1 * (1.0 - 0.5f64.powi(7));
    let (counts, arrived) = stream(11, 0.1, 24.0, 48, 2000, window);
    let now = 48 * HOUR_MS;
    // With the true law, E[R] = θ·N_eff exactly (up to the bin-midpoint ages).
    let truth = DelayLaw::exponential(24.0 * HOUR_MS as f64, window);
    let effective = counts.exposures - pending_exposures(&truth, &counts, now);
    let corrected = arrived / effective;
    // Binomial standard error of R/N_eff at the expected R.
    let se = (theta * effective).sqrt() / effective;
    close(corrected, theta, 4.0 * se);
    let naive = arrived / counts.exposures;
    assert!(theta - naive > 20.0 * se, "naive {naive} vs {theta}");
    // Learnt from the data (no model given), the estimate is still within its error: the
    // exponential fit extrapolates the unobserved tail.
    let (_, fits) = fit_delays(std::slice::from_ref(&counts), BaseDelay::Learn, window, now)
        .unwrap()
        .unwrap();
    let learnt = arrived / (counts.exposures - fits[0].pending_exposures);
    close(learnt, theta, 6.0 * se);
}

#[test]
fn without_delays_the_correction_only_touches_the_current_hour() {
    // Every conversion arrives within the first minute, so only exposures younger than a
    // minute are pending: of the current hour bin (30 minutes elapsed, 1000 exposures spread
    // over them), the youngest minute holds 1000/30, and half of it on average is pending.
    let window = 7 * 24 * HOUR_MS;
    let arm = DelayCounts {
        cohorts: vec![(98, 1000.0), (99, 1000.0)],
        delays: vec![500.0],
        exposures: 10_000.0,
    };
    let now = 99 * HOUR_MS + HOUR_MS / 2;
    let (_, fits) = fit_delays(&[arm], BaseDelay::Learn, window, now)
        .unwrap()
        .unwrap();
    // The Dirichlet prior's 20 pseudo-conversions against 500 spread 4% of the law over
    // the next minutes, hence the tolerance.
    let pending = fits[0].pending_exposures;
    close(pending, 1000.0 / 30.0 / 2.0, 2.0);
    let median = fits[0].law.quantile_ms(0.5);
    assert!(median <= 60_000.0, "{median}");
}

/// The uniform law on [0, W] (bin probabilities proportional to the bins' widths), whose CDF
/// a/W the grid represents exactly.
fn uniform_law(window_ms: u64) -> DelayLaw {
    let widths: Vec<f64> = (0..bin_count(window_ms))
        .map(|j| edge_ms(j + 1, window_ms) - edge_ms(j, window_ms))
        .collect();
    DelayLaw::from_bin_probabilities(window_ms, &widths)
}

#[test]
fn pending_decayed_exposures_match_the_closed_form_under_a_uniform_law() {
    let hour = DELAY_BIN_MS as f64;
    let window_ms = 7 * 24 * DELAY_BIN_MS;
    let w = window_ms as f64;
    let law = uniform_law(window_ms);
    let half_life_ms = 2 * 24 * DELAY_BIN_MS;
    let k = std::f64::consts::LN_2 / half_life_ms as f64;
    // ∫ (1 − a/W)·e^(−k·a) da = e^(−k·a)·(1/(W·k²) − (1 − a/W)/k).
    let antiderivative = |a: f64| (-k * a).exp() * (1.0 / (w * k * k) - (1.0 - a / w) / k);
    let bin = 500_000u64;
    // Ages of the cohort's exposures: [10 h, 11 h] (a whole hour), and the cohort of the hour
    // now running, [0, 20 min].
    let now_ms = (bin + 11) * DELAY_BIN_MS;
    let fresh_now = now_ms + 20 * 60_000;
    for (now, cohort, a0, a1) in [
        (now_ms, bin, 10.0 * hour, 11.0 * hour),
        (fresh_now, bin + 11, 0.0, 20.0 * 60_000.0),
    ] {
        let counts = DelayCounts {
            cohorts: vec![(cohort, 40.0)],
            delays: vec![],
            exposures: 100.0,
        };
        let expected = 40.0 * (antiderivative(a1) - antiderivative(a0)) / (a1 - a0);
        let got = pending_decayed_exposures(&law, &counts, now, Some(half_life_ms));
        assert!(
            (got - expected).abs() < 1e-9 * expected,
            "ages [{a0}, {a1}]: {got} against {expected}"
        );
    }
}

#[test]
fn pending_decayed_exposures_without_decay_are_the_pending_exposures() {
    let window_ms = 7 * 24 * DELAY_BIN_MS;
    let law = DelayLaw::exponential(2.0 * 24.0 * 3_600_000.0, window_ms);
    let now_ms = 1_700_000_000_000;
    let counts = DelayCounts {
        cohorts: (0..30).map(|h| (now_ms / DELAY_BIN_MS - h, 10.0)).collect(),
        delays: vec![],
        exposures: 1_000.0,
    };
    let plain = pending_exposures(&law, &counts, now_ms);
    assert_eq!(
        pending_decayed_exposures(&law, &counts, now_ms, None),
        plain
    );
    // A half-life of a million years decays nothing measurable.
    let slow = pending_decayed_exposures(&law, &counts, now_ms, Some(1 << 55));
    assert!(
        (slow - plain).abs() < 1e-6 * plain,
        "{slow} against {plain}"
    );
}
