//! `banditd-fill --events` (benches/load/fill_events.rs), which `benches/load/restart.sh`
//! measures with: the ids it writes must really be kept and applied, or the restart figures
//! would be those of an empty store.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{STICKY, TestApp};

/// Runs `banditd-fill` on the app's data dir (the server must be stopped); its FILL line.
fn fill(app: &TestApp, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_banditd-fill"))
        .arg("--data-dir")
        .arg(app.data_dir())
        .arg("--experiment")
        .arg(app.experiments_dir().join("headline.yaml"))
        .args(args)
        .output()
        .expect("run banditd-fill");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "banditd-fill failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A server that made its data dir and stopped, leaving the dir to `banditd-fill`.
fn stopped_app() -> TestApp {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    // Ready first: a signal that comes before the server's handlers are set ends it at once.
    assert_eq!(app.get("/readyz").status, 200);
    assert_eq!(app.terminate(), Some(0), "clean shutdown");
    app
}

fn total(arms: &[Value], field: &str) -> f64 {
    arms.iter()
        .map(|arm| arm[field].as_f64().unwrap_or(0.0))
        .sum()
}

#[test]
fn filled_events_are_applied_and_kept_so_a_resend_after_a_restart_yields_only_duplicates() {
    let mut app = stopped_app();
    // 40 units, then 100 events: 40 credit the units, 60 credit tokens of their own.
    let line = fill(
        &app,
        &[
            "--count",
            "40",
            "--prefix",
            "u-",
            "--events",
            "100",
            "--credit-units",
            "--events-per-call",
            "16",
        ],
    );
    assert!(
        line.contains("inserted=40 ") && line.contains("events_applied=100 "),
        "{line}"
    );
    assert!(line.contains("event_exposures=60 "), "{line}");

    app.start().expect("restart on the filled dir");
    let arms = app.arms("headline");
    assert_eq!(total(&arms, "exposures"), 100.0, "{arms:?}");
    assert_eq!(total(&arms, "rewards"), 100.0, "{arms:?}");

    // A pipeline's retry of every event (naming a unit, as a retry may): all kept ids.
    let resend: Vec<Value> = (0..100)
        .map(|j| json!({"id": format!("e-{j}"), "experiment": "headline", "unit": format!("u-{}", j % 40)}))
        .collect();
    let report = app.post_events(&Value::Array(resend));
    assert_eq!(
        (report["applied"].clone(), report["duplicate"].clone()),
        (json!(0), json!(100)),
        "{report}"
    );
    // The check can fail: an id the fill did not write, on a fresh unit, is applied.
    app.assign("headline", "fresh");
    let report =
        app.post_events(&json!([{"id": "e-100", "experiment": "headline", "unit": "fresh"}]));
    assert_eq!(report["applied"], 1, "{report}");
}

#[test]
fn a_second_fill_of_the_same_events_finds_them_kept_and_applies_nothing() {
    let app = stopped_app();
    let first = fill(&app, &["--count", "0", "--events", "50"]);
    assert!(
        first.contains("events_applied=50 events_kept_before=0 "),
        "{first}"
    );
    let again = fill(&app, &["--count", "0", "--events", "50"]);
    assert!(
        again.contains("events_applied=0 events_kept_before=50 "),
        "{again}"
    );
}

/// `benches/load/fill_field.sh`, which the load harness reads a fill's figures with, on a real
/// FILL line: each field by its whole name (a greedy match of `seconds=` once gave the scale
/// report the events' time, 0.000 for a fill without events, as the units' fill time).
#[test]
fn the_harness_reads_each_fill_field_by_its_whole_name() {
    let app = stopped_app();
    let line = fill(&app, &["--count", "2000", "--prefix", "s-"]);
    let field = |name: &str| -> String {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_owned()
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/load/fill_field.sh");
    let read = |name: &str| -> String {
        let mut child = Command::new(script)
            .arg(name)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run fill_field.sh");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(line.as_bytes())
            .expect("write the FILL line");
        let output = child.wait_with_output().expect("fill_field.sh output");
        assert!(output.status.success(), "fill_field.sh {name} on {line}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    // A fill of units without events: its events took no time, the units some.
    assert_eq!(field("event_seconds"), "0.000", "{line}");
    assert_ne!(field("seconds"), "0.000", "{line}");
    for name in ["seconds", "event_seconds", "inserted", "flushes"] {
        assert_eq!(read(name), field(name), "{name} in {line}");
    }
}
