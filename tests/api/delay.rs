//! The delay-aware posterior over real HTTP: a cold-start model `delay: {median: 2d}` with a
//! 7 d window, fresh exposures and no conversion yet. Each exposure then counts as G(age) of a
//! trial, with G the exponential law truncated at the window, so the stats must show the
//! corrected N_eff (and beta) of the closed form, and the naive figures beside them. A server
//! that ignored the correction would show beta = 1 + N.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::redis_harness::RedisServer;

const DELAYED: &str = r#"
id: signup
description: Which page makes people sign up within a week?
owner: growth
status: running
assignment: sticky
reward: { window: 7d, delay: { median: 2d } }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: control
variants:
  - id: control
    payload: { page: "a" }
  - id: bold
    payload: { page: "b" }
"#;

const HOUR_MS: f64 = 3_600_000.0;
const MEDIAN_MS: f64 = 2.0 * 24.0 * HOUR_MS;
const WINDOW_MS: f64 = 7.0 * 24.0 * HOUR_MS;

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// Truncated exponential CDF F(a) = (1 − e^(−λa)) / (1 − e^(−λW)), and the mean of F over
/// ages uniform on [0, A]: (A − (1 − e^(−λA))/λ) / (A·(1 − e^(−λW))).
fn mean_completion(age_span_ms: f64) -> f64 {
    let rate = std::f64::consts::LN_2 / MEDIAN_MS;
    let whole = 1.0 - (-rate * WINDOW_MS).exp();
    (age_span_ms - (1.0 - (-rate * age_span_ms).exp()) / rate) / (age_span_ms * whole)
}

/// The delay by which a share p of within-window conversions arrives under that law.
fn quantile_ms(p: f64) -> f64 {
    let rate = std::f64::consts::LN_2 / MEDIAN_MS;
    let whole = 1.0 - (-rate * WINDOW_MS).exp();
    -(1.0 - p * whole).ln() / rate
}

