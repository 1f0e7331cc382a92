//! The statistics issue over HTTP: exact P(best) and loss in the stats, the stopping rule,
//! decay, credible levels, the sample-ratio check and history.

use serde_json::{Value, json};
use statrs::function::beta::ln_beta;

use crate::helpers::{STICKY, TestApp, assert_problem};

/// Evan Miller's closed form for P(B > A), A ~ Beta(a, b), B ~ Beta(c, d), integer c:
/// Σ_{i=0}^{c−1} B(a+i, b+d) / ((d+i) B(1+i, d) B(a, b)), summed in log space.
fn p_b_beats_a(a: f64, b: f64, c: f64, d: f64) -> f64 {
    (0..c as usize)
        .map(|i| {
            let i = i as f64;
            (ln_beta(a + i, b + d) - (d + i).ln() - ln_beta(1.0 + i, d) - ln_beta(a, b)).exp()
        })
        .sum()
}

/// Assigns `n` fresh units; returns (unit, variant) pairs.
fn assign_units(app: &TestApp, experiment: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let unit = format!("unit-{i}");
            let variant = app.assign(experiment, &unit)["variant"]
                .as_str()
                .unwrap()
                .to_owned();
            (unit, variant)
        })
        .collect()
}

fn reward_units(app: &TestApp, experiment: &str, units: &[&str]) {
    let events: Vec<Value> = units
        .iter()
        .map(|u| json!({"id": format!("conv-{u}"), "experiment": experiment, "unit": u}))
        .collect();
    let report = app.post_events(&Value::Array(events));
    assert_eq!(report["applied"], units.len(), "{report}");
}

#[test]
fn prob_best_and_expected_loss_match_the_two_arm_closed_forms() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let units = assign_units(&app, "headline", 40);
    // Reward every other unit of bold, none of control.
    let bold: Vec<&str> = units
        .iter()
        .filter(|(_, v)| v == "bold")
        .map(|(u, _)| u.as_str())
        .step_by(2)
        .collect();
    reward_units(&app, "headline", &bold);
    let arms = app.arms("headline");
    let (control, bold) = (&arms[0], &arms[1]);
    let shape = |arm: &Value| {
        (
            arm["posterior"]["alpha"].as_f64().unwrap(),
            arm["posterior"]["beta"].as_f64().unwrap(),
        )
    };
    let (a, b) = shape(control);
    let (c, d) = shape(bold);
    let p_bold = p_b_beats_a(a, b, c, d);
    assert!(
        (bold["prob_best"].as_f64().unwrap() - p_bold).abs() < 1e-6,
        "{bold} vs {p_bold}"
    );
    assert!((control["prob_best"].as_f64().unwrap() - (1.0 - p_bold)).abs() < 1e-6);
    // E[max(X − Y, 0)] = a/(a+b)·P(X′ > Y) − c/(c+d)·P(X > Y′), X′ ~ Beta(a+1, b), Y′ ~ Beta(c+1, d):
    // the loss of choosing bold (Y) when control is X.
    let loss_bold = a / (a + b) * (1.0 - p_b_beats_a(a + 1.0, b, c, d))
        - c / (c + d) * (1.0 - p_b_beats_a(a, b, c + 1.0, d));
    assert!(
        (bold["expected_loss"].as_f64().unwrap() - loss_bold).abs() < 1e-6,
        "{bold} vs {loss_bold}"
    );
}

fn with_stopping(on_winner: &str) -> String {
    format!(
        "{STICKY}stopping:\n  prob_best: 0.95\n  max_expected_loss: 0.01\n  min_exposures: 10\n  on_winner: {on_winner}\n"
    )
}

