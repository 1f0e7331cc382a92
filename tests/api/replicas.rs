//! Three replicas (three processes of the real binary) on one real `redis-server`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{self, STICKY, TestApp, race_new_units};
use crate::redis_harness::RedisServer;

fn replicas(redis: &RedisServer, n: usize) -> Vec<TestApp> {
    helpers::replicas(&redis.url(), n)
}

fn exposures(app: &TestApp) -> u64 {
    app.arms("headline")
        .iter()
        .map(|arm| arm["exposures"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn a_new_unit_requested_on_three_replicas_at_once_gets_one_variant_counted_once() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, 3);
    let answers = race_new_units(&apps, 300);
    assert_eq!(answers.len(), 300);
    for (unit, variants) in answers.iter() {
        assert_eq!(variants.len(), 3);
        assert!(
            variants.iter().all(|v| v == &variants[0]),
            "{unit} got {variants:?}"
        );
    }
    apps[0].let_posterior_refresh();
    for app in &apps {
        assert_eq!(
            exposures(app),
            300,
            "every unit counted once, seen by every replica"
        );
    }
}

#[test]
fn the_same_events_posted_to_different_replicas_are_applied_once() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, 3);
    for i in 0..50 {
        apps[i % 3].assign("headline", &format!("u{i}"));
    }
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("e{i}"), "experiment": "headline", "unit": format!("u{i}")}))
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
    let applied: u64 = reports.iter().map(|r| r["applied"].as_u64().unwrap()).sum();
    let duplicate: u64 = reports
        .iter()
        .map(|r| r["duplicate"].as_u64().unwrap())
        .sum();
    assert_eq!((applied, duplicate), (50, 100), "{reports:?}");
    apps[1].let_posterior_refresh();
    let rewards: f64 = apps[2]
        .arms("headline")
        .iter()
        .map(|arm| arm["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(rewards, 50.0);
}

/// How far the load has got: the acknowledged units so far.
struct Progress(Arc<Mutex<HashMap<String, String>>>);

impl Progress {
    fn acked(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Blocks until `more` units beyond `from` were acknowledged; fails the test if that takes
    /// longer than `limit` (the store stopped acknowledging). Waiting for progress rather than
    /// for a fixed time keeps a kill "under load" on a machine too busy to acknowledge much in
    /// a second (a debug build beside a compile on two cores).
    fn wait_for(&self, from: usize, more: usize, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        while self.acked() < from + more {
            assert!(
                Instant::now() < deadline,
                "{what}: {} acknowledged in {limit:?}, wanted {more} more than {from}",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Assigns new units on every replica while `during` runs (it is handed the progress, to
/// time its kills by what was acknowledged), recording each acknowledged (counted, not
/// degraded) unit with its variant.
fn load(apps: &[TestApp], during: impl FnOnce(&Progress) + Send) -> HashMap<String, String> {
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        for (r, app) in apps.iter().enumerate() {
            let (acked, done) = (acked.clone(), done.clone());
            let address = app.address.clone();
            let agent = app.agent.clone();
            scope.spawn(move || {
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let unit = format!("r{r}-{i}");
                    let Ok(mut response) = agent
                        .get(format!(
                            "{address}/v1/experiments/headline/assign?unit={unit}"
                        ))
                        .call()
                    else {
                        continue;
                    };
                    let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
                    if body["counted"] == true && body["degraded"] != true {
                        let variant = body["variant"].as_str().unwrap_or_default().to_owned();
                        acked.lock().unwrap().insert(unit, variant);
                    }
                }
            });
        }
        let progress = Progress(acked.clone());
        let done = done.clone();
        scope.spawn(move || {
            // Stop the load even when `during` fails, so the scope ends and reports it.
            struct Stop(Arc<std::sync::atomic::AtomicBool>);
            impl Drop for Stop {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = Stop(done);
            during(&progress);
        });
    });
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

fn assert_kept(app: &TestApp, acked: &HashMap<String, String>) {
    for (unit, variant) in acked {
        let body = app.assign("headline", unit);
        assert_eq!(body["variant"], variant.as_str(), "{unit} changed variant");
        assert_eq!(body["counted"], false, "{unit} was already counted");
    }
}

#[test]
fn kill_9_of_redis_under_load_loses_no_acknowledged_assignment() {
    let mut redis = RedisServer::start();
    let apps = replicas(&redis, 2);
    let redis_ref = &mut redis;
    let acked = load(&apps, move |progress| {
        progress.wait_for(0, 20, Duration::from_secs(60), "before the kill");
        redis_ref.kill();
        std::thread::sleep(Duration::from_millis(300));
        redis_ref.restart();
        // The replicas acknowledge again under the same load once Redis is back.
        let at_restart = progress.acked();
        progress.wait_for(at_restart, 10, Duration::from_secs(60), "after the restart");
    });
    // The replicas recover by themselves once Redis is back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while apps.iter().any(|app| app.get("/readyz").status != 200) {
        assert!(Instant::now() < deadline, "a replica stayed unready");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_kept(&apps[1], &acked);
    apps[0].let_posterior_refresh();
    // A write that reached Redis's disk just before the kill, whose reply was lost, is counted
    // without having been acknowledged (its unit keeps that variant when it comes back); so
    // at least every acknowledged unit is counted, and the counters equal the records.
    assert!(exposures(&apps[0]) >= acked.len() as u64);
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["audit", "--redis", &redis.url()])
        .env_clear()
        .output()
        .expect("banditd audit runs");
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[test]
fn kill_9_of_a_replica_under_load_loses_no_acknowledged_assignment() {
    let redis = RedisServer::start();
    let mut apps = replicas(&redis, 3);
    let pid = apps[0].pid();
    let acked = load(&apps, move |progress| {
        progress.wait_for(0, 20, Duration::from_secs(60), "before the kill");
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        // The two replicas left go on acknowledging.
        let at_kill = progress.acked();
        progress.wait_for(at_kill, 20, Duration::from_secs(60), "after the kill");
    });
    apps[0].kill9();
    assert_kept(&apps[2], &acked);
}

#[test]
fn readyz_is_503_while_redis_is_unreachable() {
    let mut redis = RedisServer::start();
    let apps = replicas(&redis, 1);
    assert_eq!(apps[0].get("/readyz").status, 200);
    let store = apps[0].get("/v1/admin/store").body;
    assert_eq!(store["backend"], "redis", "{store}");
    assert_eq!(store["exposure_flush_ms"], 50, "{store}");
    redis.kill();
    // An assign while Redis is down answers the default, degraded and uncounted.
    let body = apps[0]
        .get("/v1/experiments/headline/assign?unit=fresh")
        .body;
    assert_eq!(body["degraded"], true, "{body}");
    assert_eq!(apps[0].get("/readyz").status, 503);
    let events = apps[0].post_json(
        "/v1/events",
        &json!([{"id": "x", "experiment": "headline", "unit": "fresh"}]),
    );
    assert_eq!(events.status, 503, "{}", events.body);
    let store = apps[0].get("/v1/admin/store").body;
    assert_eq!(store["health"]["writable"], false, "{store}");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while apps[0].get("/readyz").status != 200 {
        assert!(Instant::now() < deadline, "not ready again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn banditd_audit_checks_the_redis_store_and_exits_1_on_a_tampered_counter() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, 2);
    for i in 0..20 {
        apps[i % 2].assign("headline", &format!("u{i}"));
    }
    apps[0].post_events(&json!([{"id": "e1", "experiment": "headline", "unit": "u1"}]));
    let audit = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
            .args(["audit", "--redis", &redis.url()])
            .env_clear()
            .output()
            .expect("banditd audit runs")
    };
    let clean = audit();
    let report = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{report}");
    assert!(
        report.contains("20 sticky records, 0 token marks, 0 confirmation marks, 1 event ids"),
        "{report}"
    );
    let arms = redis.cli(&["--scan", "--pattern", "{bd:headline:*}:a"]);
    let key = arms.lines().next().expect("an arms key");
    redis.cli(&["HINCRBY", key, "n|control", "3"]);
    let tampered = audit();
    let report = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{report}");
    assert!(report.contains("MISMATCH headline"), "{report}");
}

#[test]
fn a_rolling_restart_of_every_replica_under_load_fails_no_assign() {
    let redis = RedisServer::start();
    let mut apps = replicas(&redis, 3);
    // The load balancer's view: the replicas in rotation.
    let live: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        apps.iter().map(|app| app.address.clone()).collect(),
    ));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agent = apps[0].agent.clone();
    let (acked, failed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (live, done, agent) = (live.clone(), done.clone(), agent.clone());
                scope.spawn(move || {
                    let mut acked = HashMap::new();
                    let mut failed = Vec::new();
                    let mut i = 0usize;
                    while !done.load(std::sync::atomic::Ordering::Acquire) {
                        i += 1;
                        let address = {
                            let live = live.lock().unwrap();
                            live[i % live.len()].clone()
                        };
                        let unit = format!("w{w}-{i}");
                        let reply = agent
                            .get(format!(
                                "{address}/v1/experiments/headline/assign?unit={unit}"
                            ))
                            .call();
                        match reply {
                            Ok(mut response) if response.status() == 200 => {
                                let body: Value =
                                    response.body_mut().read_json().unwrap_or(Value::Null);
                                if body["degraded"] == true {
                                    failed.push(format!("{unit}: degraded"));
                                } else {
                                    let variant = body["variant"].as_str().unwrap_or("").to_owned();
                                    acked.insert(unit, variant);
                                }
                            }
                            Ok(response) => failed.push(format!("{unit}: {}", response.status())),
                            Err(error) => failed.push(format!("{unit}: {error}")),
                        }
                    }
                    (acked, failed)
                })
            })
            .collect();
        for app in apps.iter_mut() {
            let address = app.address.clone();
            // Out of rotation first, as a load balancer drains a replica before stopping it.
            live.lock().unwrap().retain(|a| a != &address);
            std::thread::sleep(Duration::from_millis(100));
            app.restart();
            live.lock().unwrap().push(app.address.clone());
            std::thread::sleep(Duration::from_millis(200));
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let mut acked = HashMap::new();
        let mut failed = Vec::new();
        for worker in workers {
            let (a, f) = worker.join().unwrap();
            acked.extend(a);
            failed.extend(f);
        }
        (acked, failed)
    });
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(acked.len() > 20, "the load made progress: {}", acked.len());
    assert_kept(&apps[0], &acked);
}

#[test]
fn a_tls_redis_url_is_refused_at_startup_without_showing_the_password() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    app.set_env("BANDITD_REDIS", "rediss://:hunter2-secret@127.0.0.1:6380/0");
    let log = app.start().expect_err("a TLS URL is refused");
    assert!(log.contains("rediss:// (TLS) is not supported"), "{log}");
    assert!(!log.contains("hunter2-secret"), "{log}");
}

#[test]
fn an_unreachable_redis_stops_the_start_with_a_clear_error() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    app.set_env(
        "BANDITD_REDIS",
        &format!("redis://:pw-secret@127.0.0.1:{port}"),
    );
    let log = app.start().expect_err("no redis, no start");
    assert!(log.contains("cannot reach redis"), "{log}");
    assert!(!log.contains("pw-secret"), "{log}");
}
