//! `--redis-wait-replicas` through the real binary: with the Redis replica up, assigns and
//! events are acknowledged; with it gone, the fail-safe answers (degraded assigns, events 503
//! with `Retry-After`, `/readyz` 503), never an acknowledgement; and service resumes by itself
//! once the replica is back.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{REPLICA_SECRET, STICKY, TestApp};
use crate::redis_harness::RedisServer;

fn waiting_on(primary: &RedisServer) -> TestApp {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    app.set_env("BANDITD_REDIS", &primary.url());
    app.set_env("BANDITD_TOKEN_SECRET", REPLICA_SECRET);
    app.set_env("BANDITD_REDIS_WAIT_REPLICAS", "1");
    // Long enough for a replica's acknowledgement on a loaded test machine.
    app.set_env("BANDITD_REDIS_WAIT_TIMEOUT_MS", "1000");
    app.start().expect("the replica starts");
    app
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// POST /v1/events: the status, the `Retry-After` header and the body.
fn post_events(app: &TestApp, events: &Value) -> (u16, Option<String>, Value) {
    let mut response = app
        .agent
        .post(format!("{}/v1/events", app.address))
        .header("content-type", "application/json")
        .send(events.to_string())
        .expect("POST");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn with_wait_replicas_nothing_is_acknowledged_while_the_redis_replica_is_gone() {
    let primary = RedisServer::start();
    let port = primary.port.to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_for("the replica is in sync", || {
        primary
            .cli(&["INFO", "replication"])
            .contains("state=online")
    });
    let app = waiting_on(&primary);
    let alice = app.assign("headline", "alice");
    assert_eq!(alice["counted"], true, "{alice}");
    let (status, _, report) = post_events(
        &app,
        &json!([{"id": "e1", "experiment": "headline", "unit": "alice"}]),
    );
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");

    replica.kill();
    let bob = app.assign("headline", "bob");
    assert_eq!(bob["degraded"], true, "{bob}");
    assert_eq!(bob["counted"], false, "{bob}");
    assert_eq!(bob["token"], Value::Null, "{bob}");
    let (status, retry_after, body) = post_events(
        &app,
        &json!([{"id": "e2", "experiment": "headline", "unit": "bob"}]),
    );
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "a 503 says when to retry");
    wait_for("/readyz is 503 without the replica", || {
        app.get("/readyz").status == 503
    });

    replica.restart();
    wait_for("/readyz is 200 once the replica is back", || {
        app.get("/readyz").status == 200
    });
    let carol = app.assign("headline", "carol");
    assert_eq!(carol["counted"], true, "{carol}");
    assert_eq!(carol["degraded"], false, "{carol}");
}
