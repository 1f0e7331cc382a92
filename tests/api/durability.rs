//! `kill -9` tests: an acknowledged write is never lost, and counters always equal what the
//! stored records imply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use banditd::store::SledStore;

use crate::helpers::{STICKY, TestApp};

fn assert_audit_clean(app: &TestApp) {
    let store = SledStore::open(&app.data_dir()).expect("reopen sled after the crash");
    let report = store.audit().expect("audit");
    assert!(
        report.is_clean(),
        "counters disagree with records: {report:?}"
    );
}

#[test]
fn kill_9_right_after_acked_events_loses_none_of_them() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let units = 40;
    for i in 0..units {
        app.assign("headline", &format!("u{i}"));
    }
    // Concurrent single-event posts, so acks share group commits.
    let acked: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let app = &app;
                s.spawn(move || {
                    (0..units)
                        .filter(|i| i % 4 == t)
                        .filter(|i| {
                            let r = app.post_json(
                                "/v1/events",
                                &json!([{"id": format!("e{i}"), "experiment": "headline", "unit": format!("u{i}")}]),
                            );
                            r.status == 200 && r.body["applied"] == 1
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(acked.len(), units);
    app.kill9();
    assert_audit_clean(&app);
    app.start().expect("restart after kill -9");
    let total: f64 = app
        .arms("headline")
        .iter()
        .map(|a| a["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(total, units as f64);
    let retry: Vec<Value> = acked
        .iter()
        .map(|i| json!({"id": format!("e{i}"), "experiment": "headline", "unit": format!("u{i}")}))
        .collect();
    let report = app.post_events(&Value::Array(retry));
    assert_eq!(report["duplicate"], units, "{report}");
}

#[test]
fn kill_9_mid_stream_keeps_acked_writes_exactly_once_and_unacked_at_most_once() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let answered: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sent: Arc<Mutex<Vec<usize>>> = Arc::default();
    let address = app.address.clone();
    let agent = app.agent.clone();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (answered, acked, sent) = (answered.clone(), acked.clone(), sent.clone());
            let (address, agent) = (address.clone(), agent.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    let i = n * 4 + t;
                    let unit = format!("u{i}");
                    let Ok(mut r) = agent
                        .get(format!("{address}/v1/experiments/headline/assign?unit={unit}"))
                        .call()
                    else {
                        return;
                    };
                    let Ok(a) = r.body_mut().read_json::<Value>() else { return };
                    answered.lock().unwrap().insert(unit.clone(), a["variant"].as_str().unwrap_or("").to_owned());
                    sent.lock().unwrap().push(i);
                    let ok = agent
                        .post(format!("{address}/v1/events"))
                        .send_json(json!([{"id": format!("e{i}"), "experiment": "headline", "unit": unit}]))
                        .ok()
                        .and_then(|mut r| (r.status() == 200).then(|| r.body_mut().read_json::<Value>().ok()).flatten())
                        .is_some_and(|report| report["applied"] == 1);
                    if !ok {
                        return;
                    }
                    acked.lock().unwrap().push(i);
                }
            })
        })
        .collect();
    // `benches/load/run.sh --crash SECONDS` runs this test long, in release.
    let load_ms = std::env::var("BANDITD_CRASH_LOAD_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1_500);
    std::thread::sleep(Duration::from_millis(load_ms));
    app.kill9();
    for w in workers {
        w.join().unwrap();
    }
    assert_audit_clean(&app);
    app.start().expect("restart after kill -9");
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(acked.len() > 20, "the load ran: {} acked", acked.len());
    println!(
        "kill -9 after {load_ms} ms of load: {} events acked, {} sent, {} units answered",
        acked.len(),
        sent.len(),
        answered.lock().unwrap().len()
    );
    // A unit that was answered keeps its variant after the crash.
    for (unit, variant) in answered.lock().unwrap().iter() {
        assert_eq!(
            app.assign("headline", unit)["variant"],
            variant.as_str(),
            "{unit}"
        );
    }
    // Re-sending everything is safe: acked ones are duplicates; the rest apply at most once.
    let resend: Vec<Value> = sent
        .iter()
        .map(|i| json!({"id": format!("e{i}"), "experiment": "headline", "unit": format!("u{i}")}))
        .collect();
    let (mut duplicate, mut applied) = (0, 0);
    let mut report = Value::Null;
    for chunk in resend.chunks(5_000) {
        report = app.post_events(&Value::Array(chunk.to_vec()));
        duplicate += report["duplicate"].as_u64().unwrap() as usize;
        applied += report["applied"].as_u64().unwrap() as usize;
    }
    assert!(
        duplicate >= acked.len(),
        "every acked event is already there: {report}"
    );
    assert_eq!(applied + duplicate, sent.len(), "{report}");
    let total: f64 = app
        .arms("headline")
        .iter()
        .map(|a| a["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(
        total,
        sent.len() as f64,
        "each event applied exactly once in the end"
    );
}
