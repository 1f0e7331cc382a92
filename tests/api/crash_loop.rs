//! The crash loop: `kill -9` at random moments under a mixed load, again and again, and after
//! every restart the store's promises are checked: every acknowledged event is applied exactly
//! once (re-sending all of them yields only duplicates), the counters equal the records (the
//! audit), no arm has more reward than exposures, and every answered unit keeps its variant.
//!
//! `cargo test` runs 10 kills; `scripts/crash_loop.sh` runs the same loop with 100 or more
//! (`BANDITD_CRASH_KILLS`), in release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use banditd::store::SledStore;

use crate::helpers::{PER_REQUEST, STICKY, TestApp};

/// What the clients were told, kept across kills.
#[derive(Default)]
struct Acked {
    /// Sticky units answered, with their variant.
    units: HashMap<String, String>,
    /// Events acknowledged as applied (the exact JSON sent).
    events: Vec<Value>,
}

/// One client thread's load until the server goes away: sticky assigns of new units each
/// followed by one event (`single`), or per-request assigns whose tokens are posted ten at a
/// time with five earlier acknowledged events re-sent in the same request (`bulk`).
fn client(address: &str, agent: &ureq::Agent, round: usize, thread: usize, acked: &Mutex<Acked>) {
    let post = |events: &Value| -> Option<Value> {
        let mut reply = agent
            .post(format!("{address}/v1/events"))
            .send_json(events)
            .ok()?;
        (reply.status() == 200).then(|| reply.body_mut().read_json::<Value>().ok())?
    };
    let get = |path: String| -> Option<Value> {
        let mut reply = agent.get(format!("{address}{path}")).call().ok()?;
        reply.body_mut().read_json::<Value>().ok()
    };
    for n in 0.. {
        if thread < 2 {
            let unit = format!("r{round}-t{thread}-{n}");
            let Some(answer) = get(format!("/v1/experiments/headline/assign?unit={unit}")) else {
                return;
            };
            let variant = answer["variant"].as_str().unwrap_or_default().to_owned();
            if answer["counted"] == true {
                acked.lock().unwrap().units.insert(unit.clone(), variant);
            }
            let event = json!({"id": format!("e-{unit}"), "experiment": "headline", "unit": unit});
            match post(&json!([event])) {
                Some(report) if report["applied"] == 1 => acked.lock().unwrap().events.push(event),
                Some(_) => {}
                None => return,
            }
        } else {
            let mut events = Vec::new();
            for k in 0..10 {
                let unit = format!("r{round}-t{thread}-{n}-{k}");
                let Some(answer) = get(format!("/v1/experiments/ranking/assign?unit={unit}"))
                else {
                    return;
                };
                if let Some(token) = answer["token"].as_str() {
                    let id = format!("e-{unit}");
                    events.push(json!({"id": id, "experiment": "ranking", "token": token}));
                }
            }
            let resent: Vec<Value> = {
                let acked = acked.lock().unwrap();
                acked.events.iter().rev().take(5).cloned().collect()
            };
            let mut body = events.clone();
            body.extend(resent.iter().cloned());
            let Some(report) = post(&Value::Array(body)) else {
                return;
            };
            assert_eq!(
                report["duplicate"].as_u64(),
                Some(resent.len() as u64),
                "an acknowledged event re-sent during the load is a duplicate: {report}"
            );
            if report["applied"].as_u64() == Some(events.len() as u64) {
                acked.lock().unwrap().events.extend(events);
            }
        }
    }
}

/// Every check made after a restart (see the module docs).
fn check_promises(app: &TestApp, acked: &Acked, round: usize) {
    for (unit, variant) in &acked.units {
        let answer = app.assign("headline", unit);
        assert_eq!(answer["variant"], variant.as_str(), "round {round}: {unit}");
    }
    let (mut duplicate, mut other) = (0, 0);
    for chunk in acked.events.chunks(1000) {
        let report = app.post_events(&Value::Array(chunk.to_vec()));
        duplicate += report["duplicate"].as_u64().unwrap_or(0);
        other +=
            report["received"].as_u64().unwrap_or(0) - report["duplicate"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        (duplicate, other),
        (acked.events.len() as u64, 0),
        "round {round}: every acknowledged event is there exactly once"
    );
    for experiment in ["headline", "ranking"] {
        for arm in app.arms(experiment) {
            let rewards = arm["rewards"].as_f64().unwrap_or(f64::NAN);
            let exposures = arm["exposures"].as_f64().unwrap_or(f64::NAN);
            assert!(
                rewards <= exposures,
                "round {round}: {experiment} arm {arm} has more reward than exposures"
            );
        }
    }
}

#[test]
fn kill_9_again_and_again_under_mixed_load_keeps_every_promise() {
    let kills: usize = std::env::var("BANDITD_CRASH_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(10);
    // No floor: the unit log is compacted whenever half as many entries as units are
    // superseded, so kills also land during compaction steps. A checkpoint every 16 KiB of
    // redo log (a few dozen commits) instead of 16 MiB: kills also land during checkpoints
    // (sled's flush on its thread while commits go on) and right after them (segments reused).
    // Commits of 1 KiB of changes or more (about one in six here: bulk posts, and groups whose
    // unit-log value is near its 2 KiB) are made durable by sled's flush instead of a record,
    // the others by the log: kills land in both, and in the replay of records around a
    // flushed commit.
    let mut app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)],
        &[
            ("BANDITD_STORE_COMPACT_MIN_ENTRIES", "0"),
            ("BANDITD_STORE_CHECKPOINT_KIB", "16"),
            ("BANDITD_STORE_SLED_COMMIT_KIB", "1"),
        ],
    );
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let mut rng = SmallRng::seed_from_u64(14);
    for round in 0..kills {
        let load_ms = rng.random_range(50..600);
        std::thread::scope(|scope| {
            for thread in 0..3 {
                let (address, agent, acked) = (app.address.clone(), app.agent.clone(), &acked);
                scope.spawn(move || client(&address, &agent, round, thread, acked));
            }
            std::thread::sleep(Duration::from_millis(load_ms));
            app.kill9();
        });
        let report = SledStore::open(&app.data_dir())
            .and_then(|store| store.audit())
            .expect("the store opens and audits after kill -9");
        assert!(report.is_clean(), "round {round}: {report:?}");
        // Every answered unit gets one event, so without compaction about as many entries as
        // units would be superseded by now.
        assert!(
            report.superseded_entries * 4 <= report.sticky_records * 3 + 4,
            "round {round}: the unit log was not compacted: {report:?}"
        );
        app.start().expect("restart after kill -9");
        let acked = acked.lock().unwrap();
        check_promises(&app, &acked, round);
        println!(
            "kill {}: after {load_ms} ms; {} units and {} events acknowledged so far; {} superseded unit-log entries",
            round + 1,
            acked.units.len(),
            acked.events.len(),
            report.superseded_entries
        );
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.events.len() > kills * 5,
        "the load ran: {} events",
        acked.events.len()
    );
}
