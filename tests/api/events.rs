use serde_json::{Value, json};

use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem};

pub fn reasons(report: &Value) -> Vec<(u64, String)> {
    report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_unit_conversion_is_credited_to_its_arm() {
    let app = TestApp::spawn(&[("headline.yaml", &crate::helpers::naive(STICKY))]);
    let v = app.assign("headline", "u1")["variant"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = app.post_events(
        &json!([{"id": "e1", "experiment": "headline", "unit": "u1", "reward": 0.25}]),
    );
    assert_eq!(
        report,
        json!({
            "received": 1, "applied": 1, "duplicate": 0, "already_rewarded": 0, "rejected": 0,
            "all_rejected": false, "rejected_by_reason": {}, "rejections": [],
            "rejections_omitted": 0
        })
    );
    let arm = app.arm("headline", &v);
    assert_eq!(arm["rewards"], 0.25);
    assert_eq!(arm["exposures"], 1);
    assert_eq!(arm["rate"], 0.25);
    // Beta(1 + 0.25, 1 + 1 − 0.25).
    assert_eq!(arm["posterior"]["alpha"], 1.25);
    assert_eq!(arm["posterior"]["beta"], 1.75);
}

#[test]
fn a_tampered_token_is_rejected_and_the_genuine_one_applies() {
    let app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let a = app.assign("ranking", "u1");
    let token = a["token"].as_str().unwrap().to_owned();
    let (claims, signature) = token.split_once('.').unwrap();
    // Flip one character of the claims: the signature no longer matches.
    let mut bytes = claims.as_bytes().to_vec();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}.{signature}", String::from_utf8(bytes).unwrap());
    let report = app.post_events(&json!([
        {"id": "forged", "experiment": "ranking", "token": forged},
        {"id": "garbage", "experiment": "ranking", "token": "not-a-token"},
        {"id": "genuine", "experiment": "ranking", "token": token},
    ]));
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(
        reasons(&report),
        [(0, "bad_token".into()), (1, "bad_token".into())]
    );
    let arm = app.arm("ranking", a["variant"].as_str().unwrap());
    assert_eq!(arm["rewards"], 1.0);
}

#[test]
fn duplicate_event_ids_apply_once_even_across_a_restart() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for i in 0..5 {
        app.assign("headline", &format!("u{i}"));
    }
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("e{i}"), "experiment": "headline", "unit": format!("u{i}")}))
        .collect();
    let first = app.post_events(&Value::Array(batch.clone()));
    assert_eq!(first["applied"], 5);
    let again = app.post_events(&Value::Array(batch.clone()));
    assert_eq!(
        (again["applied"].clone(), again["duplicate"].clone()),
        (json!(0), json!(5))
    );
    app.restart();
    let after = app.post_events(&Value::Array(batch));
    assert_eq!(
        (after["applied"].clone(), after["duplicate"].clone()),
        (json!(0), json!(5))
    );
    let total: f64 = app
        .arms("headline")
        .iter()
        .map(|a| a["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 5.0);
}

#[test]
fn every_bad_event_is_rejected_with_its_reason_and_the_rest_still_apply() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    app.assign("headline", "u1");
    app.assign("headline", "u2");
    let report = app.post_events(&json!([
        {"id": "ok-1", "experiment": "headline", "unit": "u1"},
        {"id": "x1", "experiment": "nope", "unit": "u1"},
        {"id": "x2", "experiment": "headline", "unit": "never-seen"},
        {"id": "x3", "experiment": "headline", "unit": "u2", "reward": 1.5},
        {"id": "x4", "experiment": "headline", "unit": "u2", "reward": -0.1},
        {"id": "x5", "experiment": "headline", "unit": "u1"},
        {"id": "x6", "experiment": "ranking", "unit": "u1"},
        {"id": "x7", "experiment": "headline", "unit": "u2", "timestamp": "2999-01-01T00:00:00Z"},
        {"id": "x8", "experiment": "headline", "unit": "u2", "timestamp": "last tuesday"},
        {"experiment": "headline", "unit": "u2"},
        {"id": "x10", "experiment": "headline"},
        "not an object",
        {"id": "ok-2", "experiment": "headline", "unit": "u2", "reward": 0.5},
    ]));
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(report["rejected"], 10, "{report}");
    assert_eq!(report["already_rewarded"], 1, "{report}");
    assert_eq!(
        reasons(&report),
        [
            (1, "unknown_experiment".into()),
            (2, "unit_not_assigned".into()),
            (3, "reward_out_of_range".into()),
            (4, "reward_out_of_range".into()),
            (6, "token_required".into()),
            (7, "timestamp_in_future".into()),
            (8, "invalid_event".into()),
            (9, "invalid_event".into()),
            (10, "invalid_event".into()),
            (11, "invalid_event".into()),
        ]
    );
    for r in report["rejections"].as_array().unwrap() {
        assert!(!r["detail"].as_str().unwrap().is_empty(), "{r}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Both kinds of target with a 2-second reward window.
fn short_window_app() -> TestApp {
    let sticky = STICKY.replace("window: 7d", "window: 2s");
    let per_request = PER_REQUEST.replace("window: 1d", "window: 2s");
    TestApp::spawn(&[("headline.yaml", &sticky), ("ranking.yaml", &per_request)])
}

#[test]
fn a_reward_arriving_after_the_window_is_rejected_whatever_its_timestamp_says() {
    let app = short_window_app();
    let assigned_ms = now_ms();
    app.assign("headline", "late");
    let late_token = app.assign("ranking", "late")["token"].clone();
    std::thread::sleep(std::time::Duration::from_millis(3_000));
    app.assign("headline", "in-time");
    let token = app.assign("ranking", "in-time")["token"].clone();
    let report = app.post_events(&json!([
        {"id": "l1", "experiment": "headline", "unit": "late"},
        {"id": "l2", "experiment": "headline", "unit": "late", "timestamp": assigned_ms},
        {"id": "l3", "experiment": "ranking", "token": late_token, "timestamp": assigned_ms},
        {"id": "ok1", "experiment": "headline", "unit": "in-time"},
        {"id": "ok2", "experiment": "ranking", "token": token, "timestamp": now_ms()},
    ]));
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(
        reasons(&report),
        [
            (0, "outside_window".into()),
            (1, "outside_window".into()),
            (2, "outside_window".into()),
        ]
    );
}

#[test]
fn a_timestamp_before_the_assignment_is_refused_and_credits_nothing() {
    let app = short_window_app();
    let variant = app.assign("headline", "u1")["variant"].clone();
    let assigned = app.assign("ranking", "u1");
    let events = |stamp: Option<u64>| {
        let mut events = json!([
            {"id": "e1", "experiment": "headline", "unit": "u1"},
            {"id": "e2", "experiment": "ranking", "token": assigned["token"]},
        ]);
        if let Some(stamp) = stamp {
            for event in events.as_array_mut().unwrap() {
                event["timestamp"] = json!(stamp);
            }
        }
        events
    };
    let report = app.post_events(&events(Some(0)));
    assert_eq!(report["applied"], 0, "{report}");
    assert_eq!(
        reasons(&report),
        [
            (0, "timestamp_before_assignment".into()),
            (1, "timestamp_before_assignment".into()),
        ]
    );
    assert_eq!(
        app.arm("headline", variant.as_str().unwrap())["rewards"],
        0.0
    );
    let ranking = app.arm("ranking", assigned["variant"].as_str().unwrap());
    assert_eq!(ranking["rewards"], 0.0);
    // Refused ids are not spent: the corrected events apply.
    assert_eq!(app.post_events(&events(None))["applied"], 2);
}

#[test]
fn an_event_unit_is_parsed_like_an_assign_unit_and_never_echoed_raw() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let long = "x".repeat(300);
    let control = "bob\u{0}<script>";
    let report = app.post_events(&json!([
        {"id": "e1", "experiment": "headline", "unit": ""},
        {"id": "e2", "experiment": "headline", "unit": long},
        {"id": "e3", "experiment": "headline", "unit": control},
        {"id": "e4", "experiment": "headline", "unit": "say \"hi\""},
        {"id": "e5", "experiment": format!("{}\u{1b}[2J", "x".repeat(10_000)), "unit": "u"},
    ]));
    assert_eq!(
        reasons(&report),
        [
            (0, "invalid_event".into()),
            (1, "invalid_event".into()),
            (2, "invalid_event".into()),
            (3, "unit_not_assigned".into()),
            (4, "unknown_experiment".into()),
        ]
    );
    let details: Vec<&str> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert!(
        details[0].contains("`unit`") && details[0].contains("empty"),
        "{details:?}"
    );
    assert!(
        details[1].contains("256") && !details[1].contains(&long),
        "{details:?}"
    );
    assert!(
        details[2].contains("control") && !details[2].contains("script"),
        "{details:?}"
    );
    assert!(details[3].contains(r#""say \"hi\"""#), "{details:?}");
    // An unknown experiment id is quoted as a short escaped excerpt, not echoed whole.
    let unknown = details[4];
    assert!(
        unknown.len() < 200 && !unknown.contains('\u{1b}'),
        "{}",
        unknown.len()
    );
}

#[test]
fn ndjson_bulk_events_apply_and_a_bad_line_is_rejected_alone() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let mut body = String::new();
    for i in 0..200 {
        app.assign("headline", &format!("u{i}"));
        body.push_str(&format!(
            r#"{{"id":"e{i}","experiment":"headline","unit":"u{i}"}}"#
        ));
        body.push('\n');
        if i == 100 {
            body.push_str("{oops\n");
        }
    }
    let r = app.post_raw("/v1/events", "application/x-ndjson", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], 200);
    assert_eq!(reasons(&r.body), [(101, "invalid_event".into())]);
}

#[test]
fn events_need_the_events_key_when_one_is_set() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_EVENTS_KEY", "pipeline-secret")],
    );
    app.assign("headline", "u1");
    let events = json!([{"id": "e1", "experiment": "headline", "unit": "u1"}]);
    assert_problem(
        &app.post_json("/v1/events", &events),
        401,
        "BANDITD_EVENTS_KEY",
    );
    let wrong = app
        .agent
        .post(format!("{}/v1/events", app.address))
        .header("authorization", "Bearer wrong")
        .send_json(&events)
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let mut right = app
        .agent
        .post(format!("{}/v1/events", app.address))
        .header("authorization", "Bearer pipeline-secret")
        .send_json(&events)
        .unwrap();
    assert_eq!(right.status(), 200);
    let report: Value = right.body_mut().read_json().unwrap();
    assert_eq!(report["applied"], 1);
    // Assign stays open.
    assert_eq!(
        app.get("/v1/experiments/headline/assign?unit=u2").status,
        200
    );
}

