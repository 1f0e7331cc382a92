//! Replicas (processes of the real binary) on a real three-node Redis Cluster and on a
//! Sentinel-managed primary with a replica, failover included.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, race_new_units, replicas};
use crate::redis_harness::{RedisCluster, RedisSentinel};

fn total(app: &TestApp, field: &str) -> f64 {
    app.arms("headline")
        .iter()
        .map(|arm| arm[field].as_f64().unwrap_or(0.0))
        .sum()
}

fn audit(url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["audit", "--redis", url])
        .env_clear()
        .output()
        .expect("banditd audit runs")
}

#[test]
fn on_a_redis_cluster_racing_units_get_one_variant_and_events_apply_once() {
    let cluster = RedisCluster::start();
    let apps = replicas(&cluster.url(), 3);
    let answers = race_new_units(&apps, 100);
    for (unit, variants) in answers.iter() {
        assert_eq!(variants.len(), 3);
        assert!(
            variants.iter().all(|v| v == &variants[0]),
            "{unit} got {variants:?}"
        );
    }
    // The same events on every replica at once: each applied once.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("e{i}"), "experiment": "headline", "unit": format!("unit-{i}")}))
        .collect();
    let reports: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let batch = Value::Array(batch.clone());
                scope.spawn(move || app.post_events(&batch))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |field: &str| -> u64 { reports.iter().map(|r| r[field].as_u64().unwrap()).sum() };
    assert_eq!(
        (count("applied"), count("duplicate")),
        (100, 200),
        "{reports:?}"
    );
    apps[0].let_posterior_refresh();
    for app in &apps {
        assert_eq!(total(app, "exposures"), 100.0, "every unit counted once");
        assert_eq!(total(app, "rewards"), 100.0, "every event applied once");
    }
    let report = audit(&cluster.url());
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(0), "{text}");
    assert!(
        text.contains("100 sticky records, 0 token marks, 0 confirmation marks, 100 event ids"),
        "{text}"
    );
}

/// Kills the primary; the Sentinel promotes the replica; banditd answers degraded and
/// `/readyz` 503 meanwhile, then finds the new primary by itself and serves again, with
/// every unit acknowledged before the failover kept.
#[test]
fn under_sentinel_a_replica_follows_a_failover_by_itself() {
    let mut redis = RedisSentinel::start();
    let apps = replicas(&redis.url(), 1);
    let app = &apps[0];
    assert_eq!(app.get("/readyz").status, 200);
    let mut acked = HashMap::new();
    for i in 0..20 {
        let unit = format!("before-{i}");
        let body = app.assign("headline", &unit);
        assert_eq!(body["counted"], true, "{body}");
        acked.insert(
            unit,
            body["variant"].as_str().unwrap_or_default().to_owned(),
        );
    }
    // Replication is asynchronous: let the replica catch up before the crash (what a
    // failover can lose otherwise is in the README).
    assert_eq!(redis.primary.cli(&["WAIT", "1", "5000"]), "1");
    let old_primary = redis.primary.port;
    redis.primary.kill();
    let started = Instant::now();
    let mut saw_unready = false;
    let mut i = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failover followed in 60 s (unready seen: {saw_unready})"
        );
        i += 1;
        let body = app.assign("headline", &format!("during-{i}"));
        if app.get("/readyz").status == 503 {
            saw_unready = true;
        } else if saw_unready && body["counted"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(redis.primary_port(), Some(redis.replica.port));
    assert_ne!(redis.replica.port, old_primary);
    assert_eq!(app.get("/readyz").status, 200);
    for (unit, variant) in &acked {
        let body = app.assign("headline", unit);
        assert_eq!(body["variant"], variant.as_str(), "{unit} changed variant");
        assert_eq!(body["counted"], false, "{unit} was counted again");
    }
    let events =
        app.post_events(&json!([{"id": "after", "experiment": "headline", "unit": "before-1"}]));
    assert_eq!(events["applied"], 1, "{events}");
}
