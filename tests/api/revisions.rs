//! Earlier revisions and retired arms tell the truth: each revision's report, export and history
//! are computed with its own variants, priors and stopping rule, and a retired arm keeps the
//! prior it was counted under. Numbers are checked against closed forms, not the server's own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

/// Revision 1: a per-arm prior on `bold`, an experiment prior for `control`, a stopping rule,
/// and a burn-in long enough that traffic is uniform. The rule's `min_exposures` keeps it
/// collecting whatever the order of assignments and rewards: without it, the strong prior on
/// `bold` can declare it the winner before the first rewards arrive.
const PRICING_R1: &str = r#"
id: pricing
description: Which price page sells?
owner: growth
status: running
assignment: sticky
reward: { window: 7d, delay: off }
prior: { alpha: 2, beta: 3 }
policy: { burn_in: 1000, min_share: 0.05 }
stopping: { prob_best: 0.95, max_expected_loss: 0.001, min_exposures: 1000 }
default_variant: control
variants:
  - id: control
    payload: 1
  - id: bold
    payload: 2
    prior: { alpha: 25, beta: 75 }
"#;

/// Revision 2: other variants, another prior, no stopping rule.
const PRICING_R2: &str = r#"
id: pricing
description: Which price page sells?
owner: growth
status: running
revision: 2
assignment: sticky
reward: { window: 7d, delay: off }
prior: { alpha: 1, beta: 1 }
policy: { burn_in: 1000, min_share: 0.05 }
default_variant: control
variants:
  - id: control
    payload: 1
  - id: calm
    payload: 3
"#;

fn reload(app: &TestApp) {
    let r = app.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Assigns `units` units and rewards every third one with 1.
fn traffic(app: &TestApp, prefix: &str, units: usize) {
    let mut events = Vec::new();
    for i in 0..units {
        let unit = format!("{prefix}{i}");
        app.assign("pricing", &unit);
        if i % 3 == 0 {
            events.push(json!({"id": format!("ev-{unit}"), "experiment": "pricing",
                               "unit": unit, "reward": 1}));
        }
    }
    let report = app.post_events(&Value::Array(events));
    assert_eq!(report["rejected"], 0, "{report}");
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|k| (k as f64).ln()).sum()
}

/// ln B(a, b) for positive integers: (a−1)!(b−1)!/(a+b−1)!.
fn ln_beta(a: u64, b: u64) -> f64 {
    ln_factorial(a - 1) + ln_factorial(b - 1) - ln_factorial(a + b - 1)
}

/// P(θ_B > θ_A) for θ_A ~ Beta(a_a, b_a), θ_B ~ Beta(a_b, b_b), integer shapes: the closed
/// form of Miller (2015), "Formulas for Bayesian A/B testing", eq. 1.
fn prob_b_beats_a(a_a: u64, b_a: u64, a_b: u64, b_b: u64) -> f64 {
    (0..a_b)
        .map(|i| {
            (ln_beta(a_a + i, b_a + b_b)
                - ((b_b + i) as f64).ln()
                - ln_beta(1 + i, b_b)
                - ln_beta(a_a, b_a))
            .exp()
        })
        .sum()
}

fn arm<'a>(report: &'a Value, variant: &str) -> &'a Value {
    report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["variant"] == variant)
        .unwrap_or_else(|| panic!("no arm {variant} in {report}"))
}

/// (N, R) of an arm, as integers (rewards are 0 or 1 here).
fn counts(arm: &Value) -> (u64, u64) {
    let n = arm["exposures"].as_u64().unwrap();
    let r = arm["rewards"].as_f64().unwrap();
    assert_eq!(r.fract(), 0.0, "{arm}");
    (n, r as u64)
}

