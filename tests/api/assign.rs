use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem, chi_square};

fn variant(v: &Value) -> String {
    v["variant"].as_str().unwrap_or_default().to_owned()
}

fn total_exposures(app: &TestApp, experiment: &str) -> u64 {
    app.arms(experiment)
        .iter()
        .map(|a| a["exposures"].as_u64().unwrap())
        .sum()
}

#[test]
fn sticky_unit_keeps_its_variant_across_calls_and_restarts() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let first: Vec<String> = (0..30)
        .map(|i| variant(&app.assign("headline", &format!("user-{i}"))))
        .collect();
    for _ in 0..2 {
        for (i, v) in first.iter().enumerate() {
            assert_eq!(&variant(&app.assign("headline", &format!("user-{i}"))), v);
        }
    }
    assert_eq!(
        total_exposures(&app, "headline"),
        30,
        "counted once per unit"
    );
    app.restart();
    for (i, v) in first.iter().enumerate() {
        assert_eq!(&variant(&app.assign("headline", &format!("user-{i}"))), v);
    }
    assert_eq!(total_exposures(&app, "headline"), 30);
}

#[test]
fn an_assignment_carries_payload_token_and_propensity() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let a = app.assign("headline", "u1");
    assert_eq!(a["experiment"], "headline");
    let expected_payload = if a["variant"] == "bold" {
        json!({"headline": "Ship in a day"})
    } else {
        json!({"headline": "Build faster"})
    };
    assert_eq!(a["payload"], expected_payload);
    assert!(a["token"].as_str().is_some_and(|t| t.contains('.')));
    let p = a["propensity"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0, "{p}");
    assert_eq!(a["counted"], true);
}

#[test]
fn per_request_assignments_spread_and_count_every_call() {
    let app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..150 {
        *seen
            .entry(variant(&app.assign("ranking", "same-user")))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    app.let_posterior_refresh();
    assert_eq!(total_exposures(&app, "ranking"), 150);
}

#[test]
fn burn_in_is_uniform_with_propensity_one_over_k() {
    let yaml = PER_REQUEST.replace("burn_in: 0", "burn_in: 100000");
    let app = TestApp::spawn(&[("ranking.yaml", &yaml)]);
    let mut counts = [0.0f64; 3];
    let n = 900;
    for i in 0..n {
        let a = app.assign("ranking", &format!("u{i}"));
        assert!((a["propensity"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let k = ["a", "b", "c"]
            .iter()
            .position(|v| a["variant"] == *v)
            .unwrap();
        counts[k] += 1.0;
    }
    // Chi-square with 2 degrees of freedom: P(X > 13.816) = 0.001.
    let stat = chi_square(&counts, &[n as f64 / 3.0; 3]);
    assert!(stat < 13.816, "counts {counts:?}, chi2 {stat}");
}

/// Assigns `n` times in the per-request experiment and rewards every assignment of `winner`
/// with 1 and every other with 0.
fn train_per_request(app: &TestApp, n: usize, winner: &str) {
    let mut events = Vec::new();
    for i in 0..n {
        let a = app.assign("ranking", &format!("train-{i}"));
        let reward = if a["variant"] == winner { 1.0 } else { 0.0 };
        events.push(json!({"id": format!("train-{i}"), "experiment": "ranking",
                           "token": a["token"], "reward": reward}));
    }
    let report = app.post_events(&Value::Array(events));
    assert_eq!(report["applied"], n, "{report}");
    app.let_posterior_refresh();
}

#[test]
fn min_share_floor_is_honoured_when_one_arm_dominates() {
    let yaml = PER_REQUEST.replace("min_share: 0.05", "min_share: 0.1");
    let app = TestApp::spawn(&[("ranking.yaml", &yaml)]);
    train_per_request(&app, 300, "a");
    let n = 1000.0;
    let mut counts: HashMap<String, f64> = HashMap::new();
    for i in 0..n as usize {
        *counts
            .entry(variant(&app.assign("ranking", &format!("u{i}"))))
            .or_default() += 1.0;
    }
    // The losers' Thompson win probability is ~0, so each gets the floor: 0.1 of traffic.
    let sigma = (0.1f64 * 0.9 / n).sqrt();
    for loser in ["b", "c"] {
        let share = counts.get(loser).copied().unwrap_or(0.0) / n;
        assert!(
            (share - 0.1).abs() <= 4.0 * sigma,
            "{loser}: {share} (σ = {sigma})"
        );
    }
}

#[test]
fn thompson_concentrates_traffic_on_a_clearly_better_arm() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let mut events = Vec::new();
    for i in 0..200 {
        let unit = format!("train-{i}");
        if app.assign("headline", &unit)["variant"] == "bold" {
            events.push(json!({"id": unit, "experiment": "headline", "unit": unit}));
        }
    }
    app.post_events(&Value::Array(events));
    app.let_posterior_refresh();
    let n = 500.0;
    let bold = (0..n as usize)
        .filter(|i| app.assign("headline", &format!("new-{i}"))["variant"] == "bold")
        .count() as f64;
    // Floor: K·min_share = 0.1 of traffic is uniform, so bold gets ~0.95.
    let sigma = (0.95f64 * 0.05 / n).sqrt();
    assert!(bold / n >= 0.95 - 4.0 * sigma, "bold share {}", bold / n);
    let stats = app.arm("headline", "bold");
    assert!(stats["traffic_share"].as_f64().unwrap() > 0.9, "{stats}");
}

#[test]
fn paused_experiment_serves_the_default_uncounted_and_without_token() {
    let yaml = STICKY.replace("status: running", "status: paused");
    let app = TestApp::spawn(&[("headline.yaml", &yaml)]);
    for i in 0..20 {
        let a = app.assign("headline", &format!("u{i}"));
        assert_eq!(a["variant"], "control");
        assert_eq!(a["counted"], false);
        assert_eq!(a["token"], Value::Null);
    }
    assert_eq!(total_exposures(&app, "headline"), 0);
}

#[test]
fn draft_experiment_is_not_served() {
    let draft = STICKY.replace("status: running", "status: draft");
    let app = TestApp::spawn(&[("headline.yaml", &draft), ("ranking.yaml", PER_REQUEST)]);
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1"),
        404,
        "draft",
    );
    let all = app.post_json("/v1/assign", &json!({"unit": "u1"}));
    assert_eq!(all.status, 200);
    let ids: Vec<&str> = all.body["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["experiment"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ranking"]);
}

#[test]
fn concluded_experiment_serves_the_winner_to_everybody() {
    let yaml = STICKY.replace("status: running", "status: concluded\nwinner: bold");
    let app = TestApp::spawn(&[("headline.yaml", &yaml)]);
    for i in 0..30 {
        assert_eq!(app.assign("headline", &format!("u{i}"))["variant"], "bold");
    }
}

#[test]
fn count_false_peeks_without_counting_or_storing() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for i in 0..10 {
        let r = app.get(&format!(
            "/v1/experiments/headline/assign?unit=u{i}&count=false"
        ));
        assert_eq!(r.status, 200);
        assert_eq!(r.body["counted"], false);
        assert_eq!(r.body["token"], Value::Null);
    }
    assert_eq!(total_exposures(&app, "headline"), 0);
    let first = app.assign("headline", "u0");
    assert_eq!(first["counted"], true, "a peek stores nothing");
    let peek = app.get("/v1/experiments/headline/assign?unit=u0&count=false");
    assert_eq!(peek.body["variant"], first["variant"]);
    assert_eq!(total_exposures(&app, "headline"), 1);
}

