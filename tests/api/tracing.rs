//! Request ids, the access log and the log output itself, over the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{STICKY, TestApp};

/// A GET with an optional `X-Request-Id`: (status, the answer's `X-Request-Id`, body).
fn get_with_id(app: &TestApp, path: &str, id: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = app.agent.get(format!("{}{path}", app.address));
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let mut response = request.call().expect("GET");
    let echoed = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("ASCII id").to_owned());
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (response.status().as_u16(), echoed, body)
}

/// The server's JSON log lines so far.
fn json_lines(app: &TestApp) -> Vec<Value> {
    app.log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits up to 10 s for a log line that `wanted` accepts.
fn wait_for_line(app: &TestApp, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = json_lines(app).into_iter().find(&wanted) {
            return Some(line);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_access_line(line: &Value) -> bool {
    line["target"] == "banditd::access"
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

#[test]
fn a_given_request_id_is_echoed_and_a_missing_one_is_generated() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let (status, echoed, _) = get_with_id(&app, "/healthz", Some("lb-7f3a:req_42"));
    assert_eq!(status, 200);
    assert_eq!(echoed.as_deref(), Some("lb-7f3a:req_42"));

    let (_, first, _) = get_with_id(&app, "/v1/experiments/headline/assign?unit=u1", None);
    let (_, second, _) = get_with_id(&app, "/v1/experiments/headline/assign?unit=u1", None);
    let (first, second) = (first.expect("generated id"), second.expect("generated id"));
    assert!(is_uuid(&first), "{first}");
    assert_ne!(first, second, "every request gets its own id");
}

#[test]
fn an_incoming_request_id_that_is_too_long_or_not_visible_ascii_is_replaced() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for bad in [
        "x".repeat(129),
        "two words".to_owned(),
        "tab\there".to_owned(),
    ] {
        let Ok(_) = ureq::http::HeaderValue::from_str(&bad) else {
            continue; // not even a header value: the client cannot send it
        };
        let (status, echoed, _) = get_with_id(&app, "/healthz", Some(&bad));
        assert_eq!(status, 200);
        let echoed = echoed.expect("an id");
        assert!(is_uuid(&echoed), "{bad:?} was answered with {echoed:?}");
    }
    let longest = "y".repeat(128);
    let (_, echoed, _) = get_with_id(&app, "/healthz", Some(&longest));
    assert_eq!(echoed.as_deref(), Some(longest.as_str()));
}

#[test]
fn a_problem_body_carries_the_request_id_of_its_header() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    // An engine error, an unknown route and a malformed query: three paths to a problem.
    for path in [
        "/v1/experiments/nope/assign?unit=u1",
        "/no/such/route",
        "/v1/experiments/headline/assign?unit=%FF",
    ] {
        let (status, echoed, body) = get_with_id(&app, path, Some("trace-me-1"));
        assert!(status >= 400, "{path}: {status}");
        assert_eq!(echoed.as_deref(), Some("trace-me-1"), "{path}");
        assert_eq!(body["request_id"], "trace-me-1", "{path}: {body}");
        let (_, generated, body) = get_with_id(&app, path, None);
        let generated = generated.expect("an id");
        assert_eq!(body["request_id"], generated.as_str(), "{path}: {body}");
    }
}

#[test]
fn a_refused_preflight_rewritten_as_a_problem_carries_the_request_id() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_CORS_ORIGINS", "https://shop.example")],
    );
    let mut response = app
        .agent
        .options(format!("{}/v1/assign", app.address))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("x-request-id", "preflight-9")
        .call()
        .expect("OPTIONS");
    assert!(response.status().is_client_error(), "{}", response.status());
    let content_type = response.headers().get("content-type").cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["request_id"], "preflight-9", "{body}");
}

#[test]
fn every_request_gets_an_access_log_line_with_its_route_template_status_latency_and_id() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let (status, _, _) = get_with_id(
        &app,
        "/v1/experiments/headline/assign?unit=visitor-1",
        Some("access-1"),
    );
    assert_eq!(status, 200);
    let line = wait_for_line(&app, |l| {
        is_access_line(l) && l["fields"]["request_id"] == "access-1"
    })
    .expect("an access log line");
    let fields = &line["fields"];
    assert_eq!(line["level"], "INFO");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/v1/experiments/{id}/assign", "{line}");
    assert_eq!(fields["status"], 200);
    assert!(
        fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    // The request's span rides along, so the line can be joined with its other lines.
    assert_eq!(line["span"]["name"], "http_request", "{line}");
    assert_eq!(line["span"]["request_id"], "access-1", "{line}");
    assert_eq!(
        line["span"]["route"], "/v1/experiments/{id}/assign",
        "{line}"
    );
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["span"]["status"], 200, "{line}");
    assert_eq!(line["span"]["latency_ms"], fields["latency_ms"], "{line}");

    let (status, _, _) = get_with_id(&app, "/v1/experiments/visitor-2/nothing", Some("access-2"));
    assert_eq!(status, 404);
    let line = wait_for_line(&app, |l| {
        is_access_line(l) && l["fields"]["request_id"] == "access-2"
    })
    .expect("an access log line for an unknown route");
    assert_eq!(line["fields"]["status"], 404);
    assert_eq!(
        line["fields"]["route"], "(unmatched)",
        "never the raw path: {line}"
    );
}