#[test]
fn tokens_stay_valid_across_a_restart_because_the_secret_is_kept() {
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let token = app.assign("ranking", "u1")["token"].clone();
    app.restart();
    let report = app.post_events(&json!([{"id": "e1", "experiment": "ranking", "token": token}]));
    assert_eq!(report["applied"], 1, "{report}");
}

#[test]
fn a_configured_token_secret_signs_tokens_that_another_secret_rejects() {
    let secret_a = "a".repeat(32);
    let mut app = TestApp::spawn_with_env(
        &[("ranking.yaml", PER_REQUEST)],
        &[("BANDITD_TOKEN_SECRET", &secret_a)],
    );
    let token = app.assign("ranking", "u1")["token"].clone();
    app.terminate();
    std::fs::remove_dir_all(app.data_dir()).unwrap();
    app.start().unwrap();
    // Same configured secret, fresh data dir: the token is still genuine.
    let report = app.post_events(&json!([{"id": "e1", "experiment": "ranking", "token": token}]));
    assert_eq!(report["applied"], 1, "{report}");
}

#[test]
fn a_short_token_secret_refuses_to_start() {
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    app.terminate();
    app.set_env("BANDITD_TOKEN_SECRET", "short");
    let log = app.start().expect_err("a 5-byte secret must be refused");
    assert!(log.contains("at least 32"), "{log}");
}

