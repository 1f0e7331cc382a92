//! Guardrails served: events with a `metric` drive the halt test, a halted arm gets no new
//! traffic and its sticky units move, the halt is durable across a restart and shows in the
//! stats, the metrics, the export and the dashboard, and only a `resume_after_halt` naming
//! the halt lets the arm back in.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{STICKY, TestApp};

/// The harness's sticky experiment with a refunds guardrail that decides after 20 exposures.
fn with_guardrails(resume: Option<u64>) -> String {
    let resume = resume.map_or(String::new(), |ms| format!("\n    resume_after_halt: {ms}"));
    let text = format!(
        "{STICKY}guardrails:\n  - metric: refunds\n    direction: lower_is_better\n    \
         max_relative_change: 0.1\n    confidence: 0.95\n    min_exposures: 20\n"
    );
    text.replace(
        "    payload: { headline: \"Ship in a day\" }",
        &format!("    payload: {{ headline: \"Ship in a day\" }}{resume}"),
    )
}

fn variants_of(app: &TestApp, units: impl Iterator<Item = String>) -> Vec<(String, String)> {
    units
        .map(|unit| {
            let variant = app.assign("headline", &unit)["variant"]
                .as_str()
                .unwrap()
                .to_owned();
            (unit, variant)
        })
        .collect()
}

fn refund(id: &str, unit: &str) -> Value {
    json!({"id": id, "experiment": "headline", "unit": unit, "metric": "refunds"})
}

fn halts(app: &TestApp) -> Vec<Value> {
    let reply = app.get("/v1/experiments/headline");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["halts"].as_array().cloned().unwrap_or_default()
}

#[test]
fn validate_accepts_an_experiment_with_guardrails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headline.yaml");
    std::fs::write(&file, with_guardrails(Some(5))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("ok"), "{stdout}");
}

#[test]
fn guardrail_events_follow_the_reward_rules_and_unknown_metrics_are_refused() {
    let app = TestApp::spawn(&[("headline.yaml", &with_guardrails(None))]);
    app.assign("headline", "u1");
    let report = app.post_events(&json!([
        refund("g1", "u1"),
        refund("g1", "u1"),
        refund("g2", "u1"),
        // The primary reward of the same assignment is its own at-most-once credit.
        {"id": "r1", "experiment": "headline", "unit": "u1"},
        {"id": "r2", "experiment": "headline", "unit": "u1", "metric": "reward"},
        {"id": "g3", "experiment": "headline", "unit": "u1", "metric": "errors"},
        refund("g4", "nobody"),
    ]));
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(report["duplicate"], 1, "{report}");
    assert_eq!(report["already_rewarded"], 2, "{report}");
    assert_eq!(
        report["rejected_by_reason"]["unknown_metric"], 1,
        "{report}"
    );
    assert_eq!(
        report["rejected_by_reason"]["unit_not_assigned"], 1,
        "{report}"
    );
    let refused = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "unknown_metric")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        refused.contains("\"errors\"")
            && refused.contains("'headline'")
            && refused.contains("'refunds'"),
        "{refused}"
    );
    // NDJSON takes the field too.
    let reply = app.post_raw(
        "/v1/events",
        "application/x-ndjson",
        "{\"id\":\"g1\",\"experiment\":\"headline\",\"unit\":\"u1\",\"metric\":\"refunds\"}\n",
    );
    assert_eq!(reply.body["duplicate"], 1, "{}", reply.body);
}

#[test]
fn guardrail_events_outside_the_window_are_refused() {
    let short = with_guardrails(None).replace("reward: { window: 7d }", "reward: { window: 1s }");
    let app = TestApp::spawn(&[("headline.yaml", &short)]);
    app.assign("headline", "u1");
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let report = app.post_events(&json!([refund("late", "u1")]));
    assert_eq!(
        report["rejected_by_reason"]["outside_window"], 1,
        "{report}"
    );
}

