//! The sample-ratio check under confirmed exposures, over many seeded runs: quiet at its
//! stated false-alarm rate when the page confirms every arm alike, loud when it drops one.

use crate::sim::{RateSpec, Scenario, Settings, run_once};

/// A Thompson bandit (Beta(1, 1), two arms with close rates, so the allocation keeps moving)
/// whose page confirms with `confirm`.
fn scenario(confirm: &str) -> Scenario {
    Scenario::bare(2, &RateSpec::parse("0.05,0.06").unwrap())
        .unwrap()
        .with_confirm_rates(&RateSpec::parse(confirm).unwrap())
        .unwrap()
}

fn p_values(scenario: &Scenario, runs: u64) -> Vec<Option<f64>> {
    // A snapshot refreshed every 20 assignments, as a busy server's 100 ms snapshot is.
    let settings = Settings {
        horizon: 400,
        runs: runs as usize,
        seed: 20_261_130,
        update_every: 20,
        threads: 1,
        ..Settings::default()
    };
    (0..runs)
        .map(|run| {
            run_once(scenario, &settings, &[settings.horizon], run)
                .unwrap()
                .srm_p_value
        })
        .collect()
}

fn share_below(p_values: &[Option<f64>], alpha: f64) -> f64 {
    p_values
        .iter()
        .filter(|p| p.is_some_and(|p| p < alpha))
        .count() as f64
        / p_values.len() as f64
}

#[test]
fn a_page_that_confirms_every_arm_alike_keeps_the_check_quiet_at_its_false_alarm_rate() {
    let runs = 2_000;
    let p = p_values(&scenario("0.8,0.8"), runs);
    assert!(p.iter().all(Option::is_some), "every run has enough data");
    // Under the null each run alerts with probability at most α (Pearson's test with the
    // summed allocation probabilities is conservative when the allocation moves: the
    // martingale's variance Σπ(1−π) is below the binomial one). Tolerance: three binomial
    // standard errors √(α(1−α)/runs).
    for alpha in [crate::stats::SRM_ALERT_P, 0.01, 0.05] {
        let share = share_below(&p, alpha);
        let se = (alpha * (1.0 - alpha) / runs as f64).sqrt();
        assert!(
            share <= alpha + 3.0 * se,
            "alerts at p < {alpha}: {share} of {runs} runs"
        );
    }
    // And the test is not asleep: the p-values spread over (0, 1) (a median near 1/2 for
    // a continuous null; the χ² approximation of a discrete count moves it a little).
    let mut sorted: Vec<f64> = p.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!((0.4..0.7).contains(&median), "median p-value {median}");
}

#[test]
fn a_page_that_drops_half_of_one_arms_confirmations_fires_in_most_runs() {
    let p = p_values(&scenario("0.8,0.4"), 200);
    // About 200 of 320 expected confirmations per arm: the check's power at this size is
    // well above 3/4 (the 400-assignment horizon keeps the test fast; it grows with N).
    let share = share_below(&p, crate::stats::SRM_ALERT_P);
    assert!(share > 0.75, "alerted in {share} of runs");
}

#[test]
fn without_confirmation_rates_no_check_is_simulated_and_the_streams_do_not_change() {
    let bare = Scenario::bare(2, &RateSpec::parse("0.05,0.06").unwrap()).unwrap();
    let all = bare
        .clone()
        .with_confirm_rates(&RateSpec::parse("1,1").unwrap())
        .unwrap();
    let settings = Settings {
        horizon: 300,
        runs: 1,
        seed: 3,
        threads: 1,
        ..Settings::default()
    };
    let plain = run_once(&bare, &settings, &[300], 0).unwrap();
    let confirmed = run_once(&all, &settings, &[300], 0).unwrap();
    assert_eq!(plain.srm_p_value, None);
    assert!(confirmed.srm_p_value.is_some());
    assert_eq!(plain.arm_exposures, plain.arm_assignments);
    // Confirming every assignment draws one number per assignment, so the runs differ, but
    // each counts all of its assignments.
    assert_eq!(confirmed.arm_exposures, confirmed.arm_assignments);
}

/// The simulator draws afresh for every assignment, which is exactly `assignment:
/// per_request`; so a per-request `on_render` experiment forecasts like the same experiment
/// with sticky units (each a new visitor), confirmation rates and sample-ratio check included.
#[test]
fn a_per_request_on_render_experiment_is_simulated_with_its_confirmation_rates() {
    let yaml = |assignment: &str| {
        format!(
            "id: e\ndescription: d\nowner: o\nstatus: running\nassignment: {assignment}\n\
             exposure: on_render\nconfirm_within: 10m\ndefault_variant: a\nvariants:\n  \
             - id: a\n    payload: 1\n  - id: b\n    payload: 2\n"
        )
    };
    let scenario = |assignment: &str| {
        let spec = crate::spec::parse_experiment(std::path::Path::new("e.yaml"), &yaml(assignment))
            .expect("per_request with on_render parses");
        Scenario::from_experiment(&spec, &RateSpec::parse("0.05,0.06").unwrap())
            .unwrap()
            .with_confirm_rates(&RateSpec::parse("a=0.9,b=0.3").unwrap())
            .unwrap()
    };
    let settings = Settings {
        horizon: 400,
        runs: 1,
        seed: 11,
        threads: 1,
        ..Settings::default()
    };
    let per_request = run_once(&scenario("per_request"), &settings, &[400], 0).unwrap();
    let sticky = run_once(&scenario("sticky"), &settings, &[400], 0).unwrap();
    assert_eq!(per_request.arm_assignments, sticky.arm_assignments);
    assert_eq!(per_request.arm_exposures, sticky.arm_exposures);
    assert_eq!(per_request.srm_p_value, sticky.srm_p_value);
    let p = per_request.srm_p_value.expect("a sample-ratio check");
    assert!(
        p < crate::stats::SRM_ALERT_P,
        "b loses 2/3 of its renders: p = {p}"
    );
    assert!(per_request.arm_exposures[1] < per_request.arm_assignments[1]);
}
