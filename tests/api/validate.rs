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