#[test]
fn assign_needs_the_assign_key_when_one_is_set() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ASSIGN_KEY", "frontend-key")],
    );
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1"),
        401,
        "BANDITD_ASSIGN_KEY",
    );
    let ok = app
        .agent
        .get(format!(
            "{}/v1/experiments/headline/assign?unit=u1",
            app.address
        ))
        .header("authorization", "Bearer frontend-key")
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Each refusal names its own event's id, whichever check refused it (before the store or
/// after it), and the applied event beside them is credited to its unit's arm: the engine
/// moves an event's id and unit into the store's op and hands the id back only on a refusal.
#[test]
fn every_refused_event_keeps_its_own_id_beside_an_applied_one() {
    let app = TestApp::spawn(&[
        ("headline.yaml", &crate::helpers::naive(STICKY)),
        ("ranking.yaml", PER_REQUEST),
    ]);
    let variant = app.assign("headline", "u1")["variant"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = app.post_events(&json!([
        {"id": "nope-exp", "experiment": "missing", "unit": "u1"},
        {"id": "ok", "experiment": "headline", "unit": "u1"},
        {"id": "needs-token", "experiment": "ranking", "unit": "u1"},
        {"id": "bad-reward", "experiment": "headline", "unit": "u1", "reward": 2},
        {"id": "no-target", "experiment": "headline"},
        {"id": "never", "experiment": "headline", "unit": "u9"},
    ]));
    assert_eq!(report["applied"], 1, "{report}");
    let refused: Vec<(u64, String, String)> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["id"].as_str().unwrap_or("<none>").to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (0, "nope-exp", "unknown_experiment"),
        (2, "needs-token", "token_required"),
        (3, "bad-reward", "reward_out_of_range"),
        (4, "no-target", "invalid_event"),
        (5, "never", "unit_not_assigned"),
    ]
    .map(|(i, id, reason)| (i, id.to_owned(), reason.to_owned()));
    assert_eq!(refused, expected, "{report}");
    assert_eq!(app.arm("headline", &variant)["rewards"], 1.0);
}