#[test]
fn before_a_winner_the_stats_list_every_unmet_condition_and_the_rules_thresholds() {
    let spec = format!(
        "{STICKY}stopping:\n  prob_best: 0.95\n  max_expected_loss: 0.01\n  min_exposures: 1000\n  min_duration: 10d\n"
    );
    let app = TestApp::spawn(&[("headline.yaml", &spec)]);
    assign_units(&app, "headline", 3);
    let stopping = app.get("/v1/experiments/headline").body["stopping"].clone();
    assert_eq!(stopping["status"], "collecting");
    assert_eq!(
        stopping["rule"],
        json!({"prob_best": 0.95, "max_expected_loss": 0.01, "min_exposures": 1000,
               "min_duration": "10d", "on_winner": "exploit"})
    );
    let detail = stopping["detail"].as_str().unwrap();
    // Two uniform-ish posteriors: the leader's loss is near E[max(X, Y)] − E[X] = 1/6.
    for part in [
        "10 more days (min_duration 10d)",
        " of 1,000 exposures on 'control'",
        " of 1,000 exposures on 'bold'",
        "P(best) 0.",
        " of 0.95 (leader '",
        " of 0.01 (leader '",
    ] {
        assert!(detail.contains(part), "{part:?} missing from {detail:?}");
    }
    let no_rule = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_eq!(
        no_rule.get("/v1/experiments/headline").body["stopping"]["rule"],
        Value::Null
    );
}

#[test]
fn the_stopping_rule_declares_a_durable_winner_and_exploit_shifts_traffic() {
    let mut app = TestApp::spawn(&[("headline.yaml", &with_stopping("exploit"))]);
    let before = app.get("/v1/experiments/headline");
    assert_eq!(before.body["stopping"]["status"], "collecting");
    assert!(
        before.body["stopping"]["detail"]
            .as_str()
            .unwrap()
            .contains("exposures")
    );
    let units = assign_units(&app, "headline", 120);
    let bold: Vec<&str> = units
        .iter()
        .filter(|(_, v)| v == "bold")
        .map(|(u, _)| u.as_str())
        .collect();
    assert!(
        bold.len() >= 10 && units.len() - bold.len() >= 10,
        "both arms explored"
    );
    reward_units(&app, "headline", &bold);
    let stats = app.get("/v1/experiments/headline").body;
    assert_eq!(
        stats["stopping"]["status"], "winner",
        "{}",
        stats["stopping"]
    );
    let decided = stats["stopping"]["decided"].clone();
    assert_eq!(decided["variant"], "bold");
    assert!(decided["prob_best"].as_f64().unwrap() >= 0.95);
    assert!(decided["expected_loss"].as_f64().unwrap() <= 0.01);
    assert_eq!(stats["stopping"]["still_holds"], true);
    // Exploit: bold gets everything but the floor (K·min_share = 0.1 uniform → 0.95).
    app.let_posterior_refresh();
    let bold_share = app.arm("headline", "bold")["traffic_share"]
        .as_f64()
        .unwrap();
    assert!((bold_share - 0.95).abs() < 1e-9, "{bold_share}");
    let n = 400.0;
    let new_bold = (0..n as usize)
        .filter(|i| app.assign("headline", &format!("late-{i}"))["variant"] == "bold")
        .count() as f64;
    let sigma = (0.95f64 * 0.05 / n).sqrt();
    assert!(
        (new_bold / n - 0.95).abs() <= 4.0 * sigma,
        "{}",
        new_bold / n
    );
    // The decision is durable and never rewritten.
    app.restart();
    let after = app.get("/v1/experiments/headline").body;
    assert_eq!(after["stopping"]["decided"], decided);
}

