//! `banditd audit`: the real binary on a stopped server's data dir.

use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{STICKY, TestApp};

fn audit(app: &TestApp) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("audit")
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .expect("banditd audit runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A server with three assigned units, one rewarded, stopped cleanly.
fn stopped_app_with_data() -> TestApp {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for unit in ["u1", "u2", "u3"] {
        app.assign("headline", unit);
    }
    let report = app.post_events(&json!([{"id": "e1", "experiment": "headline", "unit": "u1"}]));
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(app.terminate(), Some(0));
    app
}

#[test]
fn audit_of_a_clean_store_exits_0_and_says_what_it_checked() {
    let app = stopped_app_with_data();
    let output = audit(&app);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let out = text(&output);
    assert!(out.contains("3 sticky records"), "{out}");
    assert!(out.contains("1 event ids"), "{out}");
    assert!(
        out.contains("clean: every counter equals what the records imply"),
        "{out}"
    );
}

#[test]
fn audit_of_a_tampered_store_exits_1_and_names_the_arm() {
    let app = stopped_app_with_data();
    {
        // Remove the sticky records behind the store's back (since store format 5 they are
        // entries of the unit log, kind 0x22): the arms' counters now count assignments that
        // no record implies.
        // sled refuses another segment size than the store was created with.
        let db = sled::Config::new()
            .path(app.data_dir())
            .segment_size(banditd::store::sled_segment_size(&app.data_dir()))
            .open()
            .expect("the stopped server's data dir opens");
        let logged: Vec<_> = db
            .scan_prefix([0x22])
            .map(|item| item.expect("readable").0)
            .collect();
        assert!(!logged.is_empty(), "the unit log holds the sticky records");
        for key in logged {
            db.remove(key).unwrap();
        }
        db.flush().unwrap();
    }
    let output = audit(&app);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let out = text(&output);
    assert!(
        out.contains("MISMATCH headline revision 1 variant "),
        "{out}"
    );
    assert!(out.contains("counters disagree with the records"), "{out}");
}

#[test]
fn audit_of_a_data_dir_in_use_or_missing_exits_2() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    let output = audit(&app);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("banditd audit:"),
        "{}",
        text(&output)
    );
    assert_eq!(app.terminate(), Some(0));
    let missing = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["audit", "--data-dir"])
        .arg(app.data_dir().join("nothing-here"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("holds no store"),
        "{}",
        text(&missing)
    );
}
