//! A real disk fault in the running server: the store's writes fail, the server says so and
//! degrades without lying, and it recovers by itself once the fault clears.
//!
//! The fault is a file-size limit (`prlimit --fsize`) of 0 bytes on the server process: every
//! write to a regular file then fails with EFBIG (the server ignores SIGXFSZ, see src/main.rs),
//! as on a failing disk: a limit of 0 fails a write at any offset, inside the file too (the
//! redo log writes into blocks written ahead, `src/store/wal.rs`, so a limit at a file's size
//! would not fail it). Only the soft limit is lowered, so lifting it needs no privilege.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use banditd::store::SledStore;

use crate::helpers::{PER_REQUEST, Reply, STICKY, TestApp};

/// The server's process id, found by its data dir on its command line (unique per test).
pub(crate) fn server_pid(data_dir: &Path) -> u32 {
    let needle = data_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        if args.iter().any(|arg| arg == &needle) && args.iter().any(|arg| arg == "serve") {
            return pid;
        }
    }
    panic!("no banditd process serves {needle}");
}

/// Sets the soft file-size limit of `pid` (`None`: unlimited). Panics, loudly, when `prlimit`
/// (util-linux) is missing: this test must not pass without its fault.
pub(crate) fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let limit = bytes.map_or_else(|| "unlimited:".to_owned(), |bytes| format!("{bytes}:"));
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}")])
        .status()
        .expect("prlimit (util-linux) is needed to inject the disk fault");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

/// GET returning the status, the `Retry-After` header and the body.
fn get_with_headers(app: &TestApp, path: &str) -> (u16, Option<String>, Value) {
    let mut response = app
        .agent
        .get(format!("{}{path}", app.address))
        .call()
        .expect("GET");
    read(&mut response)
}

fn post_with_headers(app: &TestApp, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let mut response = app
        .agent
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("POST");
    read(&mut response)
}

fn read(response: &mut ureq::http::Response<ureq::Body>) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry_after, body)
}

