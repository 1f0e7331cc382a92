//! Replicas (processes of the real binary) through failures of the Redis deployment under
//! them: a password-protected Sentinel, and a Redis Cluster primary killed under load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{REPLICA_SECRET, STICKY, TestApp, replicas};
use crate::redis_harness::{RedisCluster, RedisSentinel, SentinelSetup};

const SENTINEL_PASSWORD: &str = "sentinel-secret-4c1b";
const DATA_PASSWORD: &str = "data-secret-8e27";

fn on_sentinel(url: &str, sentinel_password: &str) -> TestApp {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    app.set_env("BANDITD_REDIS", url);
    app.set_env("BANDITD_REDIS_PASSWORD", DATA_PASSWORD);
    app.set_env("BANDITD_REDIS_SENTINEL_PASSWORD", sentinel_password);
    app.set_env("BANDITD_TOKEN_SECRET", REPLICA_SECRET);
    app
}

#[test]
fn a_password_protected_sentinel_serves_with_its_password_and_a_wrong_one_stops_the_start() {
    let redis = RedisSentinel::start_with(&SentinelSetup {
        sentinel_password: Some(SENTINEL_PASSWORD),
        data_password: Some(DATA_PASSWORD),
        ..SentinelSetup::default()
    });
    let mut wrong = on_sentinel(&redis.url(), "not-the-sentinel-secret");
    let log = wrong
        .start()
        .expect_err("a wrong Sentinel password stops the start");
    assert!(
        log.contains("a Sentinel refused the Sentinel password")
            && log.contains("BANDITD_REDIS_SENTINEL_PASSWORD"),
        "{log}"
    );
    for secret in ["not-the-sentinel-secret", SENTINEL_PASSWORD, DATA_PASSWORD] {
        assert!(!log.contains(secret), "{log}");
    }
    let mut app = on_sentinel(&redis.url(), SENTINEL_PASSWORD);
    app.start().expect("the right password starts the replica");
    assert_eq!(app.get("/readyz").status, 200);
    let body = app.assign("headline", "alice");
    assert_eq!(body["counted"], true, "{body}");
    let log = app.log.lock().unwrap().join("\n");
    for secret in [SENTINEL_PASSWORD, DATA_PASSWORD] {
        assert!(!log.contains(secret), "{log}");
    }
    // `banditd audit` takes the same two passwords, from the same environment variables.
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["audit", "--redis", &redis.url()])
        .env_clear()
        .env("BANDITD_REDIS_PASSWORD", DATA_PASSWORD)
        .env("BANDITD_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
        .output()
        .expect("banditd audit runs");
    let text = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.status.code(), Some(0), "{text}");
    assert!(text.contains("1 sticky records"), "{text}");
}

/// One assign answered under load: its unit, HTTP status, body and when it came back.
struct Answer {
    unit: String,
    status: u16,
    body: Value,
    at: Instant,
}

/// New units on every replica until `stop`.
fn assign_until(apps: &[TestApp], stop: &AtomicBool, answers: &Mutex<Vec<Answer>>) {
    std::thread::scope(|scope| {
        for (r, app) in apps.iter().enumerate() {
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let unit = format!("r{r}-{i}");
                    let reply = app.get(&format!("/v1/experiments/headline/assign?unit={unit}"));
                    answers.lock().unwrap().push(Answer {
                        unit,
                        status: reply.status,
                        body: reply.body,
                        at: Instant::now(),
                    });
                }
            });
        }
    });
}

/// Runs new-unit assigns on every replica, calls `kill` after 500 ms, and keeps going until
/// every replica has been unready and is ready again, `healed()` holds and 40 units were
/// counted since; panics after 40 s. Returns every answer, and asserts the promises of a
/// failover under load: no answer but 200 (degraded ones included), some degraded, and the
/// counters equal the records (`banditd audit` on `url`).
fn failover_under_load(
    apps: &[TestApp],
    url: &str,
    kill: impl FnOnce(),
    healed: impl Fn() -> bool,
) -> Vec<Answer> {
    let answers: Mutex<Vec<Answer>> = Mutex::default();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| assign_until(apps, &stop, &answers));
        std::thread::sleep(Duration::from_millis(500));
        let killed_at = Instant::now();
        kill();
        let deadline = killed_at + Duration::from_secs(40);
        let mut saw_unready = false;
        loop {
            let ready = apps.iter().all(|app| {
                let status = app.get("/readyz").status;
                saw_unready |= status == 503;
                status == 200
            });
            let counted_since = answers
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.at > killed_at + Duration::from_secs(1) && a.body["counted"] == true)
                .count();
            if ready && saw_unready && counted_since >= 40 && healed() {
                break;
            }
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                panic!(
                    "no recovery in 40 s (unready seen: {saw_unready}, counted since: {counted_since})"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let answers = answers.into_inner().unwrap();
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 200)
        .map(|a| format!("{} {}: {}", a.unit, a.status, a.body))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let degraded = answers
        .iter()
        .filter(|a| a.body["degraded"] == true)
        .count();
    assert!(degraded > 0, "no assign saw the dead primary");
    // Units acknowledged (counted) before the kill may be gone if the primary had not sent
    // them to its replica yet (README, "What a failover can lose"): counted, not asserted.
    let acked: HashMap<&str, &Value> = answers
        .iter()
        .filter(|a| a.body["counted"] == true && a.body["degraded"] != true)
        .map(|a| (a.unit.as_str(), &a.body["variant"]))
        .collect();
    let mut changed = 0;
    for (unit, variant) in &acked {
        let body = apps[apps.len() - 1].assign("headline", unit);
        if &&body["variant"] != variant || body["counted"] == true {
            changed += 1;
        }
    }
    eprintln!(
        "{} assigns, {degraded} degraded, {} acknowledged, {changed} lost by the failover",
        answers.len(),
        acked.len()
    );
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["audit", "--redis", url])
        .env_clear()
        .output()
        .expect("banditd audit runs");
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    answers
}

/// Six nodes (three primaries, a replica each); `kill -9` of one primary while two banditd
/// replicas assign new units. Until the cluster promotes that primary's replica (node timeout
/// 2 s), the writes to its slots fail and those assigns answer degraded (200, the default
/// variant, uncounted) and `/readyz` 503; never a 5xx. Then every replica is ready again by
/// itself and counts new units, and the counters equal the records.
#[test]
fn a_cluster_primary_killed_under_load_is_replaced_and_the_replicas_serve_again() {
    let cluster = Mutex::new(RedisCluster::start_with_replicas());
    let url = cluster.lock().unwrap().url();
    let apps = replicas(&url, 2);
    let victim = cluster.lock().unwrap().primaries()[0];
    failover_under_load(
        &apps,
        &url,
        || cluster.lock().unwrap().nodes[victim].kill(),
        || cluster.lock().unwrap().primaries().len() == 3,
    );
    cluster.lock().unwrap().wait_ok();
}

/// `kill -9` of the Sentinel-managed primary while two banditd replicas assign new units:
/// degraded answers (never a 5xx) and `/readyz` 503 until the Sentinel promotes the replica,
/// then both banditd replicas follow it by themselves.
#[test]
fn a_sentinel_primary_killed_under_load_is_followed_and_the_replicas_serve_again() {
    let redis = Mutex::new(RedisSentinel::start());
    let url = redis.lock().unwrap().url();
    let apps = replicas(&url, 2);
    failover_under_load(
        &apps,
        &url,
        || redis.lock().unwrap().primary.kill(),
        || {
            let redis = redis.lock().unwrap();
            redis.primary_port() == Some(redis.replica.port)
        },
    );
}
