//! Bad input gets a precise 4xx problem+json, never a 5xx.

use serde_json::json;

use crate::helpers::{STICKY, TestApp, assert_problem};

#[test]
fn each_class_of_bad_input_gets_its_4xx_problem() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_problem(&app.get("/v1/experiments/nope/assign?unit=u1"), 404, "nope");
    assert_problem(&app.get("/v1/experiments/nope"), 404, "nope");
    assert_problem(&app.get("/v1/experiments/headline/assign"), 400, "unit");
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit="),
        400,
        "empty",
    );
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1&count=maybe"),
        400,
        "count",
    );
    assert_problem(
        &app.post_raw("/v1/assign", "application/json", "{\"unit\": "),
        400,
        "line 1",
    );
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": 7})),
        400,
        "unit",
    );
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": "u", "colour": 1})),
        400,
        "colour",
    );
    assert_problem(
        &app.post_json(
            "/v1/assign",
            &json!({"unit": "u", "experiments": ["headline", "nope"]}),
        ),
        404,
        "nope",
    );
    let long_unit = "x".repeat(300);
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": long_unit})),
        400,
        "256",
    );
    let huge = format!("{{\"unit\": \"{}\"}}", "x".repeat(100_000));
    assert_problem(
        &app.post_raw("/v1/assign", "application/json", &huge),
        413,
        "bytes",
    );
    assert_problem(
        &app.post_raw("/v1/events", "application/json", "[{"),
        400,
        "array",
    );
    assert_problem(
        &app.post_raw("/v1/events", "application/json", "{}"),
        400,
        "array",
    );
    assert_problem(
        &app.post_raw("/v1/events", "text/csv", "a,b"),
        415,
        "ndjson",
    );
    let too_many: Vec<_> = (0..10_001).map(|i| json!({"id": i.to_string()})).collect();
    assert_problem(&app.post_json("/v1/events", &json!(too_many)), 413, "10000");
    assert_problem(&app.get("/v1/nothing-here"), 404, "/v1/nothing-here");
    assert_problem(&app.get("/v1/events"), 405, "GET");
}

#[test]
fn readiness_and_health_answer() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_eq!(app.get("/healthz").status, 200);
    let ready = app.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["experiments"], 1);
}

#[test]
fn cors_allows_only_the_configured_origin() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_CORS_ORIGINS", "https://shop.example")],
    );
    let preflight = |origin: &str| {
        app.agent
            .options(format!("{}/v1/assign", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .call()
            .unwrap()
    };
    let ok = preflight("https://shop.example");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://shop.example"
    );
    let other = preflight("https://evil.example");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn sigterm_exits_cleanly_with_status_zero() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    assert_eq!(app.terminate(), Some(0));
}

#[test]
fn sigint_also_drains_flushes_and_exits_zero() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let variant = app.assign("headline", "u1")["variant"].clone();
    app.signal("INT");
    assert_eq!(app.wait_exit(), Some(0));
    app.start().expect("restart");
    assert_eq!(app.assign("headline", "u1")["variant"], variant);
}

#[test]
fn a_data_dir_written_by_an_older_build_stops_startup_with_a_clear_message() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    // An older build's store: records, but no format mark. A fresh sled directory with one
    // key stands in for it.
    let old = app.data_dir().with_file_name("old-data");
    {
        let db = sled::open(&old).expect("sled opens a new directory");
        db.insert(b"\x00seq", &7u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    std::fs::remove_dir_all(app.data_dir()).unwrap();
    std::fs::rename(&old, app.data_dir()).unwrap();
    let log = app.start().expect_err("the server refuses the old store");
    assert!(
        log.contains("from before store formats were marked")
            && log.contains("new, empty data directory"),
        "{log}"
    );
}
