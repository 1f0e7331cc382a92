//! The store's metrics on a Redis replica, over real HTTP on a real `redis-server`: the group
//! commit families the embedded store records (size, time, failures) move with its commits
//! too, and the replica's own figures (reward commits by transaction outcome, the gather)
//! appear in `/metrics` and in `GET /v1/admin/store` alike.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers;
use crate::metrics::{Scrape, scrape};
use crate::redis_harness::RedisServer;

/// A Redis replica's scrape after a new unit and an event: every Redis family has a sample
/// (the shipped dashboard's Redis panels query them, `metrics.rs`).
pub fn redis_replica_scrape() -> Scrape {
    let redis = RedisServer::start();
    let app = helpers::replicas(&redis.url(), 1).remove(0);
    app.assign("headline", "u0");
    app.post_events(&json!([{"id": "e0", "experiment": "headline", "unit": "u0"}]));
    scrape(&app)
}

const APPLIED: &str = r#"banditd_store_redis_transactions_total{outcome="applied"}"#;

#[test]
fn a_redis_replica_reports_its_commits_and_their_failures() {
    let mut redis = RedisServer::start();
    let app = helpers::replicas(&redis.url(), 1).remove(0);
    for k in 0..10 {
        assert_eq!(app.assign("headline", &format!("u{k}"))["counted"], true);
    }
    let events: Vec<_> = (0..5)
        .map(|k| json!({"id": format!("e{k}"), "experiment": "headline", "unit": format!("u{k}")}))
        .collect();
    let posted = app.post_json("/v1/events", &json!(events));
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.body["applied"], 5, "{}", posted.body);

    let metrics = scrape(&app);
    // Ten new units and one POST of events: at least two commits carrying them.
    let commits = metrics.value("banditd_store_commit_batch_size_count");
    assert!(commits >= 2.0, "{}", metrics.text);
    assert!(
        metrics.value("banditd_store_commit_batch_size_sum") >= 11.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.value("banditd_store_commit_duration_seconds_count"),
        commits
    );
    assert_eq!(metrics.value("banditd_store_commit_failures_total"), 0.0);
    // The events' commit: unit rewards without a half-life, one replica, so a transaction.
    assert_eq!(metrics.value(APPLIED), 1.0, "{}", metrics.text);
    for outcome in ["conflict", "discarded"] {
        let series = format!(r#"banditd_store_redis_transactions_total{{outcome="{outcome}"}}"#);
        assert!(metrics.text.contains(&series), "{series} missing");
        assert_eq!(metrics.value(&series), 0.0);
    }
    for family in [
        "banditd_store_redis_gather_delayed_total",
        "banditd_store_redis_gather_wait_seconds_total",
        "banditd_store_redis_gather_pauses_total",
    ] {
        assert!(metrics.text.contains(family), "{family} missing");
    }
    // The embedded store's own families are not there.
    assert!(!metrics.text.contains("banditd_store_table_bytes"));
    let store = app.get("/v1/admin/store").body;
    let commits = &store["redis_commits"];
    for (field, value) in [
        ("transactions_applied", 1),
        ("transaction_conflicts", 0),
        ("transactions_discarded", 0),
    ] {
        assert_eq!(commits[field], value, "{field}: {store}");
    }
    assert!(commits["gather_pauses"].is_u64(), "{store}");

    // With Redis gone a write fails, and the failure is counted as the embedded store's are.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = app.assign("headline", "after-the-kill");
        if scrape(&app).value("banditd_store_commit_failures_total") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed commit counted");
        std::thread::sleep(Duration::from_millis(100));
    }
}