#[test]
fn post_assign_answers_each_listed_experiment_in_order() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let r = app.post_json(
        "/v1/assign",
        &json!({"unit": "u1", "experiments": ["ranking", "headline"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unit"], "u1");
    let list = r.body["assignments"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["experiment"], "ranking");
    assert_eq!(list[1]["experiment"], "headline");
    let sticky = app.assign("headline", "u1");
    assert_eq!(sticky["variant"], list[1]["variant"]);
}

#[test]
fn post_assign_refuses_an_experiment_listed_twice_and_counts_nothing() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let mut listed = vec!["headline"];
    listed.extend(std::iter::repeat_n("ranking", 1_000));
    let r = app.post_json("/v1/assign", &json!({"unit": "u1", "experiments": listed}));
    assert_problem(&r, 400, "\"ranking\" is listed more than once");
    assert_eq!(total_exposures(&app, "ranking"), 0);
    assert_eq!(total_exposures(&app, "headline"), 0);
}

#[test]
fn a_query_unit_that_is_not_utf8_is_refused_not_merged_with_another() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=x%FF"),
        400,
        "`unit` is not UTF-8",
    );
    // U+FFFD itself is a fine unit, and the only one of the two that was assigned.
    app.assign("headline", "x%EF%BF%BD");
    assert_eq!(total_exposures(&app, "headline"), 1);
    assert_problem(
        &app.get("/v1/experiments/headline/assign?count=false&unit=%C3"),
        400,
        "`unit`",
    );
}

