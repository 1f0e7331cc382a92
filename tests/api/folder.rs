//! The experiment folder leaks nothing: a link to a file outside it is refused unread by
//! `banditd validate`, the reload response, `/v1/admin/config` and the log alike, no message
//! quotes more than 80 characters of a file, and the limits are named when exceeded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{STICKY, TestApp, assert_problem};

/// Text that must never come out of the server: long lines, no spaces after colons (so
/// YAML reads each line as one long word).
fn secret_text() -> String {
    (0..40)
        .map(|i| {
            format!(
                "user{i:02}:$6$SECRET{i:02}${}:19700:0:99999:7:::\n",
                "Xq7".repeat(28)
            )
        })
        .collect()
}

fn validate(paths: &[&Path]) -> (i32, String) {
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

fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Asserts that `output` holds no run of 81 characters of `text`, and none of its secrets.
fn assert_no_leak(output: &str, text: &str) {
    assert!(!output.contains("SECRET01"), "{output}");
    let chars: Vec<char> = text.chars().collect();
    for window in chars.windows(81) {
        let window: String = window.iter().collect();
        assert!(!output.contains(&window), "quotes {window:?}:\n{output}");
    }
}

#[test]
fn a_link_out_of_the_folder_is_refused_unread_everywhere_the_error_goes() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, secret_text()).unwrap();
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let version = app.get("/v1/admin/config").body["version"].clone();
    std::os::unix::fs::symlink(&secret, app.experiments_dir().join("x.yaml")).unwrap();

    // The watcher notices by itself, refuses, and records why.
    assert!(eventually(Duration::from_secs(10), || app
        .get("/v1/admin/config")
        .body["last_error"]
        != Value::Null));
    let config = app.get("/v1/admin/config").body;
    assert_eq!(
        config["version"], version,
        "still serving the last good set"
    );
    let last_error = config["last_error"].to_string();
    assert_no_leak(&last_error, &secret_text());
    assert!(
        last_error
            .contains("x.yaml:0:0: is a symbolic link to a file outside the experiment folder"),
        "{last_error}"
    );

    let reload = app.post_json("/v1/admin/reload", &json!({}));
    assert_problem(&reload, 422, "nothing was changed");
    assert_no_leak(&reload.body.to_string(), &secret_text());

    let (code, out) = validate(&[&app.experiments_dir()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("x.yaml:0:0: is a symbolic link"), "{out}");
    assert_no_leak(&out, &secret_text());

    let log = app.log.lock().unwrap().join("\n");
    assert!(log.contains("x.yaml"), "the refusal is logged");
    assert_no_leak(&log, &secret_text());
}

#[test]
fn a_file_that_is_not_an_experiment_shows_at_most_80_characters_of_itself() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    let long_line: String = (0..5_000).map(|i| format!("{:x}", i % 16)).collect();
    app.write_experiment("line.yaml", &long_line);
    app.write_experiment("secrets.yaml", &secret_text());
    let reload = app.post_json("/v1/admin/reload", &json!({}));
    assert_problem(&reload, 422, "nothing was changed");
    let errors = reload.body["errors"].to_string();
    let config = app.get("/v1/admin/config").body["last_error"].to_string();
    let log = app.log.lock().unwrap().join("\n");
    let (_, validated) = validate(&[&app.experiments_dir()]);
    for output in [&errors, &config, &log, &validated] {
        assert_no_leak(output, &long_line);
        assert_no_leak(output, &secret_text());
    }
    assert!(
        errors.contains("line.yaml") && errors.contains("secrets.yaml"),
        "{errors}"
    );
    assert!(errors.contains('…'), "{errors}");
}

#[test]
fn validate_names_the_variant_and_file_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let variants: String = (0..101)
        .map(|i| format!("  - id: v{i}\n    payload: {i}\n"))
        .collect();
    let wide = STICKY
        .replace("id: headline", "id: wide")
        .replace("min_share: 0.05", "min_share: 0.001")
        .split("variants:")
        .next()
        .map(|head| format!("{head}variants:\n{variants}"))
        .unwrap()
        .replace("default_variant: control", "default_variant: v0");
    std::fs::write(dir.path().join("wide.yaml"), &wide).unwrap();
    // Sparse: 2 MiB by size, refused without being read.
    let big = std::fs::File::create(dir.path().join("big.yaml")).unwrap();
    big.set_len(2 * 1024 * 1024).unwrap();
    let (code, out) = validate(&[dir.path()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wide.yaml:")
            && out.contains("lists 101 variants, above the limit of 100 per experiment"),
        "{out}"
    );
    assert!(
        out.contains("big.yaml:0:0:") && out.contains("above the limit of 1048576 bytes (1 MiB)"),
        "{out}"
    );
    // A hundred is fine.
    std::fs::remove_file(dir.path().join("big.yaml")).unwrap();
    let hundred = wide.replace("  - id: v100\n    payload: 100\n", "");
    std::fs::write(dir.path().join("wide.yaml"), hundred).unwrap();
    let (code, out) = validate(&[dir.path()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("100 variants"), "{out}");
}
