//! `exposure: on_render` over HTTP: assignments count once the page confirms them, at most
//! once, within `confirm_within`; and the sample-ratio check that this makes able to fire.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

/// Two arms under a burn-in that never ends, so every assignment is drawn 50/50 and the
/// expected confirmed counts are exactly half the confirmed total each.
const ON_RENDER: &str = r#"
id: hero
description: Which hero image keeps people reading?
owner: growth
status: running
exposure: on_render
confirm_within: 10m
policy: { burn_in: 1000000 }
default_variant: a
variants:
  - id: a
    payload: { image: "a.png" }
  - id: b
    payload: { image: "b.png" }
"#;

fn confirm(app: &TestApp, body: &Value) -> Value {
    let r = app.post_json("/v1/exposures", body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn report(app: &TestApp) -> Value {
    let r = app.get("/v1/experiments/hero");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn arm<'a>(report: &'a Value, variant: &str) -> &'a Value {
    report["arms"]
        .as_array()
        .and_then(|arms| arms.iter().find(|a| a["variant"] == variant))
        .unwrap_or_else(|| panic!("no arm {variant} in {report}"))
}

#[test]
fn an_on_render_assignment_counts_once_the_page_confirms_it_and_only_once() {
    let app = TestApp::spawn(&[("hero.yaml", ON_RENDER)]);
    let answer = app.assign("hero", "user-1");
    assert_eq!(answer["counted"], false, "{answer}");
    assert_eq!(answer["confirm"], true, "{answer}");
    let token = answer["token"].as_str().expect("a token to confirm with");
    let variant = answer["variant"].as_str().unwrap().to_owned();

    let before = report(&app);
    assert_eq!(before["exposure"], "on_render");
    assert_eq!(before["confirm_within"], "10m");
    assert_eq!(arm(&before, &variant)["assigned"], 1);
    assert_eq!(arm(&before, &variant)["exposures"], 0);
    // Not shown yet, so nothing to reward.
    let reward = app.post_events(&json!([{"id": "e1", "experiment": "hero", "unit": "user-1"}]));
    assert_eq!(reward["applied"], 0, "{reward}");

    // A browser beacon: text/plain, no key.
    let beacon = json!({"experiment": "hero", "token": token}).to_string();
    let r = app.post_raw("/v1/exposures", "text/plain;charset=UTF-8", &beacon);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["confirmed"], 1, "{}", r.body);
    // The same render reported again, and a backend confirming by unit: no second count.
    let again = confirm(
        &app,
        &json!([{"experiment": "hero", "token": token}, {"experiment": "hero", "unit": "user-1"}]),
    );
    assert_eq!(
        (again["confirmed"].clone(), again["duplicate"].clone()),
        (json!(0), json!(2))
    );

    let after = report(&app);
    let shown = arm(&after, &variant);
    assert_eq!(
        (shown["assigned"].clone(), shown["exposures"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(shown["confirmation_rate"], 1.0);
    let reward = app.post_events(&json!([{"id": "e2", "experiment": "hero", "unit": "user-1"}]));
    assert_eq!(reward["applied"], 1, "{reward}");
}

#[test]
fn confirmations_that_cannot_count_are_refused_with_a_reason() {
    let app = TestApp::spawn(&[
        ("hero.yaml", ON_RENDER),
        ("headline.yaml", crate::helpers::STICKY),
    ]);
    let on_assign = app.assign("headline", "u1");
    let token = on_assign["token"].as_str().unwrap();
    let refused = confirm(
        &app,
        &json!([
            {"experiment": "headline", "token": token},
            {"experiment": "hero", "unit": "nobody"},
            {"experiment": "hero", "token": "garbage"},
            {"experiment": "hero"},
            {"experiment": "missing", "unit": "u1"},
            {"experiment": "hero", "unit": "u1", "extra": 1}
        ]),
    );
    let reasons: Vec<&str> = refused["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "not_on_render",
            "unit_not_assigned",
            "bad_token",
            "token_required",
            "unknown_experiment",
            "invalid_confirmation"
        ],
        "{refused}"
    );
    // A body that is no JSON at all is the request's fault.
    let r = app.post_raw("/v1/exposures", "application/json", "[1,");
    assert_problem(&r, 400, "JSON array");
}

#[test]
fn a_keyless_confirmation_needs_a_valid_token_when_the_events_key_is_set() {
    let app = TestApp::spawn_with_env(
        &[("hero.yaml", ON_RENDER)],
        &[("BANDITD_EVENTS_KEY", "k".repeat(32).as_str())],
    );
    let answer = app.assign("hero", "user-1");
    let r = app.post_json(
        "/v1/exposures",
        &json!([{"experiment": "hero", "unit": "user-1"}]),
    );
    assert_problem(&r, 401, "token");
    let token = answer["token"].as_str().unwrap();
    let r = app.post_json(
        "/v1/exposures",
        &json!([{"experiment": "hero", "token": token}]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["confirmed"], 1);
}

/// Assigns new units until there are `per_arm` of each variant; returns their tokens by arm.
fn tokens_by_arm(app: &TestApp, per_arm: usize) -> (Vec<String>, Vec<String>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut i = 0;
    while a.len() < per_arm || b.len() < per_arm {
        let answer = app.assign("hero", &format!("visitor-{i}"));
        i += 1;
        assert_eq!(answer["propensity"], 0.5, "{answer}");
        let token = answer["token"].as_str().unwrap().to_owned();
        match answer["variant"].as_str() {
            Some("a") => a.push(token),
            _ => b.push(token),
        }
        assert!(i < 10 * per_arm, "the split is far from 50/50");
    }
    a.truncate(per_arm);
    b.truncate(per_arm);
    (a, b)
}

fn confirm_all(app: &TestApp, tokens: &[String]) {
    let body: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"experiment": "hero", "token": t}))
        .collect();
    let r = confirm(app, &Value::Array(body));
    assert_eq!(r["confirmed"], tokens.len(), "{r}");
}

