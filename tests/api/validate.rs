//! `banditd validate` and startup refusal on invalid experiment files.

use std::process::Command;

use crate::helpers::{STICKY, TestApp};

fn validate(paths: &[&std::path::Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("validate")
        .args(paths)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn validate_accepts_the_bundled_experiments() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let (code, out) = validate(&[&dir]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok")).count(),
        3,
        "{out}"
    );
}

#[test]
fn validate_prints_every_error_with_file_line_and_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = STICKY.replace("min_share: 0.05", "min_share: 0.6");
    std::fs::write(dir.path().join("a.yaml"), &bad).unwrap();
    std::fs::write(dir.path().join("b.yaml"), "id: b\nstatus: [oops\n").unwrap();
    let (code, out) = validate(&[dir.path()]);
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.contains("a.yaml")).expect(&out);
    // `policy: { burn_in: 0, min_share: 0.6 }` is line 8 of the file.
    assert!(line.contains("a.yaml:8:"), "{line}");
    assert!(line.contains("min_share"), "{line}");
    assert!(out.lines().any(|l| l.contains("b.yaml:")), "{out}");
}

#[test]
fn serve_refuses_to_start_on_an_invalid_folder() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.terminate();
    std::fs::write(app.experiments_dir().join("broken.yaml"), "id: Broken!\n").unwrap();
    let log = app.start().expect_err("must refuse to start");
    assert!(log.contains("broken.yaml"), "{log}");
}

#[test]
fn schema_prints_the_shipped_json_schema() {
    let out = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let shipped = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/experiment.schema.json"),
    )
    .unwrap();
    assert_eq!(out.stdout, shipped);
}

fn validate_args(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("validate")
        .args(args)
        .env_remove("BANDITD_ENVIRONMENT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn validate_fails_on_a_folder_with_no_experiment_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, out) = validate_args(&[path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--allow-empty"), "{out}");
    let (code, out) = validate_args(&[path, "--allow-empty"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn validate_warns_about_an_environment_no_file_names_and_yaml_1_1_booleans() {
    let dir = tempfile::tempdir().unwrap();
    let text = STICKY
        .replace(
            "status: running",
            "status: running\nenvironments: [production]",
        )
        .replace(
            "payload: { headline: \"Build faster\" }",
            "payload: { headline: \"Build faster\", show_banner: no }",
        );
    std::fs::write(dir.path().join("headline.yaml"), &text).unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, out) = validate_args(&[path, "--environment", "prod"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "warning: the environment `prod` is named by no experiment file (they name: production)"
        ),
        "{out}"
    );
    let (code, out) = validate_args(&[path, "--environment", "production"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("environment `production` is named by no"),
        "{out}"
    );
    assert!(
        out.contains("headline.yaml:") && out.contains(": warning: `no` is the text \"no\""),
        "{out}"
    );
}

#[test]
fn serve_warns_at_startup_about_an_environment_no_file_names() {
    let text = STICKY.replace(
        "status: running",
        "status: running\nenvironments: [production]",
    );
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", &text)],
        &[("BANDITD_ENVIRONMENT", "prod")],
    );
    let log = app.log.lock().unwrap().join("\n");
    assert!(
        log.contains(
            "the environment `prod` is named by no experiment file (they name: production)"
        ),
        "{log}"
    );
}

#[test]
fn serve_logs_a_yaml_1_1_boolean_in_a_payload_when_it_loads_the_file() {
    let text = STICKY.replace(
        "payload: { headline: \"Build faster\" }",
        "payload: { headline: \"Build faster\", show_banner: no }",
    );
    let app = TestApp::spawn(&[("headline.yaml", &text)]);
    // The file is valid and served as written; the log (JSON, quotes escaped) says where
    // the trap is.
    let log = app.log.lock().unwrap().join("\n");
    assert!(
        log.contains("headline.yaml:") && log.contains("warning: `no` is the text \\\"no\\\" here"),
        "{log}"
    );
}
