//! What an operator sees: the startup summary and its open-route warnings, the build behind
//! `--version` and `GET /v1/admin/build`, refused starts that leave nothing behind and say
//! what to do, SIGHUP without changes, and `/readyz` during the shutdown drain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{STICKY, TestApp};

const ADMIN_KEY: &str = "admin-key-value-never-logged";

/// The JSON log lines whose text contains `needle`.
fn lines_with(app: &TestApp, needle: &str) -> Vec<Value> {
    app.log
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(needle))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn whole_log(app: &TestApp) -> String {
    app.log.lock().unwrap().join("\n")
}

/// Runs `banditd serve` with `args` (after `--data-dir` and `--experiments` of `root`) until
/// it exits, and returns its exit code and stderr. For starts that must be refused.
fn refused_start(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("serve")
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--experiments")
        .arg(root.join("experiments"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn banditd");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut log = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut log)
                .unwrap();
            return (status.code(), log);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("banditd serve {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn folder_with_experiment() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("experiments")).unwrap();
    std::fs::write(root.path().join("experiments/headline.yaml"), STICKY).unwrap();
    root
}

#[test]
fn the_startup_summary_says_what_runs_and_names_the_keys_that_are_set_never_their_values() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[
            ("BANDITD_ADMIN_KEY", ADMIN_KEY),
            ("BANDITD_CORS_ORIGINS", "https://www.example.com"),
        ],
    );
    let summary = lines_with(&app, "experiment(s) loaded");
    assert_eq!(summary.len(), 1, "{}", whole_log(&app));
    let summary = &summary[0];
    assert_eq!(summary["level"], "INFO", "{summary}");
    let fields = &summary["fields"];
    assert_eq!(fields["version"], env!("CARGO_PKG_VERSION"), "{summary}");
    assert!(
        fields["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{summary}"
    );
    let data_dir = app.data_dir().display().to_string();
    assert_eq!(fields["store"], format!("sled {data_dir}"), "{summary}");
    assert_eq!(
        fields["experiments"],
        serde_json::json!(["headline"]),
        "{summary}"
    );
    let config = app
        .agent
        .get(format!("{}/v1/admin/config", app.address))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<Value>()
        .unwrap();
    assert_eq!(
        fields["experiments_version"], config["version"],
        "{summary}"
    );
    assert!(
        fields["watcher"].as_str().unwrap().starts_with("on ("),
        "{summary}"
    );
    assert_eq!(fields["environment"], "(all)", "{summary}");
    assert_eq!(
        fields["origins"],
        serde_json::json!(["https://www.example.com"]),
        "{summary}"
    );
    assert_eq!(
        fields["keys_set"],
        serde_json::json!(["admin"]),
        "{summary}"
    );
    assert!(!whole_log(&app).contains(ADMIN_KEY));
    // The admin key also opens the events routes: nothing is open, nothing to warn about.
    assert!(
        lines_with(&app, "routes are open").is_empty(),
        "{}",
        whole_log(&app)
    );
}

#[test]
fn open_admin_and_event_routes_are_warned_about_on_loopback() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let warnings = lines_with(&app, "routes are open");
    let routes: Vec<&str> = warnings
        .iter()
        .map(|w| w["fields"]["routes"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(routes, ["admin", "events"], "{}", whole_log(&app));
    assert!(warnings.iter().all(|w| w["level"] == "WARN"));
    assert!(lines_with(&app, "OPEN TO THE NETWORK").is_empty());
}

#[test]
fn a_server_bound_to_every_interface_with_empty_keys_warns_loudly() {
    let root = folder_with_experiment();
    let mut child = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--experiments")
        .arg(root.path().join("experiments"))
        .env_clear()
        .env("RUST_LOG", "info")
        // An empty key, as the Docker image's compose file leaves them.
        .env("BANDITD_ADMIN_KEY", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn banditd");
    let stderr = child.stderr.take().unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let done = line.contains("listening on");
        log.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let loud: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("OPEN TO THE NETWORK"))
        .collect();
    assert_eq!(loud.len(), 2, "{log:#?}");
    assert!(loud[0].contains("BANDITD_ADMIN_KEY") && loud[1].contains("BANDITD_EVENTS_KEY"));
}

#[test]
fn version_and_the_build_route_show_the_same_commit() {
    let output = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let version = String::from_utf8(output.stdout).unwrap();
    assert!(
        version.starts_with(&format!("banditd {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ADMIN_KEY", ADMIN_KEY)],
    );
    assert_eq!(app.get("/v1/admin/build").status, 401);
    let build: Value = app
        .agent
        .get(format!("{}/v1/admin/build", app.address))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"), "{build}");
    let commit = build["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{build}"
    );
    assert!(
        version.contains(&format!("(commit {commit},")),
        "{version} vs {build}"
    );
    assert!(
        build["profile"].is_string() && build["target"].is_string(),
        "{build}"
    );
    assert!(build["features"].is_array(), "{build}");
}

#[test]
fn a_bind_without_a_port_is_refused_with_the_host_port_form_and_no_data_dir_left_behind() {
    let root = folder_with_experiment();
    let (code, log) = refused_start(root.path(), &["--bind", "localhost"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("localhost:8080"), "{log}");
    assert_eq!(log.matches("cannot listen on").count(), 1, "{log}");
    assert!(!root.path().join("data").exists(), "{log}");
}

#[test]
fn a_weak_token_secret_names_the_flag_given_and_leaves_no_data_dir_behind() {
    let root = folder_with_experiment();
    let (code, log) = refused_start(root.path(), &["--token-secret", "short"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("--token-secret"), "{log}");
    assert!(!root.path().join("data").exists(), "{log}");
}

#[test]
fn a_second_server_on_the_same_data_dir_says_another_banditd_holds_it() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let (code, log) = refused_start(app.root.path(), &["--bind", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("in use by another running banditd"), "{log}");
    assert!(!log.contains("Os {"), "{log}");
}

#[test]
fn a_sighup_that_changes_nothing_logs_that_it_checked() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines_with(&app, "unchanged").is_empty() {
        assert!(Instant::now() < deadline, "{}", whole_log(&app));
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = &lines_with(&app, "unchanged")[0];
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["trigger"], "sighup", "{line}");
}

/// Sends a keep-alive `GET path` on `stream` and returns the status code.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: banditd\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"))
}

#[test]
fn readyz_answers_503_on_a_connection_still_open_during_the_shutdown_drain() {
    let mut app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_SHUTDOWN_DELAY", "3s")],
    );
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(keep_alive_get(&mut stream, "/readyz"), 200);
    app.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines_with(&app, "shutting down").is_empty() {
        assert!(Instant::now() < deadline, "{}", whole_log(&app));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(keep_alive_get(&mut stream, "/readyz"), 503);
    // Other routes still answer while the load balancer takes the node out.
    assert_eq!(keep_alive_get(&mut stream, "/healthz"), 200);
    drop(stream);
    assert_eq!(app.wait_exit(), Some(0));
}