/// Polls `/readyz` until it answers `status`; returns how long that took.
fn wait_for_readyz(app: &TestApp, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if app.get("/readyz").status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/readyz did not answer {status} within {within:?}: {}",
            app.get("/readyz").body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assign_per_request(app: &TestApp, unit: &str) -> Value {
    let r = app.get(&format!("/v1/experiments/ranking/assign?unit={unit}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Every arm has no more reward than exposures, and the store's audit is clean.
fn assert_numbers_hold(app: &mut TestApp) {
    for experiment in ["headline", "ranking"] {
        for arm in app.arms(experiment) {
            let exposures = arm["exposures"].as_f64().unwrap_or(0.0);
            let rewards = arm["rewards"].as_f64().unwrap_or(0.0);
            assert!(
                rewards <= exposures,
                "{experiment}/{}: {rewards} reward for {exposures} exposures",
                arm["variant"]
            );
        }
    }
    assert_eq!(app.terminate(), Some(0), "clean shutdown");
    let store = SledStore::open(&app.data_dir()).expect("reopen the store");
    let report = store.audit().expect("audit");
    assert!(
        report.is_clean(),
        "counters disagree with records: {report:?}"
    );
}

/// A server with a sticky and a per-request experiment, a known unit and a token from before the
/// fault, and a file-size limit that makes every store write fail; the first failing write has
/// been made (a new sticky unit), and its page still got an answer.
struct Faulted {
    app: TestApp,
    pid: u32,
    known: Value,
    token_before: Value,
    failed_at: Instant,
    /// The answer to the first write that failed.
    first: Reply,
}

impl Faulted {
    fn start() -> Self {
        let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
        let known = app.assign("headline", "known");
        assert_eq!(known["counted"], true);
        let before = assign_per_request(&app, "before");
        assert_eq!(app.get("/readyz").status, 200);
        let pid = server_pid(&app.data_dir());
        set_file_size_limit(pid, Some(0));
        let failed_at = Instant::now();
        let first = app.get("/v1/experiments/headline/assign?unit=first-after-fault");
        Faulted {
            app,
            pid,
            known,
            token_before: before["token"].clone(),
            failed_at,
            first,
        }
    }

    /// Lifts the limit; returns when that happened.
    fn clear(&self) -> Instant {
        set_file_size_limit(self.pid, None);
        Instant::now()
    }
}

#[test]
fn readyz_answers_503_with_the_reason_while_writes_fail_and_200_once_they_work_again() {
    let faulted = Faulted::start();
    let app = &faulted.app;
    let took = wait_for_readyz(app, 503, Duration::from_secs(1));
    eprintln!(
        "/readyz 503 {took:?} after the failing request returned ({:?} after it was sent)",
        faulted.failed_at.elapsed()
    );
    let (status, retry_after, body) = get_with_headers(app, "/readyz");
    assert_eq!(status, 503);
    assert!(retry_after.is_some(), "a 503 says when to retry");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("store") && detail.contains("File too large"),
        "/readyz says why: {body}"
    );
    let admin = app.get("/v1/admin/store").body;
    assert_eq!(admin["health"]["writable"], false, "{admin}");
    assert!(admin["health"]["failing"]["started_ms"].is_u64(), "{admin}");

    let cleared = faulted.clear();
    wait_for_readyz(app, 200, Duration::from_millis(2500));
    eprintln!(
        "/readyz 200 {:?} after the fault cleared",
        cleared.elapsed()
    );
}

#[test]
fn while_writes_fail_assigns_promise_nothing_and_events_are_refused_unapplied() {
    let mut faulted = Faulted::start();
    let app = &faulted.app;
    // Per-request: nothing counted, so no token that could earn a reward later.
    let mut tokens = Vec::new();
    for i in 0..20 {
        let answer = assign_per_request(app, &format!("pr-{i}"));
        assert_eq!(answer["token"], Value::Null, "{answer}");
        assert_eq!(answer["counted"], false);
        assert_eq!(answer["degraded"], true);
        assert_eq!(answer["variant"], "a");
        tokens.push(answer["token"].clone());
    }
    let first = &faulted.first;
    assert_eq!(first.status, 200, "a page never breaks: {}", first.body);
    assert_eq!(first.body["degraded"], true, "{}", first.body);
    assert_eq!(first.body["token"], Value::Null, "{}", first.body);
    assert_eq!(
        faulted.known["degraded"], false,
        "a normal answer says it is not degraded"
    );
    // A new sticky unit: the default variant, uncounted, no token.
    let fresh = app.assign("headline", "new-while-failing");
    assert_eq!(fresh["variant"], "control", "{fresh}");
    assert_eq!(fresh["counted"], false);
    assert_eq!(fresh["token"], Value::Null);
    assert_eq!(fresh["degraded"], true);
    // A known unit keeps its variant, uncounted, without a token.
    let again = app.assign("headline", "known");
    assert_eq!(again["variant"], faulted.known["variant"], "{again}");
    assert_eq!(again["counted"], false);
    assert_eq!(again["token"], Value::Null);
    assert_eq!(again["degraded"], true);
    // Events: 503 with Retry-After, and nothing of the request applied.
    let during = json!([
        {"id": "during-1", "experiment": "headline", "unit": "known"},
        {"id": "during-2", "experiment": "ranking", "token": faulted.token_before},
    ]);
    let (status, retry_after, body) = post_with_headers(app, "/v1/events", &during);
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert_eq!(body["status"], 503, "problem+json: {body}");

    faulted.clear();
    wait_for_readyz(app, 200, Duration::from_millis(2500));
    // The refused events were not applied: now they are, once.
    let report = app.post_events(&during);
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(report["duplicate"], 0, "{report}");
    // Rewards for every answer given during the fault: none can land on an arm.
    let events: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(_, token)| token.is_string())
        .map(|(i, token)| json!({"id": format!("pr-{i}"), "experiment": "ranking", "token": token}))
        .collect();
    if !events.is_empty() {
        app.post_events(&Value::Array(events));
    }
    assert_numbers_hold(&mut faulted.app);
}

#[test]
fn writes_resume_by_themselves_within_two_seconds_of_the_disk_accepting_them() {
    let mut faulted = Faulted::start();
    let app = &faulted.app;
    // Long enough for several reopen attempts to fail against the limit.
    std::thread::sleep(Duration::from_millis(1500));
    let cleared = faulted.clear();
    let deadline = Duration::from_millis(2500);
    loop {
        let r = app.get("/v1/experiments/headline/assign?unit=new-after-recovery");
        if r.status == 200 && r.body["counted"] == true {
            assert!(r.body["token"].is_string());
            assert_eq!(r.body["degraded"], false);
            break;
        }
        assert!(
            cleared.elapsed() < deadline,
            "writes did not resume within {deadline:?} of the fault clearing: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "writes resumed {:?} after the fault cleared",
        cleared.elapsed()
    );
    let pr = assign_per_request(app, "after");
    assert!(pr["token"].is_string(), "{pr}");
    let report = app.post_events(&json!([
        {"id": "after-1", "experiment": "headline", "unit": "new-after-recovery"},
        {"id": "after-2", "experiment": "ranking", "token": pr["token"]},
    ]));
    assert_eq!(report["applied"], 2, "{report}");

    let admin = app.get("/v1/admin/store").body;
    let health = &admin["health"];
    assert_eq!(health["writable"], true, "{admin}");
    assert_eq!(health["episodes"], 1, "{admin}");
    let episode = &health["last_episode"];
    assert!(
        episode["ended_ms"].as_u64() >= episode["started_ms"].as_u64(),
        "{admin}"
    );
    assert!(episode["cause"].is_string(), "{admin}");
    let errors = app
        .log
        .lock()
        .unwrap()
        .iter()
        // sled logs its own I/O errors too (target `sled::…`), once per failed write.
        .filter(|line| line.contains("\"ERROR\"") && line.contains("\"target\":\"banditd"))
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(errors.len(), 1, "one error line per episode: {errors:#?}");
    assert!(
        errors[0].contains("File too large"),
        "the cause is logged: {}",
        errors[0]
    );
    assert!(
        app.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("store recovered")),
        "the episode's end is logged"
    );
    assert_numbers_hold(&mut faulted.app);
}