#[test]
fn report_mode_flags_the_winner_but_leaves_traffic_to_thompson() {
    let app = TestApp::spawn(&[("headline.yaml", &with_stopping("report"))]);
    let units = assign_units(&app, "headline", 120);
    let bold: Vec<&str> = units
        .iter()
        .filter(|(_, v)| v == "bold")
        .map(|(u, _)| u.as_str())
        .collect();
    reward_units(&app, "headline", &bold);
    let stats = app.get("/v1/experiments/headline").body;
    assert_eq!(stats["stopping"]["status"], "winner");
    // Thompson with the floor: 0.05 + 0.9·P(best), not the exploit share of 0.95.
    let bold_arm = stats["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["variant"] == "bold")
        .unwrap()
        .clone();
    let expected = 0.05 + 0.9 * bold_arm["prob_best"].as_f64().unwrap();
    assert!(
        (bold_arm["traffic_share"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{bold_arm}"
    );
}

#[test]
fn credible_level_is_configurable_and_checked() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    // No data: Beta(1, 1), whose equal-tailed interval at level L is ((1−L)/2, (1+L)/2).
    let arm = &app.get("/v1/experiments/headline?level=0.5").body["arms"][0];
    let ci = &arm["posterior"]["credible_interval"];
    assert_eq!(ci["level"], 0.5);
    assert!((ci["lower"].as_f64().unwrap() - 0.25).abs() < 1e-12, "{ci}");
    assert!((ci["upper"].as_f64().unwrap() - 0.75).abs() < 1e-12, "{ci}");
    assert_problem(
        &app.get("/v1/experiments/headline?level=1.5"),
        400,
        "between 0 and 1",
    );
    assert_problem(
        &app.get("/v1/experiments/headline?level=high"),
        400,
        "level",
    );
}

#[test]
fn decayed_counts_shrink_with_age_beside_the_raw_ones() {
    let yaml = STICKY.replace(
        "policy: { burn_in: 0, min_share: 0.05 }",
        "policy: { burn_in: 0, min_share: 0.05, half_life: 1s }",
    );
    let app = TestApp::spawn(&[("headline.yaml", &yaml)]);
    assign_units(&app, "headline", 20);
    let fresh: f64 = app
        .arms("headline")
        .iter()
        .map(|a| a["effective_exposures"].as_f64().unwrap())
        .sum();
    assert!(fresh > 10.0 && fresh <= 20.0, "{fresh}");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let arms = app.arms("headline");
    let raw: u64 = arms.iter().map(|a| a["exposures"].as_u64().unwrap()).sum();
    let aged: f64 = arms
        .iter()
        .map(|a| a["effective_exposures"].as_f64().unwrap())
        .sum();
    assert_eq!(raw, 20);
    // At least two half-lives have passed since every exposure.
    assert!(
        aged > 0.0 && aged <= fresh / 4.0 + 1e-9,
        "fresh {fresh}, aged {aged}"
    );
}

#[test]
fn the_sample_ratio_check_is_quiet_for_a_healthy_experiment() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assign_units(&app, "headline", 100);
    let stats = app.get("/v1/experiments/headline").body;
    let expected: f64 = stats["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["expected_exposures"].as_f64().unwrap())
        .sum();
    assert!(
        (expected - 100.0).abs() < 1e-9,
        "expected exposures add up to the exposures: {expected}"
    );
    let p = stats["srm"]["p_value"].as_f64().expect("a p-value");
    assert!(p > 0.001, "{p}");
    assert_eq!(stats["srm"]["alert"], false);
}

#[test]
fn history_points_are_stored_at_the_interval_and_filtered_by_since() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_HISTORY_INTERVAL", "1s")],
    );
    assign_units(&app, "headline", 10);
    std::thread::sleep(std::time::Duration::from_millis(2_600));
    let all = app.get("/v1/experiments/headline/history").body;
    let points = all["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{all}");
    let last = points.last().unwrap();
    assert_eq!(last["arms"].as_array().unwrap().len(), 2);
    let total: u64 = last["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["exposures"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
    let since = last["at_ms"].as_u64().unwrap();
    let recent = app
        .get(&format!("/v1/experiments/headline/history?since={since}"))
        .body;
    assert!(
        recent["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["at_ms"].as_u64().unwrap() >= since)
    );
    assert_problem(
        &app.get("/v1/experiments/headline/history?since=yesterday"),
        400,
        "since",
    );
}