/// A batch whose events name two experiments in turn (and one no experiment has) credits each
/// event to its own experiment's arm: the engine looks an experiment up once per run of events
/// naming it, and a change of name must look again.
#[test]
fn a_batch_switching_between_experiments_credits_each_event_to_its_own() {
    let other = crate::helpers::naive(STICKY).replace("id: headline", "id: pricing");
    let app = TestApp::spawn(&[
        ("headline.yaml", &crate::helpers::naive(STICKY)),
        ("pricing.yaml", &other),
    ]);
    let variant = |experiment: &str, unit: &str| {
        app.assign(experiment, unit)["variant"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let headline_u1 = variant("headline", "u1");
    let pricing_u1 = variant("pricing", "u1");
    let pricing_u2 = variant("pricing", "u2");
    // u2 is assigned in pricing only: credited there, refused in headline.
    let report = app.post_events(&json!([
        {"id": "h1", "experiment": "headline", "unit": "u1", "reward": 0.25},
        {"id": "p1", "experiment": "pricing", "unit": "u1", "reward": 0.5},
        {"id": "x1", "experiment": "missing", "unit": "u1"},
        {"id": "h2", "experiment": "headline", "unit": "u2"},
        {"id": "p2", "experiment": "pricing", "unit": "u2", "reward": 0.125},
    ]));
    assert_eq!(report["applied"], 3, "{report}");
    assert_eq!(
        reasons(&report),
        [
            (2, "unknown_experiment".to_owned()),
            (3, "unit_not_assigned".to_owned())
        ],
        "{report}"
    );
    let rewards = |experiment: &str| -> f64 {
        app.arms(experiment)
            .iter()
            .map(|arm| arm["rewards"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(rewards("headline"), 0.25);
    assert_eq!(rewards("pricing"), 0.625);
    assert_eq!(app.arm("headline", &headline_u1)["rewards"], 0.25);
    let on_pricing_u1 = if pricing_u1 == pricing_u2 { 0.625 } else { 0.5 };
    assert_eq!(app.arm("pricing", &pricing_u1)["rewards"], on_pricing_u1);
}
