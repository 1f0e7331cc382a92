//! `exposure: on_render` with `assignment: per_request` over HTTP: every draw is only
//! assigned until the page confirms its token, at most once per assignment (across a restart,
//! and across two replicas on Redis); rewards need the confirmation; and the sample-ratio
//! check fires for a frontend that drops one variant's confirmations, quiet for a healthy one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{REPLICA_SECRET, STICKY, TestApp, assert_problem};
use crate::redis_harness::RedisServer;

/// Two arms under a burn-in that never ends, so every draw is 50/50 and the expected
/// confirmed counts are exactly half the confirmed total each.
const PER_REQUEST_RENDER: &str = r#"
id: hero
description: Which hero image keeps people reading?
owner: growth
status: running
assignment: per_request
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

/// The report once `assigned` draws are counted (per-request draws are committed a moment
/// after their answer).
fn report_with_assigned(app: &TestApp, assigned: u64) -> Value {
    let start = Instant::now();
    loop {
        let report = report(app);
        let total: u64 = report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["assigned"].as_u64().unwrap_or(0))
            .sum();
        if total >= assigned {
            return report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{assigned} assignments never counted: {report}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Draws for one visitor until there are `per_arm` tokens of each variant; returns them by arm.
fn tokens_by_arm(app: &TestApp, per_arm: usize) -> (Vec<String>, Vec<String>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut draws = 0;
    while a.len() < per_arm || b.len() < per_arm {
        let answer = app.assign("hero", "visitor");
        draws += 1;
        assert_eq!(
            (answer["counted"].clone(), answer["confirm"].clone()),
            (json!(false), json!(true)),
            "{answer}"
        );
        assert_eq!(answer["propensity"], 0.5, "{answer}");
        let token = answer["token"].as_str().unwrap().to_owned();
        match answer["variant"].as_str() {
            Some("a") => a.push(token),
            _ => b.push(token),
        }
        assert!(draws < 10 * per_arm, "the split is far from 50/50");
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

fn assert_srm(app: &TestApp, reference: f64, alert: bool) -> Value {
    let report = report(app);
    let p = report["srm"]["p_value"].as_f64().expect("a p-value");
    assert!(
        ((p - reference) / reference).abs() < 1e-9,
        "p = {p:e}, reference {reference:e}"
    );
    assert_eq!(report["srm"]["alert"], alert, "{report}");
    report
}

#[test]
fn a_per_request_render_counts_once_its_token_is_confirmed_and_only_then_earns_rewards() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let answer = app.assign("hero", "user-1");
    assert_eq!(answer["counted"], false, "{answer}");
    assert_eq!(answer["confirm"], true, "{answer}");
    let token = answer["token"].as_str().expect("a token to confirm with");
    let variant = answer["variant"].as_str().unwrap().to_owned();
    let before = report_with_assigned(&app, 1);
    assert_eq!(arm(&before, &variant)["assigned"], 1);
    assert_eq!(arm(&before, &variant)["exposures"], 0);

    // Not shown yet, so no reward: a clear outcome, and the event id is not used up.
    let early = app.post_events(&json!([{"id": "e1", "experiment": "hero", "token": token}]));
    assert_eq!(early["applied"], 0, "{early}");
    assert_eq!(early["rejections"][0]["reason"], "not_confirmed", "{early}");

    // A browser beacon: text/plain, no key.
    let beacon = json!({"experiment": "hero", "token": token}).to_string();
    let r = app.post_raw("/v1/exposures", "text/plain;charset=UTF-8", &beacon);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["confirmed"], 1, "{}", r.body);
    let again = confirm(&app, &json!([{"experiment": "hero", "token": token}]));
    assert_eq!(
        (again["confirmed"].clone(), again["duplicate"].clone()),
        (json!(0), json!(1))
    );
    let after = report(&app);
    let shown = arm(&after, &variant);
    assert_eq!(
        (shown["assigned"].clone(), shown["exposures"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(shown["confirmation_rate"], 1.0);

    let reward = app.post_events(&json!([
        {"id": "e1", "experiment": "hero", "token": token},
        {"id": "e2", "experiment": "hero", "token": token}
    ]));
    assert_eq!(
        (
            reward["applied"].clone(),
            reward["already_rewarded"].clone()
        ),
        (json!(1), json!(1)),
        "{reward}"
    );
}

#[test]
fn per_request_confirmations_that_cannot_count_are_refused_with_a_reason() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER), ("headline.yaml", STICKY)]);
    let other = app.assign("headline", "u1");
    let other_token = other["token"].as_str().unwrap();
    let answer = app.assign("hero", "u1");
    let token = answer["token"].as_str().unwrap();
    // The same claims under a signature that does not match.
    let (claims, signature) = token.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{claims}.{flipped}{}", &signature[1..]);
    let refused = confirm(
        &app,
        &json!([
            {"experiment": "hero", "token": other_token},
            {"experiment": "hero", "token": forged},
            {"experiment": "hero", "unit": "u1"},
            {"experiment": "headline", "token": token},
            {"experiment": "hero", "token": token, "unit": "someone-else"}
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
            "bad_token",
            "bad_token",
            "token_required",
            "not_on_render",
            "bad_token"
        ],
        "{refused}"
    );
    assert_eq!(refused["confirmed"], 0);
    // A body that is no JSON at all is the request's fault.
    let r = app.post_raw("/v1/exposures", "application/json", "[1,");
    assert_problem(&r, 400, "JSON array");
}

#[test]
fn a_frontend_that_never_renders_one_per_request_variant_fires_the_sample_ratio_alert() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let (a, _b) = tokens_by_arm(&app, 200);
    confirm_all(&app, &a);
    // 200 confirmed, all of `a`, each expected 50/50: X² = 200 on 1 degree of freedom,
    // p = 2.088487583762544757e-45 (mpmath, scripts/stats_references.py, "srm").
    let report = assert_srm(&app, 2.088_487_583_762_545e-45, true);
    assert_eq!(report["srm"]["short_arm"], "b", "{report}");
    assert_eq!(arm(&report, "b")["confirmation_rate"], 0.0);
}

#[test]
fn a_frontend_that_drops_half_of_one_per_request_variants_confirmations_fires_it_too() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let (a, b) = tokens_by_arm(&app, 200);
    confirm_all(&app, &a);
    let every_other: Vec<String> = b.into_iter().step_by(2).collect();
    confirm_all(&app, &every_other);
    // 200 and 100 confirmed, 150 expected each: X² = 100/3, p = 7.7640365379306780799e-9
    // (mpmath, scripts/stats_references.py, "srm").
    let report = assert_srm(&app, 7.764_036_537_930_678e-9, true);
    assert_eq!(report["srm"]["short_arm"], "b", "{report}");
}