#[test]
fn serve_loads_only_the_experiments_of_its_environment() {
    let staging_only = STICKY.replace(
        "status: running",
        "status: running\nenvironments: [staging]",
    );
    let production = PER_REQUEST.replace(
        "status: running",
        "status: running\nenvironments: [staging, production]",
    );
    let app = TestApp::spawn_with_env(
        &[
            ("headline.yaml", &staging_only),
            ("ranking.yaml", &production),
        ],
        &[("BANDITD_ENVIRONMENT", "production")],
    );
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1"),
        404,
        "headline",
    );
    assert_eq!(
        app.get("/v1/experiments/ranking/assign?unit=u1").status,
        200
    );
    let listed = app.get("/v1/experiments").body;
    assert_eq!(
        listed["experiments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

#[test]
fn post_assign_answers_the_servable_experiments_and_lists_the_others_with_a_fallback() {
    let draft = STICKY.replace("status: running", "status: draft");
    let app = TestApp::spawn(&[("headline.yaml", &draft), ("ranking.yaml", PER_REQUEST)]);
    let r = app.post_json(
        "/v1/assign",
        &json!({"unit": "u1", "experiments": ["headline", "ranking", "nope"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let assigned = r.body["assignments"].as_array().unwrap();
    assert_eq!(assigned.len(), 1, "{}", r.body);
    assert_eq!(assigned[0]["experiment"], "ranking");
    assert_eq!(assigned[0]["counted"], true);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{}", r.body);
    assert_eq!(errors[0]["experiment"], "headline");
    assert_eq!(errors[0]["error"], "experiment_not_served");
    assert!(errors[0]["detail"].as_str().unwrap().contains("draft"));
    assert_eq!(errors[0]["fallback"]["variant"], "control");
    assert_eq!(
        errors[0]["fallback"]["payload"],
        json!({"headline": "Build faster"})
    );
    assert_eq!(errors[1]["experiment"], "nope");
    assert_eq!(errors[1]["error"], "unknown_experiment");
    assert!(errors[1]["detail"].as_str().unwrap().contains("nope"));
    assert_eq!(errors[1]["fallback"], Value::Null);
    assert_eq!(total_exposures(&app, "headline"), 0);
    app.let_posterior_refresh();
    assert_eq!(total_exposures(&app, "ranking"), 1);
    let clean = app.post_json("/v1/assign", &json!({"unit": "u1"}));
    assert_eq!(clean.body["errors"], json!([]), "{}", clean.body);
}

#[test]
fn an_experiment_of_another_environment_is_named_as_such_not_as_unknown() {
    let staging_only = STICKY.replace(
        "status: running",
        "status: running\nenvironments: [staging]",
    );
    let app = TestApp::spawn_with_env(
        &[
            ("headline.yaml", &staging_only),
            ("ranking.yaml", PER_REQUEST),
        ],
        &[("BANDITD_ENVIRONMENT", "production")],
    );
    let one = app.get("/v1/experiments/headline/assign?unit=u1");
    assert_problem(
        &one,
        404,
        "exists but is not live in environment 'production'",
    );
    assert!(
        one.body["detail"].as_str().unwrap().contains("[staging]"),
        "{}",
        one.body
    );
    let many = app.post_json(
        "/v1/assign",
        &json!({"unit": "u1", "experiments": ["headline", "ranking"]}),
    );
    assert_eq!(many.status, 200, "{}", many.body);
    assert_eq!(many.body["assignments"][0]["experiment"], "ranking");
    let error = &many.body["errors"][0];
    assert_eq!(error["experiment"], "headline", "{}", many.body);
    assert_eq!(error["error"], "not_in_environment");
    assert_eq!(error["fallback"]["variant"], "control");
    assert_eq!(
        error["fallback"]["payload"],
        json!({"headline": "Build faster"})
    );
    // A reload keeps knowing it; an id in no file stays unknown.
    app.write_experiment(
        "extra.yaml",
        &PER_REQUEST.replace("id: ranking", "id: extra"),
    );
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1"),
        404,
        "not live in environment 'production'",
    );
    assert_problem(
        &app.get("/v1/experiments/nope/assign?unit=u1"),
        404,
        "no experiment with id 'nope' is loaded",
    );
}

#[test]
fn assign_answers_are_never_cacheable_successes_and_errors_alike() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ASSIGN_KEY", "k".repeat(32).as_str())],
    );
    let auth = format!("Bearer {}", "k".repeat(32));
    let cache_control = |response: ureq::http::Response<ureq::Body>| {
        let status = response.status().as_u16();
        let value = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        (status, value)
    };
    let get = |path: &str, key: Option<&str>| {
        let request = app.agent.get(format!("{}{path}", app.address));
        let request = match key {
            Some(key) => request.header("authorization", key),
            None => request,
        };
        cache_control(request.call().unwrap())
    };
    let post = |body: &str, key: Option<&str>| {
        let request = app
            .agent
            .post(format!("{}/v1/assign", app.address))
            .header("content-type", "application/json");
        let request = match key {
            Some(key) => request.header("authorization", key),
            None => request,
        };
        cache_control(request.send(body).unwrap())
    };
    let no_store = Some("no-store".to_owned());
    let ok = "/v1/experiments/headline/assign?unit=u1";
    assert_eq!(get(ok, Some(&auth)), (200, no_store.clone()));
    assert_eq!(get(ok, None), (401, no_store.clone()));
    assert_eq!(
        get("/v1/experiments/nope/assign?unit=u1", Some(&auth)),
        (404, no_store.clone())
    );
    assert_eq!(
        get("/v1/experiments/headline/assign", Some(&auth)),
        (400, no_store.clone())
    );
    // Refused before routing (the query is not UTF-8): still an assign route's answer.
    assert_eq!(
        get("/v1/experiments/headline/assign?unit=x%FF", Some(&auth)),
        (400, no_store.clone())
    );
    assert_eq!(
        post(r#"{"unit": "u1"}"#, Some(&auth)),
        (200, no_store.clone())
    );
    assert_eq!(post(r#"{"unit": "u1"}"#, None), (401, no_store.clone()));
    assert_eq!(post(r#"{"unit": 7}"#, Some(&auth)), (400, no_store));
}