#[test]
fn a_harmful_arm_is_halted_durably_and_only_a_named_resume_lets_it_back() {
    let mut app = TestApp::spawn(&[("headline.yaml", &with_guardrails(None))]);
    // The server checks guardrails each time the exposures pass a multiple of 1,000.
    let assigned = variants_of(&app, (0..999).map(|i| format!("u{i}")));
    let bold: Vec<&String> = assigned
        .iter()
        .filter(|(_, v)| v == "bold")
        .map(|(u, _)| u)
        .collect();
    assert!(
        bold.len() >= 20 && assigned.len() - bold.len() >= 20,
        "{assigned:?}"
    );
    // Every bold unit asks for a refund; no control unit does.
    let events: Vec<Value> = bold
        .iter()
        .map(|unit| refund(&format!("refund-{unit}"), unit))
        .collect();
    assert_eq!(app.post_events(&json!(events))["applied"], bold.len());
    assert!(halts(&app).is_empty(), "no check before 1,000 exposures");
    app.assign("headline", "exposure-1000");
    app.let_posterior_refresh();
    app.assign("headline", "trigger");

    let held = halts(&app);
    assert_eq!(held.len(), 1, "{held:?}");
    let halt = &held[0];
    assert_eq!(
        (halt["variant"].as_str(), halt["metric"].as_str()),
        (Some("bold"), Some("refunds"))
    );
    assert_eq!(halt["against"], "control");
    assert_eq!(halt["resumed"], false);
    assert!(halt["prob_worse"].as_f64().unwrap() >= 0.95, "{halt}");
    assert_eq!(halt["events"].as_f64(), Some(bold.len() as f64), "{halt}");
    let halted_ms = halt["halted_ms"].as_u64().unwrap();
    assert_eq!(app.arm("headline", "bold")["halted"], true);
    assert_eq!(app.arm("headline", "bold")["traffic_share"], 0.0);

    let check_halted = |app: &TestApp| {
        let fresh = variants_of(app, (0..40).map(|i| format!("new{i}")));
        assert!(fresh.iter().all(|(_, v)| v == "control"), "{fresh:?}");
        // A unit stuck to the halted arm moves, like one of a retired variant.
        let moved = app.assign("headline", bold[0]);
        assert_eq!(moved["variant"], "control", "{moved}");
    };
    check_halted(&app);
    // The halt is written durably: a restart on the same data dir keeps it.
    app.restart();
    app.assign("headline", "after-restart");
    assert_eq!(halts(&app)[0]["halted_ms"].as_u64(), Some(halted_ms));
    check_halted(&app);
    let unit = bold[1];
    assert_eq!(app.assign("headline", unit)["variant"], "control");

    let metrics = app
        .get("/metrics")
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        metrics.contains(
            "banditd_guardrail_halted{experiment=\"headline\",variant=\"bold\",metric=\"refunds\"} 1"
        ),
        "{metrics}"
    );
    let export = app.get("/v1/experiments/headline/export?what=stats&format=ndjson");
    assert_eq!(export.status, 200);
    let text = export.body.as_str().unwrap_or_default().to_owned();
    let bold_row: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|row| row["variant"] == "bold")
        .unwrap();
    assert_eq!(bold_row["halted"], true, "{text}");
    let page = app.get("/ui/experiments/headline");
    let html = page.body.as_str().unwrap_or_default();
    assert!(
        html.contains("Guardrail halts") && html.contains("data-metric=\"refunds\""),
        "{html}"
    );

    // A stale resume (naming another time) does not lift the halt.
    app.write_experiment("headline.yaml", &with_guardrails(Some(halted_ms - 1)));
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    app.let_posterior_refresh();
    app.assign("headline", "stale-trigger");
    check_halted(&app);
    // The reviewed resume names the halt: the arm competes again.
    app.write_experiment("headline.yaml", &with_guardrails(Some(halted_ms)));
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    app.let_posterior_refresh();
    app.assign("headline", "resume-trigger");
    assert_eq!(halts(&app)[0]["resumed"], true);
    assert_eq!(app.arm("headline", "bold")["halted"], false);
    assert!(
        app.arm("headline", "bold")["traffic_share"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let metrics = app
        .get("/metrics")
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        metrics.contains(
            "banditd_guardrail_halted{experiment=\"headline\",variant=\"bold\",metric=\"refunds\"} 0"
        ),
        "{metrics}"
    );
}

/// Over Redis the halt one replica decides is the one every replica applies, and it
/// survives a replica's restart.
#[test]
fn on_redis_a_halt_stops_the_arm_on_every_replica_and_survives_a_restart() {
    let redis = crate::redis_harness::RedisServer::start();
    let url = redis.url();
    let spec = with_guardrails(None);
    let spawn = || TestApp::spawn_with_env(&[("headline.yaml", &spec)], &[("BANDITD_REDIS", &url)]);
    let deciding = spawn();
    let mut other = spawn();
    let assigned = variants_of(&deciding, (0..999).map(|i| format!("u{i}")));
    let events: Vec<Value> = assigned
        .iter()
        .filter(|(_, v)| v == "bold")
        .map(|(unit, _)| refund(&format!("refund-{unit}"), unit))
        .collect();
    let report = other.post_events(&json!(events));
    assert_eq!(report["applied"], events.len(), "{report}");
    assert_eq!(other.post_events(&json!(events))["duplicate"], events.len());
    deciding.assign("headline", "exposure-1000");
    deciding.let_posterior_refresh();
    deciding.assign("headline", "trigger");
    let decided = halts(&deciding);
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["variant"], "bold");

    other.let_posterior_refresh();
    other.assign("headline", "refresh");
    assert_eq!(halts(&other), decided);
    let fresh = variants_of(&other, (0..30).map(|i| format!("new{i}")));
    assert!(fresh.iter().all(|(_, v)| v == "control"), "{fresh:?}");
    let stuck = &assigned.iter().find(|(_, v)| v == "bold").unwrap().0;
    assert_eq!(other.assign("headline", stuck)["variant"], "control");

    other.restart();
    other.assign("headline", "after-restart");
    assert_eq!(halts(&other), decided);
    let fresh = variants_of(&other, (0..30).map(|i| format!("later{i}")));
    assert!(fresh.iter().all(|(_, v)| v == "control"), "{fresh:?}");
}