#[test]
fn an_earlier_revision_reports_its_own_variants_priors_and_stopping_rule() {
    let app = TestApp::spawn_with_env(
        &[("pricing.yaml", PRICING_R1)],
        &[("BANDITD_NO_WATCH", "1")],
    );
    traffic(&app, "u", 30);
    app.write_experiment("pricing.yaml", PRICING_R2);
    reload(&app);
    traffic(&app, "w", 6);

    let old = app.get("/v1/experiments/pricing?revision=1");
    assert_eq!(old.status, 200, "{}", old.body);
    let old = old.body;
    assert_eq!(old["revision"], 1);
    let variants: Vec<&str> = old["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["variant"].as_str().unwrap())
        .collect();
    assert_eq!(
        variants,
        ["control", "bold"],
        "revision 1's own arms: {old}"
    );
    assert_eq!(old["variants"], 2);
    let (n_c, r_c) = counts(arm(&old, "control"));
    let (n_b, r_b) = counts(arm(&old, "bold"));
    assert_eq!(n_c + n_b, 30);
    // Revision 1's priors: control the experiment's (2, 3), bold its own (25, 75).
    let shapes = [
        ("control", 2 + r_c, 3 + n_c - r_c),
        ("bold", 25 + r_b, 75 + n_b - r_b),
    ];
    for (variant, alpha, beta) in shapes {
        let a = arm(&old, variant);
        assert_eq!(a["retired"], false, "{a}");
        assert_eq!(a["posterior"]["alpha"].as_f64(), Some(alpha as f64), "{a}");
        assert_eq!(a["posterior"]["beta"].as_f64(), Some(beta as f64), "{a}");
    }
    let p_bold = prob_b_beats_a(shapes[0].1, shapes[0].2, shapes[1].1, shapes[1].2);
    let reported_bold = arm(&old, "bold")["prob_best"].as_f64().expect("a P(best)");
    let reported_control = arm(&old, "control")["prob_best"]
        .as_f64()
        .expect("a P(best)");
    assert!(
        (reported_bold - p_bold).abs() < 1e-6,
        "{reported_bold} vs {p_bold}"
    );
    assert!((reported_control - (1.0 - p_bold)).abs() < 1e-6);
    // E[max − θ_control] − E[max − θ_bold] = E[θ_bold] − E[θ_control], exactly.
    let loss = |v: &str| arm(&old, v)["expected_loss"].as_f64().expect("a loss");
    let mean = |alpha: u64, beta: u64| alpha as f64 / (alpha + beta) as f64;
    let gap = mean(shapes[1].1, shapes[1].2) - mean(shapes[0].1, shapes[0].2);
    assert!((loss("control") - loss("bold") - gap).abs() < 1e-9);
    // Revision 1 had a stopping rule: it is collecting, not "no rule".
    assert_eq!(old["stopping"]["status"], "collecting", "{old}");

    // The stats export of the same revision carries the same numbers.
    let export = app.get("/v1/experiments/pricing/export?what=stats&format=ndjson&revision=1");
    assert_eq!(export.status, 200, "{}", export.body);
    let text = export.body.as_str().unwrap().to_owned();
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in &rows {
        let a = arm(&old, row["variant"].as_str().unwrap());
        assert_eq!(row["retired"], false, "{row}");
        for (column, field) in [
            ("posterior_alpha", &a["posterior"]["alpha"]),
            ("posterior_beta", &a["posterior"]["beta"]),
            ("prob_best", &a["prob_best"]),
            ("expected_loss", &a["expected_loss"]),
            ("posterior_mean", &a["posterior"]["mean"]),
        ] {
            assert!(!row[column].is_null(), "{column} in {row}");
            assert_eq!(&row[column], field, "{column} in {row}");
        }
    }

    // The current revision is unaffected: its own arms, its own prior, no rule.
    let now = app.get("/v1/experiments/pricing").body;
    assert_eq!(now["revision"], 2);
    assert_eq!(now["stopping"]["status"], "no_rule");
    let (n, r) = counts(arm(&now, "calm"));
    assert_eq!(
        arm(&now, "calm")["posterior"]["alpha"].as_f64(),
        Some((1 + r) as f64)
    );
    assert_eq!(
        arm(&now, "calm")["posterior"]["beta"].as_f64(),
        Some((1 + n - r) as f64)
    );
}

#[test]
fn an_earlier_revision_is_served_as_it_was_after_a_restart() {
    let mut app = TestApp::spawn_with_env(
        &[("pricing.yaml", PRICING_R1)],
        &[("BANDITD_NO_WATCH", "1")],
    );
    traffic(&app, "u", 12);
    app.write_experiment("pricing.yaml", PRICING_R2);
    reload(&app);
    let before = app.get("/v1/experiments/pricing?revision=1").body;
    app.restart();
    let after = app.get("/v1/experiments/pricing?revision=1").body;
    assert_eq!(after["arms"], before["arms"], "{after}");
    assert_eq!(arm(&after, "bold")["retired"], false);
    assert_eq!(after["stopping"]["status"], "collecting");
}

#[test]
fn history_keeps_every_revision_and_serves_one_on_request() {
    let app = TestApp::spawn_with_env(
        &[("pricing.yaml", PRICING_R1)],
        &[
            ("BANDITD_NO_WATCH", "1"),
            ("BANDITD_HISTORY_INTERVAL", "1s"),
        ],
    );
    traffic(&app, "u", 6);
    std::thread::sleep(Duration::from_millis(2_300));
    app.write_experiment("pricing.yaml", PRICING_R2);
    reload(&app);
    std::thread::sleep(Duration::from_millis(2_300));

    let all = app.get("/v1/experiments/pricing/history");
    assert_eq!(all.status, 200, "{}", all.body);
    let points = all.body["points"].as_array().unwrap().clone();
    let revisions: Vec<u64> = points
        .iter()
        .map(|p| {
            p["revision"]
                .as_u64()
                .expect("each point names its revision")
        })
        .collect();
    assert!(
        revisions.contains(&1) && revisions.contains(&2),
        "{revisions:?}"
    );
    assert!(
        revisions.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {revisions:?}"
    );
    let times: Vec<u64> = points
        .iter()
        .map(|p| p["at_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for point in &points {
        let at = point["at"].as_str().expect("an RFC 3339 time");
        let parsed =
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(
            (parsed.unix_timestamp_nanos() / 1_000_000) as u64,
            point["at_ms"].as_u64().unwrap()
        );
    }

    let first = app.get("/v1/experiments/pricing/history?revision=1");
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.body["points"].as_array().unwrap().clone();
    assert!(!first.is_empty());
    for point in &first {
        assert_eq!(point["revision"], 1);
        let arms: Vec<&str> = point["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["variant"].as_str().unwrap())
            .collect();
        assert_eq!(arms, ["control", "bold"], "{point}");
    }
    assert_problem(
        &app.get("/v1/experiments/pricing/history?revision=3"),
        404,
        "revision 3",
    );
    assert_problem(
        &app.get("/v1/experiments/pricing/history?revision=one"),
        400,
        "`revision`",
    );
}

#[test]
fn history_takes_a_plain_date_and_serves_the_newest_points() {
    let app = TestApp::spawn_with_env(
        &[("pricing.yaml", PRICING_R1)],
        &[
            ("BANDITD_NO_WATCH", "1"),
            ("BANDITD_HISTORY_INTERVAL", "1s"),
        ],
    );
    std::thread::sleep(Duration::from_millis(3_500));
    let all = app.get("/v1/experiments/pricing/history").body["points"]
        .as_array()
        .unwrap()
        .clone();
    assert!(all.len() >= 3, "{all:?}");
    let times = |points: &Value| -> Vec<u64> {
        points["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["at_ms"].as_u64().unwrap())
            .collect()
    };
    let newest: Vec<u64> = all
        .iter()
        .rev()
        .take(2)
        .map(|p| p["at_ms"].as_u64().unwrap())
        .collect();

    let desc = app.get("/v1/experiments/pricing/history?order=desc&limit=2");
    assert_eq!(desc.status, 200, "{}", desc.body);
    let desc_times = times(&desc.body);
    // Points keep being written; the newest two at the time of asking are at least as new.
    assert_eq!(desc_times.len(), 2);
    assert!(
        desc_times[0] > desc_times[1],
        "newest first: {desc_times:?}"
    );
    assert!(desc_times[1] >= newest[1], "{desc_times:?} vs {newest:?}");

    let latest = app.get("/v1/experiments/pricing/history?latest=2");
    assert_eq!(latest.status, 200, "{}", latest.body);
    let latest_times = times(&latest.body);
    assert_eq!(latest_times.len(), 2);
    assert!(
        latest_times[0] < latest_times[1],
        "oldest first: {latest_times:?}"
    );
    assert!(latest_times[0] >= newest[1]);

    // A plain date is midnight UTC: today's date covers every point, tomorrow's none.
    let today = time::OffsetDateTime::now_utc().date();
    let day = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let from_today = app.get(&format!(
        "/v1/experiments/pricing/history?since={}",
        day(today)
    ));
    assert_eq!(from_today.status, 200, "{}", from_today.body);
    assert!(times(&from_today.body).len() >= all.len());
    let tomorrow = today.next_day().unwrap();
    let from_tomorrow = app.get(&format!(
        "/v1/experiments/pricing/history?since={}",
        day(tomorrow)
    ));
    assert_eq!(from_tomorrow.status, 200, "{}", from_tomorrow.body);
    assert!(times(&from_tomorrow.body).is_empty());

    // With `latest`, `order` only says how the newest points are listed and `limit` caps them.
    let newest_desc = times(
        &app.get("/v1/experiments/pricing/history?latest=2&order=desc")
            .body,
    );
    assert!(
        newest_desc.len() == 2 && newest_desc[0] > newest_desc[1],
        "{newest_desc:?}"
    );
    assert!(newest_desc[1] >= newest[1]);
    let capped = times(
        &app.get("/v1/experiments/pricing/history?latest=3&limit=1")
            .body,
    );
    assert!(capped.len() == 1 && capped[0] >= newest[0], "{capped:?}");

    for (query, needle) in [
        ("order=newest", "`order`"),
        ("latest=-1", "`latest`"),
        ("latest=2&limit=x", "`limit`"),
        ("since=2026-13-01", "`since`"),
    ] {
        assert_problem(
            &app.get(&format!("/v1/experiments/pricing/history?{query}")),
            400,
            needle,
        );
    }
}

/// Three arms: `a1` with its own prior, `a0` and `a3` on the experiment's.
const RETIRING: &str = r#"
id: retiring
description: d
owner: o
status: running
assignment: sticky
reward: { window: 7d, delay: off }
prior: { alpha: 2, beta: 3 }
policy: { burn_in: 1000 }
default_variant: a0
variants:
  - id: a0
    payload: 0
  - id: a1
    payload: 1
    prior: { alpha: 30, beta: 70 }
  - id: a3
    payload: 3
"#;

#[test]
fn a_retired_arm_keeps_its_own_prior_and_is_listed_with_or_without_exposures() {
    let mut app =
        TestApp::spawn_with_env(&[("retiring.yaml", RETIRING)], &[("BANDITD_NO_WATCH", "1")]);
    let mut rewards = Vec::new();
    for i in 0..40 {
        let unit = format!("u{i}");
        if app.assign("retiring", &unit)["variant"] == "a1" && i % 2 == 0 {
            rewards.push(json!({"id": format!("e{i}"), "experiment": "retiring",
                                "unit": unit, "reward": 1}));
        }
    }
    app.post_events(&Value::Array(rewards));
    let (n1, r1) = counts(&app.arm("retiring", "a1"));
    assert!(n1 > 0);
    // `a2` joins with its own prior and leaves again before anybody saw it.
    let with_a2 =
        format!("{RETIRING}  - id: a2\n    payload: 2\n    prior: {{ alpha: 25, beta: 75 }}\n");
    app.write_experiment("retiring.yaml", &with_a2);
    reload(&app);
    let without = RETIRING.replace(
        "  - id: a1\n    payload: 1\n    prior: { alpha: 30, beta: 70 }\n",
        "",
    );
    app.write_experiment("retiring.yaml", &without);
    reload(&app);

    let check = |app: &TestApp| {
        let report = app.get("/v1/experiments/retiring").body;
        let a1 = arm(&report, "a1");
        assert_eq!(a1["retired"], true, "{a1}");
        assert_eq!(
            a1["posterior"]["alpha"].as_f64(),
            Some((30 + r1) as f64),
            "{a1}"
        );
        assert_eq!(
            a1["posterior"]["beta"].as_f64(),
            Some((70 + n1 - r1) as f64),
            "{a1}"
        );
        let a2 = arm(&report, "a2");
        assert_eq!(a2["retired"], true, "{a2}");
        assert_eq!(a2["exposures"], 0, "{a2}");
        assert_eq!(a2["posterior"]["alpha"].as_f64(), Some(25.0), "{a2}");
        assert_eq!(a2["posterior"]["beta"].as_f64(), Some(75.0), "{a2}");
        for retired in [a1, a2] {
            assert!(
                retired["prob_best"].is_null(),
                "not computed, not 0: {retired}"
            );
            assert_eq!(retired["traffic_share"].as_f64(), Some(0.0));
        }
        let a0 = arm(&report, "a0");
        assert_eq!(a0["retired"], false);
    };
    check(&app);
    app.restart();
    check(&app);
}