#[test]
fn a_healthy_per_request_frontend_keeps_the_sample_ratio_check_quiet() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let (a, b) = tokens_by_arm(&app, 200);
    // A few confirmations lost on either arm alike (closed tabs): 180 of `a`, 177 of `b`.
    let kept_a: Vec<String> = a
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, t)| t)
        .collect();
    let kept_b: Vec<String> = b
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 9 != 0)
        .map(|(_, t)| t)
        .collect();
    assert_eq!((kept_a.len(), kept_b.len()), (180, 177));
    confirm_all(&app, &kept_a);
    confirm_all(&app, &kept_b);
    // 178.5 expected each: X² = 2·1.5²/178.5, p = 0.87384469851737341463 (mpmath,
    // scripts/stats_references.py, "srm", "healthy 180/177").
    let report = assert_srm(&app, 0.873_844_698_517_373_4, false);
    assert_eq!(report["srm"]["short_arm"], Value::Null, "{report}");
}

#[test]
fn a_per_request_confirmation_counts_once_across_a_restart() {
    let mut app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let answer = app.assign("hero", "user-1");
    let token = answer["token"].as_str().unwrap().to_owned();
    let variant = answer["variant"].as_str().unwrap().to_owned();
    let body = json!([{"experiment": "hero", "token": token}]);
    assert_eq!(confirm(&app, &body)["confirmed"], 1);
    app.restart();
    let again = confirm(&app, &body);
    assert_eq!(
        (again["confirmed"].clone(), again["duplicate"].clone()),
        (json!(0), json!(1)),
        "{again}"
    );
    let report = report(&app);
    assert_eq!(arm(&report, &variant)["exposures"], 1, "{report}");
    let reward = app.post_events(&json!([{"id": "e1", "experiment": "hero", "token": token}]));
    assert_eq!(reward["applied"], 1, "the confirmation survived: {reward}");
}

