//! `guardrails:` before the server enforces them: `validate` accepts the list, while `serve`
//! refuses to start on it and a reload refuses it, so no experiment runs with a halt rule
//! that nothing applies.

use std::process::Command;

use serde_json::json;

use crate::helpers::{STICKY, TestApp, assert_problem};

const GUARDRAILS: &str = "guardrails:\n  - metric: refunds\n    direction: lower_is_better\n    \
                          max_relative_change: 0.1\n";

fn with_guardrails() -> String {
    format!("{STICKY}{GUARDRAILS}")
}

#[test]
fn validate_accepts_an_experiment_with_guardrails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headline.yaml");
    std::fs::write(&file, with_guardrails()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("ok"), "{stdout}");
}

#[test]
fn serve_and_reload_refuse_guardrails_until_the_server_enforces_them() {
    let mut app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_NO_WATCH", "true")],
    );
    let variant = app.assign("headline", "u1")["variant"].clone();
    app.write_experiment("headline.yaml", &with_guardrails());
    let reply = app.post_json("/v1/admin/reload", &json!({}));
    assert_problem(&reply, 422, "nothing was changed");
    let errors = reply.body["errors"].to_string();
    assert!(
        errors.contains("headline.yaml") && errors.contains("does not enforce"),
        "{errors}"
    );
    // Still serving the last good set.
    assert_eq!(app.assign("headline", "u1")["variant"], variant);

    app.terminate();
    let log = app.start().expect_err("serve refuses to start");
    assert!(
        log.contains("`guardrails`") && log.contains("does not enforce"),
        "{log}"
    );
}