fn num(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn check(app: &TestApp) {
    // All exposures in one hourly cohort: start clear of an hour's end.
    let into_hour = now_ms() % HOUR_MS;
    if into_hour > HOUR_MS - 60_000.0 {
        std::thread::sleep(std::time::Duration::from_millis(
            (HOUR_MS - into_hour) as u64 + 1_000,
        ));
    }
    let cohort_start = (now_ms() / HOUR_MS).floor() * HOUR_MS;
    for n in 0..40 {
        app.assign("signup", &format!("u{n}"));
    }
    app.let_posterior_refresh();
    let report = app.get("/v1/experiments/signup");
    assert_eq!(report.status, 200, "{}", report.body);
    let as_of = num(&report.body["as_of_ms"]);
    assert!(as_of < cohort_start + HOUR_MS, "the cohort's hour ended");
    // Exposures of the running hour are read as spread over its elapsed part.
    let span = as_of - cohort_start;
    let completion = mean_completion(span);
    // The grid's CDF is F interpolated linearly between bin edges (at most 15 min apart in
    // the first hour), which departs from F by at most h²·max|F''|/8 = h²·λ²/(8·(1 − e^(−λW))).
    let rate = std::f64::consts::LN_2 / MEDIAN_MS;
    let h = 15.0 * 60_000.0;
    let tolerance = h * h * rate * rate / (8.0 * (1.0 - (-rate * WINDOW_MS).exp()));
    let mut total = 0.0;
    for arm in report.body["arms"].as_array().unwrap() {
        let n = num(&arm["exposures"]);
        total += n;
        let delay = &arm["delay"];
        assert!(delay.is_object(), "no delay correction: {arm}");
        let corrected = num(&arm["effective_exposures"]);
        assert!(
            (corrected - n * completion).abs() <= n * tolerance + 1e-9,
            "N_eff {corrected} against {n}·{completion} (cohort span {span} ms): {arm}"
        );
        let beta = num(&arm["posterior"]["beta"]);
        assert!((beta - (1.0 + n * completion)).abs() <= n * tolerance + 1e-9);
        assert_eq!(num(&arm["posterior"]["alpha"]), 1.0);
        // The naive figures count every exposure as a whole trial.
        assert_eq!(num(&delay["naive"]["exposures"]), n);
        assert_eq!(num(&delay["naive"]["beta"]), 1.0 + n);
        let pending = num(&delay["pending_exposures"]);
        assert!((pending - n * (1.0 - completion)).abs() <= n * tolerance + 1e-9);
        for (field, p) in [("delay_median_ms", 0.5), ("delay_p90_ms", 0.9)] {
            let expected = quantile_ms(p);
            let got = num(&delay[field]);
            assert!(
                (got - expected).abs() < 1e-3 * expected,
                "{field}: {got} against {expected}"
            );
        }
    }
    assert_eq!(total, 40.0);
}

#[test]
fn fresh_exposures_count_as_the_closed_form_share_of_a_trial_under_a_stated_delay_model() {
    let app = TestApp::spawn(&[("signup.yaml", DELAYED)]);
    check(&app);
}

#[test]
fn the_redis_backend_corrects_fresh_exposures_by_the_same_closed_form() {
    let redis = RedisServer::start();
    let app = TestApp::spawn_with_env(
        &[("signup.yaml", DELAYED)],
        &[
            ("BANDITD_REDIS", &redis.url()),
            ("BANDITD_TOKEN_SECRET", "delay-test-secret-0123456789abcdef"),
        ],
    );
    check(&app);
}

#[test]
fn with_delay_off_the_stats_show_the_naive_posterior_only() {
    let off = DELAYED.replace("delay: { median: 2d }", "delay: off");
    let app = TestApp::spawn(&[("signup.yaml", &off)]);
    for n in 0..10 {
        app.assign("signup", &format!("u{n}"));
    }
    app.let_posterior_refresh();
    for arm in app.arms("signup") {
        assert!(arm["delay"].is_null(), "{arm}");
        assert_eq!(num(&arm["posterior"]["beta"]), 1.0 + num(&arm["exposures"]));
    }
}

/// The `value` of the first `<data>` element after `data-field="<field>"` in `row`.
fn cell_value(row: &str, field: &str) -> f64 {
    let cell = &row[row
        .find(&format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} cell"))..];
    let start = cell.find("<data value=\"").unwrap() + "<data value=\"".len();
    cell[start..start + cell[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn the_dashboard_arm_table_shows_the_naive_figures_and_the_delay_law_of_the_api() {
    let app = TestApp::spawn(&[("signup.yaml", DELAYED)]);
    for n in 0..20 {
        app.assign("signup", &format!("u{n}"));
    }
    app.let_posterior_refresh();
    let arms = app.arms("signup");
    let page = app.get("/ui/experiments/signup");
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap().to_owned();
    assert!(html.contains("Naive P(best)"));
    for arm in &arms {
        let variant = arm["variant"].as_str().unwrap();
        let start = html
            .find(&format!("<tr data-variant=\"{variant}\">"))
            .expect("a row per arm");
        let row = &html[start..start + html[start..].find("</tr>").unwrap()];
        let delay = &arm["delay"];
        // Neither depends on the clock: no conversion yet, so the stated law holds.
        for (field, value) in [
            ("delay_median_ms", &delay["delay_median_ms"]),
            ("delay_p90_ms", &delay["delay_p90_ms"]),
            ("naive_prob_best", &delay["naive"]["prob_best"]),
        ] {
            assert_eq!(cell_value(row, field), num(value), "{variant} {field}");
        }
        let (alpha, beta) = (num(&delay["naive"]["alpha"]), num(&delay["naive"]["beta"]));
        assert_eq!(cell_value(row, "naive_mean"), alpha / (alpha + beta));
    }
}