#[test]
fn a_per_request_token_confirmed_on_two_redis_replicas_at_once_counts_once() {
    let redis = RedisServer::start();
    let apps: Vec<TestApp> = (0..2)
        .map(|_| {
            TestApp::spawn_with_env(
                &[("hero.yaml", PER_REQUEST_RENDER)],
                &[
                    ("BANDITD_REDIS", redis.url().as_str()),
                    ("BANDITD_TOKEN_SECRET", REPLICA_SECRET),
                ],
            )
        })
        .collect();
    let tokens: Vec<(String, String)> = (0..40)
        .map(|i| {
            let answer = apps[i % 2].assign("hero", &format!("visitor-{i}"));
            (
                answer["token"].as_str().unwrap().to_owned(),
                answer["variant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let body = Value::Array(
        tokens
            .iter()
            .map(|(token, _)| json!({"experiment": "hero", "token": token}))
            .collect(),
    );
    // Both replicas confirm every token at the same moment.
    let reports: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let body = &body;
                scope.spawn(move || confirm(app, body))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let confirmed: u64 = reports
        .iter()
        .map(|r| r["confirmed"].as_u64().unwrap())
        .sum();
    let duplicate: u64 = reports
        .iter()
        .map(|r| r["duplicate"].as_u64().unwrap())
        .sum();
    assert_eq!((confirmed, duplicate), (40, 40), "{reports:?}");
    let of_a = tokens.iter().filter(|(_, v)| v == "a").count() as u64;
    for app in &apps {
        let report = report_with_assigned(app, 40);
        assert_eq!(arm(&report, "a")["exposures"], of_a, "{report}");
        assert_eq!(arm(&report, "b")["exposures"], 40 - of_a, "{report}");
    }
    // A reward for each token through either replica: credited once.
    let events = Value::Array(
        tokens
            .iter()
            .enumerate()
            .map(|(i, (token, _))| json!({"id": format!("e{i}"), "experiment": "hero", "token": token}))
            .collect(),
    );
    let first = apps[0].post_events(&events);
    let second = apps[1].post_events(&events);
    assert_eq!(
        (first["applied"].clone(), second["duplicate"].clone()),
        (json!(40), json!(40)),
        "{first} {second}"
    );
}

/// The `assignments` export lists the confirmed draws, each once, with the propensity an
/// inverse-propensity estimate needs and how long its mark is kept (issue + the 7-day reward
/// window + a day, the window being longer than `confirm_within`).
#[test]
fn the_assignments_export_lists_each_confirmed_per_request_draw_once() {
    let app = TestApp::spawn(&[("hero.yaml", PER_REQUEST_RENDER)]);
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            app.assign("hero", "visitor")["token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let body = json!([
        {"experiment": "hero", "token": tokens[0]},
        {"experiment": "hero", "token": tokens[1]},
        {"experiment": "hero", "token": tokens[1]}
    ]);
    assert_eq!(confirm(&app, &body)["confirmed"], 2);
    let r = app.get("/v1/experiments/hero/export?what=assignments&format=ndjson");
    assert_eq!(r.status, 200, "{}", r.body);
    let text = match &r.body {
        Value::String(text) => text.clone(),
        one => one.to_string(),
    };
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let day_ms = 24 * 60 * 60 * 1000;
    for row in &rows {
        assert_eq!(row["propensity"], 0.5, "{row}");
        let issued = row["issued_ms"].as_u64().unwrap();
        assert!(row["confirmed_ms"].as_u64().unwrap() >= issued, "{row}");
        assert_eq!(row["retained_until_ms"], issued + 8 * day_ms, "{row}");
        assert!(["a", "b"].contains(&row["variant"].as_str().unwrap()));
    }
    assert_ne!(rows[0]["assignment_id"], rows[1]["assignment_id"]);
}

/// A guardrail event on a per-request render token counts in the metric's own epoch, where no
/// confirmation mark lives, so it does not wait for the confirmation (which only gates the
/// primary reward); it is still at most once per assignment and metric
/// (`store::guardrail_events`).
#[test]
fn a_guardrail_event_on_an_unconfirmed_per_request_render_token_counts_once() {
    let spec = format!(
        "{PER_REQUEST_RENDER}guardrails:\n  - metric: refunds\n    direction: lower_is_better\n    \
         max_relative_change: 0.1\n"
    );
    let app = TestApp::spawn(&[("hero.yaml", spec.as_str())]);
    let answer = app.assign("hero", "user-1");
    let token = answer["token"].as_str().expect("a token");
    let refund =
        |id: &str| json!({"id": id, "experiment": "hero", "token": token, "metric": "refunds"});

    let first = app.post_events(&json!([refund("g1")]));
    assert_eq!(first["applied"], 1, "{first}");
    let retry = app.post_events(&json!([refund("g1"), refund("g2")]));
    assert_eq!(
        (
            retry["duplicate"].clone(),
            retry["already_rewarded"].clone()
        ),
        (json!(1), json!(1)),
        "{retry}"
    );
    // The primary reward still needs the render confirmed.
    let reward = app.post_events(&json!([{"id": "r1", "experiment": "hero", "token": token}]));
    assert_eq!(
        reward["rejections"][0]["reason"], "not_confirmed",
        "{reward}"
    );
}