#[test]
fn a_line_written_inside_a_request_carries_its_id_route_and_method_with_the_access_log_off() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ACCESS_LOG", "off")],
    );
    app.write_experiment("second.yaml", &STICKY.replace("id: headline", "id: second"));
    let response = app
        .agent
        .post(format!("{}/v1/admin/reload", app.address))
        .header("x-request-id", "reload-7")
        .header("content-type", "application/json")
        .send("{}")
        .expect("POST");
    assert_eq!(response.status(), 200);
    let line = wait_for_line(&app, |l| {
        l["fields"]["message"] == "experiments reloaded" && l["fields"]["trigger"] == "api"
    })
    .expect("the reload's line");
    let span = &line["span"];
    assert_eq!(span["name"], "http_request", "{line}");
    assert_eq!(span["request_id"], "reload-7", "{line}");
    assert_eq!(span["route"], "/v1/admin/reload", "{line}");
    assert_eq!(span["method"], "POST", "{line}");
    assert_eq!(line["spans"][0]["request_id"], "reload-7", "{line}");
}

#[test]
fn the_access_log_can_be_turned_off() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ACCESS_LOG", "off")],
    );
    for unit in ["a", "b", "c"] {
        app.assign("headline", unit);
    }
    let (_, echoed, _) = get_with_id(&app, "/healthz", Some("still-echoed"));
    assert_eq!(echoed.as_deref(), Some("still-echoed"));
    std::thread::sleep(Duration::from_millis(500));
    let access: Vec<Value> = json_lines(&app)
        .into_iter()
        .filter(is_access_line)
        .collect();
    assert!(access.is_empty(), "{access:?}");
}

#[test]
fn a_bad_access_log_setting_is_refused_with_the_accepted_forms() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    app.set_env("BANDITD_ACCESS_LOG", "sometimes");
    let log = app.start().expect_err("refused");
    assert!(log.contains("sample:<rate>"), "{log}");
}

#[test]
fn reload_logs_carry_their_lists_as_json_arrays() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.write_experiment("second.yaml", &STICKY.replace("id: headline", "id: second"));
    let r = app.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let applied = wait_for_line(&app, |l| l["fields"]["message"] == "experiments reloaded")
        .expect("a reload line");
    let experiments = applied["fields"]["experiments"]
        .as_array()
        .expect("an array");
    let mut ids: Vec<&str> = experiments.iter().filter_map(Value::as_str).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["headline", "second"], "{applied}");

    app.write_experiment("second.yaml", "id: second\nstatus: [unclosed\n");
    let r = app.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 422, "{}", r.body);
    let refused = wait_for_line(&app, |l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("reload refused"))
    })
    .expect("a refused line");
    let errors = refused["fields"]["errors"].as_array().expect("an array");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("second.yaml"))),
        "{refused}"
    );
}

/// Runs `banditd serve` in `format` with `RUST_LOG=filter` on `experiments` until it exits by
/// itself; returns (exit code, stderr).
fn failed_start(experiments: &[(&str, &str)], format: &str, filter: &str) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("experiments");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in experiments {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["--log-format", format, "serve", "--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--experiments")
        .arg(&dir)
        .env_clear()
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .output()
        .expect("run banditd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn a_startup_error_is_printed_once_and_without_colour_codes_in_a_pipe() {
    let broken = [("broken.yaml", "id: broken\nstatus: [unclosed\n")];
    for format in ["pretty", "json"] {
        let (code, stderr) = failed_start(&broken, format, "info");
        assert_eq!(code, Some(1), "{stderr}");
        let times = stderr.matches("the experiment folder is invalid").count();
        assert_eq!(times, 1, "{format}: printed {times} times:\n{stderr}");
        assert_eq!(stderr.matches("broken.yaml").count(), 1, "{stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: ANSI codes in a pipe:\n{stderr:?}"
        );
    }
    // A filter that hides errors still gets the reason, once, as plain text.
    let (code, stderr) = failed_start(&broken, "json", "off");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.matches("the experiment folder is invalid").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.starts_with("banditd serve: "), "{stderr}");
    let (code, stderr) = failed_start(&broken, "json", "info");
    assert_eq!(code, Some(1));
    let line: Value = stderr
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the error as a JSON line");
    assert_eq!(line["level"], "ERROR", "{stderr}");
}