/// The SRM p-value a report gives, and its relative error against `reference`.
fn assert_srm(app: &TestApp, reference: f64, short: &str) {
    let report = report(app);
    let p = report["srm"]["p_value"].as_f64().expect("a p-value");
    assert!(
        ((p - reference) / reference).abs() < 1e-9,
        "p = {p:e}, reference {reference:e}"
    );
    assert_eq!(report["srm"]["alert"], true, "{report}");
    assert_eq!(report["srm"]["short_arm"], short, "{report}");
}

#[test]
fn a_frontend_that_never_renders_one_variant_fires_the_sample_ratio_alert() {
    let app = TestApp::spawn(&[("hero.yaml", ON_RENDER)]);
    let (a, b) = tokens_by_arm(&app, 200);
    // Assignments alone follow the allocation: nothing is confirmed, nothing to test.
    assert_eq!(report(&app)["srm"]["p_value"], Value::Null);
    confirm_all(&app, &a);
    // `b` never confirms: 200 confirmed exposures, each expected 50/50: X² = 2·100²/100 =
    // 200 on 1 degree of freedom, p = 2.088487583762544757e-45 (mpmath,
    // scripts/stats_references.py, "srm").
    assert_srm(&app, 2.088_487_583_762_545e-45, "b");
    let report = report(&app);
    assert_eq!(arm(&report, "b")["confirmation_rate"], 0.0);
    // More than 200 units may have landed on `a` while `b` caught up.
    let a_assigned = arm(&report, "a")["assigned"].as_f64().unwrap();
    assert_eq!(arm(&report, "a")["confirmation_rate"], 200.0 / a_assigned);
    drop(b);
}

#[test]
fn a_frontend_that_drops_half_of_one_variants_confirmations_fires_it_too() {
    let app = TestApp::spawn(&[("hero.yaml", ON_RENDER)]);
    let (a, b) = tokens_by_arm(&app, 200);
    confirm_all(&app, &a);
    let every_other: Vec<String> = b.into_iter().step_by(2).collect();
    confirm_all(&app, &every_other);
    // 200 of `a` and 100 of `b` confirmed, 150 expected each: X² = 2·50²/150 = 100/3,
    // p = 7.7640365379306780799e-9 (mpmath, scripts/stats_references.py, "srm").
    assert_srm(&app, 7.764_036_537_930_678e-9, "b");
    let report = report(&app);
    let b_assigned = arm(&report, "b")["assigned"].as_f64().unwrap();
    assert_eq!(arm(&report, "b")["confirmation_rate"], 100.0 / b_assigned);
}

#[test]
fn the_same_broken_frontend_leaves_an_on_assign_experiment_green() {
    // What the check cannot see with `on_assign`: every assignment is an exposure at the
    // draw, so observed follows the allocation whatever the page renders.
    let app = TestApp::spawn(&[(
        "hero.yaml",
        &ON_RENDER.replace("exposure: on_render\nconfirm_within: 10m\n", ""),
    )]);
    let (a, _b) = tokens_by_arm(&app, 200);
    let r = app.post_json(
        "/v1/exposures",
        &json!([{"experiment": "hero", "token": a[0]}]),
    );
    assert_eq!(
        r.body["rejections"][0]["reason"], "not_on_render",
        "{}",
        r.body
    );
    let report = report(&app);
    assert_eq!(report["srm"]["alert"], false, "{report}");
}

/// The dashboard's arm table of an `on_render` experiment shows what the page has to see:
/// assignments handed out and the share confirmed, beside the confirmed exposures, with the
/// API's exact values.
#[test]
fn the_dashboard_shows_assigned_and_confirmed_counts_of_an_on_render_experiment() {
    let app = TestApp::spawn(&[("hero.yaml", ON_RENDER)]);
    let (a, _b) = tokens_by_arm(&app, 4);
    confirm_all(&app, &a[..2]);
    let report = report(&app);
    let page = app.get("/ui/experiments/hero");
    assert_eq!(page.status, 200);
    let html = page.body.as_str().expect("an HTML page");
    assert!(html.contains(">Assigned</th>"), "{html}");
    assert!(html.contains(">Confirmed</th>"), "{html}");
    for variant in ["a", "b"] {
        let arm = arm(&report, variant);
        let assigned = arm["assigned"].as_u64().unwrap();
        assert!(
            html.contains(&format!(
                "data-field=\"assigned\"><data value=\"{assigned}\">"
            )),
            "{variant}: {html}"
        );
        let confirmed = match arm["confirmation_rate"].as_f64() {
            Some(rate) => format!("data-field=\"confirmation_rate\"><data value=\"{rate}\">"),
            None => "data-field=\"confirmation_rate\">—".to_owned(),
        };
        assert!(
            html.contains(&confirmed),
            "{variant}: {confirmed} in {html}"
        );
    }
    // An on_assign experiment's table has no such columns.
    let plain = TestApp::spawn(&[(
        "hero.yaml",
        &ON_RENDER.replace("exposure: on_render\nconfirm_within: 10m\n", ""),
    )]);
    let html = plain.get("/ui/experiments/hero").body;
    assert!(!html.as_str().unwrap().contains(">Assigned</th>"));
}
